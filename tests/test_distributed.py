"""Scale out and survive: DDP through torchrun, SIGTERM/Ctrl-C/SIGKILL, and exact resume."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TINY, logs_in, script, start_train, torchrun, wait_for
from logger import read_log
from test_recipes import FAST


def progress_losses(run):
    """{iter: loss text} from the progress lines, as logged."""
    return dict(re.match(r'iter (\d+): loss (\S+),', m.text).groups()
                for m in run.messages if m.text.startswith('iter '))


@pytest.mark.parametrize('recipe', [[], pytest.param(FAST, marks=pytest.mark.slow)], ids=['default', 'fast'])
def test_two_process_gloo_torchrun_leaves_one_log_one_checkpoint_and_completes(workdir, recipe):
    r = torchrun(2, *TINY, *recipe, '--max_iters=6', '--eval_interval=3', '--gradient_accumulation_steps=2',
                 cwd=workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    logs = logs_in(workdir)
    assert len(logs) == 1
    run = read_log(logs[0])
    assert run.status == 'completed' and [s.iter for s in run.steps] == [0, 3, 6]
    assert any('world_size: 2' in m.text and 'backend: gloo' in m.text for m in run.messages)
    assert sorted(os.listdir(workdir / 'out')) == ['ckpt.pt', 'ckpt.sha256', 'ckpt_prev.pt']
    assert torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['iter_num'] == 6
    # rank 1 prints nothing of its own: every console line comes once
    assert r.stdout.count('step 6: train loss') == 1


@pytest.mark.slow
def test_gradient_accumulation_not_divisible_by_world_size_is_refused(workdir):
    r = torchrun(2, *TINY, '--max_iters=2', '--gradient_accumulation_steps=3', cwd=workdir, timeout=120)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith('train.py: error:')]
    assert errors == ['train.py: error: gradient_accumulation_steps=3 is not divisible by the world size 2; '
                      'use a multiple of 2']
    assert not (workdir / 'logs').exists() and not (workdir / 'out').exists()


@pytest.mark.slow  # test_fsdp.py, and the tests below, stop with SIGTERM and resume
def test_sigterm_stops_with_a_checkpoint_and_resume_continues_from_it(workdir):
    proc = start_train(workdir, '--max_iters=100000', '--eval_interval=1000')
    wait_for(workdir, lambda run: len(progress_losses(run)) >= 5, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    run = read_log(logs_in(workdir)[0])
    assert run.status == 'terminated (SIGTERM)'
    stopped_at = torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['iter_num']
    assert stopped_at == max(map(int, progress_losses(run))) + 1  # the end of the iteration it was in
    assert f'terminated (SIGTERM) at iter {stopped_at}' in out

    r = script('train.py', *TINY, '--init_from=resume', f'--max_iters={stopped_at + 3}',
               '--eval_interval=1000', cwd=workdir)
    assert r.returncode == 0, r.stderr
    resumed = read_log(logs_in(workdir)[1])
    assert resumed.status == 'completed'
    ckpt = os.path.join('out', 'ckpt.pt')
    assert any(m.text.startswith(f'resumed from {ckpt} at iter {stopped_at} ') for m in resumed.messages)
    assert sorted(map(int, progress_losses(resumed))) == [stopped_at, stopped_at + 1, stopped_at + 2]


def test_ctrl_c_stops_with_a_checkpoint_and_a_second_one_stops_at_once(workdir):
    proc = start_train(workdir, '--max_iters=100000', '--eval_interval=1000')
    wait_for(workdir, lambda run: len(progress_losses(run)) >= 3, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT
    assert read_log(logs_in(workdir)[0]).status == 'interrupted'
    assert (workdir / 'out' / 'ckpt.pt').exists()

    # a long iteration (an evaluation would be cut short): the first Ctrl-C waits for its end, the
    # second one does not, so no checkpoint is saved
    saved = (workdir / 'out' / 'ckpt.pt').read_bytes()
    proc = start_train(workdir, '--init_from=resume', '--max_iters=100000', '--gradient_accumulation_steps=100000')
    wait_for(workdir, lambda run: len(logs_in(workdir)) == 2 and run.started is not None, proc)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    proc.communicate(timeout=60)
    assert time.time() - t0 < 10 and proc.returncode != 0
    assert read_log(logs_in(workdir)[1]).status == 'interrupted'
    assert (workdir / 'out' / 'ckpt.pt').read_bytes() == saved


def evaluating(run):
    """The run is set up; with a huge eval_iters its first evaluation then lasts for ever."""
    return any(m.text.startswith('number of parameters') for m in run.messages)


def assert_stopped_in_the_evaluation(run, ckpt_path):
    assert run.status == 'terminated (SIGTERM)'
    assert 'SIGTERM: the evaluation at iter 0 was cut short, no step logged' in [m.text for m in run.messages]
    assert run.steps == []  # no loss from a partial evaluation
    assert torch.load(ckpt_path, weights_only=False)['iter_num'] == 1  # after the one iteration it let end


def test_sigterm_during_a_long_evaluation_stops_within_seconds_with_a_checkpoint(workdir):
    proc = start_train(workdir, '--max_iters=100000', '--eval_iters=10000000')
    wait_for(workdir, evaluating, proc)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    out, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 10 and proc.returncode == 128 + signal.SIGTERM, err
    assert_stopped_in_the_evaluation(read_log(logs_in(workdir)[0]), workdir / 'out' / 'ckpt.pt')
    assert 'step 0:' not in out and 'terminated (SIGTERM) at iter 1' in out


def test_sigterm_to_torchrun_during_rank_0s_evaluation_stops_every_rank_with_a_checkpoint(workdir):
    # rank 1 is already in iteration 0, waiting for rank 0's gradients: rank 0 cuts its evaluation
    # short, joins it, and both stop after it
    proc = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                             os.path.join(ROOT, 'train.py'), *TINY, '--gradient_accumulation_steps=2',
                             '--max_iters=100000', '--eval_iters=10000000'],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(workdir, evaluating, proc)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to each rank
    t0 = time.time()
    proc.communicate(timeout=60)
    assert time.time() - t0 < 20  # torchrun itself gives its ranks 30 s before SIGKILL
    assert_stopped_in_the_evaluation(read_log(logs_in(workdir)[0]), workdir / 'out' / 'ckpt.pt')


def test_sigkill_mid_run_leaves_a_loadable_checkpoint_and_a_readable_log(workdir):
    # a checkpoint at every iteration, so the kill is likely to land in the middle of a save
    proc = start_train(workdir, '--max_iters=100000', '--eval_interval=1', '--always_save_checkpoint=True')
    wait_for(workdir, lambda run: sum(m.text.startswith('saving checkpoint') for m in run.messages) >= 8, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    run = read_log(logs_in(workdir)[0])
    assert run.status is None and run.ended is None
    assert len(run.steps) >= 8 and [s.iter for s in run.steps] == list(range(len(run.steps)))
    ckpt = torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)
    assert 1 <= ckpt['iter_num'] <= run.steps[-1].iter + 1
    assert ckpt['model'].keys() and ckpt['optimizer']['state']


@pytest.mark.parametrize('recipe', [[], pytest.param(FAST, marks=pytest.mark.slow)], ids=['default', 'fast'])
def test_a_stopped_and_resumed_run_matches_an_uninterrupted_one(workdir, recipe):
    common = ['--eval_interval=20', '--always_save_checkpoint=True', *recipe]
    whole = script('train.py', *TINY, *common, '--max_iters=40', '--out_dir=whole', cwd=workdir)
    assert whole.returncode == 0, whole.stderr
    first = script('train.py', *TINY, *common, '--max_iters=20', '--out_dir=split', cwd=workdir)
    assert first.returncode == 0, first.stderr
    second = script('train.py', *TINY, *common, '--max_iters=40', '--out_dir=split', '--init_from=resume',
                    cwd=workdir)
    assert second.returncode == 0, second.stderr
    runs = {(run.config['out_dir'], run.config['init_from']): run for run in map(read_log, logs_in(workdir))}
    whole_run, resumed_run = runs['whole', 'scratch'], runs['split', 'resume']
    assert whole_run.steps[-1].iter == resumed_run.steps[-1].iter == 40
    assert whole_run.steps[-1].val_loss == resumed_run.steps[-1].val_loss
    assert whole_run.steps[-1].train_loss == resumed_run.steps[-1].train_loss
    later = {k: v for k, v in progress_losses(whole_run).items() if int(k) >= 20}
    assert later == progress_losses(resumed_run) and len(later) == 20
    a = torch.load(workdir / 'whole' / 'ckpt.pt', weights_only=False)
    b = torch.load(workdir / 'split' / 'ckpt.pt', weights_only=False)
    for k in a['model']:
        torch.testing.assert_close(a['model'][k], b['model'][k], rtol=1e-5, atol=1e-6)
    assert a['best_val_loss'] == pytest.approx(b['best_val_loss'], abs=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_one_process_nccl_torchrun_on_gpu_completes(workdir):
    args = [a for a in TINY if not a.startswith(('--device', '--compile'))]
    r = torchrun(1, *args, '--device=cuda', '--max_iters=6', '--eval_interval=3', cwd=workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    run = read_log(logs_in(workdir)[0])
    assert run.status == 'completed'
    assert any('backend: nccl' in m.text and 'device: cuda:0' in m.text for m in run.messages)
