"""runs.py end to end: the summary table, its robustness to damaged logs, and the loss plot."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from logger import TrainingLogger  # noqa: E402

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def runs_py(*args, cwd=ROOT, env=None):
    """Run runs.py as a user would; a wide terminal unless the test says otherwise."""
    full_env = {**os.environ, 'COLUMNS': '250', **(env or {})}
    return subprocess.run([sys.executable, os.path.join(ROOT, 'runs.py'), *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=60)


def log_run(log_dir, config, val_losses, status='completed', started=None):
    """A run logged by the real TrainingLogger: progress lines and one step line per val loss."""
    lg = TrainingLogger(log_dir=str(log_dir), enabled=True).setup(config)
    lg.log('command: train.py config/train_shakespeare_char.py')
    for i, val in enumerate(val_losses):
        for it in range(i * 100, i * 100 + 100, 10):
            lg.log(f'iter {it}: loss {val + 1 - it / 1000:.4f}, time 64.12ms, mfu 12.34%')
        lg.log_step(i * 100, val + 0.05, val, lr=6e-4, mfu=12.3)
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
    running = log_run(logs, {'lr': 6}, [2.7, 2.8], status=None)  # still open while runs.py reads it
    try:
        result = runs_py(logs)
    finally:
        running.close()
    assert result.returncode == 0 and result.stderr == ''
    rows = table(result.stdout)
    logged = {done.path: ('completed', [3.0, 2.5, 2.6]), failed.path: ('failed', [3.1]),
              interrupted.path: ('interrupted', []), terminated.path: ('terminated', [2.9]),
              killed: ('running/killed', [2.95, 2.45]), running.path: ('running/killed', [2.7, 2.8])}
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


def test_plot_without_matplotlib_says_how_to_get_it_and_the_summary_still_works(tmp_path):
    blocker = tmp_path / 'no_matplotlib' / 'matplotlib'
    blocker.mkdir(parents=True)
    (blocker / '__init__.py').write_text("raise ImportError('No module named matplotlib')\n")
    env = {'PYTHONPATH': str(blocker.parent)}
    lg = log_run(tmp_path / 'logs', {}, [3.0, 2.0])
    plot = runs_py('plot', lg.path, '-o', tmp_path / 'curves.png', env=env)
    assert plot.returncode == 2 and plot.stdout == ''
    assert len(plot.stderr.splitlines()) == 1 and 'pip install matplotlib' in plot.stderr
    assert not os.path.exists(tmp_path / 'curves.png')
    summary = runs_py(tmp_path / 'logs', env=env)
    assert summary.returncode == 0 and summary.stderr == ''
    assert os.path.basename(lg.path) in summary.stdout
