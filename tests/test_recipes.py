"""The architecture and optimizer keys through the real train.py, sample.py and bench.py: each
reaches the model, the checkpoint and the log, and a checkpoint rebuilds its model alone."""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, TEXT, logs_in, script
from logger import read_log
from model import GPT, NANOGPT_ARGS, GPTConfig

# every newer technique at once, on TINY's model
FAST = ['--optimizer=muon', '--muon_lr=0.03', '--muon_momentum=0.9', '--rope=True', '--qk_norm=True',
        '--mlp=relu2', '--tie_weights=False', '--zero_init=True', '--logit_softcap=2.0',
        '--lr_schedule=wsd', '--warmdown_iters=50']
VOCAB = len(set(TEXT))


def load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def val_windows(workdir, block_size, stride):
    data = np.fromfile(workdir / 'data' / 'tiny' / 'val.bin', dtype=np.uint16).astype(np.int64)
    starts = range(0, len(data) - block_size, stride)
    x = torch.tensor(np.stack([data[i:i + block_size] for i in starts]))
    y = torch.tensor(np.stack([data[i + 1:i + 1 + block_size] for i in starts]))
    return x, y


def test_a_fast_recipe_checkpoint_rebuilds_its_model_from_model_args_alone(workdir):
    r = script('train.py', *TINY, *FAST, '--max_iters=6', '--eval_interval=3', cwd=workdir)
    assert r.returncode == 0, r.stderr
    ckpt = load(workdir / 'out' / 'ckpt.pt')
    args = ckpt['model_args']
    assert (args['rope'], args['qk_norm'], args['mlp'], args['tie_weights'], args['zero_init'],
            args['logit_softcap']) == (True, True, 'relu2', False, True, 2.0)
    model = GPT(GPTConfig(**args))
    model.load_state_dict(ckpt['model'])  # strict: no position table, a head of its own
    assert 'transformer.wpe.weight' not in ckpt['model']
    assert not torch.equal(ckpt['model']['lm_head.weight'], ckpt['model']['transformer.wte.weight'])
    x, y = val_windows(workdir, 32, 16)
    logits, loss = model(x, y)
    assert loss.item() == pytest.approx(F.cross_entropy(logits.view(-1, VOCAB), y.view(-1)).item(), rel=1e-6)
    assert logits.abs().max().item() <= 2.0  # the softcap
    # both optimizers' state: AdamW's two groups, then Muon's with its momentum and learning rate
    decay, no_decay, muon = ckpt['optimizer']['param_groups']
    assert muon['muon'] and muon['momentum'] == 0.9 and muon['lr_scale'] == pytest.approx(0.03 / 1e-2)
    assert any('momentum_buffer' in s for s in ckpt['optimizer']['state'].values())
    # every key reaches the log's header like any other
    run = read_log(logs_in(workdir)[0])
    for arg in FAST:
        key, value = arg[2:].split('=')
        assert str(run.config[key]) == value, key
    assert run.status == 'completed'

    s = script('sample.py', '--device=cpu', '--num_samples=1', '--max_new_tokens=20', '--start=All:',
               cwd=workdir)
    assert s.returncode == 0, s.stderr
    assert s.stdout.startswith('All:') and set(s.stdout) <= set(TEXT) | {'-', '\n'}


def test_a_default_checkpoint_keeps_nanogpts_model_args_and_parameter_names(workdir):
    r = script('train.py', *TINY, '--max_iters=2', '--eval_interval=2', cwd=workdir)
    assert r.returncode == 0, r.stderr
    ckpt = load(workdir / 'out' / 'ckpt.pt')
    assert set(ckpt['model_args']) == set(NANOGPT_ARGS)  # nanoGPT's own GPTConfig takes them
    assert 'transformer.wpe.weight' in ckpt['model'] and 'lm_head.weight' in ckpt['model']
    assert torch.equal(ckpt['model']['lm_head.weight'], ckpt['model']['transformer.wte.weight'])
    groups = ckpt['optimizer']['param_groups']  # torch's own AdamW, as nanoGPT's
    assert len(groups) == 2 and not any('muon' in g for g in groups)


def test_zero_init_with_an_untied_head_starts_at_the_loss_of_a_uniform_guess(workdir):
    r = script('train.py', *TINY, '--zero_init=True', '--tie_weights=False', '--eval_only=True',
               cwd=workdir)
    assert r.returncode == 0, r.stderr
    [step] = read_log(logs_in(workdir)[0]).steps
    assert step.iter == 0
    assert step.train_loss == step.val_loss == round(math.log(VOCAB), 4)


def test_eval_stride_gives_the_loss_over_those_val_windows_and_eval_on_start_false_skips_step_0(workdir):
    r = script('train.py', *TINY, '--eval_stride=8', '--max_iters=4', '--eval_interval=4',
               '--always_save_checkpoint=True', '--eval_on_start=False', cwd=workdir)
    assert r.returncode == 0, r.stderr
    ckpt = load(workdir / 'out' / 'ckpt.pt')
    model = GPT(GPTConfig(**ckpt['model_args']))
    model.load_state_dict(ckpt['model'])
    model.eval()
    x, y = val_windows(workdir, 32, 8)
    with torch.no_grad():
        _, loss = model(x, y)
    steps = read_log(logs_in(workdir)[0]).steps
    assert [s.iter for s in steps] == [4] and steps[-1].val_loss == round(loss.item(), 4)
    # the same windows every time: a second evaluation of the same weights agrees to the digit
    again = script('train.py', *TINY, '--eval_stride=8', '--init_from=resume', '--eval_only=True',
                   cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert read_log(logs_in(workdir)[1]).steps[-1].val_loss == steps[-1].val_loss


def test_wsd_schedule_holds_the_rate_then_falls_in_a_straight_line(workdir):
    r = script('train.py', *TINY, '--lr_schedule=wsd', '--warmup_iters=2', '--warmdown_iters=4',
               '--max_iters=10', '--lr_decay_iters=10', '--min_lr=0.001', '--eval_interval=1', cwd=workdir)
    assert r.returncode == 0, r.stderr
    lrs = [s.metrics['lr'] for s in read_log(logs_in(workdir)[0]).steps]
    top, low = 1e-2, 1e-3
    expected = [top / 3, 2 * top / 3] + [top] * 5 + [low + (top - low) * f for f in (0.75, 0.5, 0.25)] + [low]
    assert lrs == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow  # test_train.py runs bench.py
def test_bench_times_the_fast_recipe(workdir):
    r = script('bench.py', '--device=cpu', '--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=32',
               '--batch_size=4', '--burn_in=1', '--num_iters=2', '--real_data=True', '--dataset=tiny',
               *[a for a in FAST if not a.startswith(('--lr_schedule', '--warmdown'))], cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert 'optimizer Muon' in r.stdout and r.stdout.strip().splitlines()[-1].startswith('bench: ')
