"""
Compare training runs from their logs (the files logger.py writes).

    python runs.py [LOG_DIR_OR_FILE ...]             # one row per run, oldest first; default logs/
    python runs.py --sort best_val logs/             # lowest best val loss first
    python runs.py plot LOG [LOG ...] -o curves.png  # loss against iteration; -o x.svg for an SVG

A directory stands for the log_run_*.txt files directly inside it. Exit status: 0 done,
1 no logs found, 2 something to fix (a missing path, bad arguments, plot without matplotlib).
"""
import argparse
import math
import os
import re
import shutil
import sys

from logger import format_value, read_log

# train.py's progress message, every log_interval: "iter 100: loss 2.3456, time 64.12ms, ..."
PROGRESS = re.compile(r'iter (-?\d+): loss ([^,\s]+)')
DEFAULT_IMAGE = 'curves.png'
MAX_CELL = 40     # a wider cell is cut, so that one odd value cannot push the table off screen
MAX_LEGEND = 20   # more labels than this would cover the curves


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
    return sorted(runs, key=lambda r: (r.started, r.path))


# ---------------------------------------------------------------------- what a run shows

def val_losses(run):
    return [s.val_loss for s in run.steps if s.val_loss is not None]


def best_val(run):
    return min((x for x in val_losses(run) if not math.isnan(x)), default=None)  # nan: diverged


def loss_text(value):
    return '-' if value is None else f'{value:.4f}'


def status_word(run):
    if run.status is None:
        return 'running/killed'  # no footer yet: the run is still going, or was killed
    return (run.status.split() or ['?'])[0].rstrip(':')  # 'failed: ValueError: x' -> 'failed'


def duration(run):
    seconds = max(int((run.last_time - run.started).total_seconds()), 0)
    return f'{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}'


def differing_keys(runs):
    """Config keys whose values are not the same in every run; a key some runs lack differs."""
    keys = sorted({key for run in runs for key in run.config})
    return [k for k in keys if len({repr(r.config[k]) if k in r.config else None for r in runs}) > 1]


def config_text(run, keys):
    return ' '.join(f'{k}={format_value(run.config[k])}' for k in keys if k in run.config)


def progress_losses(run):
    """(iter, loss) from the progress messages, where train.py logged them."""
    points = []
    for m in filter(None, (PROGRESS.match(message.text) for message in run.messages)):
        try:
            points.append((int(m.group(1)), float(m.group(2))))
        except ValueError:
            pass  # a damaged number costs that point only
    return points


# ---------------------------------------------------------------------- the two commands

def summary(runs, sort):
    if sort == 'best_val':  # a stable sort: equal losses keep their start order
        runs.sort(key=lambda r: (best_val(r) is None, best_val(r) or 0.0))
    keys = differing_keys(runs)
    header = ['run', 'started', 'duration', 'status', 'steps', 'last val', 'best val']
    right = {'duration', 'steps', 'last val', 'best val'}
    rows = []
    for run in runs:
        last = val_losses(run)[-1] if val_losses(run) else None
        rows.append([os.path.basename(run.path), run.started.strftime('%m-%d %H:%M'), duration(run),
                     status_word(run), str(len(run.steps)), loss_text(last), loss_text(best_val(run))])
        if keys:
            rows[-1].append(config_text(run, keys))
    if keys:
        header.append('config that differs')
    # each column as wide as its content; the last gets what the terminal has left
    table = [header] + rows
    widths = [min(max(len(row[i]) for row in table), MAX_CELL) for i in range(len(header))]
    room = shutil.get_terminal_size((120, 24)).columns - sum(widths[:-1]) - 2 * len(widths[:-1])
    widths[-1] = min(max(len(row[-1]) for row in table), max(room, 10))
    for row in table:
        cells = [clip(c, w).rjust(w) if h in right else clip(c, w).ljust(w)
                 for c, w, h in zip(row, widths, header)]
        print('  '.join(cells).rstrip())


def plot(runs, out):
    import matplotlib.pyplot as plt  # main() has made sure that it is there
    keys, n = differing_keys(runs), len(runs)
    colors = plt.cm.tab10.colors if n <= 10 else [plt.cm.viridis(i / (n - 1)) for i in range(n)]
    fig, ax = plt.subplots(figsize=(10, 6))
    for run, color in zip(runs, colors):
        if n <= MAX_LEGEND:  # an empty line: the run's legend entry, whatever the run logged
            label = clip(f'{os.path.basename(run.path)} {config_text(run, keys)}', 80)
            ax.plot([], [], color=color, label=label)
        progress = progress_losses(run)
        train = [(s.iter, s.train_loss) for s in run.steps if s.train_loss is not None]
        val = [(s.iter, s.val_loss) for s in run.steps if s.val_loss is not None]
        if progress:
            ax.plot(*zip(*progress), color=color, linewidth=0.8, alpha=0.35)
        if train:
            ax.plot(*zip(*train), color=color, linestyle='--', marker='.')
        if val:
            ax.plot(*zip(*val), color=color, marker='o')
    ax.set(xlabel='iteration', ylabel='loss')
    ax.set_title('val loss: solid; train loss at evals: dashed; at each iter line: faint', fontsize=9)
    ax.grid(alpha=0.3)
    if n <= MAX_LEGEND:
        ax.legend(fontsize=8)
    else:
        warn(f'{n} runs are too many to label; the legend is left out (plot {MAX_LEGEND} or fewer)')
    fig.tight_layout()
    # whole or not at all: a temp file beside the image, then one os.replace
    tmp = os.path.join(os.path.dirname(out), f'.{os.path.basename(out)}.{os.getpid()}.tmp')
    try:
        # O_EXCL: never write over a file that happens to have the temp name; 0o666: umask applies
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, 'wb') as f:
                fig.savefig(f, format=os.path.splitext(out)[1][1:].lower())
            os.replace(tmp, out)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    except OSError as e:
        fail(f'cannot write {out}: {e.strerror or e}')


def main(argv):
    if argv[:1] != ['plot']:
        parser = argparse.ArgumentParser(prog='runs.py', description='One row per run, from its log.',
                                         epilog='python runs.py plot --help: the loss curves')
        parser.add_argument('paths', nargs='*', default=['logs'], metavar='LOG_DIR_OR_FILE',
                            help='log files or directories of them (default logs)')
        parser.add_argument('--sort', choices=['started', 'best_val'], default='started',
                            help='row order: start time (default), or best val loss, lowest first')
        args = parser.parse_args(argv)
        runs = load_runs(log_files(args.paths))
        if not runs:
            print(f'runs.py: no training logs in {" ".join(args.paths)}', file=sys.stderr)
            sys.exit(1)
        return summary(runs, args.sort)

    parser = argparse.ArgumentParser(prog='runs.py plot', description='Plot train and val loss '
                                     'against iteration, one colour per run.')
    parser.add_argument('logs', nargs='+', metavar='LOG', help='log files or directories of them')
    parser.add_argument('-o', dest='out', metavar='IMAGE', help='the extension picks the format: '
                        f'.png, .svg, .pdf, ... (default {DEFAULT_IMAGE}, never replaced unless named)')
    args = parser.parse_args(argv[1:])
    out = args.out or DEFAULT_IMAGE
    if args.out is None and os.path.lexists(out):
        fail(f'{out} already exists; pass -o {out} to replace it, or -o another name')
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
    plot(runs, out)
    print(f'wrote {out} ({len(runs)} run{"s" * (len(runs) > 1)})')


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:  # `runs.py | head` stopped reading: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
