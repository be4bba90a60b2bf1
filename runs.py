"""
Compare training runs from their logs (the files logger.py writes), and watch one live.

    python runs.py [LOG_DIR_OR_FILE ...]                 # one row per run, oldest first; default logs/
    python runs.py --sort best_val logs/                 # lowest best val loss first
    python runs.py plot LOG [LOG ...] -o curves.png      # loss against iteration; -o x.svg for an SVG
    python runs.py report [LOG_DIR_OR_FILE ...] -o report.html   # one self-contained HTML page
    python runs.py export [LOG_DIR_OR_FILE ...] --format csv     # every point, long form, for pandas
    python runs.py follow [LOG_OR_DIR]                   # a run, live; default the newest log in logs/
    python runs.py serve [LOG_DIR_OR_FILE ...] [--port N]        # every run, live, in a browser page

A directory stands for the log_run_*.txt files directly inside it. A run resumed from another
run's checkpoint is one run with it: one row, one curve; two resumed from one checkpoint are two
branches, each sharing the first part. Durations and killed-or-running are in UTC, from the offset
each log states. Exit status: 0 done, 1 no logs found,
2 something to fix (a missing path, bad arguments, plot without matplotlib); follow: 0 when the
run completed, 1 when it ended any other way.
"""
import argparse
import csv
import functools
import json
import math
import os
import re
import shutil
import sys

from logger import format_duration, format_value, parse_value, progress_point, read_log, stamp

DEFAULT_IMAGE = 'curves.png'
DEFAULT_REPORT = 'report.html'
MAX_CELL = 40     # a wider cell is cut, so that one odd value cannot push the table off screen
MAX_LEGEND = 20   # more labels than this would cover the curves
SMOOTH = 0.8      # default weight of the moving average drawn over the progress losses
LEAVE_OUT = 0.1   # the y range leaves out this first part of each run, where the loss is far higher


def fail(message):
    print(f'runs.py: error: {message}', file=sys.stderr)
    sys.exit(2)


def warn(message):
    print(f'runs.py: warning: {message}', file=sys.stderr)


def clip(text, width):
    return text if len(text) <= width else text[:max(width - 3, 0)] + '...'


# ---------------------------------------------------------------------- finding and reading logs

def log_files(paths):
    """The files the paths name, each once: a file itself, a directory its log_run_*.txt."""
    files = {}
    for path in paths:
        if not os.path.exists(path):
            fail(f'{path}: no such file or directory')
        found = [path]
        if os.path.isdir(path):
            try:
                found = [os.path.join(path, name) for name in sorted(os.listdir(path))
                         if name.startswith('log_run_') and name.endswith('.txt')]
            except OSError as e:
                fail(f'{path}: {e.strerror or e}')
        for f in found:
            files.setdefault(os.path.realpath(f), f)
    return list(files.values())


def load_runs(files):
    """read_log each file. A file that is not a log is left out, with one warning."""
    runs = []
    for path in files:
        try:
            # look before reading it all: `runs.py out/*` must not load a checkpoint into memory
            with open(path, 'rb') as f:
                run = read_log(path) if b'Training run started at ' in f.read(4096) else None
        except OSError as e:
            warn(f'{path}: cannot read it ({e.strerror or e}); left out')
            continue
        if run is None or run.started is None:
            warn(f'{path}: not a training log (no "Training run started at" line); left out')
            continue
        if run.skipped:
            warn(f'{path}: skipped {run.skipped} damaged line{"s" * (run.skipped > 1)}')
        runs.append(run)
    return sorted(runs, key=lambda r: (r.started.timestamp(), r.path))  # in UTC, wherever each was logged


def load_chains(paths):
    """The runs in paths, resumed ones joined; exit status 1 if there are none."""
    runs = load_runs(log_files(paths))
    if not runs:
        print(f'runs.py: no training logs in {" ".join(paths)}', file=sys.stderr)
        sys.exit(1)
    return join_resumed(runs)


def note(run, prefix):
    """The rest of the first message that starts with prefix, or None. Only the messages before
    the first progress line are searched: train.py says where a run came from before it trains."""
    for m in run.messages:
        if m.text.startswith(prefix):
            return m.text[len(prefix):]
        if m.text[:5] == 'iter ':
            return None
    return None


# ---------------------------------------------------------------------- resumed runs

# train.py's message in a resumed run's log, naming the log that its checkpoint came from
CONTINUES = re.compile(r'(\S+) at iter (-?\d+)')


class Chain:
    """One run as runs.py shows it: a log, then the logs of the runs resumed from its checkpoints,
    one after another. Where two logs continue the same one (a sweep resumed from one checkpoint),
    each is a run of its own that shares the logs before it: a branch."""

    def __init__(self, attempts, resumed_at, fork, names):
        self.attempts = attempts      # Runs, oldest first
        self.resumed_at = resumed_at  # for each attempt, the iteration it resumed at, or None
        self.fork = fork              # the first attempt that is this branch's own (0: all are)
        self.name = names[attempts[fork].path]  # the names are unique, and so is each branch's first log
        # (the log it branched from, the iteration) for a branch
        self.branch_of = (names[attempts[fork - 1].path], resumed_at[fork]) if fork else None
        first, last = attempts[0], attempts[-1]
        self.path, self.started = first.path, first.started
        self.config = {**last.config, **resolved(last)}  # the latest: max_iters may have grown
        if 'init_from' in first.config:  # how the run began, not 'resume'
            self.config['init_from'] = first.config['init_from']

    def state(self):
        return self.attempts[-1].state()

    def seconds(self):
        """Time spent running: each attempt's, not the pauses between them."""
        return sum((a.last_time - a.started).total_seconds() for a in self.attempts)

    def parts(self):
        """(run, upto) of each attempt: its points before iteration upto (None: all of them) are the
        run's; a later attempt resumed at upto, and its points replace the earlier ones from there."""
        out, upto = [], None
        for run, at in zip(reversed(self.attempts), reversed(self.resumed_at)):
            out.append((run, upto))
            if at is not None:
                upto = at if upto is None else min(upto, at)
        return out[::-1]

    @functools.cached_property
    def steps(self):
        return [s for run, upto in self.parts() for s in run.steps if upto is None or s.iter < upto]

    @functools.cached_property
    def progress(self):
        """(time, iter, loss) of the progress lines."""
        return [p for run, upto in self.parts() for p in run.progress() if upto is None or p[1] < upto]


def resolved(run):
    """The config values that train.py resolved at start-up ('auto' device, dtype and compile), from
    its device line: `device: cuda, dtype: bfloat16, compile: True, world_size: 1, backend: none`."""
    text = note(run, 'device: ')
    if text is None:
        return {}
    pairs = [item.partition(': ') for item in ('device: ' + text).split(', ')]
    return {k: parse_value(v) for k, sep, v in pairs if sep and k in run.config}


def unique_names(paths):
    """A name for each log: its file name, or where logs share one, the file name with as many of its
    folders as it takes to tell them apart (`lr_1e-3/logs/log_run_20240716_143052.txt`)."""
    groups = {}
    for path in paths:
        groups.setdefault(os.path.basename(path), []).append(os.path.abspath(path).split(os.sep))
    names = {}
    for path in paths:
        parts = os.path.abspath(path).split(os.sep)
        n = 1
        while n < len(parts) and sum(other[-n:] == parts[-n:] for other in groups[parts[-1]]) > 1:
            n += 1
        names[path] = '/'.join(parts[-n:])
    return names


def join_resumed(runs):
    """The runs to show (runs sorted by start): each resumed log follows the log it names, and each
    log that no other continues ends a run, so that a log two others continue starts two runs. Logs
    are matched by file name, so a run survives a move; one in the same directory is preferred."""
    by_name = {}
    for run in runs:
        by_name.setdefault(os.path.basename(run.path), []).append(run)
    parent = {}  # id(run): (the run it continues, the iteration)
    for run in runs:
        link = CONTINUES.fullmatch(note(run, 'continues ') or '')
        if not link:
            continue
        found = [r for r in by_name.get(link.group(1), [])
                 if r is not run and r.started.timestamp() <= run.started.timestamp()]
        here = [r for r in found if os.path.dirname(r.path) == os.path.dirname(run.path)]
        if found:
            parent[id(run)] = ((here or found)[-1], int(link.group(2)))
        else:
            parent[id(run)] = (None, int(link.group(2)))  # its first part is not here: shown alone
    for run in runs:  # damaged links could loop: such a log starts a run of its own
        seen, up = {id(run)}, parent.get(id(run), (None,))[0]
        while up is not None and id(up) not in seen:
            seen.add(id(up))
            up = parent.get(id(up), (None,))[0]
        if up is not None:
            parent[id(run)] = (None, parent[id(run)][1])
    children = {}
    for run in runs:
        children.setdefault(id(parent.get(id(run), (None,))[0]), []).append(run)
    names = unique_names([run.path for run in runs])

    chains, stack = [], [([run], [parent.get(id(run), (None, None))[1]], 0) for run in children.get(id(None), [])][::-1]
    while stack:  # depth first, so that branches follow each other; fork: where the path branched last
        path, ats, fork = stack.pop()
        below = children.get(id(path[-1]), [])
        if not below:
            chains.append(Chain(path, ats, fork, names))
        for child in reversed(below):
            stack.append((path + [child], ats + [parent[id(child)][1]], len(path) if len(below) > 1 else fork))
    return chains


# ---------------------------------------------------------------------- what a run shows

def val_losses(run):
    return [s.val_loss for s in run.steps if s.val_loss is not None]


def best_val(run):
    return min((x for x in val_losses(run) if not math.isnan(x)), default=None)  # nan: diverged


def loss_text(value):
    return '-' if value is None else f'{value:.4f}'


def differing_keys(runs):
    """Config keys whose values are not the same in every run; a key some runs lack differs."""
    keys = sorted({key for run in runs for key in run.config})
    return [k for k in keys if len({repr(r.config[k]) if k in r.config else None for r in runs}) > 1]


def config_text(run, keys):
    return ' '.join(f'{k}={format_value(run.config[k])}' for k in keys if k in run.config)


TABLE = ['run', 'started', 'duration', 'status', 'steps', 'last val', 'best val']
BPB = 'best bpb'  # a column of its own where some run logged val_bpb (bits per byte: any tokenizer)


def best_bpb(run):
    return min((s.metrics['val_bpb'] for s in run.steps
                if isinstance(s.metrics.get('val_bpb'), float) and math.isfinite(s.metrics['val_bpb'])), default=None)


BRANCH = 'branch of'  # a column of its own where some run is a branch: the log it forked from, and where


def table(chains):
    """The summary's header and a row of cells per run."""
    bpb = any(best_bpb(chain) is not None for chain in chains)
    branches = any(chain.branch_of for chain in chains)
    header = TABLE[:1] + [BRANCH] * branches + TABLE[1:] + [BPB] * bpb
    rows = []
    for chain in chains:
        row = table_row(chain) + [loss_text(best_bpb(chain))] * bpb
        if branches:
            row.insert(1, '{} at iter {}'.format(*chain.branch_of) if chain.branch_of else '-')
        rows.append(row)
    return header, rows


def table_row(chain):
    """The summary's cells for a run, as TABLE names them."""
    vals = val_losses(chain)
    resumed = len(chain.attempts) - 1 - chain.fork
    return [chain.name + (f' +{resumed} resumed' if resumed else ''), chain.started.strftime('%m-%d %H:%M'),
            format_duration(chain.seconds()), chain.state(), str(len(chain.steps)),
            loss_text(vals[-1] if vals else None), loss_text(best_val(chain))]


# what a log says about where its run came from: (label, the start of train.py's message)
ORIGIN = [('command', 'command: '), ('versions', 'python '), ('code', 'code: '), ('data', 'data: '),
          ('device', 'device: '), ('continues', 'continues ')]


def origin(run, resumed):
    """(label, text) pairs: the log, its duration and end, and where the run came from. A log with
    no footer that a later attempt resumed from was killed, however recent it is."""
    state = 'killed' if resumed and run.status is None else run.state()
    items = [('log', run.path), ('started', stamp(run.started)),
             ('duration', format_duration((run.last_time - run.started).total_seconds())),
             ('status', run.status if run.status not in (None, 'ended') else state)]
    for label, prefix in ORIGIN:
        text = note(run, prefix)
        if text is not None:
            items.append((label, prefix + text if label == 'versions' else text))
    return items


def finite(points):
    return [(x, y) for x, y in points if y is not None and math.isfinite(y)]


def smoothed(points, weight):
    """An exponential moving average, debiased so that it starts at the first point, not at 0."""
    out, average, bias = [], 0.0, 1.0
    for x, y in points:
        average = weight * average + (1 - weight) * y
        bias *= weight
        out.append((x, average / (1 - bias)))
    return out


def curves(chain, smooth):
    """(iter, loss) lists of what the plot and the report draw of a run."""
    isfinite = math.isfinite
    progress = [(it, loss) for _, it, loss in chain.progress if isfinite(loss)]
    return {'val': finite((s.iter, s.val_loss) for s in chain.steps),
            'train': finite((s.iter, s.train_loss) for s in chain.steps),
            'progress': progress, 'smoothed': smoothed(progress, smooth) if smooth else []}


def y_limits(all_curves):
    """The loss range to draw: that of every run after its first LEAVE_OUT of iterations, where
    runs differ. Step 0's loss (4.2 for characters) would squash that part to the bottom."""
    high, low = [], []
    for c in all_curves:
        xs = [x for name in ('val', 'train', 'progress') for x, _ in c[name]]
        if not xs:
            continue
        start = min(xs) + LEAVE_OUT * (max(xs) - min(xs))
        # the raw progress losses are noise around the average: they may leave the top
        later = [y for name in ('val', 'train', 'smoothed' if c['smoothed'] else 'progress')
                 for x, y in c[name] if x >= start]
        high += later
        low += later + [y for x, y in c['progress'] if x >= start]
    if not high:
        return None
    lo, hi = min(low), max(high)
    margin = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.1
    return lo - margin, hi + margin


def write_atomically(out, write):
    """write(f) into a temp file beside out, then one os.replace: whole or not at all."""
    tmp = os.path.join(os.path.dirname(out), f'.{os.path.basename(out)}.{os.getpid()}.tmp')
    try:
        # O_EXCL: never write over a file that happens to have the temp name; 0o666: umask applies
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, 'wb') as f:
                write(f)
            os.replace(tmp, out)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    except OSError as e:
        fail(f'cannot write {out}: {e.strerror or e}')


# ---------------------------------------------------------------------- the commands

def summary(chains, sort):
    if sort == 'best_val':  # a stable sort: equal losses keep their start order
        chains.sort(key=lambda r: (best_val(r) is None, best_val(r) or 0.0))
    keys = differing_keys(chains)
    header, rows = table(chains)
    header += ['config that differs'] * bool(keys)
    rows = [row + [config_text(chain, keys)] * bool(keys) for chain, row in zip(chains, rows)]
    right = {'duration', 'steps', 'last val', 'best val', BPB}
    # each column as wide as its content; the last gets what the terminal has left
    cells = [header] + rows
    widths = [min(max(len(row[i]) for row in cells), MAX_CELL) for i in range(len(header))]
    room = shutil.get_terminal_size((120, 24)).columns - sum(widths[:-1]) - 2 * len(widths[:-1])
    widths[-1] = min(max(len(row[-1]) for row in cells), max(room, 10))
    for row in cells:
        print('  '.join(clip(c, w).rjust(w) if h in right else clip(c, w).ljust(w)
                        for c, w, h in zip(row, widths, header)).rstrip())


def points(chain):
    """(time, iter, metric, value) of every number the run logged, in the order it logged them (not
    by time: a clock set back must not reorder them)."""
    rows = []
    for run, upto in chain.parts():
        lines = []
        for s in run.steps:
            if upto is None or s.iter < upto:
                values = {'train_loss': s.train_loss, 'val_loss': s.val_loss, **s.metrics}
                lines += [(s.line, s.time, s.iter, name, value) for name, value in values.items()
                          if isinstance(value, (int, float)) and not isinstance(value, bool)]
        for m in run.messages:
            p = progress_point(m)
            if p and (upto is None or p[1] < upto):
                lines.append((m.line, m.time, p[1], 'loss', p[2]))
        lines.sort(key=lambda row: row[0])  # stable: a step line's metrics keep their order
        rows += [(stamp(t), it, metric, value) for _, t, it, metric, value in lines]
    return rows


def export(chains, form):
    if form == 'csv':
        out = csv.writer(sys.stdout, lineterminator='\n')
        out.writerow(['run', 'time', 'iter', 'metric', 'value'])
        for chain in chains:
            out.writerows((chain.name, t, it, metric, value) for t, it, metric, value in points(chain))
        return
    runs = [{'run': chain.name, 'logs': [a.path for a in chain.attempts], 'status': chain.state(),
             'status_line': chain.attempts[-1].status, 'started': stamp(chain.started),
             'branch_of': dict(zip(['run', 'iter'], chain.branch_of)) if chain.branch_of else None,
             'config': chain.config,
             'points': [{'time': t, 'iter': it, 'metric': metric, 'value': value}
                        for t, it, metric, value in points(chain)]} for chain in chains]
    json.dump(json_safe(runs), sys.stdout, indent=1, allow_nan=False, default=str)
    print()


def json_safe(value):
    """nan and inf are not JSON: null stands for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


TAB10 = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
         '#bcbd22', '#17becf']
VIRIDIS = [(0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x91, 0x8c), (0x5e, 0xc9, 0x62),
           (0xfd, 0xe7, 0x25)]


def colors(n):
    """matplotlib's tab10 for up to 10 runs, else evenly along viridis: the plot's and the report's."""
    if n <= 10:
        return TAB10[:n]
    out = []
    for i in range(n):
        at = i / (n - 1) * (len(VIRIDIS) - 1)  # between two of viridis' colours: mix them
        k = min(int(at), len(VIRIDIS) - 2)
        out.append('#' + ''.join(f'{round(p + (q - p) * (at - k)):02x}' for p, q in zip(VIRIDIS[k], VIRIDIS[k + 1])))
    return out


def plot(chains, out, smooth):
    import matplotlib.pyplot as plt  # main() has made sure that it is there
    keys, n = differing_keys(chains), len(chains)
    drawn = [curves(chain, smooth) for chain in chains]
    fig, ax = plt.subplots(figsize=(10, 6))
    for chain, c, color in zip(chains, drawn, colors(n)):
        if n <= MAX_LEGEND:  # an empty line: the run's legend entry, whatever the run logged
            ax.plot([], [], color=color, label=clip(f'{chain.name} {config_text(chain, keys)}', 80))
        if c['progress']:
            ax.plot(*zip(*c['progress']), color=color, linewidth=0.8, alpha=0.25 if smooth else 0.35)
        if c['smoothed']:
            ax.plot(*zip(*c['smoothed']), color=color, linewidth=1.2, alpha=0.8)
        if c['train']:
            ax.plot(*zip(*c['train']), color=color, linestyle='--', marker='.')
        if c['val']:
            ax.plot(*zip(*c['val']), color=color, marker='o')
    limits = y_limits(drawn)
    if limits:
        ax.set_ylim(*limits)
    ax.set(xlabel='iteration', ylabel='loss')
    ax.set_title('val loss: solid; train loss at evals: dashed; at each iter line: faint'
                 + (f', and its moving average ({smooth})' if smooth else '')
                 + f'\nloss range: each run after its first {LEAVE_OUT:.0%} of iterations', fontsize=9)
    ax.grid(alpha=0.3)
    if n <= MAX_LEGEND:
        ax.legend(fontsize=8)
    else:
        warn(f'{n} runs are too many to label; the legend is left out (plot {MAX_LEGEND} or fewer)')
    fig.tight_layout()
    write_atomically(out, lambda f: fig.savefig(f, format=os.path.splitext(out)[1][1:].lower()))


def report(chains, out, smooth, title):
    import runs_report
    header, rows = table(chains)
    drawn = [curves(chain, smooth) for chain in chains]
    origins = [[origin(run, run is not chain.attempts[-1]) for run in chain.attempts] for chain in chains]
    html = runs_report.render(title, chains, header, rows, differing_keys(chains), drawn, y_limits(drawn),
                              colors(len(chains)), smooth, LEAVE_OUT, origins)
    write_atomically(out, lambda f: f.write(html.encode('utf-8')))


# ---------------------------------------------------------------------- the command line

def output_path(out, default):
    """-o, or the default; a default that exists is never replaced unless named."""
    if out is None and os.path.lexists(default):
        fail(f'{default} already exists; pass -o {default} to replace it, or -o another name')
    return out or default


def smooth_weight(text):
    weight = float(text)
    if not 0 <= weight < 1:
        raise argparse.ArgumentTypeError(f'{text} is not in [0, 1)')
    return weight


def parser_for(command, description, paths=True, smooth=False):
    parser = argparse.ArgumentParser(prog=f'runs.py {command}'.strip(), description=description)
    if paths:
        parser.add_argument('paths', nargs='*', default=['logs'], metavar='LOG_DIR_OR_FILE',
                            help='log files or directories of them (default logs)')
    if smooth:
        parser.add_argument('--smooth', type=smooth_weight, default=SMOOTH, metavar='W',
                            help='weight of the moving average over the progress losses, in [0, 1); '
                                 f'0: none (default {SMOOTH})')
    return parser


def summary_command(argv):
    parser = parser_for('', 'One row per run, from its log.')
    parser.epilog = 'commands: plot, report, export, follow, serve (python runs.py COMMAND --help)'
    parser.add_argument('--sort', choices=['started', 'best_val'], default='started',
                        help='row order: start time (default), or best val loss, lowest first')
    args = parser.parse_args(argv)
    summary(load_chains(args.paths), args.sort)


def export_command(argv):
    parser = parser_for('export', 'Every point of every run to stdout, one row each: '
                        'run, time, iter, metric, value.')
    parser.add_argument('--format', choices=['csv', 'json'], default='csv',
                        help="csv (default), or json: the same points, and each run's config and status")
    args = parser.parse_args(argv)
    export(load_chains(args.paths), args.format)


def report_command(argv):
    parser = parser_for('report', 'One self-contained HTML page: the summary, the config that differs, '
                        'the loss curves and where each run came from.', smooth=True)
    parser.add_argument('-o', dest='out', metavar='HTML',
                        help=f'the file to write (default {DEFAULT_REPORT}, never replaced unless named)')
    parser.add_argument('--title', default='Training runs', help='the page title')
    args = parser.parse_args(argv)
    out = output_path(args.out, DEFAULT_REPORT)
    chains = load_chains(args.paths)
    report(chains, out, args.smooth, args.title)
    print(f'wrote {out} ({len(chains)} run{"s" * (len(chains) > 1)})')


def follow_command(argv):
    parser = parser_for('follow', 'Show a run as it goes: its step lines, and a status line. Exit '
                        'status 0 once it completed, 1 once it ended any other way.', paths=False)
    parser.add_argument('path', nargs='?', default='logs', metavar='LOG_OR_DIR',
                        help='a log, or a directory whose newest log to follow (default logs)')
    parser.add_argument('--once', action='store_true', help='show the state now and exit')
    args = parser.parse_args(argv)
    files = log_files([args.path])
    if not files:
        print(f'runs.py: no training logs in {args.path}', file=sys.stderr)
        sys.exit(1)
    import runs_follow
    sys.exit(runs_follow.follow(max(files, key=os.path.getmtime), args.once))


def plot_command(argv):
    parser = parser_for('plot', 'Plot train and val loss against iteration, one colour per run.',
                        paths=False, smooth=True)
    parser.add_argument('logs', nargs='+', metavar='LOG', help='log files or directories of them')
    parser.add_argument('-o', dest='out', metavar='IMAGE', help='the extension picks the format: '
                        f'.png, .svg, .pdf, ... (default {DEFAULT_IMAGE}, never replaced unless named)')
    args = parser.parse_args(argv)
    out = output_path(args.out, DEFAULT_IMAGE)
    files = log_files(args.logs)
    try:  # imported here only: the summary must work where matplotlib is not installed
        import matplotlib
    except ImportError:
        fail('plot needs matplotlib: pip install matplotlib')
    matplotlib.use('Agg')  # images only: no display needed, none required
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    if os.path.splitext(out)[1][1:].lower() not in formats:
        fail(f'-o {out}: the extension picks the image format; use one of '
             + ' '.join('.' + f for f in sorted(formats)))
    runs = load_runs(files)
    if not runs:
        print('runs.py: no training logs to plot', file=sys.stderr)
        sys.exit(1)
    chains = join_resumed(runs)
    plot(chains, out, args.smooth)
    print(f'wrote {out} ({len(chains)} run{"s" * (len(chains) > 1)})')


def serve_command(argv):
    parser = parser_for('serve', 'Serve a page with the run table and the curves, live, until Ctrl-C. '
                        'New lines show within 0.25 s, new logs within a second.')
    parser.add_argument('--port', type=int, default=8765, help='the port (default 8765; 0: any free one)')
    parser.add_argument('--host', help='the address to listen on (default 127.0.0.1, this machine only; '
                        'any other is reachable from elsewhere, and warned about)')
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        fail(f'--port {args.port}: not a port number (0 to 65535)')
    log_files(args.paths)  # a missing path is an error now, not a blank page
    import runs_serve
    sys.exit(runs_serve.serve(args.paths, args.host, args.port))


COMMANDS = {'plot': plot_command, 'report': report_command, 'export': export_command,
            'follow': follow_command, 'serve': serve_command}


def main(argv):
    if argv[:1] and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return summary_command(argv)


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:  # `runs.py | head` stopped reading: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
