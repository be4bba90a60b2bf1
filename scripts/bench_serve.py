"""
How fast, lean and quiet `runs.py serve` is, measured in headless Chromium (Playwright).

    python scripts/bench_serve.py [--logs=400] [--lines=1000000] [--idle=60] [--dir=/tmp/bench_serve]
    python scripts/bench_serve.py --screenshot docs/serve.webp   # the picture in docs/runs.md
    python scripts/bench_serve.py --plotly plotly.min.js         # the curves of 1 by plotly.js instead

1. --logs synthetic logs of 200 evaluations each (40 config keys, a step line and 5 progress lines
   per evaluation; kept in --dir for the next time): the seconds from starting `runs.py serve` to
   every row and every run's curve on the page (goal 0.75 s), and the bytes of that first load.
2. One log of --lines lines (mostly progress lines; kept in --dir): the bytes sent for the run,
   the server's RSS (now and at its peak; goal under 150 MB), and the page's responsiveness: the
   time to draw it, the longest task the page ran, and the time to redraw on hover.
3. With the page of 1 open and nothing changing: the server's CPU over --idle seconds (goal 1%).
4. A step line appended to a log every 0.5 s, 10 times: the time from each write to the page
   showing it (goal 250 ms); and a new log, 5 times: the time to its row (goal 1 s).
"""
import argparse
import datetime
import functools
import http.server
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench_runs import SimulatedClock, cpu_seconds  # noqa: E402
from logger import TrainingLogger  # noqa: E402

RUNS_PY = os.path.join(ROOT, 'runs.py')
CHROMIUM = '/usr/bin/chromium'
BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--no-first-run']


class Simulated(SimulatedClock):
    """bench_runs' simulated run, without an fsync per step line: 80,000 of them took minutes."""

    def _write(self, text, sync, fd=None):
        super()._write(text, False, fd)


def write_logs(directory, n, evals=200, per_eval=5):
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        config = {f'key_{k:02}': k * 1.5 for k in range(36)}
        config.update(learning_rate=[1e-3, 3e-4, 6e-4][i % 3], n_layer=4 + i % 4, seed=i, out_dir=f'out/run_{i}')
        lg = Simulated(log_dir=directory, enabled=True).setup(config)
        lg.clock = datetime.datetime.now()
        lg.log(f'command: python train.py config/train_shakespeare_char_cpu.py --seed={i}')
        final, max_iters = 1.8 + (i % 7) / 10, evals * per_eval
        for step in range(evals):
            for it in range(step * per_eval, (step + 1) * per_eval):
                loss = final + 2.4 * 0.995 ** it + 0.05 * ((it * 7919) % 13 - 6) / 6
                lg.log(f'iter {it}: loss {loss:.4f}, time 61.52ms, 0.0712 TFLOP/s, {it}/{max_iters}, eta 0:00:30')
                lg.clock += datetime.timedelta(seconds=0.06)
            val = final + 2.4 * 0.995 ** (step * per_eval)
            lg.log_step(step * per_eval, val - 0.02, val, lr=0.001, val_bpb=val * 1.44)
        lg.close()


def write_long_log(path, lines, eval_every=1000):
    """A log of about `lines` lines, as train.py writes with log_interval=1: a progress line per
    iteration, a step line every eval_every."""
    directory = os.path.dirname(path)
    lg = Simulated(log_dir=directory, enabled=True).setup({'max_iters': lines, 'log_interval': 1})
    lg.clock = datetime.datetime.now()
    for it in range(lines):
        loss = 1.8 + 2.4 * 0.99999 ** it + 0.05 * ((it * 7919) % 13 - 6) / 6
        lg.log(f'iter {it}: loss {loss:.4f}, time 61.52ms, mfu 12.34%')
        if it % eval_every == 0:
            lg.log_step(it, loss, loss + 0.05, lr=6e-4, val_bpb=loss * 1.44)
        lg.clock += datetime.timedelta(seconds=0.06)
    lg.close()
    os.replace(lg.path, path)


STARTED = []  # the servers started, stopped at exit whatever happens


def start(paths):
    # SIGINT as in a terminal: a shell's background job (`bench_serve.py &`) would pass it on ignored
    proc = subprocess.Popen([sys.executable, RUNS_PY, 'serve', *paths, '--port', '0'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    STARTED.append(proc)
    url = re.search(r'http://\S+/', proc.stdout.readline()).group()
    read = []  # when the server said it had read the logs (it serves the page meanwhile)
    threading.Thread(target=lambda: read.extend(time.perf_counter() for line in proc.stdout if ' read;' in line),
                     daemon=True).start()
    return proc, url, read


def stop(proc):
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        fields = dict(line.split(':', 1) for line in f)
    return int(fields['VmRSS'].split()[0]) / 1024, int(fields['VmHWM'].split()[0]) / 1024


def fetched_bytes(url):
    with urllib.request.urlopen(url) as r:
        return len(r.read())


def opened(browser, url, runs, table=True):
    """A page at url, once every run has its row (unless not table) and its curves."""
    page = browser.new_page(viewport={'width': 1300, 'height': 1000})
    page.goto(url)
    # functions, not expressions: the page's Content-Security-Policy forbids eval
    page.wait_for_function('([n, table]) => (!table || document.querySelectorAll("#runs tbody tr").length === n) && '
                           'document.body.dataset.drawn == n', arg=[runs, table], timeout=120000)
    return page


def bench_many(browser, directory, runs, idle):
    times, reading = [], []
    for _ in range(3):
        t = time.perf_counter()
        proc, url, read = start([directory])
        page = opened(browser, url, runs)
        times.append(time.perf_counter() - t)
        while not read:  # said just after the page could have it
            time.sleep(0.01)
        reading.append(read[0] - t)
        size = fetched_bytes(url + 'api/runs')
        rss = rss_mb(proc.pid)[1]
        if len(times) < 3:
            page.close()
            stop(proc)
    print(f'{runs} logs of 200 evaluations: every row and curve on the page {min(times):.2f} s after the '
          f'server started (best of 3; {", ".join(f"{x:.2f}" for x in times)}; goal 0.75 s); the server had '
          f'read the logs {min(reading):.2f} s after it started; '
          f'first load {size / 1e6:.2f} MB; server peak RSS {rss:.0f} MB')
    time.sleep(2)  # the page settled
    before, t = cpu_seconds(proc.pid), time.perf_counter()
    time.sleep(idle)
    cpu = cpu_seconds(proc.pid) - before
    elapsed = time.perf_counter() - t
    print(f'idle with the page open, {runs} logs: the server used {cpu:.2f} CPU s in {elapsed:.0f} s, '
          f'{100 * cpu / elapsed:.2f}% of a core (goal < 1%)')
    page.close()
    stop(proc)
    return min(times), cpu / elapsed


def bench_long(browser, path):
    size = os.path.getsize(path)
    page = browser.new_page(viewport={'width': 1300, 'height': 1000})
    page.add_init_script('window.longest = 0; new PerformanceObserver(l => l.getEntries().forEach(e => '
                         'window.longest = Math.max(window.longest, e.duration))).observe({type: "longtask", buffered: true});')
    t = time.perf_counter()
    proc, url, read = start([path])
    page.goto(url)
    page.wait_for_function('() => document.body.dataset.drawn == 1', timeout=120000)
    shown = time.perf_counter() - t
    while not read:
        time.sleep(0.01)
    ready = read[0] - t
    run_id = page.evaluate('() => state.order[0]')
    sent = fetched_bytes(f'{url}api/series?id={run_id}')
    first_load = fetched_bytes(url + 'api/runs')
    box = page.query_selector('#chart-progress canvas.over').bounding_box()
    hover = []
    for i in range(20):
        t = time.perf_counter()
        page.mouse.move(box['x'] + box['width'] * (0.2 + i / 30), box['y'] + box['height'] / 2)
        page.evaluate('() => new Promise(r => requestAnimationFrame(() => r()))')
        hover.append(time.perf_counter() - t)
    redraw = page.evaluate('() => { const t = performance.now(); draw(); return performance.now() - t; }')
    rss, peak = rss_mb(proc.pid)
    lines = sum(1 for _ in open(path, 'rb'))
    print(f'one log of {size / 1e6:.0f} MB ({lines:,} lines): read {ready:.2f} s after the server started, '
          f'drawn on the page at {shown:.2f} s; sent for the run {sent / 1e3:.0f} kB (/api/series; the first '
          f'load /api/runs {first_load / 1e3:.0f} kB; goal < 200 kB); server RSS {rss:.0f} MB, peak {peak:.0f} MB '
          f'(goal < 150 MB); page: longest task {page.evaluate("() => window.longest"):.0f} ms '
          f'(0: none over 50 ms), redraw of the 4 charts {redraw:.1f} ms, hover to next frame median '
          f'{statistics.median(hover) * 1000:.0f} ms')
    page.close()
    stop(proc)
    return peak, sent


def bench_append(browser, directory, lines=10):
    lg = SimulatedClock(log_dir=directory, enabled=True).setup({'max_iters': 1000})
    lg.clock = datetime.datetime.now()
    lg.log_step(0, 3.0, 3.0)
    proc, url, _ = start([directory])
    page = opened(browser, url, 1)
    name = os.path.basename(lg.path)
    page.evaluate('''name => { window.shown = {};
        new MutationObserver(() => { for (const tr of document.querySelectorAll('#runs tbody tr'))
            if (tr.children[1].textContent === name && !(tr.querySelector('td.step').textContent in window.shown))
                window.shown[tr.querySelector('td.step').textContent] = Date.now() / 1000; })
        .observe(document.querySelector('#runs tbody'), {subtree: true, childList: true, characterData: true}); }''', name)
    delays = []
    for i in range(1, lines + 1):
        time.sleep(0.5)
        lg.clock = datetime.datetime.now()
        written = time.time()
        lg.log_step(i * 100, 2.0, 2.0)
        page.wait_for_function('step => window.shown[step] !== undefined', arg=str(i * 100), timeout=10000)
        delays.append(page.evaluate('step => window.shown[step]', str(i * 100)) - written)
    lg.close()
    rows = []
    for i in range(5):  # and a new log: a new row
        time.sleep(0.5)
        written = time.time()
        TrainingLogger(log_dir=directory, enabled=True).setup({'max_iters': 1000, 'seed': i}).close()
        page.wait_for_function('n => document.querySelectorAll("#runs tbody tr").length === n', arg=i + 2,
                               timeout=10000, polling=10)
        rows.append(time.time() - written)
    page.close()
    stop(proc)
    print(f'a step line appended: on the page {min(delays) * 1000:.0f} to {max(delays) * 1000:.0f} ms after '
          f'the write, median {statistics.median(delays) * 1000:.0f} ms ({lines} lines; goal 250 ms); '
          f'a new log: a row {min(rows) * 1000:.0f} to {max(rows) * 1000:.0f} ms after (5 logs, seen every 10 ms; '
          'goal 1 s)')
    return max(delays)


PLOTLY_PAGE = '''<!DOCTYPE html><html><body><div id="a"></div><div id="b"></div><div id="c"></div><div id="d"></div>
<script src="plotly.min.js"></script><script>
fetch('runs.json').then(r => r.json()).then(async d => {
  const colour = Object.fromEntries(d.rows.map(r => [r.id, r.colour]));
  const traces = lines => d.series.flatMap(s => lines(s).map(([x, y, opacity]) => ({x, y, mode: 'lines',
    line: {color: colour[s.id], width: 1}, opacity: opacity || 1, showlegend: false})));
  const size = {width: 620, height: 300};
  await Plotly.newPlot('a', traces(s => [[s.steps.it, s.steps.val], [s.steps.it, s.steps.train]]), size);
  await Plotly.newPlot('b', traces(s => [[s.progress.it, s.progress.loss, 0.25], [s.smooth.it, s.smooth.y]]), size);
  await Plotly.newPlot('c', traces(s => [[s.steps.it, s.steps.lr]]), size);
  await Plotly.newPlot('d', traces(s => [[s.steps.it, s.steps.bpb]]), size);
  document.body.dataset.drawn = d.rows.length;
});
</script></body></html>'''


def bench_plotly(browser, directory, runs, plotly_js):
    """The same page's curves drawn by plotly.js (plotly's wheel ships plotly.min.js) from the same
    data, saved beforehand: the choice between it and drawing by hand on canvas."""
    proc, url, _ = start([directory])
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, 'runs.json'), 'wb') as f:
        f.write(urllib.request.urlopen(url + 'api/runs').read())
    with open(os.path.join(folder, 'page.html'), 'w') as f:
        f.write(PLOTLY_PAGE)
    shutil.copy(plotly_js, os.path.join(folder, 'plotly.min.js'))
    quiet = type('Quiet', (http.server.SimpleHTTPRequestHandler,), {'log_message': lambda *args: None})
    files = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(quiet, directory=folder))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    for name, address in [('plotly.js', f'http://127.0.0.1:{files.server_address[1]}/page.html'),
                          ('canvas (runs.py serve, already started)', url)]:
        t = time.perf_counter()
        page = opened(browser, address, runs, table=name != 'plotly.js')
        print(f'{name}: {runs} runs drawn {time.perf_counter() - t:.2f} s after opening the page')
        page.close()
    files.shutdown()
    stop(proc)


def screenshot(browser, out):
    """The docs' picture: a page of 6 runs, one still running, two of them selected."""
    directory = tempfile.mkdtemp()
    write_logs(directory, 5, evals=40)
    config = {f'key_{k:02}': k * 1.5 for k in range(36)}
    config.update(learning_rate=3e-3, n_layer=6, seed=5, out_dir='out/run_5', max_iters=400)
    lg = SimulatedClock(log_dir=directory, enabled=True).setup(config)
    lg.clock = datetime.datetime.now()  # its lines run ahead of the clock: a run 5 minutes in
    for it in range(240):
        loss = 1.7 + 2.4 * 0.99 ** it
        eta = (400 - it) * 1.2
        lg.log(f'iter {it}: loss {loss:.4f}, time 1200ms, {it}/400, eta 0:{eta // 60:02.0f}:{eta % 60:02.0f}')
        if it % 5 == 0:
            lg.log_step(it, loss - 0.02, loss, lr=0.003, val_bpb=loss * 1.44)
        lg.clock += datetime.timedelta(seconds=1.2)
    proc, url, _ = start([directory])
    page = opened(browser, url, 6)
    for box in page.query_selector_all('#runs tbody input[type=checkbox]')[1::4]:
        box.check()
    box = page.query_selector('#chart-progress canvas.over').bounding_box()
    page.mouse.move(box['x'] + box['width'] * 0.4, box['y'] + box['height'] * 0.45)
    png = os.path.join(directory, 'shot.png')
    page.screenshot(path=png, full_page=True)
    from PIL import Image
    Image.open(png).convert('RGB').save(out, quality=80, method=6)
    lg.close()
    stop(proc)
    print(f'wrote {out} ({os.path.getsize(out) / 1e3:.0f} kB)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1].strip())
    parser.add_argument('--logs', type=int, default=400)
    parser.add_argument('--lines', type=int, default=1000000)
    parser.add_argument('--idle', type=float, default=60.0)
    parser.add_argument('--dir', default=os.path.join(tempfile.gettempdir(), 'bench_serve'))
    parser.add_argument('--screenshot', metavar='IMAGE', help="only take the docs' screenshot (.webp)")
    parser.add_argument('--plotly', metavar='PLOTLY_MIN_JS', help='only draw the 400 logs with plotly.js '
                        '(from pip install plotly: plotly/package_data/plotly.min.js), and by runs.py serve')
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    if args.screenshot or args.plotly:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            if args.screenshot:
                screenshot(browser, args.screenshot)
            else:
                bench_plotly(browser, os.path.join(args.dir, f'{args.logs}_logs'), args.logs, args.plotly)
        return
    many = os.path.join(args.dir, f'{args.logs}_logs')
    if not os.path.isdir(many):
        print(f'writing {args.logs} logs to {many} ...', flush=True)
        write_logs(many, args.logs)
    long = os.path.join(args.dir, f'log_run_{args.lines}_lines.txt')
    if not os.path.exists(long):
        print(f'writing a log of {args.lines} lines to {long} ...', flush=True)
        write_long_log(long, args.lines)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        seconds, cpu = bench_many(browser, many, args.logs, args.idle)
        peak, sent = bench_long(browser, long)
        delay = bench_append(browser, tempfile.mkdtemp())
        browser.close()
    met = seconds <= 0.75 and peak < 150 and sent < 200e3 and cpu < 0.01 and delay <= 0.25
    print(f'summary: many_s={seconds:.2f} long_peak_mb={peak:.0f} long_sent_kb={sent / 1e3:.0f} '
          f'idle_cpu_pct={cpu * 100:.2f} append_max_ms={delay * 1000:.0f} goals={"met" if met else "missed"}')


if __name__ == '__main__':
    try:
        main()
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
