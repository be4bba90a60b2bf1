"""
runs.py serve: every run in a browser page, live, straight from the plain logs.

    python runs.py serve [LOG_DIR_OR_FILE ...] [--port N] [--host H]

The page (runs_serve.js, drawn by hand on canvas: nothing comes from the network) shows the run
table and the curves; a server-sent event stream brings it what the logs gain. Each log is read
once, then only from the byte offset where the last read ended: the logs still being written are
looked at (one os.stat) every POLL seconds, the finished ones every POLL_ENDED, and a directory's
new logs are seen from its mtime. Most lines of a log are progress and step lines: they are read in
bulk, by one regex over each chunk (LogReader reads the header, the footer and the other messages),
and a run's progress losses are kept as arrays of numbers, not as messages, so a million-line log
costs tens of MB; the page gets each curve downsampled.

It is a server, so: it binds to 127.0.0.1 unless --host says otherwise, answers only requests whose
Host header names it (against DNS rebinding), names runs by ids from its own index (no request
reaches the file system), sends a strict Content-Security-Policy, and changes nothing.
Standard library only.
"""
import bisect
import codecs
import collections
import gc
import hashlib
import http.server
import itertools
import json
import math
import operator
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from array import array

import runs
import logger
from logger import BAR, RULE, ZONE, LogReader, format_value, progress_point
from runs_follow import ETA

POLL = 0.1            # seconds between looks at the logs with no footer yet: a line shows within this
POLL_ENDED = 2.0      # between looks at the finished ones (truncated, replaced), and at killed runs
CHUNK = 1 << 18       # bytes read at a time: a big log is never in memory whole
NOTES = 100           # messages kept before the first progress line (runs.note reads those)
BUCKETS = 800         # a progress curve is sent as the lowest and highest loss of this many stretches,
                      # and its moving average at this many points
STEP_POINTS = 1500    # evaluations sent of a run, at most
ALL_POINTS = 60000    # progress points sent on the first load, spread over the runs
LIVE_POINTS = 2000    # more new points than this for a run in one look: the page asks for its curve again
HISTORY = 512         # updates kept for a page whose stream reconnects
KEEPALIVE = 15        # seconds: a stream with nothing to say writes a comment, to notice a closed tab
# a progress line, `[ts] iter N: loss X, ...` (logger.progress_point), or a step line (logger._STEP):
# most lines of a log are these, and they are read in bulk. The groups: the line, its time, N and X
# of a progress line, and a step line's _STEP groups
BULK = re.compile(r'\n(\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] (?:iter (-?\d+): loss ([^,\n]*)[^\n]*|'
                  + logger._STEP.pattern + r'(?=\n)))')
# lines of numbers that logger.parse_value reads as floats, and nothing else
ALL_FLOATS = re.compile(r'(?:(?:{0})(?:\n(?:{0}))*)?'.format(logger._FLOAT.pattern), re.ASCII)
HERE = os.path.dirname(os.path.abspath(__file__))
LOOPBACK = ('127.0.0.1', 'localhost', '[::1]')


# ---------------------------------------------------------------------- one log, read as it grows

class Log:
    """One log file, read as runs.py follow reads it: from the offset where the last read ended. Its
    id (from the real path) is how the page names it."""

    def __init__(self, path):
        self.path = path
        self.id = hashlib.sha1(os.path.realpath(path).encode('utf-8', 'surrogateescape')).hexdigest()[:12]
        self.not_log = False
        self.reset()

    def reset(self):
        self.reader = LogReader(self.path)
        self.decode = codecs.getincrementaldecoder('utf-8')('replace').decode
        self.offset, self.inode = 0, None
        self.partial = ''  # a half-written last line: it waits for its newline
        # the progress lines, (iter, time, loss) as numbers: what a Message per line would cost 10x
        self.iters, self.times, self.losses = array('q'), array('d'), array('d')
        self.last_progress = ''  # the latest progress line's text, for its eta
        self.notes, self.notes_done, self.seen, self.steps_seen = 0, False, 0, 0

    @property
    def run(self):
        return self.reader.run

    def look(self):
        """Read what the log gained: 'new', 'reset' (it was truncated or replaced, and is read again
        from the start) or None."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # gone, or not readable for now: what was read stays shown
        replaced = self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset)
        if replaced:
            self.reset()
        self.inode = st.st_ino
        self.run.mtime = st.st_mtime  # Run.state reads it: a quiet log turns 'killed'
        if st.st_size == self.offset:
            return 'reset' if replaced else None
        try:
            with open(self.path, 'rb') as f:
                f.seek(self.offset)
                while chunk := f.read(CHUNK):
                    self.offset += len(chunk)
                    self.read(self.decode(chunk))
        except OSError:
            return None
        if self.run.started is None and self.offset > 4096:  # load_runs' rule
            runs.warn(f'{self.path}: not a training log (no "Training run started at" line); left out')
            self.not_log = True
        if self.run.ended and self.run.status is None:  # as read_log: a footer cut off after its time
            self.run.status = 'ended'
        return 'reset' if replaced else 'new'

    def read(self, text):
        """Read the complete lines of what the last read left and text: the header and the footer
        line by line, as LogReader reads them; the body's progress and step lines in bulk."""
        text = self.partial + text
        cut = text.rfind('\n') + 1
        self.partial, text = text[cut:], text[:cut]
        if '\r' in text:  # as LogReader: a log saved with Windows line endings
            text = text.replace('\r\n', '\n')
        while text and not self.reader.in_body():  # the header, up to the end of its config
            end = text.find(RULE + '\n')
            cut = len(text) if end < 0 else end + len(RULE) + 1
            self.feed(text[:cut])
            text = text[cut:]
        # the body ends at the footer (or at another header: a damaged log), read as the header is
        stop = min([at + 1 for at in (text.find('\n' + BAR), text.find('\nTraining run ')) if at >= 0]
                   + [0] * text.startswith((BAR, 'Training run ')) + [len(text)])
        body, rest = text[:stop], text[stop:]
        # a zone line sets the offset of the times after it: the progress lines between two are
        # read together, in the zone in force there
        starts = [0] + [body.rfind('\n', 0, at) + 1 for at in find_all(body, '] ' + ZONE)] + [len(body)]
        for start, end in zip(starts, starts[1:]):
            if end > start:
                self.bulk(body[start:end])
        if rest:
            self.feed(rest)

    def bulk(self, text):
        """Read complete lines of the body in which every line that starts `[ts] iter ` is a progress
        line and every one that starts `[ts] step ` a step line (else line by line). LogReader reads
        the other lines, and the first and last progress lines (for runs.note and Run.last_time), and
        notes the others' timestamps in their place (LogReader.saw); a progress line is never a
        Message, and the steps are made here, in the order logged."""
        parts = BULK.split('\n' + text)
        lines, stamps, rests = parts[1::9], parts[2::9], parts[0::9]
        progress = list(map(operator.is_not, parts[3::9], itertools.repeat(None)))
        n = sum(progress)
        try:
            others = ''.join(rests)
            if not lines or '] iter ' in others or '] step ' in others:
                raise ValueError  # none, or some of another shape
            iters = array('q', map(int, itertools.compress(parts[3::9], progress)))
            losses = array('d', map(float, itertools.compress(parts[4::9], progress)))
            steps = step_columns_of(*(list(itertools.compress(parts[i::9], map(operator.not_, progress)))
                                      for i in range(5, 9)))
        except (ValueError, OverflowError):  # a damaged number: as LogReader reads it, line by line
            return self.feed(text)
        kept = {progress.index(True), len(progress) - 1 - progress[::-1].index(True)} if n else set()
        for k in kept:  # LogReader reads them, after the text before them
            rests[k] += '\n' + lines[k]
        at = 0
        for k in itertools.compress(range(len(rests)), rests):  # the lines before rests[k], then it
            self.reader.saw(stamps[at:k])
            self.feed(rests[k][1:] + '\n' * (k < len(lines)), points=False)
            at = k + (k in kept)
        self.reader.saw(stamps[at:])
        firsts = dict.fromkeys(stamps)
        # the times as the reader read them, once per second; a line whose time is no time was skipped
        when = {s: t for s in firsts if (t := self.reader.time_of(s))}
        steps = map(logger.Step, *steps, map(when.get, itertools.compress(stamps, map(operator.not_, progress))))
        self.run.steps += [step for step in steps if step.time] if len(when) < len(firsts) else steps
        self.steps_seen = len(self.run.steps)  # their text is '' already
        if not n:
            return
        stamps = list(itertools.compress(stamps, progress))
        lines = list(itertools.compress(lines, progress))
        if len(when) < len(firsts) or not all(map(math.isfinite, losses)):  # as runs.curves: nan is no point
            keep = [i for i in range(n) if stamps[i] in when and math.isfinite(losses[i])]
            if not keep:
                return
            iters, losses = array('q', (iters[i] for i in keep)), array('d', (losses[i] for i in keep))
            stamps, last = [stamps[i] for i in keep], keep[-1]
        else:
            last = n - 1
        seconds = {s: t.timestamp() for s, t in when.items()}
        self.iters += iters
        self.times += array('d', map(seconds.__getitem__, stamps))
        self.losses += losses
        self.last_progress = lines[last][22:]  # after `[YYYY-MM-DD HH:MM:SS] `

    def feed(self, text, points=True):
        """Feed LogReader complete lines; points: whether its progress messages are points (False:
        they were read in bulk)."""
        self.reader.feed(text)
        self.take(points)

    def take(self, points=True):
        """Move the progress points out of the messages into the arrays, and drop the messages but
        the notes before the first progress line (where runs.note looks) and the last (last_time)."""
        for step in self.run.steps[self.steps_seen:]:
            step.text = ''  # the line as logged: nothing here shows it, and a long log has many
        self.steps_seen = len(self.run.steps)
        messages = self.run.messages
        when, stamp = None, 0.0
        for m in messages[self.seen:] if points else ():
            if m.text[:5] == 'iter ':
                point = progress_point(m)
                if point and math.isfinite(point[2]):  # as runs.curves: a nan loss is no point
                    if point[0] is not when:  # the reader shares one datetime among a second's lines
                        when, stamp = point[0], point[0].timestamp()
                    self.iters.append(point[1])
                    self.times.append(stamp)
                    self.losses.append(point[2])
                    self.last_progress = m.text
        if not self.notes_done:
            first = next((i for i in range(self.notes, len(messages)) if messages[i].text[:5] == 'iter '), None)
            self.notes = min(len(messages) if first is None else first + 1, NOTES)
            self.notes_done = first is not None or self.notes == NOTES
        del messages[self.notes:-1]
        self.seen = len(messages)

    def ended(self):
        return self.run.status is not None


# ---------------------------------------------------------------------- a run as the page sees it

class Row:
    """One row of runs.py's table (a runs.Chain) and the logs it is read from."""

    def __init__(self, chain, logs):
        self.chain = chain
        self.logs = [logs[run.path] for run in chain.attempts]
        self.id = self.logs[-1].id
        self.sent = [(len(log.iters), len(log.run.steps)) for log in self.logs]  # points the page has
        self.last_cells = None  # the cells the page has
        self.config = None      # the config as text, and how many keys it had then

    def progress(self):
        """(iters, times, losses) of the whole run: of each attempt, the points that runs.Chain.parts
        says are the run's (those before the iteration a later attempt resumed at)."""
        parts = self.chain.parts()
        if len(parts) == 1:
            log = self.logs[0]
            return log.iters, log.times, log.losses
        iters, times, losses = array('q'), array('d'), array('d')
        for log, (_, upto) in zip(self.logs, parts):
            keep = range(len(log.iters)) if upto is None else [i for i, it in enumerate(log.iters) if it < upto]
            iters.extend(log.iters[i] for i in keep)
            times.extend(log.times[i] for i in keep)
            losses.extend(log.losses[i] for i in keep)
        return iters, times, losses

    def cells(self, colour, keys):
        chain = self.chain
        cells = dict(zip(runs.TABLE, runs.table_row(chain)))
        last = chain.attempts[-1]
        state = cells['status']
        iters = [s.iter for s in chain.steps[-1:]] + list(self.logs[-1].iters[-1:])
        if self.config is None or self.config[1] != len(chain.config):  # fixed once the header is read
            self.config = runs.config_text(chain, sorted(chain.config)), len(chain.config)
        return {'id': self.id, 'name': cells['run'], 'colour': colour, 'started': cells['started'],
                'branch': '{} at iter {}'.format(*chain.branch_of) if chain.branch_of else '',
                't0': chain.started.timestamp(), 'duration': cells['duration'], 'status': state,
                'why': last.status if last.status not in (None, state) else '',
                'step': max(iters) if iters else None,
                'best_val': none_if_dash(cells['best val']),
                'bpb': none_if_dash(runs.loss_text(runs.best_bpb(chain))),
                'eta_at': self.eta_at() if state == 'running' else None,
                'config': self.config[0],
                'differs': {k: format_value(chain.config[k]) for k in keys if k in chain.config}}

    def eta_at(self):
        """When the run should end (seconds since the epoch): from its last progress line's own eta,
        else from its pace; None if neither is known."""
        log = self.logs[-1]
        if not log.iters:
            return None
        m = ETA.search(log.last_progress)
        if m:
            h, mi, s = map(int, m.groups()[2:])
            return log.times[-1] + h * 3600 + mi * 60 + s
        max_iters = self.chain.config.get('max_iters')
        it0, it1, t0, t1 = log.iters[0], log.iters[-1], log.times[0], log.times[-1]
        if not isinstance(max_iters, int) or it1 <= it0 or t1 <= t0:
            return None
        return t1 + (max_iters - it1) * (t1 - t0) / (it1 - it0)

    def series(self, smooth, buckets, step_points=STEP_POINTS, span=None):
        """The run's curves for the page: every evaluation (thinned past step_points), the progress
        losses as the lowest and highest of each of `buckets` stretches (the last point always
        kept), and their moving average, computed over every point before any is left out. span:
        (x, low, high), only the points with x ('it', or 't' for seconds since the start) in that
        range and one either side: a chart zoomed in gets the detail that was left out."""
        steps = self.chain.steps
        iters, times, losses = self.progress()
        t0 = self.chain.started.timestamp()  # times are sent as seconds since the run started
        start, stop = 0, len(losses)
        if span:
            x, low, high = span
            xs, shift = (iters, 0) if x == 'it' else (times, t0)
            start = max(bisect.bisect_left(xs, low + shift) - 1, 0)
            stop = min(bisect.bisect_right(xs, high + shift) + 1, len(xs))
            steps = [s for s in steps if low <= (s.iter if x == 'it' else s.time.timestamp() - t0) <= high]
        steps = [steps[i] for i in thinned(len(steps), step_points)]
        kept = [start + i for i in envelope(losses[start:stop], buckets)]
        average, state = ema(losses, smooth, buckets, start, stop)
        return {'id': self.id, 'n': len(losses), 'steps': step_columns(steps, t0),
                'progress': {'it': [iters[i] for i in kept], 't': [round(times[i] - t0) for i in kept],
                             'loss': [losses[i] for i in kept]},
                'smooth': {'it': [iters[i] for i, _ in average], 't': [round(times[i] - t0) for i, _ in average],
                           'y': [round_5(y) for _, y in average]},
                'ema': state, 'weight': smooth}

    def new_points(self):
        """What the logs gained since the page last got this row: {'steps', 'progress'}, or None
        if nothing; 'stale' if the page must ask for the whole curve again."""
        now = [(len(log.iters), len(log.run.steps)) for log in self.logs]
        if now == self.sent:
            return None
        before, self.sent = self.sent, now
        if before[:-1] != now[:-1] or now[-1][0] - before[-1][0] > LIVE_POINTS:
            return 'stale'  # an earlier attempt changed, or too much came at once
        log, (n, k) = self.logs[-1], before[-1]
        t0 = self.chain.started.timestamp()
        return {'steps': step_columns(log.run.steps[k:], t0),
                'progress': {'it': list(log.iters[n:]), 't': [round(t - t0) for t in log.times[n:]],
                             'loss': list(log.losses[n:])}}


def step_columns_of(iters, trains, vals, metrics):
    """The iters, train and val losses and metrics of step lines, from their _STEP groups, as
    logger.step_of reads each: where every metric is a float, as train.py logs them, their values
    are checked and converted all at once."""
    split = list(map(logger._METRIC.split, metrics))
    values = list(itertools.chain.from_iterable(map(operator.itemgetter(slice(2, None, 2)), split)))
    names = list(map(operator.itemgetter(slice(1, None, 2)), split))
    if not ALL_FLOATS.fullmatch('\n'.join(values)):
        dicts = [step.metrics for step in map(logger.step_of, iters, trains, vals, metrics)]
    elif names and names.count(names[0]) == len(names):  # the same metrics on every line: a few floats each
        floats = iter(map(float, values))
        dicts = list(map(dict, map(zip, itertools.repeat(names[0]), zip(*[floats] * len(names[0])))
                         if names[0] else itertools.repeat((), len(names))))
    else:
        floats = iter(map(float, values))  # each step's dict takes its share of them, in order
        dicts = [dict(zip(keys, itertools.islice(floats, len(keys)))) for keys in names]
    return (list(map(int, iters)), *(list(map(float if 'None' not in losses else logger._float, losses))
                                     for losses in (trains, vals)), dicts)


def find_all(text, part):
    """Where part is in text, each place."""
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + 1)


def none_if_dash(text):
    return None if text == '-' else float(text)


def round_5(y):
    return float(f'{y:.5g}')


def step_columns(steps, t0):
    def metric(name):
        return [v if isinstance(v, float) and math.isfinite(v) else None
                for v in (s.metrics.get(name) for s in steps)]
    return {'it': [s.iter for s in steps], 't': [round(s.time.timestamp() - t0) for s in steps],
            'val': [finite(s.val_loss) for s in steps], 'train': [finite(s.train_loss) for s in steps],
            'lr': metric('lr'), 'bpb': metric('val_bpb')}


def finite(value):
    return value if value is not None and math.isfinite(value) else None


def thinned(n, count):
    """Indices of at most about count of n points, evenly apart, the last kept."""
    if n <= count:
        return range(n)
    stride = math.ceil(n / count)
    return list(range(0, n, stride)) + ([n - 1] if (n - 1) % stride else [])


def envelope(ys, buckets):
    """Indices of the lowest and highest y of each of `buckets` stretches, in order, and of the
    last point: a noisy curve keeps its spread (runs_report.envelope, over an array)."""
    n = len(ys)
    if n <= 2 * buckets:
        return range(n)
    out = []
    for b in range(buckets):
        start, end = b * n // buckets, (b + 1) * n // buckets
        chunk = ys[start:end]
        out += sorted({start + chunk.index(min(chunk)), start + chunk.index(max(chunk))})
    if out[-1] != n - 1:
        out.append(n - 1)
    return out


def ema(ys, weight, count, start=0, stop=None):
    """runs.smoothed over an array, kept at about count points of ys[start:stop], the last among
    them: [(index, average)], and [average, bias] after the last point, from which the page goes on
    with new points. The average runs over every point from the first, wherever start is."""
    n, average, rest = len(ys) if stop is None else stop, 0.0, 1 - weight
    if not weight or start >= n:
        return [], None
    for y in ys[:start]:  # the bare loop: most of a first load's time was here
        average = weight * average + rest * y
    stride, out = max(1, math.ceil((n - start) / count)), []
    for end in range(start + stride, n + stride, stride):
        for y in ys[end - stride:min(end, n)]:
            average = weight * average + rest * y
        i = min(end, n) - 1
        out.append((i, average / (1 - weight ** (i + 1))))
    return out, [average, weight ** n]


# ---------------------------------------------------------------------- the index of every log

class Index:
    """Every log under the paths served, read as they grow, and the updates for the pages."""

    def __init__(self, paths):
        self.paths = paths
        self.dirs = {p: None for p in paths if os.path.isdir(p)}  # directory: its mtime when listed
        self.logs = {}       # path: Log
        self.found = set()   # their real paths
        self.rows = {}       # id: Row
        self.order = []      # the rows' ids, oldest first
        self.keys = []       # the config keys that differ between the runs
        self.shape = None    # what, when it changes, sends the pages a reload
        self.version = 0
        self.history = collections.deque(maxlen=HISTORY)  # (version, the update as JSON)
        self.changed = threading.Condition()
        self.last_ended_look = 0.0
        self.live = []
        self.ready = threading.Event()  # set once every log has been read: the pages wait for it

    def read(self):
        """Read every log there is now."""
        with self.changed:
            self.find()
            for log in self.logs.values():
                log.look()
            self.rebuild()
        self.ready.set()

    def find(self):
        """Add the logs that the paths name now; a directory is listed again only when its mtime moved."""
        found = []
        for path in self.paths:
            if path not in self.dirs:
                found.append(path)
                continue
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                continue
            if mtime != self.dirs[path]:
                self.dirs[path] = mtime
                try:
                    found += runs.log_files([path])
                except SystemExit:  # the directory went away between the stat and the listing
                    pass
        new = False
        for path in found:
            if path in self.logs:
                continue
            real = os.path.realpath(path)
            if real not in self.found:  # a log named twice (itself and its directory) is read once
                self.found.add(real)
                self.logs[path] = Log(path)
                new = True
        return new

    def rebuild(self):
        """Rows from the logs, as runs.py's table has them. True if they changed shape (a new run,
        a new attempt, other differing keys): then the pages load them again."""
        started = sorted((log.run for log in self.logs.values() if log.run.started and not log.not_log),
                         key=lambda r: (r.started.timestamp(), r.path))  # load_runs' order, in UTC
        chains = runs.join_resumed(started) if started else []
        rows = [Row(chain, self.logs) for chain in chains]
        for row in rows:
            old = self.rows.get(row.id)
            if old is not None and [l.id for l in old.logs] == [l.id for l in row.logs]:
                row.sent, row.last_cells, row.config = old.sent, old.last_cells, old.config
        self.rows = {row.id: row for row in rows}
        self.order = [row.id for row in rows]
        self.keys = runs.differing_keys(chains)
        self.colours = dict(zip(self.order, runs.colors(len(rows))))
        shape = ([(row.id, [l.id for l in row.logs]) for row in rows], self.keys)
        reshaped, self.shape = shape != self.shape, shape
        return reshaped

    def look(self, now):
        """One look at the logs; publishes what changed. The pages' requests wait meanwhile: what
        they get and what they have been sent must agree."""
        with self.changed:
            self._look(now)

    def _look(self, now):
        new = self.find()
        ended_look = now - self.last_ended_look >= POLL_ENDED
        if ended_look:
            self.last_ended_look = now
        if ended_look or new:  # the logs to look at every POLL: those still being written
            self.live = [log for log in self.logs.values() if not log.ended()]
        changed, reset = set(), False
        for log in list(self.logs.values()) if ended_look else self.live:
            if log.not_log:
                continue
            what = log.look()
            if what:
                changed.add(log.id)
                reset |= what == 'reset'
        if not (changed or new or ended_look):
            return
        reshaped = bool(changed or new) and self.rebuild() or reset  # else only the live rows' state
        update = {'rows': [], 'points': {}, 'stale': []}
        for rid in self.order:
            row = self.rows[rid]
            touched = any(log.id in changed for log in row.logs)
            if not (touched or (ended_look and not row.logs[-1].ended())):
                continue
            cells = row.cells(self.colours[rid], self.keys)
            if cells != row.last_cells:
                row.last_cells = cells
                update['rows'].append(cells)
            points = row.new_points()
            if points == 'stale':
                update['stale'].append(rid)
            elif points:
                update['points'][rid] = points
        if reshaped:
            update = {'reload': True}
        elif not (update['rows'] or update['points'] or update['stale']):
            return
        self.version += 1
        update['v'] = self.version
        self.history.append((self.version, json.dumps(update, allow_nan=False)))
        self.changed.notify_all()

    def watch(self):
        """Look at the logs every POLL seconds, for ever."""
        said = None
        while True:
            time.sleep(POLL)
            try:
                self.look(time.time())
            except Exception as e:  # one odd file must not end the watching; say each fault once
                if str(e) != said:
                    said = str(e)
                    runs.warn(f'serve: {type(e).__name__}: {e}')

    def snapshot(self, smooth):
        """Everything the page shows, for its first load and after a reload."""
        with self.changed:
            # many runs share ALL_POINTS: a chart 1000 pixels wide shows no more
            budget = min(BUCKETS, max(BUCKETS // 16, ALL_POINTS // max(len(self.order), 1) // 3))
            rows = [self.rows[rid] for rid in self.order]
            for row in rows:
                row.last_cells = row.cells(self.colours[row.id], self.keys)
                row.sent = [(len(log.iters), len(log.run.steps)) for log in row.logs]
            return {'v': self.version, 'title': ' '.join(self.paths), 'keys': self.keys,
                    'rows': [row.last_cells for row in rows],
                    'series': [row.series(smooth, budget, max(budget, 100)) for row in rows]}

    def series(self, rid, smooth, span=None):
        with self.changed:
            row = self.rows.get(rid)
            if row is None:
                return None
            if span:  # a zoomed chart's detail: what the page was sent of the whole run stays as it is
                return {'v': self.version, **row.series(smooth, BUCKETS, span=span)}
            row.sent = [(len(log.iters), len(log.run.steps)) for log in row.logs]
            return {'v': self.version, **row.series(smooth, BUCKETS)}

    def updates(self, since, timeout):
        """The updates after version `since` as SSE data, waiting up to timeout for one;
        (the text, the latest version)."""
        with self.changed:
            if self.version <= since:
                self.changed.wait(timeout)
            if self.version <= since:
                return '', since
            if not self.history or self.history[0][0] > since + 1:
                return f'data: {json.dumps({"reload": True, "v": self.version})}\n\n', self.version
            text = ''.join(f'data: {data}\n\n' for v, data in self.history if v > since)
            return text, self.version


# ---------------------------------------------------------------------- the server

PAGE = '''<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>runs.py serve</title><link rel="stylesheet" href="/serve.css"><script src="/serve.js" defer></script>
</head><body>
<header><h1>Training runs</h1><span id="where"></span><span id="live">connecting</span></header>
<div class="controls">
<label>filter <input id="filter" type="search" placeholder="regex on name and config" size="28"></label>
<label>x <select id="x"><option value="it">step</option><option value="t">relative time</option></select></label>
<label>y <select id="y"><option value="linear">linear</option><option value="log">log</option></select></label>
<label>smoothing <input id="smooth" type="range" min="0" max="0.99" step="0.01"><output id="smooth-out"></output></label>
<button id="clear" type="button">clear selection</button>
<span class="hint">drag on a chart to zoom, double-click to zoom out</span>
</div>
<div class="scroll"><table id="runs"><thead><tr></tr></thead><tbody></tbody></table></div>
<section id="compare" hidden><h2>Config that differs between the selected runs</h2>
<div class="scroll"><table><thead></thead><tbody></tbody></table></div></section>
<div id="charts"></div>
<div id="tip" hidden></div>
</body></html>
'''

CSS = '''
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1f2328; margin: 12px 16px; }
header { display: flex; gap: 14px; align-items: baseline; }
h1 { font-size: 19px; margin: 0; } h2 { font-size: 15px; margin: 14px 0 6px; }
#where, .hint { color: #57606a; } #live { margin-left: auto; color: #57606a; }
#live.on { color: #1a7f37; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin: 10px 0; }
input.bad { outline: 2px solid #cf222e; }
.scroll { overflow: auto; max-height: 42vh; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 9px; border-bottom: 1px solid #eaeef2; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; position: sticky; top: 0; cursor: pointer; user-select: none; }
th.asc::after { content: " \\25b2"; } th.desc::after { content: " \\25bc"; }
td.n { text-align: right; } .nobranch [data-key="branch"], .nobranch td.branch { display: none; } td.why { max-width: 22em; overflow: hidden; text-overflow: ellipsis; }
tr.sel { background: #ddf4ff; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.completed { color: #1a7f37; } .failed, .killed { color: #cf222e; }
.interrupted, .terminated { color: #9a6700; } .running { color: #0969da; }
#charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px; margin-top: 12px; }
.chart { position: relative; border: 1px solid #d0d7de; border-radius: 6px; padding: 4px; }
.chart h3 { font-size: 13px; font-weight: 600; margin: 2px 6px; }
.chart canvas { display: block; width: 100%; height: 260px; }
.chart canvas.over { position: absolute; left: 4px; bottom: 4px; width: calc(100% - 8px); cursor: crosshair; }
#tip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #8c959f; border-radius: 4px;
       padding: 4px 7px; font-size: 12px; white-space: pre; box-shadow: 0 2px 6px rgba(0,0,0,.15); }
'''

HEADERS = {'Content-Security-Policy': "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                                      "form-action 'none'",
           'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store'}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = 'runs.py-serve'
    index = None       # the Index, set by serve()
    allowed = ()       # the Host headers answered
    script = b''       # runs_serve.js

    def do_GET(self):
        if self.headers.get('Host', '').lower() not in self.allowed:  # DNS rebinding: a name not ours
            return self.reply(403, 'text/plain', b'forbidden: unknown Host header\n')
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == '/':
            return self.reply(200, 'text/html; charset=utf-8', PAGE.encode())
        if url.path == '/serve.js':
            return self.reply(200, 'text/javascript; charset=utf-8', self.script)
        if url.path == '/serve.css':
            return self.reply(200, 'text/css; charset=utf-8', CSS.encode())
        if url.path == '/favicon.ico':  # none: said without a 404 in the console
            return self.reply(204, 'text/plain', b'')
        self.index.ready.wait()  # the page itself is sent while the logs are being read
        smooth = smooth_of(query)
        if smooth is None:
            return self.reply(400, 'text/plain', b'smooth: a number in [0, 1)\n')
        if url.path == '/api/runs':
            return self.json(self.index.snapshot(smooth))
        if url.path == '/api/series':
            span = span_of(query)
            if span is False:
                return self.reply(400, 'text/plain', b'x: it or t, from and to: numbers\n')
            found = self.index.series(query.get('id', [''])[0], smooth, span)  # an id of the index, never a path
            return self.json(found) if found else self.reply(404, 'text/plain', b'no such run\n')
        if url.path == '/api/events':
            return self.events(query)
        self.reply(404, 'text/plain', b'not found\n')

    def reply(self, status, kind, body):
        self.send_response(status)
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(len(body)))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def json(self, value):
        self.reply(200, 'application/json', json.dumps(value, allow_nan=False, separators=(',', ':')).encode())

    def events(self, query):
        try:
            since = int(query.get('since', ['0'])[0])
        except ValueError:
            return self.reply(400, 'text/plain', b'since: a version number\n')
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(b': hello\n\n')
            self.wfile.flush()
            while True:
                text, since = self.index.updates(since, KEEPALIVE)
                self.wfile.write((text or ': keepalive\n\n').encode())
                self.wfile.flush()
        except OSError:  # the page closed the stream (a hidden tab, a closed one)
            pass

    def log_message(self, format, *args):  # a line per request would bury the URL
        pass


def span_of(query):
    """(x, from, to) of a zoomed chart's request, None if it names none, False if it is bad."""
    if 'from' not in query:
        return None
    try:
        x, low, high = query['x'][0], float(query['from'][0]), float(query['to'][0])
    except (KeyError, ValueError):
        return False
    return (x, low, high) if x in ('it', 't') and math.isfinite(low) and math.isfinite(high) else False


def smooth_of(query):
    try:
        weight = float(query.get('smooth', [runs.SMOOTH])[0])
    except ValueError:
        return None
    return weight if 0 <= weight < 1 else None


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # an open stream does not hold the exit

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # a page closed while answered is no error
            super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


def host_names(host, port):
    """The Host headers a browser sends for this server: the loopback names and --host."""
    names = set(LOOPBACK)
    if host:
        names.add(f'[{host}]' if ':' in host and not host.startswith('[') else host)
    return {n.lower() for name in names for n in (name, f'{name}:{port}')}


def serve(paths, host=None, port=8765):
    bind = host or '127.0.0.1'
    try:
        index = Handler.index = Index(paths)
        with open(os.path.join(HERE, 'runs_serve.js'), 'rb') as f:
            Handler.script = f.read()
        try:
            server = (Server6 if ':' in bind.strip('[]') else Server)((bind.strip('[]'), port), Handler)
        except OSError as e:
            runs.fail(f'cannot serve on {bind}:{port}: {e.strerror or e}')
        port = server.server_address[1]
        if host:
            runs.warn(f'--host {host}: whoever can reach it on port {port} can read these logs; '
                      'an SSH tunnel to 127.0.0.1 keeps them to you (see docs/runs.md)')
        Handler.allowed = host_names(host, port)
        # serving from now on, while the logs are read: the page loads meanwhile
        threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 1.0}, daemon=True).start()
        shown = f'[{bind}]' if ':' in bind and not bind.startswith('[') else bind
        print(f'serving {" ".join(paths)} at http://{shown}:{port}/ (Ctrl-C to stop)', flush=True)
        gc.disable()  # reading makes many objects and frees few: the collector's passes would be wasted
        index.read()
        gc.freeze()  # what was read stays: the collector's full passes need not walk it while idle
        gc.enable()
        n = len(index.order)
        print(f'{n} run{"s" * (n != 1)} read; watching for more', flush=True)
        index.watch()
    except KeyboardInterrupt:  # Ctrl-C is how a user stops it: not an error
        print('stopped', flush=True)
    return 0
