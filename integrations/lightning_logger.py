"""Lightning writes the run log:

    L.Trainer(..., logger=LightningTrainingLogger(log_dir='logs'))

The header holds the LightningModule's hyperparameters and the Trainer's settings (`trainer.` keys).
Each log_metrics call is a step line: the first of train_loss's names in it is the train loss, the
first of val_loss's the val loss, the rest extras. fit then test on one Trainer are one log; its
footer is written when an entry point fails, or at interpreter exit. Checkpoints go where they go
with no logger (default_root_dir/checkpoints/), and each names the log of the run that saved it."""
import atexit
import os
import sys
from argparse import Namespace

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from integrations.common import RunLog
from logger import exit_status

# the Trainer's settings that the header holds, where the Trainer has them
SETTINGS = ['max_epochs', 'max_steps', 'min_epochs', 'min_steps', 'accumulate_grad_batches', 'gradient_clip_val',
            'gradient_clip_algorithm', 'precision', 'num_devices', 'num_nodes', 'world_size', 'log_every_n_steps',
            'val_check_interval', 'check_val_every_n_epoch', 'limit_train_batches', 'limit_val_batches',
            'limit_test_batches', 'num_sanity_val_steps', 'default_root_dir', 'ckpt_path']
KEY = 'run_log'  # the checkpoint's entry naming the log of the run that saved it


class LightningTrainingLogger(Logger):
    def __init__(self, log_dir='logs', enabled=None, train_loss=('train_loss', 'train/loss', 'loss'),
                 val_loss=('val_loss', 'val/loss')):
        super().__init__()
        self._log_dir, self.enabled = log_dir, enabled
        self.train_loss = (train_loss,) if isinstance(train_loss, str) else tuple(train_loss)
        self.val_loss = (val_loss,) if isinstance(val_loss, str) else tuple(val_loss)
        self._run = RunLog(log_dir, enabled)
        self._hparams = {}
        self._trainer = None
        self._entry = None  # the entry point (fit, test, ...) under way: its finalize has not come

    @property
    def name(self):
        return ''  # with version '': ModelCheckpoint saves in default_root_dir/checkpoints/

    @property
    def version(self):
        return ''

    @property
    def log_dir(self):
        return self._log_dir

    @property
    def path(self):
        """The log file, once a run has begun."""
        return self._run.path

    def log_hyperparams(self, params, *args, **kwargs):
        self._hparams = dict(vars(params) if isinstance(params, Namespace) else params)

    def log_graph(self, model, input_array=None):
        # every entry point (fit, validate, test) calls this, after log_hyperparams, with the module
        # attached to its Trainer: the one place a logger is handed the Trainer
        trainer = self._trainer = model.trainer
        if not any(isinstance(c, _Hooks) and c.logger is self for c in trainer.callbacks):
            trainer.callbacks.append(_Hooks(self))
        self._open()
        fn = self._entry = trainer.state.fn.value
        self._run.log(f'trainer.{fn}()')
        if fn == 'fit':
            # the checkpoint that ckpt_path named, loaded by now (Lightning restores before this hook)
            checkpoint = getattr(trainer._checkpoint_connector, '_loaded_checkpoint', None) or {}
            step = checkpoint.get('global_step', trainer.global_step)
            self._run.continues(checkpoint.get(KEY), step)
            self._run.start_training(step)

    def log_metrics(self, metrics, step=None):
        self._open()  # without autologged hyperparameters, the first metrics begin the log
        step = self._trainer.global_step if step is None and self._trainer else step
        training = self._trainer and self._trainer.training
        self._run.metrics(step, metrics, self.train_loss, self.val_loss, self._max_steps() if training else None)

    def finalize(self, status):
        # 'success' ends one entry point, not the run: fit then test write one log, ended at exit
        self._entry = None
        if status == 'failed':
            exc = sys.exc_info()[1]  # Lightning calls this while it handles the exception
            self._run.close('terminated (SIGTERM)' if isinstance(exc, SIGTERMException)
                            else exit_status(exc) if exc else 'failed')

    def close(self, status='completed'):
        """End the log now (a notebook); otherwise its footer is written at interpreter exit."""
        self._run.close(status)

    def _open(self):
        if self._run.logger is not None:
            return
        config, trainer = dict(self._hparams), self._trainer
        for name in SETTINGS if trainer else []:
            try:
                config[f'trainer.{name}'] = getattr(trainer, name)
            except Exception:  # a setting this Trainer lacks, or cannot tell yet
                pass
        if trainer:
            config['trainer.strategy'] = type(trainer.strategy).__name__
            config['trainer.accelerator'] = type(trainer.accelerator).__name__
        rank = trainer.global_rank if trainer else getattr(rank_zero_only, 'rank', 0)
        self._run.open(config, rank == 0, ['lightning'])
        atexit.register(self._at_exit)  # after setup's: it runs first

    def _at_exit(self):
        # A process that ddp_spawn started runs fit with no handler of Lightning's around it: an
        # exception there ends the process (torch catches it and exits) with no finalize, and with
        # no uncaught exception for TrainingLogger's own atexit to tell from a completion.
        if self._entry:
            self._run.close(f'failed: the process exited during trainer.{self._entry}()')

    def _max_steps(self):
        try:
            return self._trainer.max_steps if self._trainer.max_steps > 0 else self._trainer.estimated_stepping_batches
        except Exception:  # a loop whose length Lightning cannot tell
            return None


class _Hooks(Callback):
    """The Trainer's callback hooks that the logger needs: a checkpoint records its log."""

    def __init__(self, logger):
        self.logger = logger

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self.logger.path:
            checkpoint[KEY] = os.path.basename(self.logger.path)
