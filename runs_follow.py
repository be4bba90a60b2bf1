"""
runs.py follow: one run's log as it is written, in a terminal (over SSH too) or down a pipe.

Step lines are printed as they arrive, and one status line is kept: the state, the iteration of
max_iters, the last loss, the best val loss, the time so far, the ETA and a sparkline of the
recent losses. In a terminal the status line is redrawn in place (carriage return, clear to the end of
the line); piped, every line is plain text, with a status line after new step lines and at the end.
The file is polled: only new bytes are read, and waiting costs a stat and a read every POLL seconds.
"""
import codecs
import os
import re
import shutil
import sys
import time

from logger import LogReader, format_duration, progress_point, stamp

POLL = 0.25             # seconds between looks at the file: a new line shows within this
SPARK_POINTS = 2000     # the sparkline covers the latest progress losses, at most this many
SPARK_WIDTH = 16
BLOCKS = '▁▂▃▄▅▆▇█'
ASCII_BLOCKS = '_.-:=+*#'  # where the terminal cannot show BLOCKS
CLEAR_TO_END = '\x1b[K'
# the end of train.py's progress line: "..., 1250/2000, eta 0:00:43"
ETA = re.compile(r', (\d+)/(\d+), eta (\d+):(\d\d):(\d\d)$')


def follow(path, once=False, out=None):
    """Show the log at path until its run ends (or now, with once). The exit status: 0 when the run
    completed (or, with once, is still running), 1 when it ended any other way, 2 if not a log."""
    out = out or sys.stdout
    tty = out.isatty()
    reader, watch = LogReader(path), Watch(BLOCKS if _can_show(out, BLOCKS) else ASCII_BLOCKS)
    decode = codecs.getincrementaldecoder('utf-8')('replace').decode
    shown, drawn = 0, None
    try:
        f = open(path, 'rb', buffering=0)
    except OSError as e:
        print(f'runs.py: error: {path}: {e.strerror or e}', file=sys.stderr)
        return 2
    try:
        with f:
            out.write(f'following {path}\n')
            while True:
                data = f.read()  # everything after what was read before
                run = reader.run
                if data:
                    reader.feed(decode(data))
                    watch.add(run)
                if run.started is None:
                    print(f'runs.py: error: {path}: not a training log (no "Training run started at" line)',
                          file=sys.stderr)
                    return 2
                run.mtime = os.fstat(f.fileno()).st_mtime
                state = run.state()
                line = watch.status(run, state)
                new = run.steps[shown:]
                shown = len(run.steps)
                ended = run.status is not None or state == 'killed'
                if tty:
                    if new and drawn:
                        out.write('\r' + CLEAR_TO_END)
                    out.writelines(f'[{stamp(s.time)}] {s.text}\n' for s in new)
                    if new or line != drawn:
                        width = shutil.get_terminal_size().columns - 1  # a full line would wrap
                        out.write('\r' + line[:width] + CLEAR_TO_END)
                        drawn = line
                else:
                    out.writelines(f'[{stamp(s.time)}] {s.text}\n' for s in new)
                    if new or once or ended:
                        out.write(line + '\n')
                out.flush()
                if once or ended:
                    return 0 if state == 'completed' or not ended else 1
                time.sleep(POLL)
    finally:
        if tty and drawn:
            out.write('\n')
            out.flush()
        if reader.run.started and reader.run.skipped:
            n = reader.run.skipped
            print(f'runs.py: warning: {path}: skipped {n} damaged line{"s" * (n > 1)}', file=sys.stderr)


def _can_show(out, text):
    try:
        text.encode(out.encoding or 'ascii')
        return True
    except (UnicodeEncodeError, LookupError):
        return False


class Watch:
    """What the status line needs from the progress lines, kept as they arrive; the messages
    themselves are dropped once read, so a week-long log costs no more memory than an hour's."""

    def __init__(self, blocks):
        self.blocks = blocks  # the sparkline's characters, from low to high
        self.first = None     # (time, iter, loss) of the first progress line
        self.recent = []      # the latest progress points, for the sparkline
        self.last_text = ''   # the latest progress line
        self.spark = ''

    def add(self, run):
        for message in run.messages:
            point = progress_point(message)
            if point:
                self.first = self.first or point
                self.recent.append(point)
                self.last_text = message.text
        del self.recent[:-SPARK_POINTS]
        del run.messages[:-1]  # the last one stays: Run.last_time needs it
        self.spark = sparkline([p[2] for p in self.recent], self.blocks)

    def status(self, run, state):
        now = time.time()
        parts = [state if state != 'running' or run.quiet_seconds(now) < 60
                 else f'running (quiet for {format_duration(run.quiet_seconds(now))})']
        max_iters = run.config.get('max_iters')
        iters = [p[1] for p in self.recent[-1:]] + [s.iter for s in run.steps[-1:]]
        if iters:
            it = max(iters)
            known = isinstance(max_iters, int) and max_iters > 0
            parts.append(f'iter {it}/{max_iters} {100 * it // max_iters}%' if known else f'iter {it}')
        if self.recent:
            parts.append(f'loss {self.recent[-1][2]:.4f}')
        vals = [s.val_loss for s in run.steps if s.val_loss is not None and s.val_loss == s.val_loss]
        if vals:
            parts.append(f'best val {min(vals):.4f}')
        end = run.ended.timestamp() if run.ended else now
        parts.append(f'elapsed {format_duration(end - run.started.timestamp())}')
        eta = self.eta(now, max_iters) if state == 'running' else None
        if eta is not None:
            parts.append(f'eta {format_duration(eta)}')
        if self.spark:  # last: where a narrow terminal cuts the line
            parts.append(self.spark)
        return ' | '.join(parts)

    def eta(self, now, max_iters):
        """Seconds to go: from the last progress line's own eta where it has one, else from the pace."""
        if not self.recent:
            return None
        t, it, _ = self.recent[-1]
        m = ETA.search(self.last_text)
        if m:
            h, mi, s = map(int, m.groups()[2:])
            return max(h * 3600 + mi * 60 + s - (now - t.timestamp()), 0)
        t0, it0, _ = self.first
        if not isinstance(max_iters, int) or it <= it0 or t <= t0:
            return None
        return max((max_iters - it) * (t - t0).total_seconds() / (it - it0) - (now - t.timestamp()), 0)


def sparkline(values, blocks):
    """values, averaged into at most SPARK_WIDTH buckets, as block characters from low to high.
    The scale leaves out the first tenth, as the plot does: the start's loss would flatten the rest."""
    size = max(1, -(-len(values) // SPARK_WIDTH))
    means = [sum(values[i:i + size]) / len(values[i:i + size]) for i in range(0, len(values), size)]
    means = [m for m in means if m == m and abs(m) != float('inf')]
    if not means:
        return ''
    lo, hi = min(means), max(means[len(means) // 10:])
    top = len(blocks) - 1
    return ''.join(blocks[min(round((m - lo) / (hi - lo) * top), top) if hi > lo else top // 2] for m in means)
