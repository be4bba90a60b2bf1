"""A tiny Hugging Face Trainer run that writes the run log, for tests/test_integrations.py.

    python tests/hf_run.py OUT [--resume CHECKPOINT] [--fail-at STEP]

Trains a 2-layer GPT-2 from a config for 6 steps: the train loss every step, an evaluation and a
checkpoint every 3, then trainer.evaluate() into the same log. A second Trainer only evaluates, into
eval_logs/. OUT/history.json gets the Trainer's own log_history; --fail-at raises at that step (on rank 0)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from integrations import TrainingLoggerCallback  # noqa: E402

out = sys.argv[1]
resume = sys.argv[sys.argv.index('--resume') + 1] if '--resume' in sys.argv else None
fail_at = int(sys.argv[sys.argv.index('--fail-at') + 1]) if '--fail-at' in sys.argv else None


class FailAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == fail_at and state.is_world_process_zero:  # the others are stopped by torchrun
            raise RuntimeError(f'planted failure at step {fail_at}')


torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=16, vocab_size=64))
ids = torch.randint(0, 64, (48, 16))
train = [{'input_ids': x, 'labels': x} for x in ids[:32]]
val = [{'input_ids': x, 'labels': x} for x in ids[32:]]
args = TrainingArguments(output_dir=out, max_steps=6, per_device_train_batch_size=4, per_device_eval_batch_size=8,
                         learning_rate=1e-3, logging_steps=1, eval_strategy='steps', eval_steps=3,
                         save_strategy='steps', save_steps=3, report_to='none', use_cpu=True, disable_tqdm=True,
                         hub_token='hf_secret_token_value', seed=0)
trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                  callbacks=[TrainingLoggerCallback(log_dir='logs'), FailAt()])
trainer.train(resume_from_checkpoint=resume)
trainer.evaluate()
if trainer.is_world_process_zero():
    with open(os.path.join(out, 'history.json'), 'w') as f:
        json.dump(trainer.state.log_history, f)

# an evaluation-only run is a run too, with its own log
evaluator = Trainer(model=model, args=TrainingArguments(output_dir=os.path.join(out, 'eval'), report_to='none',
                                                        use_cpu=True, disable_tqdm=True),
                    eval_dataset=val, callbacks=[TrainingLoggerCallback(log_dir='eval_logs')])
metrics = evaluator.evaluate()
if evaluator.is_world_process_zero():
    with open(os.path.join(out, 'eval_metrics.json'), 'w') as f:
        json.dump(metrics, f)
