"""Shared pieces for the tests that run train.py, sample.py, bench.py and torchrun as a user would."""
import datetime
import os
import pickle
import re
import subprocess
import sys
import sysconfig
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# one thread for each script a test runs: two tests share two cores, and a tiny model gains nothing
# from a second thread but the waiting for it
os.environ.setdefault('OMP_NUM_THREADS', '1')
from logger import read_log  # noqa: E402

# a model and a run small enough that a CPU trains it in a second or two
TINY = ['--dataset=tiny', '--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=32',
        '--batch_size=4', '--gradient_accumulation_steps=1', '--eval_iters=2', '--log_interval=1',
        '--warmup_iters=2', '--lr_decay_iters=100', '--learning_rate=1e-2', '--device=cpu', '--compile=False']
TEXT = ('First Citizen:\nBefore we proceed any further, hear me speak.\n\n'
        'All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n')


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """xdist's loadgroup (pytest.ini) sends the tests of one xdist_group to one worker by adding
    '@group' to their ids, through item._nodeid, which pytest 9.2 no longer reads: without this,
    every group is split across the workers, and its module fixture made on each."""
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # an older pytest reads item._nodeid: xdist's own renaming works
        return
    if not getattr(config.option, 'loadgroup', False):
        return
    for item in items:
        group = '_'.join(sorted({str(m.args[0] if m.args else m.kwargs.get('name', 'default'))
                                 for m in item.iter_markers('xdist_group')}))
        if group and not item.nodeid.endswith(f'@{group}'):
            item._id = NodeId.parse(f'{item.nodeid}@{group}')


@pytest.fixture
def workdir(tmp_path):
    """A directory to run the scripts in, holding data/tiny as a prepare.py would leave it."""
    return make_workdir(tmp_path)


def make_workdir(tmp_path):
    data = tmp_path / 'data' / 'tiny'
    data.mkdir(parents=True)
    text = TEXT * 60
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(len(ids) * 0.9)
    ids[:n].tofile(data / 'train.bin')
    ids[n:].tofile(data / 'val.bin')
    with open(data / 'meta.pkl', 'wb') as f:
        pickle.dump({'vocab_size': len(chars), 'itos': dict(enumerate(chars)), 'stoi': stoi}, f)
    return tmp_path


def script(name, *args, cwd, env=None, timeout=180):
    """Run one of the project's scripts from `cwd` and return the finished process."""
    target = name if name.startswith('-') else os.path.join(ROOT, name)  # '-c' runs code instead
    return subprocess.run([sys.executable, target, *map(str, args)], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def torchrun(nproc, *args, cwd, timeout=240):
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                           f'--nproc_per_node={nproc}', os.path.join(ROOT, 'train.py'), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def start_train(workdir, *args):
    """train.py on the tiny model, in the background."""
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *TINY, *args], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(workdir, predicate, proc, timeout=120):
    """Poll the run's log, as another process would, until predicate(run) holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        logs = logs_in(workdir)
        if logs:
            run = read_log(logs[0])
            if predicate(run):
                return run
        time.sleep(0.05)
    raise AssertionError('the run never got there')


def site_without(tmp_path, package):
    """A copy of site-packages (symlinks) without package: with `python -S` and this on PYTHONPATH,
    the package is not installed, its metadata included."""
    site = tmp_path / f'site-without-{package}'
    site.mkdir()
    purelib = sysconfig.get_paths()['purelib']
    for name in os.listdir(purelib):
        if not re.match(rf'{package}([-.]|$)', name):
            os.symlink(os.path.join(purelib, name), site / name)
    return str(site)


def assert_refused(r, *needles, prog='train.py'):
    """The script refused its input as configurator.die does: exit 2, one line, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f'{prog}: error: ')
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def logs_in(directory):
    directory = os.path.join(directory, 'logs')
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)) if os.path.isdir(directory) else []


TIMESTAMP = r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d'

# the seed's example log (shared/seed/file-based-logging.md), whose footer has no Status line;
# the example's "..." config line, which stands for more keys, is left out
SEED_LOG = '''\
================================================================================
Training run started at 2024-07-16 14:30:52
================================================================================
Configuration:
----------------------------------------
batch_size: 12
block_size: 1024
compile: True
dataset: openwebtext
----------------------------------------
[2024-07-16 14:35:22] step 2000: train loss 3.2145, val loss 3.1892
[2024-07-16 14:40:15] step 4000: train loss 2.9876, val loss 2.9654
[2024-07-16 14:45:08] step 6000: train loss 2.7543, val loss 2.7321
================================================================================
Training run ended at 2024-07-16 16:45:30
================================================================================
'''


def age(path, seconds):
    """Make a log look as if its last line and last write were `seconds` ago."""
    text = open(path, encoding='utf-8').read()
    last = datetime.datetime.fromisoformat(max(re.findall(TIMESTAMP, text)))
    shift = last - (datetime.datetime.now() - datetime.timedelta(seconds=seconds))
    text = re.sub(TIMESTAMP, lambda m: f'{datetime.datetime.fromisoformat(m.group()) - shift:%Y-%m-%d %H:%M:%S}', text)
    open(path, 'w', encoding='utf-8').write(text)
    os.utime(path, (time.time() - seconds,) * 2)
