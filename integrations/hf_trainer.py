"""Hugging Face's Trainer writes the run log:

    Trainer(model, args, ..., callbacks=[TrainingLoggerCallback(log_dir='logs')])

The header holds the TrainingArguments (tokens redacted, as their to_dict() does) and the model's
config (`model.` keys). Each of the Trainer's logs is a step line at its global step: `loss` is the
train loss, `eval_loss` the val loss, the rest extras; train() ends with a summary message."""
import os

from transformers import TrainerCallback

from integrations.common import RunLog, recorded_log
from logger import format_metric, metric_names

SUMMARY = 'train_runtime'  # a key of the logs that train() ends with: means over the run, not a step


class TrainingLoggerCallback(TrainerCallback):
    def __init__(self, log_dir='logs', enabled=None):
        self.run = RunLog(log_dir, enabled)

    def _open(self, args, state, model):
        if self.run.logger is not None:  # every on_log asks: the config costs a millisecond to gather
            return
        config = args.to_dict()
        model_config = getattr(model, 'config', None)
        if hasattr(model_config, 'to_dict'):
            config.update({f'model.{k}': v for k, v in model_config.to_dict().items()})
        self.run.open(config, state.is_world_process_zero, ['transformers', 'accelerate'])

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._open(args, state, model)
        if state.global_step > 0:  # resumed: the Trainer has loaded checkpoint-N's state
            folder = os.path.join(args.output_dir, f'checkpoint-{state.global_step}')
            # at the step this run logs first: checkpoint-N's run logged steps 1 to N (train.py
            # counts from 0, so that its checkpoint at N continues at iter N)
            self.run.continues(recorded_log(folder), state.global_step + 1)
        self.run.start_training(state.global_step)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        self._open(args, state, model)  # an evaluate() alone has no train begin
        logs = logs or {}
        if SUMMARY in logs:
            self.run.log('summary: ' + ', '.join(f'{name} {format_metric(value)}' for name, value in
                                                 zip(metric_names(logs), logs.values())))
            return
        self.run.metrics(state.global_step, logs, ['loss'], ['eval_loss'], state.max_steps)

    def on_save(self, args, state, control, **kwargs):
        # the folder the Trainer has just saved, as its _save_checkpoint names it
        self.run.record(os.path.join(args.output_dir, f'checkpoint-{state.global_step}'))

    def close(self, status='completed'):
        """End the log now (a notebook); otherwise its footer is written at interpreter exit, so that
        train() then evaluate() are one run."""
        self.run.close(status)
