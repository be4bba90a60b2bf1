"""
A permanent, human-readable record of a training run, in one plain text file.

    logger = TrainingLogger(log_dir='logs')
    logger.setup(config)                        # header with the whole config
    logger.log('resumed from out/ckpt.pt')      # [ts] message
    logger.log_step(2000, 3.21, 3.19, lr=6e-4)  # [ts] step 2000: train loss ..., val loss ..., lr 0.0006
    logger.close()                              # footer with how the run ended

Standard library only, so any script can import it. The format is a contract that
people grep and parse (see docs/logging.md); read_log() at the bottom reads it back.
Writing is best-effort in the way the stdlib's logging is: a failing disk costs log lines,
never the training run.
"""

import ast
import atexit
import datetime
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

BAR = '=' * 80
RULE = '-' * 40
TIME_FORMAT = '%Y-%m-%d %H:%M:%S'


class LogDirError(OSError):
    """The log directory cannot hold a log file; raised by setup() before training starts."""


class TrainingLogger:
    def __init__(self, log_dir='logs', enabled=None):
        # Decided once, from the rank: under torchrun only RANK 0 writes unless told otherwise.
        if enabled is None:
            enabled = os.environ.get('RANK', '0').strip() in ('', '0')
        self.enabled = bool(enabled)
        self.log_dir = log_dir
        self.path = None          # the log file, once setup() has created it
        self._fd = None
        self._closed = False
        self._lock = threading.Lock()
        self._warned = False
        self._stamp_second = None
        self._stamp = ''
        self._offset = None       # the UTC offset (seconds) the log last stated
        self._syncing = None      # the thread that fsyncs the header

    # ----------------------------------------------------------------- public API

    def setup(self, config):
        """Create log_dir and a new log file, and write the header. Raises LogDirError."""
        if not self.enabled or self._fd is not None or self._closed:
            return self
        now = time.time()
        started = datetime.datetime.fromtimestamp(now)
        self._fd, self.path = _create_log_file(self.log_dir, started)
        lines = [BAR, f'Training run started at {started.strftime(TIME_FORMAT)}', BAR,
                 'Configuration:', RULE]
        for key in sorted(config, key=str):
            lines.append(f'{_one_line(str(key))}: {format_value(config[key])}')
        lines.append(RULE)
        # the timestamps are local time: the offset, once here and again if it changes (daylight
        # saving), makes them one moment for a reader in any time zone
        self._offset = time.localtime(now).tm_gmtoff
        lines.append(f'[{started.strftime(TIME_FORMAT)}] {zone_line(time.localtime(now))}')
        self._write('\n'.join(lines) + '\n', sync=False)
        # the header is in the file for every reader once written; its fsync, against a crash of
        # the machine, takes tens of milliseconds on some disks: it runs beside the run's start
        self._syncing = threading.Thread(target=self._sync, args=(self._fd,), daemon=True)
        self._syncing.start()
        atexit.register(self._close_at_exit)
        return self

    def log(self, message):
        """Write `[YYYY-MM-DD HH:MM:SS] message`, flushed before returning."""
        if self._fd is None:
            return
        try:
            line = f'[{self._timestamp()}] {_one_line(str(message))}\n'
        except Exception as e:  # a message whose str() raises must not stop training
            return self._warn(e)
        self._write(line, sync=False)

    def log_step(self, iter_num, train_loss, val_loss, **metrics):
        """Write an evaluation's step line, extra metrics appended as `, name value`; fsynced.
        A metric whose value is None (unknown, like mfu on a CPU) is left out."""
        self.log_metrics(iter_num, train_loss, val_loss, metrics)

    def log_metrics(self, iter_num, train_loss, val_loss, metrics, message=None):
        """log_step with the extra metrics as a dict, for other people's loops: a name that is not
        a word (`train/loss`, `lr-AdamW`) is written as metric_names() maps it. A loss that is None
        (unknown: a line with the train loss only) is written `None`, and read back as None. A line
        with no val loss is no evaluation: like a progress line it is written, not fsynced (an fsync
        costs milliseconds, and a loop may log every step). A message is logged after the line, in
        the same write: a loop that logs every step pays for one system call."""
        if self._fd is None:
            return
        try:
            stamp = self._timestamp()
            parts = [f'[{stamp}] step {iter_num}: train loss {_loss(train_loss)}, val loss {_loss(val_loss)}']
            if not all(map(_WORD.fullmatch, map(str, metrics))):
                metrics = dict(zip(metric_names(metrics), metrics.values()))
            for name, value in metrics.items():
                if value is not None:
                    parts.append(f'{name} {format_metric(value)}')
            line = ', '.join(parts) + '\n'
            if message is not None:
                line += f'[{stamp}] {_one_line(str(message))}\n'
        except Exception as e:
            return self._warn(e)
        self._write(line, sync=val_loss is not None)

    def close(self, status='completed'):
        """Write the footer with how the run ended. Later calls do nothing."""
        with self._lock:
            if self._fd is None:
                self._closed = True
                return
            fd, self._fd, self._closed = self._fd, None, True
        atexit.unregister(self._close_at_exit)
        self._syncing.join()  # before the file is closed under it
        ended = self._timestamp(fd)  # which states a changed UTC offset before it
        footer = f'{BAR}\nTraining run ended at {ended}\nStatus: {_one_line(str(status))}\n{BAR}\n'
        self._write(footer, sync=True, fd=fd)
        try:
            os.close(fd)
        except OSError as e:
            self._warn(e)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(exit_status(exc))
        return False  # never swallow the exception

    # ----------------------------------------------------------------- internals

    def _timestamp(self, fd=None):
        # strftime costs as much as the write itself; the text only changes once a second
        now = int(time.time())
        if now != self._stamp_second:
            local = time.localtime(now)
            self._stamp_second, self._stamp = now, time.strftime(TIME_FORMAT, local)
            if local.tm_gmtoff != self._offset:  # the clock fell back or sprang forward
                self._offset = local.tm_gmtoff
                self._write(f'[{self._stamp}] {zone_line(local)}\n', sync=False, fd=fd)
        return self._stamp

    def _write(self, text, sync, fd=None):
        data = text.encode('utf-8', 'backslashreplace')
        with self._lock:
            fd = self._fd if fd is None else fd
            if fd is None:
                return
            try:
                # os.write is unbuffered: the line is in the file, for any reader, when it returns
                written = os.write(fd, data)
                while written < len(data):
                    data = data[written:]
                    written = os.write(fd, data)
                if sync:
                    os.fsync(fd)
            except OSError as e:
                self._warn(e)

    def _sync(self, fd):
        try:
            os.fsync(fd)
        except OSError as e:
            self._warn(e)

    def _warn(self, error):
        # one warning per logger: a full disk must not bury the console in repeats
        if not self._warned:
            self._warned = True
            try:
                print(f'TrainingLogger: could not log to {self.path}: {error} '
                      '(training goes on; some log lines may be missing)', file=sys.stderr)
            except Exception:
                pass

    def _close_at_exit(self):
        # the interpreter is exiting without close(): say how, from the uncaught exception if any
        self.close(exit_status(getattr(sys, 'last_value', None)))


def code_version(folder):
    """The git commit of the checkout that folder is in, plus ' dirty' if tracked files changed;
    None outside git. One `git status` (a few ms); --no-optional-locks keeps it off the index lock."""
    try:
        git = subprocess.run(['git', '--no-optional-locks', 'status', '--porcelain=v2', '--branch',
                              '--untracked-files=no'], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = git.stdout.splitlines()
    commit = next((line[13:] for line in lines if line.startswith('# branch.oid ')), '(initial)')
    if git.returncode or commit == '(initial)':
        return None
    return commit + (' dirty' if any(not line.startswith('#') for line in lines) else '')


ZONE = 'time zone: UTC'  # the line that states the offset: `time zone: UTC+02:00 (CEST)`


def zone_line(local):
    """The message that states the UTC offset of the local time in `local` (a time.struct_time)."""
    offset = local.tm_gmtoff
    sign = '-' if offset < 0 else '+'
    return f'{ZONE}{sign}{abs(offset) // 3600:02}:{abs(offset) // 60 % 60:02} ({local.tm_zone})'


_WORD = re.compile(r'\w+')  # a metric name, as read_log reads it back
_NOT_WORD = re.compile(r'\W')


def metric_names(names):
    """The names a step line gives metrics: a word as it is; in another, each character that is
    not a letter, digit or _ becomes _ (`train/loss` -> `train_loss`, `lr-AdamW` -> `lr_AdamW`),
    and a name that this makes twice on one line gets _2, _3, ... appended."""
    names = [str(name) for name in names]
    taken = {name for name in names if _WORD.fullmatch(name)}
    out = []
    for name in names:
        if not _WORD.fullmatch(name):
            base = _NOT_WORD.sub('_', name) or '_'
            name, n = base, 1
            while name in taken:
                n += 1
                name = f'{base}_{n}'
            taken.add(name)
        out.append(name)
    return out


def exit_status(exc):
    """The footer status for a run that ended with exception `exc` (None: it completed)."""
    if exc is None or (isinstance(exc, SystemExit) and exc.code in (None, 0)):
        return 'completed'
    if isinstance(exc, KeyboardInterrupt):
        return 'interrupted'
    return f'failed: {type(exc).__name__}: {exc}'


def _create_log_file(log_dir, started):
    """Exclusively create log_run_YYYYMMDD_HHMMSS[_N].txt in log_dir; never reuse a name."""
    if os.path.exists(log_dir) and not os.path.isdir(log_dir):
        raise LogDirError(f'log_dir {log_dir!r} is a file, not a directory')
    try:
        os.makedirs(log_dir, exist_ok=True)
    except (OSError, ValueError) as e:
        raise LogDirError(f'log_dir {log_dir!r} cannot be created: {_reason(e)}') from e
    stem = os.path.join(log_dir, started.strftime('log_run_%Y%m%d_%H%M%S'))
    # O_EXCL also refuses a symlink planted at the name, dangling or not
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_CLOEXEC', 0)
    for n in range(10000):
        path = f'{stem}.txt' if n == 0 else f'{stem}_{n}.txt'
        try:
            return os.open(path, flags, 0o644), path
        except FileExistsError:
            continue
        except OSError as e:
            raise LogDirError(f'cannot create a log file in log_dir {log_dir!r}: {_reason(e)}') from e
    raise LogDirError(f'log_dir {log_dir!r} already holds 10000 logs for {started}')


def _reason(error):
    return getattr(error, 'strerror', None) or str(error)


# ---------------------------------------------------------------------- values
# A config value is written so that one line holds it and read_log() types it back:
# non-strings as their repr; strings bare, as people expect to grep them (`dataset: openwebtext`),
# unless bare text would read back as something else ('True', '3', '', 'a\nb'): then quoted.

_LINE_BREAK = re.compile(r'[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]')


def _one_line(text):
    if text.isprintable():  # fast path: nothing to escape
        return text
    return _LINE_BREAK.sub(lambda m: repr(m.group())[1:-1], text)


def format_value(value):
    if value is None or type(value) in (bool, int):  # their repr reads back as themselves
        return repr(value)
    if not isinstance(value, str):
        for text in (repr(value), str(value)):
            parsed = parse_value(text)
            if text.isprintable() and not isinstance(parsed, str) and _equal(parsed, value):
                return text
        value = str(value)  # other objects (dtypes, paths) are kept as their text
    if value and value.isprintable() and value == value.strip() and parse_value(value) == value:
        return value
    return repr(value)


def _equal(a, b):
    try:
        return bool(a == b) or (a != a and b != b)  # nan reads back as nan
    except Exception:
        return False


class _NanInf(ast.NodeTransformer):
    # repr() writes float('nan') and float('inf') as bare names, which literal_eval refuses
    def visit_Name(self, node):
        return ast.Constant(float(node.id)) if node.id in ('nan', 'inf') else node


_INT = re.compile(r'-?(0|[1-9]\d*)', re.ASCII)
_FLOAT = re.compile(r'-?\d+\.\d+(e[-+]\d+)?|-?\d+e[-+]\d+', re.ASCII)


_LITERAL_NAMES = {'True', 'False', 'None', 'nan', 'inf'}  # the names that read back as values


def parse_value(text):
    try:
        # plain numbers are most values and metrics: skip the parser, which costs 10x more
        if _INT.fullmatch(text):
            return int(text)  # raises past 4300 digits; then the value stays text, as literal_eval would
        if _FLOAT.fullmatch(text):
            return float(text)
        if text.isidentifier() and text not in _LITERAL_NAMES:  # `adamw`, `cuda`: a name is text
            return text
        return ast.literal_eval(_NanInf().visit(ast.parse(text, mode='eval')))
    except Exception:  # not a Python literal: it is a bare string
        return text


def format_metric(value):
    if type(value) is float:  # most metrics: skip the checks below
        return repr(value)
    if isinstance(value, (bool, str)) or value is None:
        return format_value(value)
    if isinstance(value, int):
        return str(value)
    try:
        return repr(float(value))  # numpy and torch scalars too
    except (TypeError, ValueError):
        return format_value(value)


def _loss(value):
    if value is None:  # the val loss of a line with the train loss only: skip format_value's parse
        return 'None'
    try:
        return f'{value:.4f}'
    except (TypeError, ValueError):
        return format_metric(value)


# ---------------------------------------------------------------------- reading back

@dataclass
class Step:
    iter: int
    train_loss: float
    val_loss: float
    metrics: dict = field(default_factory=dict)
    time: datetime.datetime = None
    text: str = ''                # the line as logged, after its timestamp
    line: int = 0                 # its place among the log's timestamped lines: the order logged


@dataclass
class Message:
    time: datetime.datetime
    text: str
    line: int = 0


# A log with no footer is "running" until it has been quiet (no new line, no write to the file) for
# longer than the largest of these; then the run was killed: SIGKILL, the OOM killer, a lost node.
QUIET_FLOOR = 300.0   # seconds: compiling a model or a first evaluation can take minutes
QUIET_USUAL = 10      # times the run's usual gap between two lines
QUIET_LONGEST = 2     # times the longest gap it has had so far (a slow evaluation, a checkpoint)


@dataclass
class Run:
    path: str
    started: datetime.datetime = None
    ended: datetime.datetime = None
    status: str = None            # the Status line; 'ended' for a footer without one; None: no footer
    config: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    skipped: int = 0              # damaged lines that could not be read
    mtime: float = None           # the file's modification time (seconds since the epoch) when read
    gaps: int = 0                 # how often the timestamp moved on from one line to the next
    longest_gap: float = 0.0      # the longest of those moves, in seconds

    @property
    def last_time(self):
        """The latest time the log knows of: its end, or its last line for a run with no footer."""
        times = [self.ended] + [x.time for x in self.steps[-1:] + self.messages[-1:]]
        return max((t for t in times if t), default=self.started)

    def state(self, now=None):
        """The first word of the status (completed, failed, interrupted, terminated, ended); with no
        footer, 'running', or 'killed' once the log has been quiet for longer than quiet_limit()."""
        if self.status is not None:
            return (self.status.split() or ['?'])[0].rstrip(':')  # 'failed: ValueError: x' -> 'failed'
        return 'killed' if self.quiet_seconds(now) > self.quiet_limit() else 'running'

    def quiet_seconds(self, now=None):
        """Seconds since the log last grew: since its last line's timestamp or the file's mtime,
        whichever is later (a copied file has a new mtime; a touched one an old last line)."""
        last = self.last_time.timestamp() if self.last_time else 0.0
        return (time.time() if now is None else now) - max(last, self.mtime or 0.0)

    def quiet_limit(self):
        """Seconds of quiet after which a log with no footer counts as killed."""
        usual = (self.last_time - self.started).total_seconds() / self.gaps if self.gaps else 0.0
        return max(QUIET_FLOOR, QUIET_USUAL * usual, QUIET_LONGEST * self.longest_gap)

    def progress(self):
        """(time, iter, loss) of train.py's progress messages, `iter N: loss X, ...`."""
        return [p for p in map(progress_point, self.messages) if p]


def progress_point(message):
    """(time, iter, loss) of train.py's progress message, logged every log_interval:
    "iter 100: loss 2.3456, time 64.12ms, mfu 12.34%, 100/2000, eta 0:02:03"; None for another."""
    if message.text[:5] != 'iter ':
        return None
    # most messages of a long log are these: string methods, at a third of a regex's cost
    it, sep, rest = message.text[5:].partition(': loss ')
    try:
        return (message.time, int(it), float(rest.partition(',')[0])) if sep else None
    except ValueError:
        return None  # a damaged number costs that point only


def format_duration(seconds):
    """H:MM:SS, as the progress lines' eta and runs.py's durations are written."""
    seconds = max(int(seconds), 0)
    return f'{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}'


_ENTRY = re.compile(r'\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] (.*)')
_STEP = re.compile(r'step (-?\d+): train loss (\S+), val loss ([^,\s]+)((?:, \w+ .*)?)')
_METRIC = re.compile(r', (\w+) ')


def read_log(path):
    """Read a log back into a Run. Never raises on content: damaged lines are counted, skipped.
    Times are as logged; where the log states its UTC offset they carry it (aware datetimes), so that
    durations and ages are right in any time zone and across a change of offset. A log that does not
    state it (the seed's) has naive times, which Python takes as the reader's local time."""
    with open(path, encoding='utf-8', errors='replace', newline='\n') as f:
        text = f.read()
        mtime = os.fstat(f.fileno()).st_mtime
    reader = LogReader(path)
    reader.feed(text)
    run = reader.run
    run.mtime = mtime
    if run.ended and run.status is None:  # a footer cut off after its time still says it ended
        run.status = 'ended'
    return run


class LogReader:
    """read_log's reader, fed a log's text piece by piece as it is written (runs.py follow)."""

    def __init__(self, path):
        self.run = Run(path=str(path))
        self._section = 'start'
        self._times = {}          # many lines share a second: parse each timestamp once
        self._previous = None     # the latest time read so far
        self._partial = ''
        self._zone = None         # the UTC offset the log last stated, as a datetime.timezone
        self._lines = 0           # timestamped lines read

    def feed(self, text):
        """Read the complete lines in text, after what the last call left unfinished."""
        text = self._partial + text
        if '\r' in text:  # a log saved with Windows line endings reads as it was written
            text = text.replace('\r\n', '\n')
        if self._section == 'start' and text[:1] == '\ufeff':  # and one saved with a byte order mark
            text = text[1:]
        lines = text.split('\n')
        self._partial = lines.pop()  # text after the last newline is a line still being written
        run, section, read_entry = self.run, self._section, self._read_entry
        for line in lines:
            try:
                if section == 'body' and line[:1] == '[':  # most of a log: straight to it
                    run.skipped += not read_entry(line)
                else:
                    section = self._read_line(section, line)
            except (ValueError, SyntaxError, OverflowError):
                run.skipped += 1
        self._section = section

    def in_body(self):
        """Between the header's config and the footer: where every `[ts] ...` line is a step or a message."""
        return self._section == 'body'

    def time_of(self, stamp):
        """The time of a `YYYY-MM-DD HH:MM:SS` text read since the last zone line, in that zone; None if
        none such was read (runs_serve reads the progress lines' times from here)."""
        return self._times.get(stamp)

    def saw(self, stamps):
        """Note lines of these `YYYY-MM-DD HH:MM:SS` timestamps, in the order logged, read elsewhere
        (runs_serve reads most lines in bulk): each new time, for time_of and Run.quiet_limit's gaps,
        as if each line had been read here; a line whose time is no time is skipped."""
        for stamp in dict.fromkeys(stamps):
            if stamp not in self._times:
                try:
                    when = self._times[stamp] = datetime.datetime.fromisoformat(stamp).replace(tzinfo=self._zone)
                except ValueError:
                    self.run.skipped += stamps.count(stamp)
                    continue
                self._moved_to(when)

    def _read_line(self, section, line):
        run = self.run
        if line == BAR:
            if section == 'footer' and run.status is None:
                run.status = 'ended'  # the seed's footer has no Status: the run ended, how is unknown
            return section
        if line.startswith('Training run started at '):
            run.started = self._previous = _time(line[24:], self._zone)
            return 'header'
        if line.startswith('Training run ended at '):
            run.ended = _time(line[22:], self._zone)
            return 'footer'
        if section == 'footer' and line.startswith('Status: '):
            run.status = line[8:]
            return section
        if section == 'header' and line == 'Configuration:':
            return 'rule'
        if line == RULE and section in ('rule', 'config'):
            return 'config' if section == 'rule' else 'body'
        if section == 'config':
            key, sep, value = line.partition(': ')
            if not sep:
                raise ValueError(line)
            run.config[key] = parse_value(value)
            return section
        if not self._read_entry(line):
            if line:
                run.skipped += 1
            return 'body' if run.started else 'start'
        return 'body'

    def _read_entry(self, line):
        """A `[timestamp] ...` line: a step or a message. False if it is neither."""
        m = _ENTRY.fullmatch(line)
        if not m:
            return False
        stamp, rest = m.groups()
        if rest.startswith(ZONE) and self._stated_zone(rest):
            return True
        when = self._times.get(stamp)
        if when is None:
            when = self._times[stamp] = datetime.datetime.fromisoformat(stamp).replace(tzinfo=self._zone)
            self._moved_to(when)
        s = _STEP.fullmatch(rest) if rest.startswith('step ') else None
        if s:
            self.run.steps.append(step_of(*s.groups(), when, rest, self._lines))
        else:
            self.run.messages.append(Message(when, rest, self._lines))
        self._lines += 1
        return True

    def _stated_zone(self, text):
        """Read the logger's `time zone: UTC+HH:MM (name)` line: the times from here on are in it."""
        m = _ZONE.match(text)
        if not m:
            return False
        sign, hours, minutes = m.groups()
        self._zone = datetime.timezone((-1 if sign == '-' else 1) * datetime.timedelta(hours=int(hours),
                                                                                       minutes=int(minutes)))
        self._times.clear()
        # what was read before it (the header's start) is in the same zone; make it aware too, so
        # that a log's times can all be compared with each other
        run, zone = self.run, self._zone
        if run.started and run.started.tzinfo is None:
            run.started = run.started.replace(tzinfo=zone)
        if self._previous and self._previous.tzinfo is None:
            self._previous = self._previous.replace(tzinfo=zone)
        for x in run.steps + run.messages:
            if x.time.tzinfo is None:
                x.time = x.time.replace(tzinfo=zone)
        return True

    def _moved_to(self, when):
        # the gaps between lines, for Run.quiet_limit(); a clock set back is no gap
        if self._previous is not None and when > self._previous:
            gap = (when - self._previous).total_seconds()
            self.run.gaps += 1
            self.run.longest_gap = max(self.run.longest_gap, gap)
        self._previous = max(when, self._previous or when)


def step_of(it, train, val, metrics, when=None, text='', line=0):
    """A Step from the groups of a step line's _STEP match (runs_serve reads them in bulk with it)."""
    names_values = _METRIC.split(metrics)[1:]
    metrics = {k: parse_value(v) for k, v in zip(names_values[::2], names_values[1::2])}
    return Step(int(it), _float(train), _float(val), metrics, when, text, line)


def _float(text):
    return None if text == 'None' else float(text)


_TIME_TEXT = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', re.ASCII)
_ZONE = re.compile(r'time zone: UTC([+-])(\d\d):(\d\d)\b', re.ASCII)


def _time(text, zone=None):
    # strptime was most of read_log's time; the shape is fixed, so check it and let C parse it
    if not _TIME_TEXT.fullmatch(text):
        raise ValueError(f'not a timestamp: {text!r}')
    return datetime.datetime.fromisoformat(text).replace(tzinfo=zone)


def stamp(when):
    """A time read_log gave, written as the log wrote it."""
    return when.strftime(TIME_FORMAT)
