"""
What a log line costs: TrainingLogger against the bare file writes it is built on.

    python scripts/bench_logger.py [--lines=20000] [--synced_lines=500] [--rounds=5]

Each case writes the same line to its own file in a temporary directory, in alternating
rounds so that the machine's noise hits every case alike; the median round counts.
"""
import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from logger import TrainingLogger  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument('--lines', type=int, default=20000, help='calls per round, unsynced cases')
parser.add_argument('--synced_lines', type=int, default=500, help='calls per round, fsynced cases')
parser.add_argument('--rounds', type=int, default=5)
args = parser.parse_args()

MESSAGE = 'iter 1200: loss 1.2345, time 64.12ms, mfu 1.23%'
STEP_LINE = '[2026-01-01 00:00:00] step 1200: train loss 1.2345, val loss 1.3456\n'
tmp = tempfile.mkdtemp(prefix='bench_logger_')


def bare_write_flush(n, path):
    with open(path, 'w') as f:
        line = f'[{time.strftime("%Y-%m-%d %H:%M:%S")}] {MESSAGE}\n'
        t0 = time.perf_counter()
        for _ in range(n):
            f.write(line)
            f.flush()
        return time.perf_counter() - t0


def bare_write_flush_fsync(n, path):
    with open(path, 'w') as f:
        t0 = time.perf_counter()
        for _ in range(n):
            f.write(STEP_LINE)
            f.flush()
            os.fsync(f.fileno())
        return time.perf_counter() - t0


def training_logger(method):
    def run(n, path):
        lg = TrainingLogger(log_dir=path).setup({'bench': True})
        call = lg.log if method == 'log' else lg.log_step
        arg = (MESSAGE,) if method == 'log' else (1200, 1.2345, 1.3456)
        t0 = time.perf_counter()
        for _ in range(n):
            call(*arg)
        dt = time.perf_counter() - t0
        lg.close()
        return dt
    return run


def file_handler(n, path):
    log = logging.getLogger(f'bench.{path}')
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter('[%(asctime)s] %(message)s', '%Y-%m-%d %H:%M:%S'))
    log.addHandler(handler)
    t0 = time.perf_counter()
    for _ in range(n):
        log.info(MESSAGE)
    dt = time.perf_counter() - t0
    log.removeHandler(handler)
    handler.close()
    return dt


cases = {  # name: (function, calls per round)
    'write+flush': (bare_write_flush, args.lines),
    'TrainingLogger.log': (training_logger('log'), args.lines),
    'logging.FileHandler': (file_handler, args.lines),
    'write+flush+fsync': (bare_write_flush_fsync, args.synced_lines),
    'TrainingLogger.log_step': (training_logger('log_step'), args.synced_lines),
}
per_call = {name: [] for name in cases}
for r in range(args.rounds):
    for name, (fn, n) in cases.items():
        per_call[name].append(fn(n, os.path.join(tmp, f'{name}.{r}')) / n * 1e6)
us = {name: statistics.median(v) for name, v in per_call.items()}

print(f'median of {args.rounds} rounds, microseconds per call (lower is better)')
for name, v in us.items():
    print(f'  {name:<26} {v:10.2f} us')
log_ratio = us['TrainingLogger.log'] / us['write+flush']
fh_ratio = us['TrainingLogger.log'] / us['logging.FileHandler']
step_ratio = us['TrainingLogger.log_step'] / us['write+flush+fsync']
print(f'  log      / write+flush        {log_ratio:6.2f}x  (goal <= 2.0x)')
print(f'  log      / logging.FileHandler {fh_ratio:6.2f}x  (goal < 1.0x)')
print(f'  log_step / write+flush+fsync  {step_ratio:6.2f}x  (goal <= 1.2x)')
ok = log_ratio <= 2.0 and fh_ratio < 1.0 and step_ratio <= 1.2
print(f'summary: log_us={us["TrainingLogger.log"]:.2f} write_flush_us={us["write+flush"]:.2f} '
      f'filehandler_us={us["logging.FileHandler"]:.2f} log_step_us={us["TrainingLogger.log_step"]:.2f} '
      f'fsync_us={us["write+flush+fsync"]:.2f} goals={"met" if ok else "missed"}')
