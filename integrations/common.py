"""What the three adapters write alike, through TrainingLogger's calls: the header and where the run
came from, a step line per batch of the framework's metrics, progress lines, the footer."""
import atexit
import json
import math
import multiprocessing
import os
import shlex
import sys
import threading
import time

from logger import TrainingLogger, code_version, format_duration

# the file that a checkpoint folder gets, naming the log of the run that saved it (JSON: {"log": name})
RECORD = 'run_log.json'


class RunLog:
    """One run's log, opened by the adapter at the run's first event, closed by the framework's end
    or at interpreter exit (TrainingLogger's atexit: the status then comes from the uncaught
    exception). Unopened, it holds only its arguments, so that Lightning can pickle it."""

    def __init__(self, log_dir, enabled):
        self.log_dir = log_dir
        self.enabled = enabled   # None: decided at open() from the framework's rank
        self.logger = None
        self._step = None        # the step of the last step line, and the extras it has written:
        self._written = {}       # a value logged twice at one step (HF's epoch) is written once
        self._start = None       # (time, step) where this process began training, for the ETA
        self._code = None        # (thread, [code version]) while `git status` runs

    @property
    def path(self):
        return self.logger.path if self.logger else None

    def open(self, config, rank_zero, frameworks):
        """The header with the config, then the command line, the versions and the code version as
        train.py logs them. Only the first call of a run does anything."""
        if self.logger is not None:
            return
        self.logger = TrainingLogger(self.log_dir, rank_zero if self.enabled is None else self.enabled)
        self.logger.setup(config)
        if self.logger.path is None:
            return
        self.logger.log(f'command: {shlex.join(command())}')
        versions = [f'python {sys.version.split()[0]}']
        for name in ('torch', 'numpy', *frameworks):
            version = getattr(sys.modules.get(name), '__version__', None)
            if version:
                versions.append(f'{name} {version}')
        self.logger.log(', '.join(versions))
        # `git status` takes milliseconds: it runs beside the run's first step, and its line is
        # written before the next line of the log (_code_line)
        folder, found = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv[0] else os.getcwd(), []
        thread = threading.Thread(target=lambda: found.append(code_version(folder)), daemon=True)
        thread.start()
        self._code = (thread, found)
        atexit.register(self._code_line)  # before the logger's own atexit writes the footer

    def _code_line(self):
        if self._code:
            (thread, found), self._code = self._code, None
            thread.join()
            if found and found[0]:
                self.logger.log(f'code: git {found[0]}')

    def log(self, message):
        if self.logger:
            self._code_line()
            self.logger.log(message)

    def continues(self, log_name, step):
        """The message by which runs.py joins a resumed run to the run that saved its checkpoint."""
        if log_name and self.logger:
            self._code_line()
            self.logger.log(f'continues {os.path.basename(str(log_name))} at iter {step}')

    def metrics(self, step, values, train_names, val_names, max_steps=None):
        """A step line: the first of train_names in values is its train loss, the first of val_names
        its val loss (None where there is none), and the rest follow as extras. A line with a train
        loss is followed by a progress line where max_steps is known. Loops may log every step, so
        this is written for speed: loops, not generators, and the two lines in one write."""
        if not self.logger:
            return
        if self._code:
            self._code_line()
        values = dict(values)
        # the losses join the extras under names no metric has (a space), so that one dict says
        # what this step has written already
        for key, names in ((' train', train_names), (' val', val_names)):
            for name in names:
                if name in values:
                    values[key] = values.pop(name)
                    break
        progress = self._progress(step, max_steps) if ' train' in values else None
        if step != self._step:
            self._step, self._written = step, {}
        written = self._written
        values = {k: v for k, v in values.items() if v is not None and (k not in written or written[k] != v)}
        written.update(values)
        self.logger.log_metrics(step, values.pop(' train', None), values.pop(' val', None), values, progress)

    def start_training(self, step):
        self._start = (time.perf_counter(), step)

    def _progress(self, step, max_steps):
        """`iter N: N/max_steps, eta H:MM:SS`, as the end of train.py's progress line; the loss is on
        the step line before it. The ETA is from this process's pace since start_training()."""
        if not max_steps or max_steps == math.inf:
            return None
        line = f'iter {step}: {step}/{int(max_steps)}'
        if self._start and step > self._start[1]:
            t0, step0 = self._start
            line += f', eta {format_duration((time.perf_counter() - t0) / (step - step0) * (max_steps - step))}'
        return line

    def close(self, status='completed'):
        if self.logger:
            self._code_line()
            self.logger.close(status)

    def record(self, folder):
        """Write RECORD into a checkpoint folder; a failure costs the link, never the run."""
        if not self.path or not os.path.isdir(folder):
            return
        try:
            with open(os.path.join(folder, RECORD), 'w', encoding='utf-8') as f:
                json.dump({'log': os.path.basename(self.path)}, f)
        except OSError as e:
            print(f'TrainingLogger: could not write {RECORD} in {folder}: {e}', file=sys.stderr)


def recorded_log(folder):
    """The log name that record() wrote in a checkpoint folder, or None."""
    try:
        with open(os.path.join(folder, RECORD), encoding='utf-8') as f:
            return json.load(f).get('log')
    except (OSError, ValueError, AttributeError):
        return None


def command():
    """The command line that started the run. A worker that multiprocessing spawned (Lightning's
    ddp_spawn) has its parent's script and arguments, not its own `python -c ...`."""
    if multiprocessing.parent_process() is not None:
        return [sys.executable, *sys.argv]
    return sys.orig_argv

