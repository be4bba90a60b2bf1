"""The run log from Hugging Face's Trainer, Lightning and accelerate (integrations/): each framework's
real script (tests/hf_run.py, lightning_run.py, accelerate_run.py) is run as a user would, once per
module where several tests read its files, and its log is checked with read_log and runs.py against
the framework's own record. Importing a framework costs seconds: the tests of one run share an
xdist group, so that the run is made once."""
import csv
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, age, site_without
from logger import read_log

ENV = {'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}


def run_script(*args, cwd, env=None, timeout=300):
    """A script from tests/ (or -m torch.distributed.run ...) from cwd; the finished process."""
    args = [a if a.startswith('-') or not a.endswith('.py') else os.path.join(ROOT, 'tests', a) for a in map(str, args)]
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**os.environ, **ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def torchrun(*args, cwd):
    return run_script('-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', *args, cwd=cwd)


def runs_py(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'runs.py'), *map(str, args)], cwd=cwd,
                          env={**os.environ, 'COLUMNS': '250'}, capture_output=True, text=True, timeout=60)


def logs(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)) if os.path.isdir(folder) else []


def one_log(folder):
    found = logs(folder)
    assert len(found) == 1, found
    return found[0]


def ok(r):
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def loss(value):
    return None if value is None else f'{value:.4f}'  # as the log prints a loss


def by_step(run, kind):
    """{step: loss} of the step lines that have that loss ('train' or 'val'); each step once."""
    points = [(s.iter, getattr(s, f'{kind}_loss')) for s in run.steps if getattr(s, f'{kind}_loss') is not None]
    assert len({it for it, _ in points}) == len(points), f'a step has two {kind} losses: {points}'
    return {it: loss(value) for it, value in points}


def no_step_became_a_message(run):
    assert not [m.text for m in run.messages if m.text.startswith('step ')]
    assert run.skipped == 0


def copy(source, folder, *paths):
    for path in paths:
        (shutil.copytree if os.path.isdir(source / path) else shutil.copy)(source / path, folder / path)


# --------------------------------------------------------------------------- the package

def test_importing_integrations_imports_no_framework(tmp_path):
    code = ('import sys, integrations; print(sorted(integrations.__all__)); '
            "print([m for m in ('torch', 'transformers', 'lightning', 'accelerate') if m in sys.modules])\n"
            'try:\n    integrations.Nothing\nexcept AttributeError as e:\n    print(e)')
    r = ok(subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env={**os.environ, 'PYTHONPATH': ROOT},
                          capture_output=True, text=True, timeout=60))
    names, imported, missing = r.stdout.splitlines()
    assert names == str(['AccelerateTrainingLogger', 'LightningTrainingLogger', 'TrainingLoggerCallback'])
    assert imported == '[]'
    assert 'Nothing' in missing


# --------------------------------------------------------------------------- Hugging Face's Trainer

@pytest.fixture(scope='module')
def hf(tmp_path_factory):
    """Train 6 steps (checkpoints at 3 and 6), evaluate, and evaluate alone with a second Trainer."""
    cwd = tmp_path_factory.mktemp('hf')
    ok(run_script('hf_run.py', 'out', cwd=cwd))
    with open(cwd / 'out' / 'history.json') as f:
        history = json.load(f)
    return cwd, read_log(one_log(cwd / 'logs')), history


@pytest.fixture(scope='module')
def hf_resumed(tmp_path_factory, hf):
    """The run resumed from checkpoint-3 (a copy of it, beside a copy of its log) under torchrun on
    2 processes; rank 0 fails at step 6."""
    cwd = tmp_path_factory.mktemp('hf_resumed')
    (cwd / 'out').mkdir()
    copy(hf[0], cwd, 'logs', 'out/checkpoint-3')
    r = torchrun('hf_run.py', 'out', '--resume', 'out/checkpoint-3', '--fail-at', '6', cwd=cwd)
    assert r.returncode != 0 and 'planted failure at step 6' in r.stderr, r.stderr[-3000:]
    return cwd, [read_log(p) for p in logs(cwd / 'logs') if os.path.basename(p) != os.path.basename(hf[1].path)]


hf_group = pytest.mark.xdist_group('hf')


@hf_group
def test_hf_header_holds_the_training_arguments_tokens_redacted_and_the_model_config(hf):
    cwd, run, _ = hf
    assert run.config['max_steps'] == 6 and run.config['eval_steps'] == 3 and run.config['logging_steps'] == 1
    assert run.config['hub_token'] == '<HUB_TOKEN>'
    assert 'hf_secret_token_value' not in open(run.path).read()
    assert (run.config['model.n_layer'], run.config['model.n_embd'], run.config['model.model_type']) == (2, 32, 'gpt2')


@hf_group
def test_hf_log_names_the_command_the_versions_and_the_code(hf):
    run = hf[1]
    texts = [m.text for m in run.messages]
    assert any(t.startswith('command: ') and 'hf_run.py out' in t for t in texts)
    versions = next(t for t in texts if t.startswith('python '))
    for package in ('torch', 'transformers', 'accelerate'):
        assert f'{package} {importlib.metadata.version(package)}' in versions
    assert any(re.fullmatch(r'code: git [0-9a-f]{40}( dirty)?', t) for t in texts)


@hf_group
def test_hf_every_loss_equals_the_trainers_log_history_and_is_written_once(hf):
    _, run, history = hf
    train = {h['step']: loss(h['loss']) for h in history if 'loss' in h}
    assert by_step(run, 'train') == train and len(train) == 6
    # evaluations at 3 and 6, then evaluate() at 6 again: the same val loss, written once
    evals = [(h['step'], loss(h['eval_loss'])) for h in history if 'eval_loss' in h]
    assert len(evals) == 3 and evals[1] == evals[2]
    assert by_step(run, 'val') == dict(evals)
    assert not [s for s in run.steps if s.train_loss is not None and s.val_loss is not None]
    assert run.state() == 'completed'


@hf_group
def test_hf_other_metrics_are_extras_and_progress_lines_count_to_max_steps(hf):
    run = hf[1]
    first = next(s for s in run.steps if s.iter == 1)
    assert {'learning_rate', 'grad_norm', 'epoch'} <= first.metrics.keys()
    assert 'eval_runtime' in next(s for s in run.steps if s.val_loss is not None).metrics
    progress = [m.text for m in run.messages if m.text.startswith('iter ')]
    assert [p.split(',')[0] for p in progress] == [f'iter {i}: {i}/6' for i in range(1, 7)]
    assert all(re.search(r', eta \d+:\d\d:\d\d$', p) for p in progress)
    assert any(m.text.startswith('summary: train_runtime ') for m in run.messages)
    no_step_became_a_message(run)


@hf_group
def test_hf_evaluate_alone_writes_a_log(hf):
    cwd = hf[0]
    run = read_log(one_log(cwd / 'eval_logs'))
    with open(cwd / 'out' / 'eval_metrics.json') as f:
        metrics = json.load(f)
    assert by_step(run, 'val') == {0: loss(metrics['eval_loss'])}
    assert run.status == 'completed' and run.config['model.n_layer'] == 2


@hf_group
def test_hf_resumed_under_torchrun_is_one_log_with_each_step_once_and_ends_failed(hf, hf_resumed):
    cwd, resumed = hf_resumed
    assert len(resumed) == 1  # rank 0 only
    run = resumed[0]
    assert f'continues {os.path.basename(hf[1].path)} at iter 4' in [m.text for m in run.messages]
    assert sorted(by_step(run, 'train')) == [4, 5]
    assert run.status == 'failed: RuntimeError: planted failure at step 6'
    assert run.config['model.n_layer'] == 2


@hf_group
def test_runs_py_shows_the_resumed_hf_run_as_one_row_and_best_val_is_the_lowest_eval_loss(hf, hf_resumed):
    cwd, run, history = hf
    rows = ok(runs_py(run.path, cwd=cwd)).stdout.splitlines()[1:]
    assert len(rows) == 1 and ' completed ' in rows[0]
    assert rows[0].split()[-1] == loss(min(h['eval_loss'] for h in history if 'eval_loss' in h))
    rows = ok(runs_py('logs', cwd=hf_resumed[0])).stdout.splitlines()[1:]
    assert len(rows) == 1 and '+1 resumed' in rows[0] and ' failed ' in rows[0]


@hf_group
def test_runs_py_export_has_each_hf_loss_once_as_the_trainer_logged_it(hf, hf_resumed):
    cwd, run, history = hf
    r = ok(runs_py('export', run.path, cwd=cwd))
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    points = [(int(row['iter']), row['metric']) for row in rows if row['metric'] in ('train_loss', 'val_loss')]
    assert len(points) == len(set(points))
    exported = {int(row['iter']): loss(float(row['value'])) for row in rows if row['metric'] == 'train_loss'}
    assert exported == {h['step']: loss(h['loss']) for h in history if 'loss' in h}
    assert not [row for row in rows if row['metric'] == 'val_loss' and row['value'] in ('', 'None')]


@hf_group
def test_runs_py_tells_a_running_hf_log_from_a_killed_one(hf, tmp_path):
    text = open(hf[1].path).read()
    cut = tmp_path / os.path.basename(hf[1].path)
    cut.write_text(text[:text.rindex('=' * 80, 0, text.rindex('Training run ended'))])  # no footer
    assert ' running ' in ok(runs_py(cut, cwd=tmp_path)).stdout
    age(cut, 3600)
    assert ' killed ' in ok(runs_py(cut, cwd=tmp_path)).stdout


# --------------------------------------------------------------------------- Lightning

@pytest.fixture(scope='module')
def lightning(tmp_path_factory):
    """fit 2 epochs then test, where transformers is not installed; then, beside a copy of its log,
    resume from (a copy of) the first epoch's checkpoint and SIGTERM it at step 11."""
    first = tmp_path_factory.mktemp('lightning')
    r = ok(run_script('-S', 'lightning_run.py', 'out', cwd=first,
                      env={'PYTHONPATH': site_without(first, 'transformers')}))
    resumed = tmp_path_factory.mktemp('lightning_resumed')
    (resumed / 'out' / 'ckpt').mkdir(parents=True)
    copy(first, resumed, 'logs', 'out/ckpt/epoch=0-step=8.ckpt')
    ok(run_script('-S', 'lightning_run.py', 'out', '--resume', 'out/ckpt/epoch=0-step=8.ckpt', '--sigterm-at', '11',
                  '--no-test', cwd=resumed, env={'PYTHONPATH': site_without(resumed, 'transformers')}))
    with open(first / 'out' / 'csv' / 'version_0' / 'metrics.csv') as f:
        recorded = list(csv.DictReader(f))
    log = one_log(first / 'logs')
    again = next(p for p in logs(resumed / 'logs') if os.path.basename(p) != os.path.basename(log))
    return first, read_log(log), read_log(again), recorded, resumed, r.stdout


lightning_group = pytest.mark.xdist_group('lightning')


@lightning_group
def test_lightning_runs_where_transformers_is_not_installed(lightning):
    assert 'transformers: absent' in lightning[5]


@lightning_group
def test_lightning_header_holds_the_hyperparameters_and_the_trainers_settings(lightning):
    run = lightning[1]
    assert (run.config['lr'], run.config['width']) == (0.01, 16)
    assert run.config['trainer.max_epochs'] == 2 and run.config['trainer.log_every_n_steps'] == 2
    assert run.config['trainer.strategy'] == 'SingleDeviceStrategy'
    versions = next(m.text for m in run.messages if m.text.startswith('python '))
    assert f'lightning {importlib.metadata.version("lightning")}' in versions
    assert any(m.text.startswith('command: ') and 'lightning_run.py out' in m.text for m in run.messages)


@lightning_group
def test_lightning_every_loss_equals_lightnings_own_record(lightning):
    run, recorded = lightning[1], lightning[3]
    for kind in ('train', 'val'):
        expected = {int(row['step']): loss(float(row[f'{kind}_loss'])) for row in recorded if row[f'{kind}_loss']}
        assert by_step(run, kind) == expected and expected
    test = [s.metrics['test_loss'] for s in run.steps if 'test_loss' in s.metrics]
    assert test == [float(row['test_loss']) for row in recorded if row['test_loss']]


@lightning_group
def test_lightning_metric_names_that_are_not_words_are_mapped_never_dropped(lightning):
    run, recorded = lightning[1], lightning[3]
    for name, mapped in (('lr-AdamW', 'lr_AdamW'), ('grad/scale', 'grad_scale')):
        expected = [(int(row['step']), float(row[name])) for row in recorded if row[name]]
        assert [(s.iter, s.metrics[mapped]) for s in run.steps if mapped in s.metrics] == expected and expected
    no_step_became_a_message(run)
    # a line without a val loss is no val point
    assert len(ok(runs_py('export', run.path, cwd=lightning[0])).stdout.split(',val_loss,')) - 1 == 2


@lightning_group
def test_lightning_fit_then_test_is_one_log_with_one_footer_and_progress_to_max_steps(lightning):
    run = lightning[1]
    text = open(run.path).read()
    assert text.count('Training run ended at') == 1 and run.status == 'completed'
    messages = [m.text for m in run.messages]
    assert messages.index('trainer.fit()') < messages.index('trainer.test()')
    progress = [t for t in messages if t.startswith('iter ')]
    assert progress and all(re.fullmatch(r'iter (\d+): \1/16, eta \d+:\d\d:\d\d', t) for t in progress)


@lightning_group
def test_lightning_resumed_run_continues_its_log_and_sigterm_is_no_completion(lightning):
    first, resumed, cwd = lightning[1], lightning[2], lightning[4]
    assert f'continues {os.path.basename(first.path)} at iter 8' in [m.text for m in resumed.messages]
    assert resumed.status == 'terminated (SIGTERM)'
    r = ok(runs_py('logs', cwd=cwd))
    assert len(r.stdout.splitlines()) == 2 and '+1 resumed' in r.stdout and ' terminated ' in r.stdout


@lightning_group
def test_runs_py_plots_reports_and_follows_the_lightning_run(lightning):
    first, resumed, cwd = lightning[1], lightning[2], lightning[4]  # the run, resumed: one curve
    assert ok(runs_py('plot', 'logs', '-o', 'curves.svg', cwd=cwd)).stdout.startswith('wrote curves.svg (1 run)')
    assert ok(runs_py('report', 'logs', '-o', 'report.html', cwd=cwd)).stdout.startswith('wrote report.html (1 run)')
    report = open(cwd / 'report.html').read()
    assert os.path.basename(first.path) in report and os.path.basename(resumed.path) in report
    follow = runs_py('follow', first.path, cwd=cwd)
    assert follow.returncode == 0 and 'completed' in follow.stdout.splitlines()[-1]
    assert follow.stdout.count('val loss') == len(first.steps)


@pytest.mark.xdist_group('lightning_spawn')
def test_lightning_ddp_spawn_writes_one_log_with_each_step_once(tmp_path):
    """The logger is pickled into 2 processes; only rank 0 writes. The train loss is named here."""
    r = ok(run_script('-S', 'lightning_run.py', 'out', '--strategy', 'ddp_spawn', '--train-loss', 'grad/scale',
                      '--no-test', cwd=tmp_path, env={'PYTHONPATH': site_without(tmp_path, 'transformers')}))
    run = read_log(one_log(tmp_path / 'logs'))
    with open(tmp_path / 'out' / 'csv' / 'version_0' / 'metrics.csv') as f:
        recorded = list(csv.DictReader(f))
    assert run.config['trainer.world_size'] == 2 and run.status == 'completed'
    assert by_step(run, 'train') == {int(row['step']): loss(float(row['grad/scale'])) for row in recorded
                                      if row['grad/scale']}
    assert [s.metrics['train_loss'] for s in run.steps if 'train_loss' in s.metrics] == \
        [float(row['train_loss']) for row in recorded if row['train_loss']]
    assert 'transformers: absent' in r.stdout


@pytest.mark.slow
def test_lightning_ddp_spawn_failing_is_no_completion(tmp_path):
    """ddp_spawn's processes run fit with no handler of Lightning's around it."""
    r = run_script('lightning_run.py', 'out', '--strategy', 'ddp_spawn', '--fail-at', '3', '--no-test', cwd=tmp_path)
    assert r.returncode == 1 and 'planted failure at step 3' in r.stderr
    run = read_log(one_log(tmp_path / 'logs'))
    assert run.status == 'failed: the process exited during trainer.fit()' and sorted(by_step(run, 'train')) == [1]


@pytest.mark.slow
def test_lightning_ddp_writes_one_log_with_each_step_once(tmp_path):
    ok(run_script('lightning_run.py', 'out', '--strategy', 'ddp', '--no-test', cwd=tmp_path))
    run = read_log(one_log(tmp_path / 'logs'))
    assert run.config['trainer.world_size'] == 2 and run.status == 'completed'
    assert len(by_step(run, 'train')) == 4 and len(by_step(run, 'val')) == 2


@pytest.mark.slow
def test_lightning_ctrl_c_reads_interrupted(tmp_path):
    r = run_script('lightning_run.py', 'out', '--interrupt-at', '3', cwd=tmp_path)
    assert r.returncode == 1
    run = read_log(one_log(tmp_path / 'logs'))
    assert run.status == 'interrupted' and sorted(by_step(run, 'train')) == [1]


# --------------------------------------------------------------------------- accelerate

def test_accelerate_under_torchrun_logs_the_config_and_each_loss_once_and_ctrl_c_reads_interrupted(tmp_path):
    (tmp_path / 'out').mkdir()
    r = torchrun('accelerate_run.py', 'out', '--interrupt-at', '6', cwd=tmp_path)
    assert r.returncode != 0 and 'KeyboardInterrupt' in r.stderr
    run = read_log(one_log(tmp_path / 'logs'))  # rank 0's only
    with open(tmp_path / 'out' / 'logged.json') as f:
        logged = json.load(f)
    assert run.config == {'lr': 0.01, 'steps': 8, 'width': 16}
    assert by_step(run, 'train') == {step: loss(values['train_loss']) for step, values in logged} and len(logged) == 6
    assert by_step(run, 'val') == {step: loss(values['val/loss']) for step, values in logged if 'val/loss' in values}
    assert [s.metrics['lr'] for s in run.steps] == [values['lr'] for _, values in logged]
    assert run.status == 'interrupted'
    versions = next(m.text for m in run.messages if m.text.startswith('python '))
    assert f'accelerate {importlib.metadata.version("accelerate")}' in versions
    assert ' interrupted ' in ok(runs_py('logs', cwd=tmp_path)).stdout


# --------------------------------------------------------------------------- the examples in docs/logging.md

def examples():
    """(framework, code) of each example in docs/logging.md's section on other loops."""
    text = open(os.path.join(ROOT, 'docs', 'logging.md'), encoding='utf-8').read()
    return re.findall(r'### (\S+)[^\n]*\n.*?```python\n(.*?)```', text.split('## Other training loops')[1], re.S)


@pytest.mark.parametrize('framework, code', [
    pytest.param(f, c, marks=[] if f == 'accelerate' else [pytest.mark.slow]) for f, c in examples()])
def test_each_example_in_the_docs_runs_and_writes_a_completed_log(tmp_path, framework, code):
    assert len(code.splitlines()) < 30
    (tmp_path / 'example.py').write_text(code)
    ok(subprocess.run([sys.executable, 'example.py'], cwd=tmp_path, env={**os.environ, **ENV, 'PYTHONPATH': ROOT},
                      capture_output=True, text=True, timeout=300))
    run = read_log(one_log(tmp_path / 'logs'))
    assert run.status == 'completed' and run.steps
    assert ok(runs_py('logs', cwd=tmp_path)).stdout.count('completed') == 1
