"""FSDP2 through torchrun (--parallel=fsdp): the same training as one process, sharded checkpoints that
resume at any world size, that sample.py reads and checkpoint.py exports, and the fault rules."""
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, assert_refused, logs_in, script, wait_for
from logger import read_log
from test_faults import launcher, texts, torchrun_command, torchrun_popen, worker

FSDP = ['--parallel=fsdp']
# four micro-steps an iteration whatever the world size, gradient clipping at work, every 5th iteration evaluated
SAME = [*TINY, '--gradient_accumulation_steps=4', '--eval_iters=4', '--eval_interval=5', '--grad_clip=0.5']


def torchrun(nproc, *args, cwd, timeout=300):
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
                           os.path.join(ROOT, 'train.py'), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, 'OMP_NUM_THREADS': '1'})


def newest_steps(directory):
    return {s.iter: (s.train_loss, s.val_loss) for s in read_log(logs_in(directory)[-1]).steps}


def weights(workdir, out):
    """The model's weights in out, sharded or not, whole (through checkpoint.py export)."""
    if (workdir / out / 'ckpt').is_dir():
        r = script('checkpoint.py', 'export', out, f'{out}.pt', cwd=workdir)
        assert r.returncode == 0, r.stderr
        return torch.load(workdir / f'{out}.pt', weights_only=True)['model']
    return torch.load(workdir / out / 'ckpt.pt', weights_only=True)['model']


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=3e-4), key


# slow: [adamw]'s FSDP-equals-one-process (SAME's accumulation and clipping) is proven by
# test_a_checkpoint_of_one_process_resumes_under_fsdp_as_if_never_stopped and [4] below; [muon] proves the final weights
@pytest.mark.parametrize('optimizer', [pytest.param('adamw', marks=pytest.mark.slow), 'muon'])
def test_two_fsdp_processes_train_as_one_with_accumulation_and_clipping(workdir, optimizer):
    args = [*SAME, f'--optimizer={optimizer}', '--max_iters=20']
    one = script('train.py', *args, '--out_dir=one', '--log_dir=one/logs', cwd=workdir,
                 env={'OMP_NUM_THREADS': '1'})
    two = torchrun(2, *args, *FSDP, '--out_dir=two', '--log_dir=two/logs', cwd=workdir)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr[-3000:]
    assert 'parallel: fsdp' in two.stdout
    expected, got = newest_steps(workdir / 'one'), newest_steps(workdir / 'two')
    assert list(expected) == [0, 5, 10, 15, 20]
    assert_same(got, expected)
    a, b = weights(workdir, 'one'), weights(workdir, 'two')
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    assert sorted(os.listdir(workdir / 'two' / 'ckpt')) == ['.metadata', '__0_0.distcp', '__1_0.distcp', 'state.json']


def test_fsdp_built_on_the_meta_device_starts_from_one_processs_weights_with_rotary_buffers_made_again(workdir):
    # each rank draws its rows of the seed's weights (model.init_draws); rope's buffers are not
    # weights, and are computed again on the device: the first evaluation is one process's
    args = [*TINY, '--rope=True', '--tie_weights=False', '--bias=True', '--max_iters=0', '--eval_iters=4',
            '--gradient_accumulation_steps=2']
    one = script('train.py', *args, '--out_dir=one', '--log_dir=one/logs', cwd=workdir, env={'OMP_NUM_THREADS': '1'})
    two = torchrun(2, *args, *FSDP, '--out_dir=two', '--log_dir=two/logs', cwd=workdir)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr[-3000:]
    expected, got = newest_steps(workdir / 'one'), newest_steps(workdir / 'two')
    assert list(got) == [0] and got[0] == pytest.approx(expected[0], abs=1e-5)


def test_fsdp_averages_the_gradients_of_the_ranks_and_micro_steps_rather_than_summing_them(tmp_path):
    # AdamW and Muon hardly notice gradients twice as large, so the losses above would not show it:
    # the gradients themselves, gathered, against one process's
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                        os.path.join(ROOT, 'tests', 'fsdp_gradients.py')], cwd=tmp_path, capture_output=True,
                       text=True, timeout=180, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert re.search(r'largest difference \S+, norm ratio 1\.0000', r.stdout), r.stdout


# the tests that start from the fixture below run in one pytest-xdist worker, which makes it once
SHARED = pytest.mark.xdist_group('sharded')


@pytest.fixture(scope='module')
def sharded(tmp_path_factory):
    """A workdir whose out/ holds FSDP's checkpoints of 2 processes at iters 3 and 6, and the losses of
    one process trained to 12 on the same batches, to compare resumed runs with."""
    from conftest import make_workdir
    workdir = make_workdir(tmp_path_factory.mktemp('sharded'))
    args = [*SAME, '--eval_interval=3']
    r = torchrun(2, *args, *FSDP, '--max_iters=6', cwd=workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    r = script('train.py', *args, '--max_iters=12', '--out_dir=one', '--log_dir=one/logs', cwd=workdir,
               env={'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr
    return workdir, newest_steps(workdir / 'one')


def copy_run(sharded, tmp_path, out='out'):
    workdir, expected = sharded
    shutil.copytree(workdir / 'data', tmp_path / 'data')
    shutil.copytree(workdir / out, tmp_path / 'out')
    return tmp_path, expected


@pytest.mark.parametrize('nproc', [1, 4])
@SHARED
def test_a_sharded_checkpoint_resumes_at_another_world_size_as_if_never_stopped(sharded, tmp_path, nproc):
    workdir, expected = copy_run(sharded, tmp_path)
    args = [*SAME, '--eval_interval=3', '--max_iters=12', '--init_from=resume']
    r = (script('train.py', *args, cwd=workdir, env={'OMP_NUM_THREADS': '1'}) if nproc == 1
         else torchrun(nproc, *args, *FSDP, '--gradient_accumulation_steps=4', cwd=workdir))
    assert r.returncode == 0, r.stderr[-3000:]
    run = read_log(logs_in(workdir)[-1])
    assert any(t.startswith(f'resumed from {os.path.join("out", "ckpt")} at iter 6 ') for t in texts(run))
    assert_same(newest_steps(workdir), {k: v for k, v in expected.items() if k >= 6})
    # one process saves ckpt.pt; the sharded checkpoint it resumed from is kept as the previous
    kept = ['ckpt.pt', 'ckpt.sha256', 'ckpt_prev.pt'] if nproc == 1 else ['ckpt', 'ckpt.sha256', 'ckpt_prev']
    assert sorted(os.listdir(workdir / 'out')) == kept


@SHARED
def test_a_checkpoint_of_one_process_resumes_under_fsdp_as_if_never_stopped(sharded, tmp_path):
    workdir, expected = sharded
    shutil.copytree(workdir / 'data', tmp_path / 'data')
    args = [*SAME, '--eval_interval=3']
    assert script('train.py', *args, '--max_iters=6', cwd=tmp_path, env={'OMP_NUM_THREADS': '1'}).returncode == 0
    r = torchrun(2, *args, *FSDP, '--max_iters=12', '--init_from=resume', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same(newest_steps(tmp_path), {k: v for k, v in expected.items() if k >= 6})
    # the first sharded save made ckpt.pt the previous checkpoint, the second replaced it
    assert sorted(os.listdir(tmp_path / 'out')) == ['ckpt', 'ckpt.sha256', 'ckpt_prev']


@SHARED
def test_sample_reads_a_sharded_checkpoint_and_export_writes_one_file_nanogpt_loads(sharded, tmp_path):
    workdir, _ = copy_run(sharded, tmp_path)
    r = script('sample.py', '--device=cpu', '--num_samples=1', '--max_new_tokens=20', '--start=First', cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('First') and r.stderr == ''
    r = script('checkpoint.py', 'export', 'out', 'model.pt', cwd=workdir)
    assert r.returncode == 0, r.stderr
    exported = torch.load(workdir / 'model.pt', weights_only=True)
    assert sorted(exported) == ['best_val_loss', 'config', 'iter_num', 'model', 'model_args']
    assert exported['iter_num'] == 6 and exported['config']['parallel'] == 'fsdp'
    from model import GPT, GPTConfig  # nanoGPT's sample.py does this with it
    GPT(GPTConfig(**exported['model_args'])).load_state_dict(exported['model'])
    # the file is never written over, and a folder with no checkpoint is one line
    assert_refused(script('checkpoint.py', 'export', 'out', 'model.pt', cwd=workdir),
                   'model.pt already exists', prog='checkpoint.py')
    assert_refused(script('checkpoint.py', 'export', 'data', 'other.pt', cwd=workdir),
                   'no checkpoint in data', prog='checkpoint.py')


@SHARED
def test_a_damaged_shard_falls_back_to_the_previous_sharded_checkpoint(sharded, tmp_path):
    workdir, _ = copy_run(sharded, tmp_path)
    shard = workdir / 'out' / 'ckpt' / '__1_0.distcp'
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    r = script('sample.py', '--device=cpu', '--num_samples=1', '--max_new_tokens=5', cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert 'the sha256 of ckpt/__1_0.distcp is not the one' in r.stderr
    assert f'using {os.path.join("out", "ckpt_prev")} instead' in r.stderr
    (workdir / 'out' / 'ckpt_prev' / '__0_0.distcp').unlink()
    assert_refused(script('sample.py', '--device=cpu', cwd=workdir), 'ckpt_prev/__0_0.distcp, which',
                   'is missing', prog='sample.py')


class Payload:
    def __reduce__(self):
        return (os.system, ('touch pwned',))


@SHARED
def test_a_sharded_checkpoint_whose_metadata_carries_code_is_refused_and_the_code_never_runs(sharded, tmp_path):
    workdir, _ = copy_run(sharded, tmp_path)
    (workdir / 'out' / 'ckpt.sha256').unlink()  # as a shared folder might come
    (workdir / 'out' / 'ckpt' / '.metadata').write_bytes(pickle.dumps(Payload()))
    refusal = f'{os.path.join("out", "ckpt")} is refused: it holds posix.system'
    assert_refused(script('sample.py', '--device=cpu', cwd=workdir), refusal, prog='sample.py')
    r = torchrun(2, *SAME, *FSDP, '--init_from=resume', '--max_iters=9', cwd=workdir)
    assert r.returncode != 0 and re.search(r'exitcode\s*:\s*2\b', r.stderr), r.stderr[-2000:]  # each rank: 2
    assert [line for line in r.stderr.splitlines() if line.startswith('train.py: error:')] == [
        f'train.py: error: {refusal}, which loading would import and run; a checkpoint may hold only tensors and '
        'plain data, as those of train.py and nanoGPT do']
    assert not (workdir / 'pwned').exists() and not (workdir / 'logs').exists()


# ----------------------------------------------------------------------------- the fault rules under FSDP

@pytest.mark.parametrize('signum, status', [(signal.SIGTERM, 'terminated (SIGTERM)'),
                                            pytest.param(signal.SIGINT, 'interrupted', marks=pytest.mark.slow)])
def test_sigterm_and_ctrl_c_save_a_sharded_checkpoint_and_stop_every_rank(workdir, signum, status):
    proc = torchrun_popen(os.path.join(ROOT, 'train.py'), *TINY, *FSDP, '--gradient_accumulation_steps=2',
                          '--max_iters=100000', '--eval_interval=100000', cwd=workdir)
    wait_for(workdir, lambda run: any(t.startswith('iter 3:') for t in texts(run)), proc)
    os.kill(worker(proc.pid, rank=1), signum)  # one rank is enough: they agree at the iteration's end
    proc.communicate(timeout=120)
    run = read_log(logs_in(workdir)[0])
    assert run.status == status
    saved = next(t for t in texts(run) if t.startswith('saving checkpoint'))
    assert re.fullmatch(rf'saving checkpoint to {re.escape(os.path.join("out", "ckpt"))} at iter \d+', saved)
    assert sorted(os.listdir(workdir / 'out' / 'ckpt')) == ['.metadata', '__0_0.distcp', '__1_0.distcp', 'state.json']


def test_torchrun_restarts_a_killed_fsdp_worker_and_init_from_auto_resumes_the_shards(workdir):
    proc = torchrun_popen(os.path.join(ROOT, 'train.py'), *TINY, *FSDP, '--gradient_accumulation_steps=2',
                          '--init_from=auto', '--max_iters=60', '--eval_interval=10', cwd=workdir, restarts=1)
    wait_for(workdir, lambda run: any(t.startswith('saving checkpoint') for t in texts(run)), proc)
    os.kill(worker(proc.pid, rank=1), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    last = read_log(logs_in(workdir)[-1])
    assert last.status == 'completed' and last.steps[-1].iter == 60
    assert 'this run is torchrun restart 1 of its job' in texts(last)
    assert f'init_from=auto: {os.path.join("out", "ckpt")} holds a checkpoint, resuming' in texts(last)


def test_a_stopped_rank_under_fsdp_ends_every_rank_within_ddp_timeout(workdir):
    timeout = 6
    proc = torchrun_popen(os.path.join(ROOT, 'train.py'), *TINY, *FSDP, '--gradient_accumulation_steps=2',
                          f'--ddp_timeout={timeout}', '--max_iters=100000', '--eval_interval=100000', cwd=workdir)
    wait_for(workdir, lambda run: any(t.startswith('iter 2:') for t in texts(run)), proc)
    rank_1 = worker(proc.pid, rank=1)
    os.kill(rank_1, signal.SIGSTOP)
    run = wait_for(workdir, lambda run: run.status is not None, proc, timeout=timeout + 60)
    # torchrun would SIGKILL the stopped rank 30 s later (test_faults.py waits for it): not again here
    os.kill(rank_1, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert re.fullmatch(rf'failed: lost contact with another rank at iter \d+ \(ddp_timeout={timeout}s\): .*',
                        run.status), run.status


@SHARED
def test_a_non_finite_loss_under_fsdp_stops_every_rank_with_the_sharded_checkpoint_intact(sharded, tmp_path):
    workdir, _ = copy_run(sharded, tmp_path)
    sums = (workdir / 'out' / 'ckpt.sha256').read_text()
    r = torchrun(2, *TINY, *FSDP, '--gradient_accumulation_steps=2', '--init_from=resume', '--max_iters=100',
                 '--learning_rate=1e30', '--warmup_iters=0', '--decay_lr=False', cwd=workdir)
    assert r.returncode != 0
    run = read_log(logs_in(workdir)[-1])
    assert re.fullmatch(r'failed: non-finite loss at iter \d+', run.status), run.status
    assert f'{os.path.join("out", "ckpt")} (iter 6) is intact' in ' '.join(texts(run))
    assert (workdir / 'out' / 'ckpt.sha256').read_text() == sums


def test_sigusr1_saves_shards_and_a_failed_save_ends_every_rank_with_the_error_in_the_footer(workdir, tmp_path):
    limited = launcher(tmp_path, '''
        import os, resource
        if os.environ['RANK'] == '1': # less than its shard, more than nothing
            resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    ''')
    proc = subprocess.Popen(torchrun_command(limited, *TINY, *FSDP, '--gradient_accumulation_steps=2',
                                             '--max_iters=100000', '--eval_interval=100000'),
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(workdir, lambda run: any(t.startswith('iter 2:') for t in texts(run)), proc)
    os.kill(worker(proc.pid, rank=0), signal.SIGUSR1)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    run = read_log(logs_in(workdir)[0])
    assert any(t.startswith('SIGUSR1: saving a checkpoint at iter') for t in texts(run))
    assert re.fullmatch(r'failed: .*File too large.* \(saving out/ckpt\.tmp\)', run.status), run.status
    assert 'no checkpoint was saved before' in texts(run)
    assert os.listdir(workdir / 'out') == []  # nothing half-written is left


@pytest.mark.parametrize('args, needle', [
    (['--parallel=zero3'], "parallel must be 'ddp' or 'fsdp', got 'zero3'"),
])
def test_a_bad_parallel_is_refused_in_one_line(workdir, args, needle):
    assert_refused(script('train.py', *TINY, *args, cwd=workdir), needle)


def test_fsdp_in_one_process_says_what_it_does_and_float16_is_refused_under_torchrun(workdir):
    r = script('train.py', *TINY, *FSDP, '--max_iters=2', cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert "parallel='fsdp' without torchrun: one process" in r.stdout
    assert sorted(os.listdir(workdir / 'out')) == ['ckpt.pt', 'ckpt.sha256']
    r = torchrun(2, *TINY, *FSDP, '--dtype=float16', '--gradient_accumulation_steps=2', '--out_dir=half', cwd=workdir)
    assert r.returncode != 0 and re.search(r'exitcode\s*:\s*2\b', r.stderr), r.stderr[-2000:]
    assert [line for line in r.stderr.splitlines() if line.startswith('train.py: error:')] == [
        "train.py: error: dtype='float16' needs a GradScaler, which parallel='fsdp' does not shard: use "
        "--dtype=bfloat16 (or float32), or --parallel=ddp"]
    assert not (workdir / 'half').exists()
