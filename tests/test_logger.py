"""TrainingLogger and read_log: the log format contract, crash safety, faults, read-back."""
import datetime
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from conftest import SEED_LOG, age  # noqa: E402
from logger import LogDirError, LogReader, TrainingLogger, read_log  # noqa: E402

BAR, RULE = '=' * 80, '-' * 40
TS = r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d'


def lines_of(path):
    with open(path, encoding='utf-8') as f:
        return f.read().split('\n')[:-1]


def run_python(code, env=None, **kw):
    """Run a snippet in a fresh interpreter that can import logger.py."""
    full_env = {**os.environ, 'PYTHONPATH': ROOT, **(env or {})}
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=60, **kw)


def only_log(log_dir):
    files = os.listdir(log_dir)
    assert len(files) == 1, files
    return os.path.join(log_dir, files[0])


# --------------------------------------------------------------------------- 1. format

def test_setup_creates_nested_log_dir_and_writes_the_specified_header(tmp_path):
    log_dir = tmp_path / 'a' / 'b' / 'logs'
    lg = TrainingLogger(log_dir=str(log_dir), enabled=True)
    lg.setup({'n_layer': 12, 'batch_size': 12, 'dataset': 'openwebtext', 'compile': True})
    name = os.path.basename(lg.path)
    assert re.fullmatch(r'log_run_\d{8}_\d{6}\.txt', name)
    assert os.path.dirname(lg.path) == str(log_dir)
    lines = lines_of(lg.path)
    assert lines[0] == BAR and lines[2] == BAR
    assert re.fullmatch(f'Training run started at {TS}', lines[1])
    started = datetime.datetime.strptime(lines[1][-19:], '%Y-%m-%d %H:%M:%S')
    assert name == started.strftime('log_run_%Y%m%d_%H%M%S.txt')
    assert lines[3:-1] == ['Configuration:', RULE, 'batch_size: 12', 'compile: True',
                           'dataset: openwebtext', 'n_layer: 12', RULE]
    assert re.fullmatch(rf'\[{TS}\] time zone: UTC[+-]\d\d:\d\d \(.+\)', lines[-1])  # the one line added after it
    lg.close()


def test_log_and_log_step_lines_follow_the_format_with_extra_metrics(tmp_path):
    with TrainingLogger(log_dir=str(tmp_path)) as lg:
        lg.setup({})
        lg.log('resumed from out/ckpt.pt')
        lg.log_step(2000, 3.21454, 3.18916)
        lg.log_step(4000, 2.98, 2.9, lr=6e-4, mfu=31.2, tokens=491520)
    body = lines_of(lg.path)[7:10]  # six header lines for an empty config, and the time zone line
    assert re.fullmatch(rf'\[{TS}\] resumed from out/ckpt\.pt', body[0])
    assert re.fullmatch(rf'\[{TS}\] step 2000: train loss 3\.2145, val loss 3\.1892', body[1])
    assert re.fullmatch(rf'\[{TS}\] step 4000: train loss 2\.9800, val loss 2\.9000, '
                        r'lr 0\.0006, mfu 31\.2, tokens 491520', body[2])


def test_close_writes_the_specified_footer_with_a_status_line(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({'a': 1})
    lg.close()
    tail = lines_of(lg.path)[-4:]
    assert tail[0] == BAR and tail[3] == BAR
    assert re.fullmatch(f'Training run ended at {TS}', tail[1])
    assert tail[2] == 'Status: completed'


def test_every_config_value_type_keeps_exactly_one_line(tmp_path):
    config = {'none': None, 'tup': (1, 'a'), 'lst': [1.5, None], 'uni': 'naïve — 日本',
              'empty': '', 'multi': 'line one\nline two\r\nthree', 'obj': object(),
              'flt': 6e-4, 'path': tmp_path, 'sep': '\u2028x\x0b'}
    lg = TrainingLogger(log_dir=str(tmp_path / 'logs')).setup(config)
    lg.close()
    lines = lines_of(lg.path)
    config_lines = lines[5:lines.index(RULE, 5)]
    assert [line.split(':')[0] for line in config_lines] == sorted(config)
    assert 'multi: ' + repr(config['multi']) in config_lines
    assert 'uni: naïve — 日本' in config_lines
    assert "empty: ''" in config_lines and 'none: None' in config_lines


# --------------------------------------------------------------------------- 2. final status

@pytest.mark.parametrize('exc, status', [
    (ValueError('bad batch\nsecond line'), 'failed: ValueError: bad batch\\nsecond line'),
    (KeyboardInterrupt(), 'interrupted'),
])
def test_context_manager_records_how_the_block_ended_and_reraises(tmp_path, exc, status):
    with pytest.raises(type(exc)):
        with TrainingLogger(log_dir=str(tmp_path)) as lg:
            lg.setup({})
            raise exc
    assert lines_of(lg.path)[-2] == f'Status: {status}'
    assert read_log(lg.path).status == status


def test_close_records_the_status_the_caller_passes(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({})
    lg.close(status='terminated (SIGTERM)')
    assert read_log(lg.path).status == 'terminated (SIGTERM)'


def test_close_twice_and_calls_after_close_change_nothing(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({})
    lg.close()
    before = open(lg.path, 'rb').read()
    lg.close(status='failed: again')
    lg.log('late')
    lg.log_step(1, 1.0, 1.0)
    lg.setup({'x': 1})
    assert open(lg.path, 'rb').read() == before
    assert os.listdir(tmp_path) == [os.path.basename(lg.path)]


@pytest.mark.parametrize('ending, status', [
    ('pass', 'completed'),
    ('raise RuntimeError("out of memory")', 'failed: RuntimeError: out of memory'),
    ('raise KeyboardInterrupt', 'interrupted'),
])
def test_a_logger_never_closed_writes_its_footer_at_interpreter_exit(tmp_path, ending, status):
    r = run_python(f'''
        from logger import TrainingLogger
        lg = TrainingLogger(log_dir={str(tmp_path)!r}).setup({{'a': 1}})
        lg.log_step(1, 2.0, 2.1)
        {ending}
    ''')
    assert (r.returncode == 0) == (status == 'completed'), r.stderr
    run = read_log(only_log(tmp_path))
    assert run.status == status and run.ended is not None and len(run.steps) == 1


# --------------------------------------------------------------------------- 3. crash safety

def test_each_line_is_readable_by_another_process_before_the_call_returns(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({'a': 1})
    lg.log('first')
    lg.log_step(10, 1.5, 1.6)
    r = subprocess.run([sys.executable, '-c', 'import sys; print(open(sys.argv[1]).read())', lg.path],
                       capture_output=True, text=True)
    assert '] first\n' in r.stdout and 'step 10: train loss 1.5000, val loss 1.6000' in r.stdout
    lg.close()


def test_header_step_lines_and_footer_are_fsynced_but_messages_are_not(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: (synced.append(open(lg.path).read()), real_fsync(fd)))
    lg = TrainingLogger(log_dir=str(tmp_path))
    lg.setup({'a': 1})
    lg._syncing.join()  # the header's fsync runs in a thread beside the run's start
    assert len(synced) == 1 and re.search(rf'{RULE}\n\[{TS}\] time zone: [^\n]*\n\Z', synced[0])
    lg.log('not synced')
    assert len(synced) == 1
    lg.log_step(1, 2.0, 2.0)
    assert len(synced) == 2 and synced[1].endswith('val loss 2.0000\n')
    lg.close()
    assert len(synced) == 3 and synced[2].endswith(BAR + '\n')


def test_sigkill_keeps_every_line_logged_before_it(tmp_path):
    child = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import sys, time
        from logger import TrainingLogger
        lg = TrainingLogger(log_dir={str(tmp_path)!r}).setup({{'a': 1}})
        for i in range(50):
            lg.log_step(i, 3.0 - i / 100, 3.1)
            lg.log(f'iter {{i}}')
        print('logged', flush=True)
        time.sleep(60)
    ''')], env={**os.environ, 'PYTHONPATH': ROOT}, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == 'logged'
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    run = read_log(only_log(tmp_path))
    assert run.status is None and run.ended is None
    assert [s.iter for s in run.steps] == list(range(50))
    assert [m.text for m in run.messages] == [f'iter {i}' for i in range(50)]


# --------------------------------------------------------------------------- 4. collisions

def _names_for_next_seconds(n):
    now = datetime.datetime.now()
    return [(now + datetime.timedelta(seconds=s)).strftime('log_run_%Y%m%d_%H%M%S.txt') for s in range(n)]


def test_loggers_set_up_within_one_second_get_separate_files(tmp_path):
    loggers = [TrainingLogger(log_dir=str(tmp_path)).setup({'run': i}) for i in range(6)]
    for i, lg in enumerate(loggers):
        lg.log_step(i, 1.0, 1.0)
        lg.close()
    assert len({lg.path for lg in loggers}) == 6
    assert [read_log(lg.path).config['run'] for lg in loggers] == list(range(6))
    assert [len(read_log(lg.path).steps) for lg in loggers] == [1] * 6


def test_parallel_processes_started_together_never_share_a_file(tmp_path):
    code = (f'from logger import TrainingLogger\n'
            f'import sys\n'
            f'lg = TrainingLogger(log_dir={str(tmp_path)!r}).setup({{"run": int(sys.argv[1])}})\n'
            f'lg.close()\n')
    procs = [subprocess.Popen([sys.executable, '-c', code, str(i)], env={**os.environ, 'PYTHONPATH': ROOT})
             for i in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    runs = [read_log(tmp_path / name) for name in os.listdir(tmp_path)]
    assert sorted(r.config['run'] for r in runs) == [0, 1, 2, 3]
    assert all(r.status == 'completed' for r in runs)


def test_an_existing_log_is_never_appended_to_or_overwritten(tmp_path):
    planted = _names_for_next_seconds(3)
    for name in planted:
        (tmp_path / name).write_text('precious\n')
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({'a': 1})
    lg.close()
    assert re.fullmatch(r'log_run_\d{8}_\d{6}_\d+\.txt', os.path.basename(lg.path))
    assert all((tmp_path / name).read_text() == 'precious\n' for name in planted)
    assert read_log(lg.path).config == {'a': 1}


def test_a_planted_symlink_is_never_followed(tmp_path):
    target = tmp_path / 'target.txt'
    target.write_text('do not touch\n')
    log_dir = tmp_path / 'logs'
    log_dir.mkdir()
    planted = _names_for_next_seconds(3)
    for name in planted:
        os.symlink(target, log_dir / name)
        os.symlink(tmp_path / 'dangling', log_dir / (name[:-4] + '_1.txt'))
    lg = TrainingLogger(log_dir=str(log_dir)).setup({'a': 1})
    lg.close()
    assert target.read_text() == 'do not touch\n'
    assert not (tmp_path / 'dangling').exists()
    assert not os.path.islink(lg.path) and read_log(lg.path).status == 'completed'
    assert all(os.path.islink(log_dir / name) for name in planted)


# --------------------------------------------------------------------------- 5. rank 0 only

def test_disabled_logger_creates_nothing_and_every_call_is_a_no_op(tmp_path):
    log_dir = tmp_path / 'logs'
    with TrainingLogger(log_dir=str(log_dir), enabled=False) as lg:
        lg.setup({'a': 1})
        lg.log('x')
        lg.log_step(1, 1.0, 1.0, lr=1.0)
    lg.close()
    assert lg.path is None and not log_dir.exists()


def test_nonzero_rank_is_disabled_by_default_and_an_explicit_argument_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '3')
    TrainingLogger(log_dir=str(tmp_path / 'default')).setup({'a': 1}).close()
    assert not (tmp_path / 'default').exists()
    lg = TrainingLogger(log_dir=str(tmp_path / 'forced'), enabled=True).setup({'a': 1})
    lg.close()
    assert read_log(lg.path).status == 'completed'
    monkeypatch.setenv('RANK', '0')
    TrainingLogger(log_dir=str(tmp_path / 'rank0')).setup({'a': 1}).close()
    assert len(os.listdir(tmp_path / 'rank0')) == 1


# --------------------------------------------------------------------------- 6. faults

def test_a_file_in_the_way_of_log_dir_is_a_clear_error_naming_it(tmp_path):
    blocker = tmp_path / 'logs'
    blocker.write_text('not a directory')
    for log_dir in (blocker, blocker / 'sub'):
        with pytest.raises(LogDirError, match=re.escape(repr(str(log_dir)))):
            TrainingLogger(log_dir=str(log_dir)).setup({'a': 1})
    assert blocker.read_text() == 'not a directory'


def test_an_invalid_log_dir_path_is_a_clear_error_naming_it(tmp_path):
    with pytest.raises(LogDirError, match='log_dir .*bad.*embedded null byte'):
        TrainingLogger(log_dir=str(tmp_path / 'bad\0name')).setup({'a': 1})


def test_an_unwritable_log_dir_is_a_clear_error_naming_it(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    # root ignores permissions, so where we are root the check runs as user nobody
    become_nobody = 'import os; os.setgid(65534); os.setuid(65534)\n' if os.geteuid() == 0 else ''
    r = run_python('from logger import TrainingLogger, LogDirError\n' + become_nobody + textwrap.dedent(f'''
        try:
            TrainingLogger(log_dir={str(locked / 'logs')!r}).setup({{'a': 1}})
        except LogDirError as e:
            print(e)
    '''), cwd='/')
    assert r.returncode == 0, r.stderr
    assert str(locked / 'logs') in r.stdout and 'Permission denied' in r.stdout
    assert os.listdir(locked) == []


def test_a_full_disk_warns_once_and_training_goes_on(tmp_path):
    r = run_python(f'''
        import resource
        from logger import TrainingLogger
        lg = TrainingLogger(log_dir={str(tmp_path)!r}).setup({{'a': 1}})
        size = len(open(lg.path).read())
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 2000, size + 2000))
        for i in range(500):
            lg.log_step(i, 2.0, 2.0)
            lg.log('a message ' * 5)
        lg.close()
        print('training finished')
    ''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'training finished'
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 1 and 'TrainingLogger' in warnings[0] and 'File too large' in warnings[0]
    run = read_log(only_log(tmp_path))
    assert run.config == {'a': 1} and 0 < len(run.steps) < 500


def test_eight_threads_logging_at_once_never_interleave_lines(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({'a': 1})
    per_thread = 400

    def work(t):
        for i in range(per_thread):
            lg.log(f'thread {t} line {i} ' + 'x' * (t * 50))
            if i % 50 == 0:
                lg.log_step(i, t, t, thread=t)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lg.close()
    run = read_log(lg.path)
    assert run.skipped == 0 and run.status == 'completed'
    assert len(run.messages) == 8 * per_thread and len(run.steps) == 8 * 8
    for m in run.messages:
        _, t, _, i, *_ = m.text.split(' ')
        assert m.text == f'thread {t} line {i} ' + 'x' * (int(t) * 50)


# --------------------------------------------------------------------------- 7. read back

def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


simple = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
config_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
    st.lists(simple, max_size=4), st.lists(simple, max_size=4).map(tuple))
keys = st.from_regex(r'[a-z_][a-z0-9_]{0,20}', fullmatch=True)
losses = st.floats(min_value=-1e6, max_value=1e6) | st.sampled_from([math.inf, math.nan])
metric_values = st.integers() | st.floats() | st.booleans()
steps = st.lists(st.tuples(st.integers(0, 10**9), losses, losses,
                           st.dictionaries(keys, metric_values, max_size=4)), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.dictionaries(keys, config_values, max_size=12), steps=steps)
def test_whatever_setup_and_log_step_wrote_reads_back_equal(tmp_path, config, steps):
    log_dir = tempfile.mkdtemp(dir=tmp_path)
    with TrainingLogger(log_dir=log_dir) as lg:
        lg.setup(config)
        for it, train, val, metrics in steps:
            lg.log_step(it, train, val, **metrics)
    run = read_log(lg.path)
    assert run.skipped == 0 and run.status == 'completed'
    assert run.config.keys() == config.keys()
    for k, v in config.items():
        got = run.config[k]
        if isinstance(v, (list, tuple)):
            assert type(got) is type(v) and len(got) == len(v) and all(map(_same, got, v)), (k, v, got)
        else:
            assert _same(got, v), (k, v, got)
    assert len(run.steps) == len(steps)
    for step, (it, train, val, metrics) in zip(run.steps, steps):
        assert step.iter == it
        assert _same(step.train_loss, float(f'{train:.4f}')) and _same(step.val_loss, float(f'{val:.4f}'))
        assert step.metrics.keys() == metrics.keys()
        assert all(_same(step.metrics[k], v) for k, v in metrics.items()), (metrics, step.metrics)
    assert run.started <= run.ended


def test_read_log_of_a_run_still_being_written_returns_what_is_there(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({'lr': 6e-4})
    lg.log_step(0, 4.2, 4.3, lr=6e-4)
    lg.log('iter 0: loss 4.2000')
    run = read_log(lg.path)
    assert run.status is None and run.ended is None and run.started is not None
    assert run.config == {'lr': 6e-4} and len(run.steps) == 1 and len(run.messages) == 1
    lg.close()


def test_read_log_never_raises_on_a_log_cut_off_at_any_byte(tmp_path):
    with TrainingLogger(log_dir=str(tmp_path / 'full')) as lg:
        lg.setup({'a': 1, 'b': 'text'})
        for i in range(3):
            lg.log_step(i, 2.5, 2.6, lr=0.001)
            lg.log(f'iter {i}: loss 2.5')
    data = open(lg.path, 'rb').read()
    cut = tmp_path / 'cut.txt'
    previous_steps = 0
    for n in range(len(data) + 1):
        cut.write_bytes(data[:n])
        run = read_log(cut)
        assert run.skipped == 0
        assert len(run.steps) >= previous_steps  # a longer prefix never loses a step
        previous_steps = len(run.steps)
        for s in run.steps:
            assert (s.train_loss, s.val_loss, s.metrics) == (2.5, 2.6, {'lr': 0.001})
    assert previous_steps == 3 and run.status == 'completed'


# --------------------------------------------------------------------------- 8. speed, 9. docs

def test_logger_benchmark_prints_each_case_and_the_ratios():
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'bench_logger.py'),
                        '--lines=200', '--synced_lines=5', '--rounds=1'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for case in ('write+flush', 'TrainingLogger.log', 'logging.FileHandler',
                 'write+flush+fsync', 'TrainingLogger.log_step'):
        assert re.search(rf'{re.escape(case)}\s+\d+\.\d+ us', r.stdout), case
    assert re.search(r'^summary: log_us=\S+ .* goals=(met|missed)$', r.stdout, re.M)


def test_logging_page_documents_the_format_statuses_kill_guarantee_and_read_back():
    section = open(os.path.join(ROOT, 'docs', 'logging.md'), encoding='utf-8').read()
    for needed in ('log_run_YYYYMMDD_HHMMSS.txt', 'Status: completed', 'interrupted', 'failed',
                   'terminated (SIGTERM)', 'SIGKILL', 'read_log'):
        assert needed in section, needed


# --------------------------------------------------------------------------- 10. what runs.py reads

def test_a_seed_format_footer_without_a_status_reads_as_ended(tmp_path):
    path = tmp_path / 'log_run_20240716_143052.txt'
    path.write_text(SEED_LOG)
    run = read_log(path)
    assert run.skipped == 0 and run.status == 'ended' and run.state() == 'ended'
    assert run.ended == datetime.datetime(2024, 7, 16, 16, 45, 30)
    assert run.config == {'batch_size': 12, 'block_size': 1024, 'compile': True, 'dataset': 'openwebtext'}
    assert [(s.iter, s.train_loss, s.val_loss) for s in run.steps] == [
        (2000, 3.2145, 3.1892), (4000, 2.9876, 2.9654), (6000, 2.7543, 2.7321)]
    assert run.steps[0].text == 'step 2000: train loss 3.2145, val loss 3.1892'
    path.write_text(SEED_LOG.rsplit(BAR, 1)[0])  # cut after the end time: still says it ended
    assert read_log(path).status == 'ended'


def test_a_metric_whose_value_is_unknown_is_left_out_of_the_step_line(tmp_path):
    with TrainingLogger(log_dir=str(tmp_path)) as lg:
        lg.setup({})
        lg.log_step(10, 2.5, 2.6, lr=6e-4, mfu=None, tflops=0.07)
    assert re.fullmatch(rf'\[{TS}\] step 10: train loss 2\.5000, val loss 2\.6000, lr 0\.0006, tflops 0\.07',
                        lines_of(lg.path)[7])
    assert read_log(lg.path).steps[0].metrics == {'lr': 6e-4, 'tflops': 0.07}


def test_a_metric_name_that_is_not_a_word_is_mapped_to_one_that_reads_back(tmp_path):
    with TrainingLogger(log_dir=str(tmp_path)) as lg:
        lg.setup({})
        lg.log_metrics(7, 2.5, None, {'lr-AdamW': 0.01, 'a_b': 1, 'a/b': 2, 'a-b': 3, '': 4, 'train_loss': 5})
        lg.log_step(8, None, 2.6, **{'val/bpb': 1.25})
    run = read_log(lg.path)
    assert run.skipped == 0 and run.messages == []
    assert [(s.iter, s.train_loss, s.val_loss, s.metrics) for s in run.steps] == [
        (7, 2.5, None, {'lr_AdamW': 0.01, 'a_b': 1, 'a_b_2': 2, 'a_b_3': 3, '_': 4, 'train_loss': 5}),
        (8, None, 2.6, {'val_bpb': 1.25})]
    assert any('] step 7: train loss 2.5000, val loss None, lr_AdamW 0.01, a_b 1, a_b_2 2, ' in line
               for line in lines_of(lg.path))


def test_a_message_given_with_a_step_line_is_the_line_after_it(tmp_path):
    with TrainingLogger(log_dir=str(tmp_path)) as lg:
        lg.setup({})
        lg.log_metrics(3, 2.5, None, {'lr': 0.01}, 'iter 3: 3/10, eta 0:00:07')
        lg.log_metrics(4, 2.4, None, {'lr': 0.02})
    lines = lines_of(lg.path)
    first = next(i for i, line in enumerate(lines) if '] step 3: ' in line)
    assert re.fullmatch(rf'\[{TS}\] iter 3: 3/10, eta 0:00:07', lines[first + 1])
    assert '] step 4: train loss 2.4000, val loss None, lr 0.02' in lines[first + 2]
    run = read_log(lg.path)
    assert [m.text for m in run.messages] == ['iter 3: 3/10, eta 0:00:07']
    assert [(s.iter, s.train_loss) for s in run.steps] == [(3, 2.5), (4, 2.4)]


def test_a_log_fed_in_pieces_reads_as_read_log_reads_it_whole(tmp_path):
    with TrainingLogger(log_dir=str(tmp_path)) as lg:
        lg.setup({'max_iters': 30, 'name': 'naïve'})
        for i in range(3):
            lg.log(f'iter {i}: loss {3 - i / 10:.4f}, time 64.12ms, {i}/30, eta 0:00:0{i}')
            lg.log_step(i, 3.0, 3.1, lr=0.001)
    data = open(lg.path, encoding='utf-8').read()
    whole = read_log(lg.path)
    for cut in range(0, len(data), 7):
        reader = LogReader(lg.path)
        for piece in (data[:cut], data[cut:cut + 50], data[cut + 50:]):
            reader.feed(piece)
        run = reader.run
        assert (run.config, run.steps, run.messages, run.status) == (whole.config, whole.steps,
                                                                      whole.messages, whole.status)


def test_a_log_without_footer_is_running_until_quiet_far_longer_than_its_gaps_then_killed(tmp_path):
    lg = TrainingLogger(log_dir=str(tmp_path)).setup({'a': 1})
    lg.log_step(0, 3.0, 3.0)
    assert read_log(lg.path).state() == 'running'
    age(lg.path, 290)
    assert read_log(lg.path).state() == 'running'  # quiet for less than the 5 minute floor
    age(lg.path, 310)
    assert read_log(lg.path).state() == 'killed'
    os.utime(lg.path)  # written to just now (its last line still old): running
    assert read_log(lg.path).state() == 'running'


def test_the_quiet_limit_grows_with_the_runs_own_gaps_between_lines(tmp_path):
    path = tmp_path / 'log_run_20260101_000000.txt'
    start = datetime.datetime(2026, 1, 1)
    lines = [f'[{start + datetime.timedelta(minutes=10 * i)}] iter {i}: loss 2.0' for i in range(7)]
    path.write_text('\n'.join([BAR, f'Training run started at {start}', BAR, 'Configuration:', RULE, RULE,
                               *lines, '']))
    run = read_log(path)
    assert run.gaps == 6 and run.longest_gap == 600.0
    assert run.quiet_limit() == 6000.0  # ten times its usual gap of 10 minutes
    last = (start + datetime.timedelta(minutes=60)).timestamp()
    run.mtime = last
    assert run.state(now=last + 5999) == 'running' and run.state(now=last + 6001) == 'killed'
    assert run.quiet_seconds(now=last + 10) == 10


def test_progress_reads_train_pys_progress_lines_and_skips_others(tmp_path):
    with TrainingLogger(log_dir=str(tmp_path)) as lg:
        lg.setup({})
        lg.log('iter 0: loss 4.2000, time 64.12ms, 0.07 TFLOP/s, 0/2000, eta 0:03:12')
        lg.log('iterating over the data')
        lg.log('iter 10: loss nan, time 64.12ms')
        lg.log('iter 20: loss 1.2.3, time 64.12ms')  # damaged: that point only is lost
        lg.log('iter 30: loss 3.9000, time 64.12ms')
    points = read_log(lg.path).progress()
    assert [it for _, it, _ in points] == [0, 10, 30]
    assert points[0][2] == 4.2 and math.isnan(points[1][2]) and points[2][2] == 3.9
    assert all(isinstance(t, datetime.datetime) for t, _, _ in points)
