"""Files that people download or share: a checkpoint or a meta.pkl that carries code is refused by
train.py's resume and by sample.py, in one line with exit status 2, and the code never runs; the
checkpoints that train.py and nanoGPT save still load."""
import collections
import os
import pickle
import shutil

import pytest
import torch

from checkpoint import write_checkpoint
from conftest import TINY, assert_refused, logs_in, make_workdir, script

pytestmark = pytest.mark.xdist_group('untrusted')  # one worker: the module's trained run is made once

CKPT = os.path.join('out', 'ckpt.pt')
META = os.path.join('data', 'tiny', 'meta.pkl')


class Payload:
    """Unpickled, this runs code that creates `path`: what a malicious file would do instead."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').close()",)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A run of train.py: out/ckpt.pt at iter 2, and the data it trained on."""
    workdir = make_workdir(tmp_path_factory.mktemp('trained'))
    r = script('train.py', *TINY, '--max_iters=2', '--file_logging=False', cwd=workdir)
    assert r.returncode == 0, r.stderr
    return workdir


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the trained run for a test to change."""
    shutil.copytree(trained, tmp_path / 'run')
    return tmp_path / 'run'


def test_a_checkpoint_that_carries_code_is_refused_by_resume_and_sample_and_the_code_never_runs(run_copy):
    marker = run_copy / 'the_payload_ran'
    checkpoint = torch.load(run_copy / CKPT, weights_only=True)
    checkpoint['config']['note'] = Payload(marker)
    # saved as train.py saves, its sha256 listed: a whole run folder as someone might share it, with
    # an intact older checkpoint beside it that must not be taken instead
    write_checkpoint(checkpoint, run_copy / 'out')
    assert sorted(os.listdir(run_copy / 'out')) == ['ckpt.pt', 'ckpt.sha256', 'ckpt_prev.pt']

    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=4', cwd=run_copy)
    assert_refused(r, f'{CKPT} is refused: it holds builtins.exec, which loading would import and run')
    assert not logs_in(run_copy)
    r = script('sample.py', '--device=cpu', '--max_new_tokens=5', cwd=run_copy)
    assert_refused(r, f'{CKPT} is refused: it holds builtins.exec', prog='sample.py')
    assert r.stdout == ''
    assert not marker.exists()

    torch.load(run_copy / CKPT, weights_only=False)  # the payload is live: loading it the old way runs it
    assert marker.exists()


def test_a_meta_pkl_that_carries_code_is_refused_by_resume_and_sample_and_the_code_never_runs(run_copy):
    marker = run_copy / 'the_payload_ran'
    with open(run_copy / META, 'rb') as f:
        meta = pickle.load(f)
    meta['note'] = Payload(marker)
    with open(run_copy / META, 'wb') as f:
        pickle.dump(meta, f)

    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=4', cwd=run_copy)
    assert_refused(r, f'{META} is refused: it holds builtins.exec, which loading would import and run')
    assert not logs_in(run_copy)
    r = script('sample.py', '--device=cpu', '--max_new_tokens=5', cwd=run_copy)
    assert_refused(r, f'{META} is refused: it holds builtins.exec', prog='sample.py')
    assert not marker.exists()

    with open(run_copy / META, 'rb') as f:
        pickle.load(f)  # the payload is live
    assert marker.exists()


def test_a_checkpoint_saved_by_nanogpt_samples(run_copy):
    # what nanoGPT's train.py saves: torch.compile's prefix, the causal-mask buffers of its model before
    # flash attention, the best val loss as a tensor; no sha256 beside it
    ours = torch.load(run_copy / CKPT, weights_only=True)
    model = collections.OrderedDict((f'_orig_mod.{k}', v) for k, v in ours['model'].items())
    for i in range(ours['model_args']['n_layer']):
        model[f'_orig_mod.transformer.h.{i}.attn.bias'] = torch.ones(1, 1, 32, 32).tril()
    nanogpt = dict(model=model, optimizer=ours['optimizer'], model_args=ours['model_args'], iter_num=2,
                   best_val_loss=torch.tensor(3.5), config=dict(dataset='tiny', device='cpu', compile=False))
    shutil.rmtree(run_copy / 'out')
    (run_copy / 'out').mkdir()
    torch.save(nanogpt, run_copy / CKPT)
    r = script('sample.py', '--device=cpu', '--num_samples=2', '--max_new_tokens=5', '--start=All:', cwd=run_copy)
    assert r.returncode == 0, r.stderr
    samples = r.stdout.split('---------------\n')
    assert len(samples) == 3 and all(s.startswith('All:') for s in samples[:2])
    assert r.stderr == f'{CKPT} has no sha256 in {os.path.join("out", "ckpt.sha256")} (saved by nanoGPT, or ' \
        'before checksums): loaded unchecked\n'
