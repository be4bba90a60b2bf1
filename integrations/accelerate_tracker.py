"""accelerate writes the run log:

    accelerator = Accelerator(log_with=[AccelerateTrainingLogger(log_dir='logs')])
    accelerator.init_trackers('project', config={...})   # the header: this config
    accelerator.log({'train_loss': 2.31, 'lr': 3e-4}, step=100)
    accelerator.end_training()                           # the footer: completed

Each accelerator.log is a step line: the first of train_loss's names in it is the train loss, the
first of val_loss's the val loss, the rest extras. accelerate calls its trackers on the main process
only. A run that never reaches end_training() is ended at interpreter exit, its footer saying how
(`failed: ...` from the uncaught exception, `interrupted` on Ctrl-C)."""
from accelerate.tracking import GeneralTracker

from integrations.common import RunLog


class AccelerateTrainingLogger(GeneralTracker):
    name = 'training_logger'
    requires_logging_directory = False

    def __init__(self, log_dir='logs', enabled=None, train_loss=('train_loss', 'train/loss', 'loss'),
                 val_loss=('val_loss', 'val/loss')):
        super().__init__()
        self.train_loss = (train_loss,) if isinstance(train_loss, str) else tuple(train_loss)
        self.val_loss = (val_loss,) if isinstance(val_loss, str) else tuple(val_loss)
        self.run = RunLog(log_dir, enabled)
        self._steps = 0  # the step of a log() that names none: one more than the last

    @property
    def tracker(self):
        return self.run

    def store_init_configuration(self, values):
        self.run.open(dict(values), True, ['accelerate'])

    def log(self, values, step=None, **kwargs):
        self.run.open({}, True, ['accelerate'])  # init_trackers without a config
        step = self._steps if step is None else step
        self._steps = step + 1
        self.run.metrics(step, values, self.train_loss, self.val_loss)

    def finish(self):
        self.run.close('completed')
