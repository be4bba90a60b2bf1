"""
What TrainingLoggerCallback adds to a Hugging Face Trainer run, and what `import integrations` costs.

    python scripts/bench_integrations.py [--steps=200] [--repeats=7] [--n_layer=2] [--block_size=16]

A GPT-2 32 wide (2 layers and 16 tokens a row by default, built from a config) trains --steps steps
on the CPU, 4 rows a batch, logging every step,
with and without the callback, alternately in this one process (the
first of each pair alternates too), so that the machine's noise hits both alike. The overhead is
the median of the pairs' ratios. On a busy machine that ratio is noise; the time spent inside the
callback's methods, also printed, is not (HF's dispatch of one more callback is the rest, a few
microseconds an event). `import integrations` is timed in fresh interpreters.
"""
import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument('--steps', type=int, default=200)
parser.add_argument('--repeats', type=int, default=7, help='pairs of runs')
parser.add_argument('--n_layer', type=int, default=2)
parser.add_argument('--block_size', type=int, default=16, help='tokens a row')
args = parser.parse_args()


def import_time():
    """Seconds that `import integrations` takes in a fresh interpreter, as -X importtime counts it
    (the package and all it imports; the interpreter's start is not in it)."""
    times = []
    for _ in range(15):
        r = subprocess.run([sys.executable, '-X', 'importtime', '-c', 'import integrations'], cwd=ROOT,
                           capture_output=True, text=True, check=True)
        line = next(line for line in r.stderr.splitlines() if line.rstrip().endswith('| integrations'))
        times.append(int(line.split('|')[1]) / 1e6)  # "import time: self [us] | cumulative | name"
    return statistics.median(times)


print(f'import integrations: {import_time() * 1000:.2f} ms (median of 15 fresh interpreters, -X importtime)')

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from integrations import TrainingLoggerCallback  # noqa: E402

hf_logging.set_verbosity_error()
torch.set_num_threads(1)
tmp = tempfile.mkdtemp(prefix='bench_integrations_')
ids = torch.randint(0, 64, (256, args.block_size), generator=torch.Generator().manual_seed(0))
train = [{'input_ids': x, 'labels': x} for x in ids]


def timed(name, method, spent):
    def call(*a, **kw):
        t0 = time.perf_counter()
        try:
            return method(*a, **kw)
        finally:
            spent.append((name, time.perf_counter() - t0))
    return call


def seconds(with_callback, n, spent):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=args.n_layer, n_head=2, n_embd=32, n_positions=args.block_size,
                                       vocab_size=64))
    out = os.path.join(tmp, f'run{n}')
    training = TrainingArguments(output_dir=out, max_steps=args.steps, per_device_train_batch_size=4,
                                 logging_steps=1, save_strategy='no',
                                 report_to='none', use_cpu=True, disable_tqdm=True, seed=0)
    callbacks = [TrainingLoggerCallback(log_dir=os.path.join(out, 'logs'))] if with_callback else []
    for callback in callbacks:
        for name in ('on_train_begin', 'on_log', 'on_save'):
            setattr(callback, name, timed(name, getattr(callback, name), spent))
    trainer = Trainer(model=model, args=training, train_dataset=train, callbacks=callbacks)
    with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints each log: both runs alike, unshown
        t0 = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - t0
    for callback in callbacks:
        callback.close()  # the footer too, inside nothing timed: it is written once per run
    return elapsed


seconds(True, -1, [])  # warm up: the first run pays for lazy imports and allocations
ratios, pairs, inside, starts, steps = [], [], [], [], []
for i in range(args.repeats):
    order = [True, False] if i % 2 == 0 else [False, True]
    spent = []
    t = {flag: seconds(flag, 2 * i + k, spent) for k, flag in enumerate(order)}
    ratios.append(t[True] / t[False])
    pairs.append((t[True], t[False]))
    total = sum(dt for _, dt in spent)
    inside.append(total / t[False])
    starts += [dt for name, dt in spent if name == 'on_train_begin']
    steps += [dt for name, dt in spent if name == 'on_log']
    print(f'pair {i + 1}: with {t[True]:.3f} s, without {t[False]:.3f} s, {100 * (ratios[-1] - 1):+.2f}%; '
          f'inside the callback {1000 * total:.1f} ms in {len(spent)} calls')
with_s, without_s = (statistics.median(p[k] for p in pairs) for k in (0, 1))
print(f'{args.n_layer} layers, {args.block_size} tokens a row: {1000 * without_s / args.steps:.1f} ms a step')
print(f'{args.steps} steps, logging every step: with the callback {with_s:.3f} s, without {without_s:.3f} s '
      f'(medians); overhead {100 * (statistics.median(ratios) - 1):+.2f}% (median of {args.repeats} pairs; goal <= 1%)')
print(f'time inside the callback: {100 * statistics.median(inside):.2f}% of the run without it (median); '
      f'its start (header, versions, git status) {1000 * statistics.median(starts):.1f} ms, '
      f'each logged step {1e6 * statistics.median(steps):.0f} us (medians)')
