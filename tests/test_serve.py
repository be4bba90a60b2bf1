"""runs.py serve in a real browser: Debian's Chromium, driven by Playwright, on a real
`python runs.py serve` over logs in a temporary directory. One server and one browser page serve
the whole module; each test writes to logs of its own."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, age
from logger import TrainingLogger

pytestmark = pytest.mark.xdist_group('serve')  # one worker: the module's server and browser are made once

CHROMIUM = '/usr/bin/chromium'
# offline, and nothing of the browser's own that calls home
BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--no-first-run']
WAIT = 5000  # ms that a test waits for the page to show a change (the bench measures how soon it does)


def log_text(scratch, config, vals, status='completed', first=0, messages=()):
    """A log as the real TrainingLogger writes it: a step line per val loss, 100 iterations apart
    from `first`, and progress lines between; with status None, no footer (still running, or killed)."""
    lg = TrainingLogger(log_dir=str(scratch), enabled=True).setup(config)
    lg.log('command: train.py config/train_shakespeare_char.py')
    for message in messages:
        lg.log(message)
    for i, val in enumerate(vals):
        at = first + i * 100
        lg.log_step(at, val + 0.05, val, lr=6e-4 * (1 - i / 20), val_bpb=val * 1.44)
        for it in range(at, at + 100, 20):
            lg.log(f'iter {it}: loss {val + 0.3 - (it - at) / 1000:.4f}, time 64.12ms, {it}/1000, eta 0:01:00')
    lg.close(status or 'completed')
    with open(lg.path, encoding='utf-8') as f:
        text = f.read()
    os.unlink(lg.path)
    return text if status else text[:text.rindex('=' * 80 + '\nTraining run ended')]


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return str(path)


def append(path, text):
    with open(path, 'a', encoding='utf-8') as f:
        f.write(text)


def now():
    return time.strftime('%Y-%m-%d %H:%M:%S')


def start_serve(*args):
    """`python runs.py serve ARGS --port 0`; returns the process and the URL it printed."""
    # SIGINT as in a terminal, even where pytest runs as a shell's background job, which ignores it
    command = [sys.executable, os.path.join(ROOT, 'runs.py'), 'serve', *map(str, args), '--port', '0']
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stdout.readline()
    m = re.search(r'http://[^/\s]+/', line)
    assert m, (line, proc.poll() is not None and proc.stderr.read())
    return proc, m.group()


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """The module's logs, and a server on them: (logs dir, scratch dir, url, names: {role: path})."""
    tmp = tmp_path_factory.mktemp('serve')
    logs, scratch = tmp / 'logs', tmp / 'scratch'
    logs.mkdir()
    scratch.mkdir()
    (tmp / 'secret.txt').write_text('TOPSECRET\n')  # beside the logs: no request may read it
    paths = {}
    made = [('completed', {'lr': 1e-3}, [3.0, 2.5, 2.6], 'completed'),
            ('failed', {'lr': 2e-3}, [3.1], 'failed: ValueError: boom'),
            ('interrupted', {'lr': 3e-3}, [], 'interrupted'),
            ('running', {'lr': 4e-3, 'max_iters': 1000}, [2.9, 2.8], None),
            ('killed', {'lr': 5e-3}, [2.95, 2.45], None),
            ('html', {'lr': 6e-3, 'note': '<script>window.pwned = 1</script>'}, [2.7],
             'failed: <img src=x onerror="window.pwned = 2">'),
            ('half', {'lr': 7e-3}, [2.2], None), ('other', {'lr': 8e-3}, [2.3], None),
            ('replaced', {'lr': 9e-3}, [2.4], None), ('truncated', {'lr': 1e-2}, [2.1, 2.0], None),
            ('hidden', {'lr': 2e-2}, [1.9], None), ('many', {'lr': 3e-2}, [], 'completed'),
            ('killed_first', {'lr': 4e-2}, [3.0, 2.0, 1.8], None)]
    for i, (role, config, vals, status) in enumerate(made):
        paths[role] = write(logs / f'log_run_20261206_1000{i:02}.txt', log_text(scratch, config, vals, status))
    age(paths['killed_first'], 600)
    # resumed from killed_first's checkpoint at iteration 100: one run with it
    note = f'continues {os.path.basename(paths["killed_first"])} at iter 100'
    paths['resumed'] = write(logs / 'log_run_20261206_100100.txt', log_text(
        scratch, {'lr': 4e-2, 'init_from': 'resume'}, [1.95, 1.7], first=100, messages=[note]))
    # and resumed from it a second time: two branches, each sharing the curve up to iteration 100
    paths['branch'] = write(logs / 'log_run_20261206_100200.txt', log_text(
        scratch, {'lr': 5e-2, 'init_from': 'resume'}, [1.9], first=100, messages=[note]))
    age(paths['killed'], 600)  # quiet for 10 minutes: far longer than its gaps between lines
    # many progress lines, to be downsampled
    text = log_text(scratch, {'lr': 3e-2}, [], 'completed')
    body, footer = text.split('=' * 80 + '\nTraining run ended')
    body += ''.join(f'[{now()}] iter {it}: loss {4 - it / 2000 + (it * 7919 % 13) / 20:.4f}, time 1ms\n'
                    for it in range(5000))
    write(paths['many'], body + '=' * 80 + '\nTraining run ended' + footer)
    proc, url = start_serve(logs)
    yield logs, scratch, url, paths
    proc.kill()
    proc.communicate(timeout=30)


@pytest.fixture(scope='module')
def browser():
    sync_api = pytest.importorskip('playwright.sync_api')
    if not os.path.exists(CHROMIUM):
        pytest.skip('needs Chromium (Debian: apt-get install chromium)')
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope='module')
def page(browser, served):
    page = browser.new_page(viewport={'width': 1300, 'height': 1000})
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(served[2])
    page.wait_for_function('() => document.body.dataset.drawn > 0')  # a function: the CSP forbids eval
    yield page
    assert errors == []


def rows(page):
    """{file name: {column: text}} of the run table as the page shows it."""
    return page.evaluate('''() => {
        const heads = [...document.querySelectorAll('#runs thead th')].map(th => th.textContent.replace(/ [▲▼]$/, ''));
        return Object.fromEntries([...document.querySelectorAll('#runs tbody tr')].map(tr => {
            const cells = [...tr.children].map(td => td.textContent);
            return [cells[1], Object.fromEntries(heads.map((h, i) => [h, cells[i]]))];
        }));
    }''')


def wait_cell(page, path, column, text):
    """Wait until the row of the log at path shows text in column."""
    page.wait_for_function('([name, column, text]) => { const heads = [...document.querySelectorAll("#runs thead th")]'
                           '.map(th => th.textContent); const i = heads.findIndex(h => h.startsWith(column));'
                           'return [...document.querySelectorAll("#runs tbody tr")].some(tr =>'
                           'tr.children[1].textContent === name && tr.children[i].textContent === text); }',
                           arg=[os.path.basename(path), column, text], timeout=WAIT)


def get(url, path, host=None):
    """(status, headers, body) of a GET, with the Host header given."""
    m = re.match(r'http://([^:/]+):(\d+)/', url)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=10)
    conn.putrequest('GET', path, skip_host=True)
    conn.putheader('Host', host or f'{m.group(1)}:{m.group(2)}')
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.headers, body


# --------------------------------------------------------------------------- the table

def test_each_run_is_a_row_with_its_status_and_why_it_failed(page, served):
    shown = rows(page)
    paths = served[3]
    assert {os.path.basename(paths[role]) for role in paths if role not in ('killed_first', 'resumed', 'branch')} \
        <= set(shown)
    expect = {'completed': ('completed', '2.5000', '280'), 'failed': ('failed: ValueError: boom', '3.1000', '80'),
              'interrupted': ('interrupted', '-', '-'), 'running': ('running', '2.8000', '180'),
              'killed': ('killed', '2.4500', '180')}
    for role, (status, best, step) in expect.items():
        row = shown[os.path.basename(paths[role])]
        assert (row['status'], row['best val'], row['step']) == (status, best, step), role
        assert re.fullmatch(r'\d+:\d\d:\d\d', row['duration'])
    assert re.fullmatch(r'\d+:\d\d:\d\d', shown[os.path.basename(paths['running'])]['ETA'])  # it has an eta
    assert shown[os.path.basename(paths['completed'])]['ETA'] == ''
    assert shown[os.path.basename(paths['completed'])]['val_bpb'] == f'{2.5 * 1.44:.4f}'


def test_the_table_filters_by_regex_sorts_by_a_column_and_compares_the_selected_runs(page, served):
    paths = served[3]
    page.fill('#filter', r'lr=0\.00[12]$|lr=0\.003')  # config: the first three runs
    names = {os.path.basename(paths[r]) for r in ('completed', 'failed', 'interrupted')}
    page.wait_for_function('n => document.querySelectorAll("#runs tbody tr").length === n', arg=3, timeout=WAIT)
    assert set(rows(page)) == names
    page.click('#runs th[data-key="best_val"]')
    order = [row['best val'] for row in rows(page).values()]
    assert order == ['2.5000', '3.1000', '-']  # a run with none goes last
    page.click('#runs th[data-key="best_val"]')
    assert [row['best val'] for row in rows(page).values()] == ['3.1000', '2.5000', '-']
    page.fill('#filter', 'note=<script>|lr=0.001$')
    page.wait_for_function('() => document.querySelectorAll("#runs tbody tr").length === 2', timeout=WAIT)
    for box in page.query_selector_all('#runs tbody input[type=checkbox]'):
        box.check()
    compare = page.inner_text('#compare')
    assert '<script>window.pwned = 1</script>' in compare and 'lr' in compare and 'note' in compare
    page.click('#clear')
    page.fill('#filter', '')
    assert page.is_hidden('#compare')


def test_two_resumes_of_one_checkpoint_are_two_rows_as_runs_py_has_them_sharing_the_curve_to_the_fork(page, served):
    url, paths = served[2], served[3]
    summary = subprocess.run([sys.executable, os.path.join(ROOT, 'runs.py'), paths['killed_first'], paths['resumed'],
                              paths['branch']], capture_output=True, text=True, timeout=60,
                             env={**os.environ, 'COLUMNS': '250'})
    header, *table = [re.split(r'\s{2,}', line.strip()) for line in summary.stdout.splitlines()]
    expected = {row[0]: dict(zip(header, row)) for row in table}
    assert len(expected) == 2
    shown, sent = rows(page), {r['name']: r for r in json.loads(get(url, '/api/runs')[2])['rows']}
    for name, row in expected.items():
        assert shown[name]['branch of'] == row['branch of'] and shown[name]['best val'] == row['best val']
        series = json.loads(get(url, f'/api/series?id={sent[name]["id"]}')[2])
        # the first log's points up to iteration 100, then the branch's own
        assert series['steps']['it'][:2] == [0, 100] and series['steps']['val'][0] == 3.0
        assert series['progress']['it'][:6] == list(range(0, 100, 20)) + [100]


# --------------------------------------------------------------------------- live

def test_a_line_appended_to_a_log_shows_on_the_page_without_a_reload(page, served):
    path = served[3]['running']
    append(path, f'[{now()}] step 200: train loss 2.1000, val loss 1.7500, lr 0.0005\n')
    wait_cell(page, path, 'best val', '1.7500')
    wait_cell(page, path, 'step', '200')


def test_a_half_written_line_waits_for_its_newline(page, served):
    half, other = served[3]['half'], served[3]['other']
    append(half, f'[{now()}] step 300: train loss 1.6000, val loss 1.5')
    for step in (300, 400):  # the second shows after a whole look at the logs since the half line
        append(other, f'[{now()}] step {step}: train loss 1.9000, val loss 1.8000\n')
        wait_cell(page, other, 'step', str(step))
    row = rows(page)[os.path.basename(half)]
    assert (row['step'], row['best val']) == ('80', '2.2000')
    append(half, '500\n')
    wait_cell(page, half, 'best val', '1.5500')


def test_a_new_log_shows_as_a_new_row(page, served):
    logs, scratch = served[0], served[1]
    path = write(logs / 'log_run_20261206_110000.txt', log_text(scratch, {'lr': 0.5}, [1.25], None))
    wait_cell(page, path, 'best val', '1.2500')
    assert rows(page)[os.path.basename(path)]['status'] == 'running'


def test_a_replaced_or_truncated_log_is_read_again_and_a_quiet_one_shows_killed(page, served):
    replaced, truncated, scratch = served[3]['replaced'], served[3]['truncated'], served[1]
    new = write(scratch / 'new.txt', log_text(scratch, {'lr': 9e-3}, [2.4, 1.45], None))
    age(new, 600)  # its last line 10 minutes ago: the run was killed
    os.replace(new, replaced)
    wait_cell(page, replaced, 'best val', '1.4500')
    wait_cell(page, replaced, 'status', 'killed')
    write(truncated, log_text(scratch, {'lr': 1e-2}, [2.3], None))  # shorter, in place
    wait_cell(page, truncated, 'best val', '2.3000')


def test_a_hidden_tab_stops_its_stream_and_catches_up_when_shown(page, served):
    path = served[3]['hidden']
    with page.expect_event('requestfailed', lambda r: '/api/events' in r.url, timeout=WAIT):
        page.evaluate('''() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
                                 document.dispatchEvent(new Event('visibilitychange')); }''')
    assert page.inner_text('#live') == 'paused while hidden'
    append(path, f'[{now()}] step 400: train loss 1.3000, val loss 1.2000\n')
    page.evaluate('''() => { Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
                             document.dispatchEvent(new Event('visibilitychange')); }''')
    wait_cell(page, path, 'best val', '1.2000')
    page.wait_for_function('() => document.getElementById("live").textContent === "live"', timeout=WAIT)


# --------------------------------------------------------------------------- the charts

def chart_colours(page, chart):
    """The colours of the pixels of a chart's canvas, as #rrggbb."""
    return set(page.evaluate('''chart => {
        const c = document.querySelector(`#chart-${chart} canvas`), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add('#' + [d[i], d[i+1], d[i+2]].map(v => v.toString(16).padStart(2, '0')).join(''));
        return [...seen]; }''', chart))


def test_the_charts_draw_every_run_and_the_selected_on_top_hover_reads_values_and_a_drag_zooms(page, served):
    drawn = int(page.evaluate('() => document.body.dataset.drawn'))
    with_points = [r for r in rows(page).values() if r['step'] != '-']
    assert drawn == len(with_points)
    colour = dict(page.evaluate('() => [...state.rows.values()].map(r => [r.name, r.colour])'))
    assert len(set(colour.values()) & chart_colours(page, 'loss')) >= 5
    # one run selected: its curves drawn whole, the others faint
    picked, other = (os.path.basename(served[3][r]) for r in ('completed', 'failed'))
    page.check(f'#runs tbody tr:has(td:text-is("{picked}")) input')
    page.wait_for_function('() => state.selected.size === 1', timeout=WAIT)
    page.evaluate('() => draw()')
    shown = chart_colours(page, 'loss')
    assert colour[picked] in shown and colour[other] not in shown
    page.click('#clear')
    over = page.query_selector('#chart-progress canvas.over').bounding_box()
    x, y = over['x'] + over['width'] * 0.5, over['y'] + over['height'] * 0.5
    page.mouse.move(x, y)
    tip = page.inner_text('#tip')
    assert tip.startswith('step ') and 'log_run_' in tip and page.is_visible('#tip')
    width = page.evaluate('() => CHARTS[1].view.x1 - CHARTS[1].view.x0')
    page.mouse.down()
    page.mouse.move(x + over['width'] * 0.2, y, steps=4)
    page.mouse.up()
    zoomed = page.evaluate('() => CHARTS[1].view.x1 - CHARTS[1].view.x0')
    assert 0 < zoomed < width / 3
    # the long run's curve, sent thinned, gets the zoomed range's every point
    many = next(r for r in page.evaluate('() => [...state.rows.values()]')
                if r['name'] == os.path.basename(served[3]['many']))
    page.wait_for_function('id => state.zoomed.has(id)', arg=many['id'], timeout=WAIT)
    low, high = page.evaluate('() => state.zoom')
    detail, whole = page.evaluate('id => [state.zoomed.get(id).progress.it, state.series.get(id).progress.it]', many['id'])
    inside = [it for it in range(5000) if low <= it <= high]
    assert set(inside) <= set(detail) and len([it for it in whole if low <= it <= high]) < len(inside)
    page.dblclick('#chart-progress canvas.over')
    assert page.evaluate('() => CHARTS[1].view.x1 - CHARTS[1].view.x0') == width
    # x by time since each run started; y on a log scale
    page.select_option('#x', 't')
    page.select_option('#y', 'log')
    page.evaluate('() => draw()')
    view = page.evaluate('() => [CHARTS[1].view.x1, CHARTS[1].view.y0, CHARTS[1].view.y1]')
    longest = max(max(s['progress']['t'] or [0]) for s in page.evaluate('() => [...state.series.values()]'))
    assert view[0] == longest and -1 < view[1] < view[2] < 1  # log10 of losses between 0.1 and 10
    page.select_option('#x', 'it')
    page.select_option('#y', 'linear')


def test_a_long_curve_is_sent_as_each_stretchs_lowest_and_highest_and_its_last_point(served):
    url, path = served[2], served[3]['many']
    status, _, body = get(url, '/api/runs?smooth=0.9')
    row = next(r for r in json.loads(body)['rows'] if r['name'] == os.path.basename(path))
    status, _, body = get(url, f'/api/series?id={row["id"]}&smooth=0.9')
    series = json.loads(body)
    sent = list(zip(series['progress']['it'], series['progress']['loss']))
    logged = [(it, round(4 - it / 2000 + (it * 7919 % 13) / 20, 4)) for it in range(5000)]
    assert status == 200 and 100 < len(sent) < len(logged) / 2
    assert sent[-1] == logged[-1]
    assert min(logged, key=lambda p: p[1])[1] == min(y for _, y in sent)
    assert max(logged, key=lambda p: p[1])[1] == max(y for _, y in sent)
    # the moving average runs over every logged point, not over those sent
    averages, average, bias = [], 0.0, 1.0
    for _, y in logged:
        average, bias = 0.9 * average + 0.1 * y, bias * 0.9
        averages.append(average / (1 - bias))
    assert series['smooth']['it'][-1] == 4999
    assert series['smooth']['y'][-1] == pytest.approx(averages[-1], rel=1e-4)
    # a zoomed chart asks for a range: every point in it (and one either side), the average as before
    status, _, body = get(url, f'/api/series?id={row["id"]}&smooth=0.9&x=it&from=1000&to=1100')
    detail = json.loads(body)
    assert detail['progress']['it'] == list(range(999, 1102))
    assert detail['smooth']['y'] == pytest.approx([averages[i] for i in detail['smooth']['it']], rel=1e-4)
    assert get(url, f'/api/series?id={row["id"]}&x=up&from=0&to=1')[0] == 400


def test_progress_and_step_lines_read_in_bulk_keep_their_times_across_a_zone_line_as_read_log_has_them(tmp_path):
    """The server reads most lines in bulk, not as LogReader's messages; in pieces as a run appends
    them, or whole, its points and steps are read_log's, each in the zone in force where it was logged."""
    import runs_serve
    from logger import read_log
    lines = []
    for it in range(60):  # the clock goes forward an hour at 01:00 UTC: 01:00 local time is 02:00
        zone, hour = ('+00:00 (GMT)', 0) if it < 30 else ('+01:00 (BST)', 2)
        stamp = f'2026-03-29 {hour:02}:{59 * (hour == 0):02}:{it % 30 * 2:02}'
        if it == 30:
            lines.append(f'[{stamp}] time zone: UTC{zone}')
        lines.append(f'[{stamp}] iter {it}: loss {3 - it / 100:.4f}, time 1.00ms, {it}/60, eta 0:00:{60 - it:02}')
        if it % 10 == 0:
            lines.append(f'[{stamp}] step {it}: train loss {3 - it / 90:.4f}, val loss {3 - it / 80:.4f}, lr 0.001')
    lines.insert(10, f'[2026-03-29 00:59:09] iter 10: loss nan, time 1.00ms')  # no point, as runs.py's curves
    text = log_text(tmp_path, {'lr': 1e-3}, [], None) + '\n'.join(lines) + '\n'
    path = write(tmp_path / 'log_run_20260329_005900.txt', text)
    logged = read_log(path)
    points = [(p[1], p[0].timestamp(), p[2]) for p in logged.progress() if p[2] == p[2]]
    steps = [(s.iter, s.time, s.train_loss, s.val_loss, s.metrics) for s in logged.steps]
    whole, pieces = runs_serve.Log(path), runs_serve.Log(str(tmp_path / 'growing.txt'))
    whole.look()
    data = text.encode()
    for at in range(0, len(data), 333):  # a run appending, a half line at a time
        with open(pieces.path, 'ab') as f:
            f.write(data[at:at + 333])
        pieces.look()
    for log in (whole, pieces):
        assert list(zip(log.iters, log.times, log.losses)) == points
        assert [(s.iter, s.time, s.train_loss, s.val_loss, s.metrics) for s in log.run.steps] == steps
        assert (log.run.gaps, log.run.longest_gap, log.run.last_time) == (logged.gaps, logged.longest_gap, logged.last_time)
    assert points[30][1] - points[29][1] == 2  # 00:59:58 GMT, then 02:00:00 BST: two seconds later
    assert whole.last_progress == lines[-1][22:]


# --------------------------------------------------------------------------- security

def test_a_log_carrying_html_shows_it_as_text_and_runs_no_script(page, served):
    row = rows(page)[os.path.basename(served[3]['html'])]
    assert row['status'] == 'failed: <img src=x onerror="window.pwned = 2">'
    assert '<script>window.pwned = 1</script>' in row['config that differs']
    assert page.evaluate('() => window.pwned') is None
    assert page.evaluate('() => document.querySelectorAll("img").length') == 0
    assert page.evaluate('() => document.scripts.length') == 1  # the page's own


def test_a_foreign_host_header_is_refused_with_403(served):
    url = served[2]
    port = url.rsplit(':', 1)[1].strip('/')
    for host in ('evil.example', f'evil.example:{port}', f'127.0.0.1.evil.example:{port}',
                 f'localhost:{int(port) + 1}'):
        status, headers, body = get(url, '/api/runs', host=host)
        assert status == 403 and b'log_run_' not in body, host
    for host in (f'127.0.0.1:{port}', f'localhost:{port}', 'localhost'):
        status, headers, body = get(url, '/api/runs', host=host)
        assert status == 200 and b'log_run_' in body, host
        assert headers['Content-Security-Policy'].startswith("default-src 'self'")
        assert headers['X-Content-Type-Options'] == 'nosniff'


def test_no_request_reaches_a_file_that_is_not_a_found_log(served):
    logs, url = served[0], served[2]
    secret = os.path.join(os.path.dirname(logs), 'secret.txt')
    for path in ('/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '//' + secret.lstrip('/'),
                 '/serve.js/../../secret.txt', '/api/series?id=../secret.txt',
                 '/api/series?id=' + secret, '/api/series?id=%2e%2e%2fsecret.txt', '/logs/secret.txt'):
        status, headers, body = get(url, path)
        assert status == 404 and b'TOPSECRET' not in body, path
        assert headers['X-Content-Type-Options'] == 'nosniff'
    # and nothing changes anything: there is no other method
    before = sorted(os.listdir(logs))
    m = re.match(r'http://([^:/]+):(\d+)/', url)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=10)
    conn.request('POST', '/api/runs', body=b'{}')
    assert conn.getresponse().status == 501
    assert sorted(os.listdir(logs)) == before


def test_ctrl_c_stops_the_server_with_exit_status_0_and_no_traceback(tmp_path):
    write(tmp_path / 'log_run_20261206_120000.txt', log_text(tmp_path, {}, [2.0]))
    proc, url = start_serve(tmp_path, '--host', '127.0.0.1')
    assert get(url, '/')[0] == 200
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert 'Traceback' not in err
    # --host always warns: the page is open to whoever can reach that address
    assert err.count('warning') == 1 and '--host 127.0.0.1' in err


def test_a_missing_path_is_a_one_line_error_with_exit_status_2(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'runs.py'), 'serve', tmp_path / 'nope'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and 'nope' in r.stderr


@pytest.mark.skipif(shutil.which('ss') is None, reason='needs ss')
def test_it_listens_on_127_0_0_1_only_by_default(served):
    port = served[2].rsplit(':', 1)[1].strip('/')
    listening = subprocess.run(['ss', '-ltnH', f'sport = :{port}'], capture_output=True, text=True).stdout
    assert [line.split()[3] for line in listening.splitlines()] == [f'127.0.0.1:{port}']
