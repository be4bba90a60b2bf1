"""train.py and sample.py end to end on a tiny model: the log, checkpoints and samples they leave."""
import glob
import importlib.util
import json
import os
import pickle
import re
import select
import shlex
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, TEXT, assert_refused, logs_in, make_workdir, script
from logger import read_log

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')


def train_tiny(workdir):
    """One finished tiny run: 8 iterations, evaluations at 0, 4 and 8."""
    r = script('train.py', *TINY, '--max_iters=8', '--eval_interval=4', cwd=workdir)
    assert r.returncode == 0, r.stderr
    return workdir, r


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Shared by the tests that only read what the run left."""
    return train_tiny(make_workdir(tmp_path_factory.mktemp('trained')))


@pytest.fixture
def trained_here(workdir):
    """A run of the test's own, for tests that change what it left."""
    return train_tiny(workdir)


@pytest.mark.xdist_group('trained')  # one worker runs these, and so makes `trained` once
def test_a_tiny_run_logs_config_command_progress_steps_and_completed(trained):
    workdir, r = trained
    logs = logs_in(workdir)
    assert len(logs) == 1
    run = read_log(logs[0])
    help_text = script('train.py', '--help', cwd=workdir).stdout
    every_key = re.findall(r'^  --(\w+)', help_text, re.M)
    assert sorted(run.config) == sorted(every_key) and len(every_key) > 30
    assert run.config['n_layer'] == 2 and run.config['dataset'] == 'tiny'  # overrides, not defaults
    texts = [m.text for m in run.messages]
    command = next(t for t in texts if t.startswith('command: '))
    assert shlex.split(command[9:])[1:] == [os.path.join(ROOT, 'train.py'), *TINY, '--max_iters=8',
                                           '--eval_interval=4']
    assert any(re.fullmatch(r'python \d+\.\d+\.\d+, torch \S+, numpy \S+', t) for t in texts)
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True) \
        if shutil.which('git') else None
    if head and head.returncode == 0:  # the project is a git checkout: the log names its commit
        assert any(re.fullmatch(rf'code: git {head.stdout.strip()}( dirty)?', t) for t in texts)
    assert any('device: cpu' in t and 'world_size: 1' in t for t in texts)
    progress = [t for t in texts if t.startswith('iter ')]
    assert len(progress) == 8
    # nanoGPT's prefix, which people grep, then the iteration of max_iters and the time still to go
    assert all(re.fullmatch(rf'iter {i}: loss \d+\.\d{{4}}, time \d+\.\d\dms, \d+\.\d+ TFLOP/s, {i}/8, '
                            r'eta \d+:\d\d:\d\d', t) for i, t in enumerate(progress))
    assert progress[-1].endswith(', eta 0:00:00')
    assert [s.iter for s in run.steps] == [0, 4, 8]  # evaluation at 0, every eval_interval and at the end
    assert all('lr' in s.metrics and 'mfu' not in s.metrics for s in run.steps)  # no peak known on a CPU
    tokens = [os.path.getsize(workdir / 'data' / 'tiny' / f'{split}.bin') // 2 for split in ('train', 'val')]
    assert f'data: {os.path.join("data", "tiny")}, source not recorded, train {tokens[0]:,} tokens, ' \
           f'val {tokens[1]:,} tokens, tokenizer char ({len(set(TEXT))} tokens, uint16)' in texts
    assert run.steps[-1].val_loss < run.steps[0].val_loss
    assert run.status == 'completed'
    # console output goes on as nanoGPT users know it
    # nanoGPT's console line, which people grep, then the val loss in bits per byte
    assert re.search(r'^step 8: train loss \d+\.\d{4}, val loss \d+\.\d{4}, val bpb \d+\.\d{4}$', r.stdout, re.M)
    assert re.search(r'^iter 7: loss \d+\.\d{4}, time ', r.stdout, re.M)


@pytest.mark.xdist_group('trained')
def test_checkpoint_has_clean_keys_the_best_val_loss_and_is_logged(trained):
    workdir, _ = trained
    ckpt = torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)
    assert not any(k.startswith('_orig_mod.') for k in ckpt['model'])
    run = read_log(logs_in(workdir)[0])
    assert ckpt['best_val_loss'] == pytest.approx(min(s.val_loss for s in run.steps), abs=1e-4)
    assert ckpt['iter_num'] == 8 and ckpt['config']['max_iters'] == 8
    assert ckpt['log'] == os.path.basename(logs_in(workdir)[0])  # what a resumed run's log continues
    saves = [m.text for m in run.messages if m.text.startswith('saving checkpoint')]
    assert saves == [f'saving checkpoint to {os.path.join("out", "ckpt.pt")} at iter {i}' for i in (4, 8)]
    # no temporary file left behind; the checkpoint before the last is kept, and both have their sha256
    assert sorted(os.listdir(workdir / 'out')) == ['ckpt.pt', 'ckpt.sha256', 'ckpt_prev.pt']
    assert torch.load(workdir / 'out' / 'ckpt_prev.pt', weights_only=False)['iter_num'] == 4


def test_best_val_loss_is_never_replaced_by_a_worse_one(workdir):
    # a learning rate this high makes the loss go up after the first evaluations
    r = script('train.py', *TINY, '--max_iters=12', '--eval_interval=2', '--learning_rate=3.0',
               '--warmup_iters=0', '--decay_lr=False', '--grad_clip=0.0', cwd=workdir)
    assert r.returncode == 0, r.stderr
    run = read_log(logs_in(workdir)[0])
    vals = [s.val_loss for s in run.steps]
    assert vals[-1] > min(vals), vals  # the run got worse: the case being tested
    ckpt = torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)
    assert ckpt['best_val_loss'] == pytest.approx(min(vals), abs=1e-4)


def test_an_existing_checkpoint_is_never_overwritten_by_a_new_run(trained_here):
    workdir, _ = trained_here
    before = (workdir / 'out' / 'ckpt.pt').read_bytes()
    r = script('train.py', *TINY, '--max_iters=8', cwd=workdir)
    assert r.returncode == 2 and '--init_from=resume' in r.stderr and len(r.stderr.splitlines()) == 1
    assert '--init_from=auto' in r.stderr  # the same command line for every restart of a job
    assert (workdir / 'out' / 'ckpt.pt').read_bytes() == before
    assert len(logs_in(workdir)) == 1


@pytest.mark.xdist_group('trained')
def test_resume_refuses_a_block_size_beyond_the_checkpoints_before_a_log(trained):
    workdir, _ = trained
    r = script('train.py', *TINY, '--init_from=resume', '--block_size=64', '--max_iters=9', cwd=workdir)
    assert_refused(r, f"block_size must be at most 32, the block size of {os.path.join('out', 'ckpt.pt')}, got 64")
    assert len(logs_in(workdir)) == 1


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_intact(trained_here):
    workdir, _ = trained_here
    ckpt_path = workdir / 'out' / 'ckpt.pt'
    before = ckpt_path.read_bytes()
    # resume under a file size limit that the next checkpoint cannot fit in: the save fails halfway
    launcher = textwrap.dedent(f'''
        import os, resource, runpy, sys
        sys.path.insert(0, os.path.dirname(sys.argv[1]))
        resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) // 2}, {len(before) // 2}))
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name='__main__')
    ''')
    r = script('-c', launcher, os.path.join(ROOT, 'train.py'), *TINY, '--init_from=resume',
               '--max_iters=12', '--eval_interval=4', cwd=workdir)
    assert r.returncode == 1
    assert ckpt_path.read_bytes() == before
    assert torch.load(ckpt_path, weights_only=False)['iter_num'] == 8
    failed = read_log(logs_in(workdir)[-1])
    assert failed.steps[-1].iter == 12
    # the footer names the error and the file; the log and stderr say what is kept; no traceback
    saving = f'(saving {os.path.join("out", "ckpt.pt")})'
    assert failed.status == f'failed: OSError: [Errno 27] File too large {saving}'
    assert f'{os.path.join("out", "ckpt.pt")} (iter 8) is kept to resume from' in [m.text for m in failed.messages]
    assert r.stderr == f'train.py: {failed.status}\n'
    assert sorted(os.listdir(workdir / 'out')) == ['ckpt.pt', 'ckpt.sha256', 'ckpt_prev.pt']  # no *.tmp
    assert torch.load(workdir / 'out' / 'ckpt_prev.pt', weights_only=False)['iter_num'] == 4


def git(*args, cwd):
    return subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t', *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('git') is None, reason='needs git')
def test_the_log_names_the_git_commit_and_dirty_and_says_nothing_outside_git(workdir):
    code = workdir / 'code'  # a copy of the project's scripts: a checkout of its own, then none
    code.mkdir()
    for path in glob.glob(os.path.join(ROOT, '*.py')):  # the modules train.py imports, and the rest
        shutil.copy(path, code)
    (code / 'data').mkdir()
    for path in glob.glob(os.path.join(ROOT, 'data', '*.py')):  # the data modules train.py imports
        shutil.copy(path, code / 'data')
    git('init', '-q', cwd=code)
    git('add', '.', cwd=code)
    git('commit', '-q', '-m', 'x', cwd=code)
    commit = git('rev-parse', 'HEAD', cwd=code)
    (code / 'notes.txt').write_text('untracked files do not make a checkout dirty')

    def code_lines(log_dir):
        r = subprocess.run([sys.executable, code / 'train.py', *TINY, '--max_iters=0', f'--log_dir={log_dir}'],
                           cwd=workdir, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        [log] = os.listdir(workdir / log_dir)
        return [m.text for m in read_log(workdir / log_dir / log).messages if m.text.startswith('code: ')]

    assert code_lines('clean') == [f'code: git {commit}']
    with open(code / 'model.py', 'a') as f:
        f.write('# a local change\n')
    assert code_lines('dirty') == [f'code: git {commit} dirty']
    shutil.rmtree(code / '.git')
    assert code_lines('none') == []


@pytest.mark.slow
def test_the_seeds_example_config_trains_char_level_shakespeare_on_the_device_found(workdir):
    # python train.py config/shakespeare.py --log_dir=shakespeare_logs, cut short
    shutil.copytree(workdir / 'data' / 'tiny', workdir / 'data' / 'shakespeare_char')
    r = script('train.py', os.path.join(ROOT, 'config', 'shakespeare.py'), '--log_dir=shakespeare_logs',
               '--max_iters=4', '--eval_interval=2', '--eval_iters=2', cwd=workdir)
    assert r.returncode == 0, r.stderr
    [log] = os.listdir(workdir / 'shakespeare_logs')
    run = read_log(workdir / 'shakespeare_logs' / log)
    assert run.status == 'completed' and [s.iter for s in run.steps] == [0, 2, 4]
    assert (run.config['dataset'], run.config['device'], run.config['compile']) == ('shakespeare_char', 'auto', 'auto')
    assert run.config['n_layer'] == (6 if torch.cuda.is_available() else 4)  # sized for the device
    assert sorted(os.listdir(workdir / run.config['out_dir'])) == ['ckpt.pt', 'ckpt.sha256', 'ckpt_prev.pt']


def test_file_logging_false_and_log_dir_move_the_log(workdir):
    r = script('train.py', *TINY, '--max_iters=2', '--file_logging=False', cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert not (workdir / 'logs').exists()
    r = script('train.py', *TINY, '--max_iters=2', '--out_dir=out2', '--log_dir=runs/a/logs', cwd=workdir)
    assert r.returncode == 0, r.stderr
    [log] = os.listdir(workdir / 'runs' / 'a' / 'logs')
    assert read_log(workdir / 'runs' / 'a' / 'logs' / log).status == 'completed'


def test_an_unusable_log_dir_stops_the_run_before_training(workdir):
    (workdir / 'blocked').write_text('a file in the way')
    r = script('train.py', *TINY, '--max_iters=2', '--log_dir=blocked', cwd=workdir)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "log_dir 'blocked'" in r.stderr
    assert not (workdir / 'out' / 'ckpt.pt').exists()


@pytest.mark.skipif(importlib.util.find_spec('wandb') is not None, reason='wandb is installed here')
def test_wandb_log_without_wandb_is_a_clear_error(workdir):
    r = script('train.py', *TINY, '--max_iters=2', '--wandb_log=True', cwd=workdir)
    assert r.returncode == 2 and 'pip install wandb' in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (workdir / 'logs').exists()


@pytest.mark.xdist_group('trained')
def test_sample_prints_text_in_the_training_vocabulary(trained):
    workdir, _ = trained
    (workdir / 'prompt.txt').write_text('First Citizen:\n')
    r = script('sample.py', '--start=FILE:prompt.txt', '--num_samples=2', '--max_new_tokens=40',
               '--device=cpu', '--seed=7', cwd=workdir)
    assert r.returncode == 0, r.stderr
    samples = r.stdout.split('---------------\n')
    assert len(samples) == 3 and samples[2] == ''
    for s in samples[:2]:
        assert s.startswith('First Citizen:\n') and len(s) == len('First Citizen:\n') + 40 + 1
        assert set(s) <= set(TEXT) | {'\n'}
    again = script('sample.py', '--start=FILE:prompt.txt', '--num_samples=2', '--max_new_tokens=40',
                   '--device=cpu', '--seed=7', cwd=workdir)
    assert again.stdout == r.stdout  # the seed makes samples repeatable


def on_a_terminal(args, cwd, until=None):
    """What sample.py shows on a terminal: all of it, or `until` characters, the process then still
    running (and stopped)."""
    main, terminal = os.openpty()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'sample.py'), *args], cwd=cwd, stdout=terminal,
                            stderr=subprocess.PIPE)
    os.close(terminal)
    shown = b''
    try:
        while until is None or len(shown.replace(b'\r\n', b'\n')) < until:
            assert select.select([main], [], [], 120)[0], 'sample.py showed nothing for 120 s'
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end closed: sample.py is done
                chunk = b''
            if not chunk:
                break
            shown += chunk
        running = proc.poll() is None
    finally:
        proc.kill()
        proc.communicate()
        os.close(main)
    return shown.decode().replace('\r\n', '\n'), running, proc


@pytest.mark.skipif(not hasattr(os, 'openpty'), reason='needs a pseudo-terminal')
@pytest.mark.xdist_group('trained')
def test_sample_shows_a_terminal_each_token_as_it_comes_and_the_text_a_pipe_gets(trained):
    workdir, _ = trained
    args = ['--device=cpu', '--num_samples=1', '--start=All:', '--seed=7']
    piped = script('sample.py', *args, '--max_new_tokens=40', cwd=workdir)
    assert piped.returncode == 0, piped.stderr
    assert re.fullmatch(r'All:.{40}\n-{15}\n', piped.stdout, re.S)
    shown, _, proc = on_a_terminal([*args, '--max_new_tokens=40'], workdir)
    assert proc.returncode == 0 and shown == piped.stdout
    # a million tokens take minutes: the first 40 are on the screen long before
    shown, running, _ = on_a_terminal([*args, '--max_new_tokens=1000000'], workdir, until=len('All:') + 40)
    assert running and shown.startswith(piped.stdout[:len('All:') + 40])


@pytest.mark.parametrize('args, needle', [
    (['--out_dir=nowhere'], 'no checkpoint at nowhere'),
    (['--start=FILE:missing.txt'], "cannot read the start text 'missing.txt'"),
    (['--start=Zebra'], 'characters this model never saw'),
    (['--temperature=0'], 'temperature must be > 0'),
    # slow: test_configurator's test_check_holds_each_key_to_its_rule proves its rule, [temperature=0] that
    # sample.py applies RULES
    pytest.param(['--max_new_tokens=0'], 'max_new_tokens must be at least 1, got 0', marks=pytest.mark.slow),
    (['--init_from=scratch'], "init_from must be 'resume' or a GPT-2 model name"),
    # slow: test_configurator's [device=cuda] proves resolve()'s refusal, which sample.py calls
    pytest.param(['--device=cuda'], "device='cuda', but no CUDA GPU is available here", marks=[no_cuda, pytest.mark.slow]),
])
@pytest.mark.xdist_group('trained')
def test_sample_refuses_bad_input_in_one_line(trained, args, needle):
    workdir, _ = trained
    assert_refused(script('sample.py', '--device=cpu', *args, cwd=workdir), needle, prog='sample.py')


@pytest.mark.parametrize('args, needle', [
    (['--n_head=5'], 'n_embd must be a multiple of n_head, got n_embd=768, n_head=5'),
    # slow: test_configurator's [device=gpu] proves resolve()'s refusal, which bench.py calls
    pytest.param(['--device=cuda:x'], "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'cuda:x'", marks=pytest.mark.slow),
])
def test_bench_refuses_bad_values_in_one_line(workdir, args, needle):
    assert_refused(script('bench.py', *args, cwd=workdir), needle, prog='bench.py')


def test_bench_reports_throughput_and_a_parsable_summary_on_cpu(workdir):
    r = script('bench.py', '--device=cpu', '--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=32',
               '--batch_size=4', '--burn_in=1', '--num_iters=3', '--real_data=True', '--dataset=tiny',
               cwd=workdir)
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    fields = dict(kv.split('=') for kv in last.removeprefix('bench: ').split())
    assert last.startswith('bench: ') and fields['mfu'] == 'na' and fields['device'] == 'cpu'
    assert float(fields['ms_per_iter']) > 0 and float(fields['tokens_per_s']) > 0
    assert float(fields['tflops']) > 0
    assert float(fields['tokens_per_s']) == pytest.approx(4 * 32 / float(fields['ms_per_iter']) * 1000, rel=0.01)


def test_sample_never_draws_the_padding_of_a_padded_vocabulary(tmp_path):
    # nanoGPT pads GPT-2's 50257 tokens to 50304; ids past 50256 decode to nothing. A model that
    # favours them above all (its final norm emits ones; the padding rows sum highest) still
    # samples text, as its dataset has no meta.pkl and so is GPT-2's
    sys.path.insert(0, ROOT)
    from model import GPT, GPTConfig
    args = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, bias=True, vocab_size=50304, dropout=0.0)
    model = GPT(GPTConfig(**args))
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.transformer.wte.weight[50257:] = 1.0
    (tmp_path / 'out').mkdir()
    torch.save({'model': model.state_dict(), 'model_args': args, 'iter_num': 0, 'best_val_loss': 9.9,
                'config': {'dataset': 'openwebtext'}}, tmp_path / 'out' / 'ckpt.pt')
    r = script('sample.py', '--device=cpu', '--num_samples=2', '--max_new_tokens=20', '--start=Hello', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('---------------\n') == 2 and r.stdout.startswith('Hello')


# --------------------------------------------------------------------------- records that never lie

def copy_of(trained, tmp_path):
    """The trained run's folder, to resume from without changing the shared one."""
    shutil.copytree(trained[0], tmp_path / 'run')
    return tmp_path / 'run'


@pytest.mark.xdist_group('trained')
def test_a_sweep_resumed_with_another_shape_logs_the_shape_that_trains_and_shows_as_two_branches(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    first = logs_in(workdir)[0]
    shutil.copytree(workdir / 'out', workdir / 'out_b')
    # the command line asks for 3 layers of 64; the second branch's learning rate of 0 keeps the
    # weights, so that its val loss never beats the carried-over best and nothing is saved
    for out, lr in [('out', '1e-3'), ('out_b', '0')]:
        r = script('train.py', *TINY, '--init_from=resume', f'--out_dir={out}', f'--learning_rate={lr}', '--min_lr=0',
                   '--always_save_checkpoint=False', '--n_layer=3', '--n_embd=64', '--max_iters=10', cwd=workdir)
        assert r.returncode == 0, r.stderr
    for log in logs_in(workdir)[1:]:
        run = read_log(log)
        assert (run.config['n_layer'], run.config['n_embd']) == (2, 32)  # what trained
        kept = [m.text for m in run.messages if 'a resume keeps the checkpoint' in m.text]
        assert [k.split('=')[0] for k in kept] == ['n_layer', 'n_embd']
    assert run.status == 'completed (no checkpoint saved since iter 8)'
    assert any(m.text.startswith('no checkpoint saved since iter 8') for m in run.messages)
    assert torch.load(workdir / 'out_b' / 'ckpt.pt', weights_only=False)['iter_num'] == 8
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'runs.py'), 'export', '--format', 'json', 'logs'],
                       cwd=workdir, capture_output=True, text=True)
    runs = json.loads(r.stdout)
    assert [(x['branch_of'], x['config']['learning_rate'], x['config']['n_layer']) for x in runs] == [
        ({'run': os.path.basename(first), 'iter': 8}, lr, 2) for lr in (1e-3, 0)]


@pytest.mark.xdist_group('trained')
def test_a_resume_with_a_shorter_block_size_trains_on_shorter_windows_and_keeps_the_models_positions(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    r = script('train.py', *TINY, '--init_from=resume', '--block_size=16', '--max_iters=10', cwd=workdir)
    assert r.returncode == 0, r.stderr
    run = read_log(logs_in(workdir)[-1])
    assert run.status == 'completed' and run.config['block_size'] == 16 and 10 in [s.iter for s in run.steps]
    assert any(m.text.startswith('block_size=16: it trains on windows of 16 tokens; the model keeps the 32 '
                                 'positions of') for m in run.messages)
    checkpoint = torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)
    assert checkpoint['iter_num'] == 10 and checkpoint['model_args']['block_size'] == 32
    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=12', cwd=workdir)  # the first block size again
    assert r.returncode == 0, r.stderr


def prepare_again(workdir, text):
    """data/tiny prepared again from other text (as prepare.py --force would), char-level."""
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text], dtype=np.uint16)
    ids[:len(ids) * 9 // 10].tofile(workdir / 'data' / 'tiny' / 'train.bin')
    ids[len(ids) * 9 // 10:].tofile(workdir / 'data' / 'tiny' / 'val.bin')
    with open(workdir / 'data' / 'tiny' / 'meta.pkl', 'wb') as f:
        pickle.dump({'vocab_size': len(chars), 'itos': dict(enumerate(chars)), 'stoi': {c: i for i, c in enumerate(chars)}}, f)


@pytest.mark.xdist_group('trained')
def test_a_resume_on_changed_data_is_refused_naming_both_unless_new_data_is_asked(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    prepare_again(workdir, (TEXT * 60).replace('F', 'X'))  # as many characters, one of them another
    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=10', cwd=workdir)
    assert_refused(r, 'tiny (tokens sha256', 'but now tiny (tokens sha256', '--new_data=True')
    assert len(logs_in(workdir)) == 1
    sample = script('sample.py', '--device=cpu', '--num_samples=1', '--max_new_tokens=5', cwd=workdir)
    assert sample.returncode == 0 and 'warning: the vocabulary of data/tiny is not the one' in sample.stderr
    r = script('train.py', *TINY, '--init_from=resume', '--max_iters=10', '--new_data=True',
               '--always_save_checkpoint=False', cwd=workdir)
    assert r.returncode == 0, r.stderr
    run = read_log(logs_in(workdir)[-1])
    assert any(m.text.startswith('new_data=True: trained on tiny') for m in run.messages)
    assert torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['iter_num'] == 10  # a new best on new data


@pytest.mark.xdist_group('trained')
def test_sample_refuses_a_start_file_that_is_not_utf8_in_one_line(trained, tmp_path):
    (tmp_path / 'prompt.txt').write_bytes('Café'.encode('latin-1'))
    r = script('sample.py', '--device=cpu', f'--start=FILE:{tmp_path / "prompt.txt"}', cwd=trained[0])
    assert_refused(r, 'prompt.txt', 'is not UTF-8', prog='sample.py')
