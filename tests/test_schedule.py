"""The learning-rate schedule: every nanoGPT command line runs, with nanoGPT's rates."""
import math
import os

import pytest

from conftest import ROOT, logs_in, script, torchrun
from logger import read_log

# nanoGPT's char config, made small enough to train in seconds, evaluated (and so its rate
# logged) at every iteration; its schedule keys stay: learning_rate 1e-3, min_lr 1e-4, warmup 100
CHAR_CONFIG = [os.path.join(ROOT, 'config', 'train_shakespeare_char.py'), '--device=cpu', '--compile=False',
               '--dataset=tiny', '--n_layer=1', '--n_head=2', '--n_embd=32', '--block_size=32', '--batch_size=4',
               '--dropout=0.0', '--eval_interval=1', '--eval_iters=1', '--log_interval=100']


def nanogpt_lr(it, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=5000):
    """nanoGPT's get_lr (train.py), which divides by zero where lr_decay_iters == warmup_iters:
    there ours goes from warmup straight to min_lr."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters or lr_decay_iters == warmup_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def logged_lrs(workdir):
    run = read_log(logs_in(workdir)[0])
    assert run.status == 'completed'
    return [(s.iter, s.metrics['lr']) for s in run.steps]


@pytest.mark.parametrize('keys', [
    {'max_iters': 60, 'lr_decay_iters': 60},  # the command line: warmup (100) outlasts the run
    pytest.param({'max_iters': 30, 'lr_decay_iters': 10, 'warmup_iters': 20}, marks=pytest.mark.slow),  # warmup, then min_lr
    {'max_iters': 30, 'lr_decay_iters': 20, 'warmup_iters': 20},  # equal: nanoGPT divides by zero
    pytest.param({'max_iters': 30, 'lr_decay_iters': 25, 'warmup_iters': 10}, marks=pytest.mark.slow),  # warmup, cosine, min_lr
], ids=['decay_below_warmup', 'warmup_then_min', 'equal', 'cosine'])
def test_nanogpts_short_command_lines_train_with_nanogpts_rates(workdir, keys):
    r = script('train.py', *CHAR_CONFIG, *(f'--{k}={v}' for k, v in keys.items()), cwd=workdir)
    assert r.returncode == 0, r.stderr
    lrs = logged_lrs(workdir)
    assert [it for it, _ in lrs] == list(range(keys['max_iters'] + 1))
    schedule = {k: v for k, v in keys.items() if k != 'max_iters'}
    assert [lr for _, lr in lrs] == pytest.approx([nanogpt_lr(it, **schedule) for it, _ in lrs], rel=1e-5)


def test_the_short_command_line_trains_under_torchrun_with_nanogpts_rates(workdir):
    # nanoGPT's torchrun needs gradient_accumulation_steps divisible by the world size too
    r = torchrun(2, *CHAR_CONFIG, '--max_iters=60', '--lr_decay_iters=60', '--gradient_accumulation_steps=2',
                 cwd=workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    lrs = logged_lrs(workdir)
    assert [it for it, _ in lrs] == list(range(61))
    assert [lr for _, lr in lrs] == pytest.approx([nanogpt_lr(it, lr_decay_iters=60) for it, _ in lrs], rel=1e-5)


def test_a_shortened_wsd_config_decays_over_what_follows_warmup(workdir):
    # the fast CPU config warms up for 20 iterations and decays over its last 100: cut to 30
    # iterations, the decay takes the 10 after warmup
    r = script('train.py', os.path.join(ROOT, 'config', 'train_shakespeare_char_cpu.py'), *CHAR_CONFIG[1:],
               '--max_iters=30', '--lr_decay_iters=30', cwd=workdir)
    assert r.returncode == 0, r.stderr
    lrs = dict(logged_lrs(workdir))
    top, low = lrs[19] * 21 / 20, lrs[30]
    assert lrs[20] == pytest.approx(top, rel=1e-5)
    assert [lrs[it] for it in range(20, 31)] == pytest.approx([low + (top - low) * (30 - it) / 10
                                                               for it in range(20, 31)], rel=1e-5)
