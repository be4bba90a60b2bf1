"""What a cluster does to a run, through train.py and torchrun: restarts that resume by themselves, a
loss that turns NaN, a rank that stops answering, a save that fails, a damaged checkpoint, SIGUSR1."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from conftest import ROOT, TINY, assert_refused, logs_in, script, start_train, torchrun, wait_for
from logger import read_log
from test_distributed import evaluating, progress_losses

CKPT = os.path.join('out', 'ckpt.pt')
PREV = os.path.join('out', 'ckpt_prev.pt')


def launcher(tmp_path, prelude):
    """A script that runs `prelude`, then train.py with its own arguments: how a test puts a fault (a
    file size limit, a slow disk) into the real train.py, under python or torchrun."""
    path = tmp_path / 'launcher.py'
    path.write_text(textwrap.dedent(prelude) + textwrap.dedent(f'''
        import runpy, sys
        sys.path.insert(0, {ROOT!r})
        sys.argv = [{os.path.join(ROOT, 'train.py')!r}] + sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name='__main__')
    '''))
    return str(path)


def torchrun_command(script_path, *args, restarts=0):
    """Two gloo processes of script_path (train.py, or a launcher of it)."""
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
            f'--max-restarts={restarts}', script_path, *map(str, args)]


def torchrun_popen(*args, cwd, restarts=0):
    return subprocess.Popen(torchrun_command(*args, restarts=restarts), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def worker(torchrun_pid, rank):
    """The pid of torchrun's worker process of this rank."""
    for task in os.listdir(f'/proc/{torchrun_pid}/task'):
        with open(f'/proc/{torchrun_pid}/task/{task}/children') as f:
            for pid in f.read().split():
                with open(f'/proc/{pid}/environ', 'rb') as env:
                    if f'RANK={rank}'.encode() in env.read().split(b'\0'):
                        return int(pid)
    raise AssertionError(f'torchrun has no worker of rank {rank}')


def texts(run):
    return [m.text for m in run.messages]


def all_finite(path):
    ckpt = torch.load(path, weights_only=False)
    tensors = [*ckpt['model'].values()] + [t for state in ckpt['optimizer']['state'].values() for t in state.values()]
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


def train_to_8(workdir, *args):
    """ckpt.pt at iter 8 and ckpt_prev.pt at iter 4."""
    r = script('train.py', *TINY, '--max_iters=8', '--eval_interval=4', *args, cwd=workdir)
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- restarts

@pytest.mark.slow  # test_fsdp.py restarts a killed worker too
def test_torchrun_restarts_a_killed_worker_and_init_from_auto_resumes_it_to_max_iters(workdir):
    proc = torchrun_popen(os.path.join(ROOT, 'train.py'), *TINY, '--gradient_accumulation_steps=2', '--init_from=auto',
                          '--max_iters=100', '--eval_interval=10', cwd=workdir, restarts=1)
    wait_for(workdir, lambda run: any(t.startswith('saving checkpoint') for t in texts(run)), proc)
    os.kill(worker(proc.pid, rank=1), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    first, last = map(read_log, logs_in(workdir))
    assert 'init_from=auto: no checkpoint in out, starting from scratch' in texts(first)
    assert last.status == 'completed' and last.steps[-1].iter == 100
    assert 'this run is torchrun restart 1 of its job' in texts(last)
    assert f'init_from=auto: {CKPT} holds a checkpoint, resuming' in texts(last)
    resumed = next(t for t in texts(last) if t.startswith('resumed from'))
    assert re.fullmatch(rf'resumed from {re.escape(CKPT)} at iter [1-9]\d* \(best val loss \d+\.\d+\)', resumed)
    assert torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['iter_num'] == 100


# ----------------------------------------------------------------------------- a loss that turns NaN

@pytest.mark.parametrize('ranks, eval_interval', [(1, 1000), pytest.param(1, 1, marks=pytest.mark.slow),
                                                  pytest.param(2, 1000, marks=pytest.mark.slow)],
                         ids=['training-loss', 'evaluation-loss', 'torchrun'])
def test_a_loss_that_overflows_stops_the_run_at_the_first_bad_iteration_with_the_checkpoint_finite(
        workdir, ranks, eval_interval):
    train_to_8(workdir)
    before = (workdir / 'out' / 'ckpt.pt').read_bytes()
    # a learning rate this large makes the weights overflow within a step or two
    args = [*TINY, '--init_from=resume', '--max_iters=100', f'--eval_interval={eval_interval}',
            '--learning_rate=1e30', '--warmup_iters=0', '--decay_lr=False']
    if ranks == 1:
        r = script('train.py', *args, cwd=workdir)
    else:
        r = torchrun(2, *args, '--gradient_accumulation_steps=2', cwd=workdir)
    assert r.returncode != 0
    run = read_log(logs_in(workdir)[-1])
    last_good = max(map(int, progress_losses(run)), default=7)
    where = ' (evaluation)' if eval_interval == 1 else ''
    assert run.status == f'failed: non-finite loss at iter {last_good + 1}{where}', run.status
    assert f'{CKPT} (iter 8) is intact: resume from it, with a lower --learning_rate for instance' in texts(run)
    assert 'saving checkpoint' not in ' '.join(texts(run))
    assert (workdir / 'out' / 'ckpt.pt').read_bytes() == before
    assert all_finite(workdir / 'out' / 'ckpt.pt') and all_finite(workdir / 'out' / 'ckpt_prev.pt')


def test_float16_gradscaler_skipping_inf_steps_is_no_failure_and_its_state_is_resumed(workdir, tmp_path):
    # a scale this high makes every float16 gradient overflow: the scaler skips each step and halves
    run_scaled = launcher(tmp_path, '''
        import functools, torch
        torch.amp.GradScaler = functools.partial(torch.amp.GradScaler, init_scale=2.0 ** 40)
    ''')
    r = script(run_scaled, *TINY, '--dtype=float16', '--max_iters=4', '--eval_interval=4', cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert read_log(logs_in(workdir)[0]).status == 'completed'
    scale = torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['scaler']['scale']
    assert scale < 2.0 ** 40
    r = script('train.py', *TINY, '--dtype=float16', '--init_from=resume', '--max_iters=6', '--eval_interval=6',
               cwd=workdir)
    assert r.returncode == 0, r.stderr
    # resumed from the saved scale, which still overflows, not from a fresh scaler's 2 ** 16
    assert 2.0 ** 16 < torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['scaler']['scale'] < scale


# ----------------------------------------------------------------------------- a rank that stops answering

@pytest.mark.slow
def test_a_slow_evaluation_and_save_pass_ddp_timeout_but_a_stopped_rank_ends_every_rank_within_it(workdir, tmp_path):
    timeout = 6
    slow = launcher(tmp_path, f'''
        import os, time, torch
        # an evaluation this slow on every rank, and a disk this slow for rank 0, outlast ddp_timeout
        evaluate = torch.nn.Module.eval
        torch.nn.Module.eval = lambda self: (time.sleep({timeout} * 1.5), evaluate(self))[1]
        if os.environ['RANK'] == '0':
            save = torch.save
            torch.save = lambda *args, **kwargs: (time.sleep({timeout} * 1.5), save(*args, **kwargs))[1]
    ''')
    proc = torchrun_popen(slow, *TINY, '--gradient_accumulation_steps=2', f'--ddp_timeout={timeout}',
                          '--eval_interval=100000', '--max_iters=100000', cwd=workdir)
    run = wait_for(workdir, lambda run: len(progress_losses(run)) >= 2, proc, timeout=180)
    started = next(m.time for m in run.messages if m.text.startswith('number of parameters'))
    assert (run.steps[0].time - started).total_seconds() > timeout
    os.kill(worker(proc.pid, rank=0), signal.SIGUSR1)
    run = wait_for(workdir, lambda run: any(t.startswith('saving checkpoint') for t in texts(run)), proc, timeout=120)
    asked, saved = (m.time for m in run.messages if m.text.startswith(('SIGUSR1', 'saving checkpoint')))
    assert (saved - asked).total_seconds() > timeout

    rank_1 = worker(proc.pid, rank=1)
    os.kill(rank_1, signal.SIGSTOP)
    t0 = time.time()
    proc.communicate(timeout=timeout + 90)
    assert time.time() - t0 < timeout + 60 and proc.returncode != 0
    assert not os.path.exists(f'/proc/{rank_1}')
    run = read_log(logs_in(workdir)[0])
    assert re.fullmatch(rf'failed: lost contact with another rank at iter \d+ \(ddp_timeout={timeout}s\): .*Timed out.*',
                        run.status), run.status


@pytest.mark.slow
def test_an_evaluation_shared_by_the_ranks_gives_the_losses_of_one_process(workdir):
    # every rank evaluates a share, so that none waits in a collective while another evaluates: train
    # loss over eval_iters random batches, val loss over strided windows
    args = [*TINY, '--gradient_accumulation_steps=2', '--eval_iters=5', '--eval_stride=16', '--max_iters=0']
    one = script('train.py', *args, '--log_dir=one/logs', cwd=workdir)
    two = torchrun(2, *args, '--log_dir=two/logs', cwd=workdir)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    [step_one], [step_two] = (read_log(logs_in(workdir / d)[0]).steps for d in ('one', 'two'))
    assert step_two.train_loss == pytest.approx(step_one.train_loss, abs=1e-6)
    assert step_two.val_loss == pytest.approx(step_one.val_loss, abs=1e-6)


# ----------------------------------------------------------------------------- a save that fails

@pytest.mark.slow  # test_fsdp.py fails a save of every rank
def test_a_failed_save_on_rank_0_ends_every_rank_with_the_error_in_the_footer(workdir, tmp_path):
    limited = launcher(tmp_path, '''
        import os, resource
        if os.environ['RANK'] == '0': # less than a checkpoint, more than a log
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    ''')
    r = subprocess.run(torchrun_command(limited, *TINY, '--gradient_accumulation_steps=2', '--max_iters=100000',
                                        '--eval_interval=4'), cwd=workdir, capture_output=True, text=True, timeout=240)
    assert r.returncode != 0
    assert re.search(r'exitcode\s*:\s*1\b', r.stderr), r.stderr[-3000:]  # each rank exited with status 1
    run = read_log(logs_in(workdir)[0])
    assert run.status == f'failed: OSError: [Errno 27] File too large (saving {CKPT})'
    assert 'no checkpoint was saved before' in texts(run)
    assert os.listdir(workdir / 'out') == []  # no temporary file left


# ----------------------------------------------------------------------------- damaged checkpoints

def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_falls_back_to_the_previous_or_is_refused_in_one_line(workdir):
    train_to_8(workdir)
    out = workdir / 'out'
    flip_a_byte(out / 'ckpt.pt')
    sampled = script('sample.py', '--device=cpu', '--num_samples=1', '--max_new_tokens=5', cwd=workdir)
    assert sampled.returncode == 0 and f'using {PREV} instead' in sampled.stderr

    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=12', '--eval_interval=4', cwd=workdir)
    assert r.returncode == 0, r.stderr
    run = read_log(logs_in(workdir)[-1])
    note = f'{CKPT} is damaged: its sha256 is not the one {os.path.join("out", "ckpt.sha256")} recorded when it ' \
           f'was saved (a truncated or corrupted copy): using {PREV} instead'
    assert note in texts(run) and any(t.startswith(f'resumed from {PREV} at iter 4 ') for t in texts(run))
    # the damaged file is replaced, never kept in place of the good one before it
    iters = {name: torch.load(out / name, weights_only=False)['iter_num'] for name in ('ckpt.pt', 'ckpt_prev.pt')}
    assert iters == {'ckpt.pt': 12, 'ckpt_prev.pt': 8}

    truncate(out / 'ckpt.pt')  # a copy cut short: found by its sha256 as a flipped byte is
    flip_a_byte(out / 'ckpt_prev.pt')
    r = script('train.py', *TINY, '--init_from=auto', '--max_iters=16', cwd=workdir)
    assert_refused(r, f'{CKPT} is damaged', f'{PREV} is damaged')
    assert len(logs_in(workdir)) == 2
    assert_refused(script('sample.py', '--device=cpu', cwd=workdir), f'{CKPT} is damaged', prog='sample.py')


def test_a_checkpoint_without_a_sha256_loads_unchecked_and_a_truncated_one_is_refused(workdir):
    train_to_8(workdir, '--keep_previous_checkpoint=False')
    out = workdir / 'out'
    assert sorted(os.listdir(out)) == ['ckpt.pt', 'ckpt.sha256']
    (out / 'ckpt.sha256').unlink()  # as nanoGPT, or this trainer before checksums, left it
    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=9', '--eval_interval=100',
               '--keep_previous_checkpoint=False', cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert f'{CKPT} has no sha256 in {os.path.join("out", "ckpt.sha256")} (saved by nanoGPT, or before checksums): ' \
           'loaded unchecked' in texts(read_log(logs_in(workdir)[-1]))

    (out / 'ckpt.sha256').unlink()
    truncate(out / 'ckpt.pt')
    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=12', cwd=workdir)
    assert_refused(r, f'{CKPT} cannot be read: PytorchStreamReader failed reading zip archive',
                   'no older checkpoint is kept')


# ----------------------------------------------------------------------------- SIGUSR1

@pytest.mark.slow
def test_sigusr1_during_an_evaluation_saves_at_the_end_of_that_iteration_and_training_goes_on(workdir):
    # an evaluation of 500 batches a split: the signal comes while it runs, and does not cut it short
    proc = start_train(workdir, '--max_iters=10', '--eval_iters=500', '--eval_interval=1000')
    wait_for(workdir, evaluating, proc)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    run = read_log(logs_in(workdir)[0])
    assert run.status == 'completed' and [s.iter for s in run.steps] == [0, 10]
    said = [t for t in texts(run) if t.startswith('SIGUSR1')]
    assert said == ['SIGUSR1: saving a checkpoint at iter 1, training goes on']
    assert texts(run)[texts(run).index(said[0]) + 1] == f'saving checkpoint to {CKPT} at iter 1'
    # the final save at max_iters made that checkpoint the previous one
    assert torch.load(workdir / 'out' / 'ckpt_prev.pt', weights_only=False)['iter_num'] == 1
    assert torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['iter_num'] == 10
