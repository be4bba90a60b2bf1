// runs.py serve's page: the run table and the curves, kept live by the server's event stream.
// Everything that comes from a log (names, config, statuses) goes into the page as text
// (textContent, title), never as HTML. The charts are drawn by hand on canvas: nothing loads
// from the network.
'use strict';

const COLUMNS = [  // [the row's field, the header, numeric]
  ['name', 'run'], ['branch', 'branch of'], ['status', 'status'], ['step', 'step', true], ['best_val', 'best val', true],
  ['bpb', 'val_bpb', true], ['duration', 'duration', true], ['eta', 'ETA', true],
  ['started', 'started'], ['differs', 'config that differs']];
// each chart's lines: [the series part, the y field, its label, line width, dashes, opacity]
const CHARTS = [
  {id: 'loss', title: 'val loss (solid) and train loss (dashed), at each evaluation', leaveOut: true,
   lines: [['steps', 'val', 'val', 2, [], 1], ['steps', 'train', 'train', 1.3, [5, 3], 1]]},
  {id: 'progress', title: 'loss of each progress line (faint) and its moving average', leaveOut: true,
   lines: [['smooth', 'y', 'average', 1.6, [], 1], ['progress', 'loss', 'loss', 1, [], 0.25]]},
  {id: 'lr', title: 'learning rate', lines: [['steps', 'lr', 'lr', 1.5, [], 1]]},
  {id: 'bpb', title: 'val_bpb (bits per byte)', lines: [['steps', 'bpb', 'val_bpb', 2, [], 1]]}];
const LEAVE_OUT = 0.1;  // the loss axis leaves out each chart's first 10% of x, as runs.py's plot
const MARGIN = {left: 58, right: 14, top: 8, bottom: 26};
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

const state = {version: 0, keys: [], rows: new Map(), order: [], series: new Map(), trs: new Map(),
  selected: new Set(), sort: null, dir: 1, filter: null, x: 'it', log: false, smooth: 0.8, zoom: null,
  zoomed: new Map()};  // zoomed: the detail of the zoomed range, for the runs sent thinned
const ZOOM_RUNS = 20;
const LIVE_POINTS = 8000;  // a curve that grows live past this many points is sent again, thinned  // the detail is asked for this many runs at most: the selected, or the first shown
let stream = null, loading = null, pending = [], drawQueued = false;

const $ = id => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// ---------------------------------------------------------------- data from the server

async function load() {
  if (loading) return loading;
  loading = (async () => {
    const response = await fetch('/api/runs?smooth=' + state.smooth);
    const data = await response.json();
    state.version = data.v;
    state.keys = data.keys;
    state.rows = new Map(data.rows.map(r => [r.id, r]));
    state.order = data.rows.map(r => r.id);
    state.series = new Map(data.series.map(s => [s.id, s]));
    state.zoomed.clear();
    for (const id of state.selected) if (!state.rows.has(id)) state.selected.delete(id);
    $('where').textContent = data.title;
  })();
  try { await loading; } finally { loading = null; }
  const queued = pending;
  pending = [];
  for (const update of queued) apply(update);
  render();
}

function connect() {
  if (stream) stream.close();
  stream = new EventSource('/api/events?since=' + state.version);
  stream.onopen = () => { $('live').textContent = 'live'; $('live').className = 'on'; };
  stream.onmessage = event => apply(JSON.parse(event.data));
  stream.onerror = () => {  // the server went away: try again, from scratch, in a second
    stream.close();
    stream = null;
    $('live').textContent = 'disconnected';
    $('live').className = '';
    setTimeout(() => { if (!document.hidden && !stream) start(); }, 1000);
  };
}

function disconnect() {
  if (stream) stream.close();
  stream = null;
  $('live').textContent = 'paused while hidden';
  $('live').className = '';
}

function apply(update) {
  if (loading) { pending.push(update); return; }
  if (update.v <= state.version) return;
  if (update.reload || update.stale.length) { load(); return; }
  state.version = update.v;
  for (const row of update.rows) state.rows.set(row.id, row);
  let grown = false;
  for (const [id, points] of Object.entries(update.points)) grown = extend(state.series.get(id), points) || grown;
  if (grown) load();  // a live curve grew past what a thinned one holds: thin it again
  render();
}

// the new points at the end of a run's curves; true once they hold more than LIVE_POINTS
function extend(series, points) {
  if (!series) return false;
  for (const part of ['steps', 'progress']) {
    for (const [key, values] of Object.entries(points[part])) series[part][key].push(...values);
  }
  series.n += points.progress.loss.length;
  const grown = series.progress.it.length > LIVE_POINTS;
  if (!series.ema) return grown;  // no smoothing asked for
  // the moving average goes on over every new point, from where the server's ended
  const w = series.weight, p = points.progress;
  let [average, bias] = series.ema;
  for (let i = 0; i < p.loss.length; i++) {
    average = w * average + (1 - w) * p.loss[i];
    bias *= w;
    series.smooth.it.push(p.it[i]);
    series.smooth.t.push(p.t[i]);
    series.smooth.y.push(average / (1 - bias));
  }
  series.ema = [average, bias];
  return grown;
}

// ---------------------------------------------------------------- the table

function shownRows() {
  const rows = state.order.map(id => state.rows.get(id));
  return state.filter ? rows.filter(r => state.filter.test(r.name + ' ' + r.config)) : rows;
}

// the keys whose values differ between rows: the server's differing keys, narrowed to these rows
function differingKeys(rows) {
  return state.keys.filter(k => new Set(rows.map(r => k in r.differs ? 'v' + r.differs[k] : '')).size > 1);
}

function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

function sortValue(row, key) {
  if (key === 'duration') return row.duration.split(':').reduce((a, b) => a * 60 + Number(b), 0);
  if (key === 'eta') return row.eta_at;
  if (key === 'started') return row.t0;
  if (key === 'differs') return Object.entries(row.differs).map(([k, v]) => k + '=' + v).join(' ');
  return row[key];
}

function header() {
  const tr = document.querySelector('#runs thead tr');
  tr.replaceChildren(el('th', ''));
  for (const [key, title] of COLUMNS) {
    const th = el('th', title);
    th.dataset.key = key;
    th.addEventListener('click', () => {
      state.dir = state.sort === key ? -state.dir : 1;
      state.sort = key;
      render();
    });
    tr.append(th);
  }
}

function rowElement(id) {
  let tr = state.trs.get(id);
  if (tr) return tr;
  tr = document.createElement('tr');
  tr.dataset.id = id;
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.addEventListener('change', () => {
    box.checked ? state.selected.add(id) : state.selected.delete(id);
    render();
  });
  const first = el('td');
  first.append(box);
  tr.append(first);
  for (const [key, , numeric] of COLUMNS) tr.append(el('td', '', numeric ? 'n ' + key : key));
  state.trs.set(id, tr);
  return tr;
}

function fill(tr, row, keys, now) {
  tr.firstChild.firstChild.checked = state.selected.has(row.id);
  tr.classList.toggle('sel', state.selected.has(row.id));
  const cell = Object.fromEntries(COLUMNS.map(([key], i) => [key, tr.children[i + 1]]));
  const swatch = el('span', undefined, 'sw');
  swatch.style.background = row.colour;
  cell.name.replaceChildren(swatch, document.createTextNode(row.name));
  cell.branch.textContent = row.branch;
  cell.status.textContent = row.why || row.status;
  cell.status.title = row.why || row.status;
  cell.status.className = 'why ' + row.status;
  cell.step.textContent = row.step === null ? '-' : String(row.step);
  cell.best_val.textContent = row.best_val === null ? '-' : row.best_val.toFixed(4);
  cell.bpb.textContent = row.bpb === null ? '-' : row.bpb.toFixed(4);
  cell.duration.textContent = row.duration;
  cell.eta.textContent = row.eta_at === null ? '' : duration(row.eta_at - now);
  cell.started.textContent = row.started;
  cell.differs.textContent = keys.filter(k => k in row.differs).map(k => k + '=' + row.differs[k]).join(' ');
}

function renderTable() {
  const rows = shownRows(), keys = differingKeys(rows), now = Date.now() / 1000;
  if (state.sort) {
    const key = state.sort, dir = state.dir;
    rows.sort((a, b) => {
      const x = sortValue(a, key), y = sortValue(b, key);
      if (x === null || x === undefined) return 1;  // a run without the value goes last either way
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }
  for (const th of document.querySelectorAll('#runs th')) {
    th.className = th.dataset.key && th.dataset.key === state.sort ? (state.dir > 0 ? 'asc' : 'desc') : '';
  }
  const trs = rows.map(row => {
    const tr = rowElement(row.id);
    fill(tr, row, keys, now);
    return tr;
  });
  document.querySelector('#runs tbody').replaceChildren(...trs);
  // the branch column only where some run is a branch (two resumed from one checkpoint)
  $('runs').classList.toggle('nobranch', !rows.some(r => r.branch));
  for (const id of state.trs.keys()) if (!state.rows.has(id)) state.trs.delete(id);
  renderCompare(rows);
}

function renderCompare(shown) {
  const picked = shown.filter(r => state.selected.has(r.id));
  const section = $('compare');
  section.hidden = picked.length < 2;
  if (section.hidden) return;
  const keys = differingKeys(picked);
  const head = el('tr');
  head.append(el('th', 'config'), ...picked.map(r => el('th', r.name)));
  section.querySelector('thead').replaceChildren(head);
  const body = keys.length ? keys.map(k => {
    const tr = el('tr');
    tr.append(el('td', k), ...picked.map(r => el('td', k in r.differs ? r.differs[k] : '-')));
    return tr;
  }) : [el('tr')];
  if (!keys.length) body[0].append(el('td', 'the selected runs have the same config'));
  section.querySelector('tbody').replaceChildren(...body);
}

// ---------------------------------------------------------------- the charts

function niceTicks(lo, hi, count, time) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  let step;
  if (time) step = TIME_STEPS.find(s => s >= raw) || Math.ceil(raw / 86400) * 86400;
  else {
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    step = [1, 2, 2.5, 5, 10].map(s => s * magnitude).find(s => s >= raw);
  }
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return ticks;
}

function tickText(v, step, axis) {
  if (axis === 't') return duration(v);
  if (axis === 'log') return Number((10 ** v).toPrecision(3)).toString();
  if (step >= 1) return Math.abs(v) >= 10000 ? v / 1000 + 'k' : String(Math.round(v));
  return v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) + (step * 10 ** -Math.floor(Math.log10(step)) % 1 ? 1 : 0));
}

function setupCharts() {
  for (const chart of CHARTS) {
    const box = el('div', undefined, 'chart');
    box.id = 'chart-' + chart.id;
    chart.canvas = el('canvas');
    chart.over = el('canvas', undefined, 'over');
    box.append(el('h3', chart.title), chart.canvas, chart.over);
    $('charts').append(box);
    listen(chart);
  }
}

// each line of each shown run: {row, xs, ys, label, width, dash, alpha}
function linesOf(chart, rows) {
  const out = [];
  for (const row of rows) {
    const series = (state.zoom && state.zoomed.get(row.id)) || state.series.get(row.id);
    if (!series) continue;
    for (const [part, field, label, width, dash, alpha] of chart.lines) {
      const data = series[part], ys = data[field];
      if (!ys || !ys.length) continue;
      const xs = state.x === 't' ? data.t : data.it;  // t: seconds since the run started
      out.push({row, xs, ys, label, width, dash, alpha});
    }
  }
  return out;
}

function scaled(y) {
  return state.log ? (y > 0 ? Math.log10(y) : null) : y;
}

function drawChart(chart, rows) {
  const canvas = chart.canvas, dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  for (const c of [canvas, chart.over]) {
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const lines = linesOf(chart, rows);
  let x0 = Infinity, x1 = -Infinity;
  for (const line of lines) {
    if (line.xs.length) { x0 = Math.min(x0, line.xs[0]); x1 = Math.max(x1, line.xs[line.xs.length - 1]); }
  }
  if (state.zoom) [x0, x1] = state.zoom;
  const from = state.zoom || !chart.leaveOut ? x0 : x0 + LEAVE_OUT * (x1 - x0);
  let y0 = Infinity, y1 = -Infinity;
  for (const line of lines) {
    for (let i = 0; i < line.xs.length; i++) {
      const x = line.xs[i], y = line.ys[i] === null ? null : scaled(line.ys[i]);
      if (y === null || x < from || x > x1) continue;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  chart.view = null;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#57606a';
  if (!(y1 >= y0) || !(x1 >= x0)) {
    ctx.fillText(rows.length ? 'nothing logged yet' : 'no runs', MARGIN.left + 8, 24);
    return 0;
  }
  if (x1 === x0) x1 = x0 + 1;
  const pad = (y1 - y0) * 0.05 || Math.abs(y1) * 0.05 || 0.1;
  y0 -= pad;
  y1 += pad;
  const w = width - MARGIN.left - MARGIN.right, h = height - MARGIN.top - MARGIN.bottom;
  const px = x => MARGIN.left + (x - x0) / (x1 - x0) * w;
  const py = y => MARGIN.top + (y1 - y) / (y1 - y0) * h;
  chart.view = {x0, x1, y0, y1, px, py, lines, w, h};
  // grid and labels
  ctx.strokeStyle = '#eaeef2';
  ctx.lineWidth = 1;
  const xt = niceTicks(x0, x1, Math.max(2, Math.floor(w / 90)), state.x === 't');
  const yt = niceTicks(y0, y1, 5, false);
  ctx.textAlign = 'center';
  for (const x of xt) {
    ctx.beginPath(); ctx.moveTo(px(x), MARGIN.top); ctx.lineTo(px(x), MARGIN.top + h); ctx.stroke();
    ctx.fillText(tickText(x, xt[1] - xt[0] || 1, state.x === 't' ? 't' : 'x'), px(x), height - 8);
  }
  ctx.textAlign = 'right';
  for (const y of yt) {
    ctx.beginPath(); ctx.moveTo(MARGIN.left, py(y)); ctx.lineTo(MARGIN.left + w, py(y)); ctx.stroke();
    ctx.fillText(tickText(y, yt[1] - yt[0] || 0.1, state.log ? 'log' : 'y'), MARGIN.left - 5, py(y) + 4);
  }
  // the curves: the selected runs on top, the others faint while some are selected
  ctx.save();
  ctx.beginPath();
  ctx.rect(MARGIN.left, MARGIN.top, w, h);
  ctx.clip();
  const some = state.selected.size > 0;
  const order = lines.filter(l => !state.selected.has(l.row.id)).concat(lines.filter(l => state.selected.has(l.row.id)));
  for (const line of order) {
    const picked = state.selected.has(line.row.id);
    ctx.strokeStyle = line.row.colour;
    ctx.globalAlpha = some && !picked ? 0.12 * line.alpha : line.alpha;
    ctx.lineWidth = picked ? line.width + 1 : line.width;
    ctx.setLineDash(line.dash);
    ctx.beginPath();
    let down = false;
    for (let i = 0; i < line.xs.length; i++) {
      const y = line.ys[i] === null ? null : scaled(line.ys[i]);
      if (y === null) { down = false; continue; }
      const X = px(line.xs[i]), Y = py(y);
      down ? ctx.lineTo(X, Y) : ctx.moveTo(X, Y);
      down = true;
    }
    ctx.stroke();
  }
  ctx.restore();
  ctx.strokeStyle = '#8c959f';
  ctx.setLineDash([]);
  ctx.beginPath(); ctx.moveTo(MARGIN.left, MARGIN.top); ctx.lineTo(MARGIN.left, MARGIN.top + h);
  ctx.lineTo(MARGIN.left + w, MARGIN.top + h); ctx.stroke();
  return new Set(lines.map(l => l.row.id)).size;
}

// hover: the value of the nearest point of each run under the cursor; drag: zoom; double-click: all
function listen(chart) {
  const over = chart.over;
  let dragFrom = null;
  const at = event => event.clientX - over.getBoundingClientRect().left;
  const clear = () => over.getContext('2d').clearRect(0, 0, over.width, over.height);
  over.addEventListener('mousemove', event => {
    const v = chart.view;
    if (!v) return;
    const dpr = window.devicePixelRatio || 1, ctx = over.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    clear();
    const mx = at(event), my = event.clientY - over.getBoundingClientRect().top;
    if (dragFrom !== null) {
      ctx.fillStyle = 'rgba(9, 105, 218, 0.12)';
      ctx.fillRect(Math.min(dragFrom, mx), v.py(v.y1), Math.abs(mx - dragFrom), v.h);
      return;
    }
    const x = v.x0 + (mx - MARGIN.left) / v.w * (v.x1 - v.x0);
    const some = state.selected.size > 0, near = [];
    for (const line of v.lines) {
      if (some && !state.selected.has(line.row.id)) continue;
      const i = nearest(line.xs, x);
      const y = i < 0 || line.ys[i] === null ? null : scaled(line.ys[i]);
      if (y === null) continue;
      near.push({line, i, d: Math.abs(v.py(y) - my), X: v.px(line.xs[i]), Y: v.py(y)});
    }
    near.sort((a, b) => a.d - b.d);
    const shown = near.slice(0, 8);
    ctx.strokeStyle = '#8c959f';
    ctx.beginPath(); ctx.moveTo(mx, v.py(v.y1)); ctx.lineTo(mx, v.py(v.y0)); ctx.stroke();
    for (const p of shown) {
      ctx.fillStyle = p.line.row.colour;
      ctx.beginPath(); ctx.arc(p.X, p.Y, 3.5, 0, 7); ctx.fill();
    }
    const tip = $('tip');
    if (!shown.length) { tip.hidden = true; return; }
    const xname = state.x === 't' ? 'time ' + duration(x) : 'step ' + Math.round(x);
    tip.textContent = [xname].concat(shown.map(p => {
      const at = state.x === 't' ? duration(p.line.xs[p.i]) : p.line.xs[p.i];
      return `${p.line.row.name}  ${p.line.label} ${Number(p.line.ys[p.i].toPrecision(5))} at ${at}`;
    })).join('\n');
    tip.hidden = false;
    tip.style.left = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 4) + 'px';
    tip.style.top = event.clientY + 14 + 'px';
  });
  over.addEventListener('mouseleave', () => { clear(); $('tip').hidden = true; dragFrom = null; });
  over.addEventListener('mousedown', event => { dragFrom = at(event); });
  over.addEventListener('mouseup', event => {
    const v = chart.view, from = dragFrom;
    dragFrom = null;
    clear();
    if (!v || from === null || Math.abs(at(event) - from) < 5) return;
    const toX = p => v.x0 + (p - MARGIN.left) / v.w * (v.x1 - v.x0);
    zoom([toX(Math.min(from, at(event))), toX(Math.max(from, at(event)))]);
  });
  over.addEventListener('dblclick', () => zoom(null));
}

// a zoomed range gets the detail that a long run's curve was sent without: the server downsamples
// that range alone
function zoom(range) {
  state.zoom = range;
  state.zoomed.clear();
  draw();
  if (!range) return;
  const picked = shownRows().filter(r => !state.selected.size || state.selected.has(r.id));
  const thinned = picked.filter(r => { const s = state.series.get(r.id); return s && s.n > s.progress.it.length; });
  for (const row of thinned.slice(0, ZOOM_RUNS)) {
    const x = state.x;
    fetch(`/api/series?id=${row.id}&smooth=${state.smooth}&x=${x}&from=${range[0]}&to=${range[1]}`)
      .then(r => r.json()).then(detail => {
        if (state.zoom !== range || state.x !== x) return;  // zoomed elsewhere meanwhile
        state.zoomed.set(row.id, detail);
        render();
      });
  }
}

function nearest(xs, x) {  // xs ascending
  if (!xs.length) return -1;
  let lo = 0, hi = xs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    xs[mid] < x ? lo = mid + 1 : hi = mid;
  }
  return lo > 0 && x - xs[lo - 1] < xs[lo] - x ? lo - 1 : lo;
}

function draw() {
  const rows = shownRows();
  let drawn = 0;
  for (const chart of CHARTS) drawn = Math.max(drawn, drawChart(chart, rows));
  document.body.dataset.drawn = drawn;  // how many runs have a curve on the page
}

function render() {
  renderTable();
  if (!drawQueued) {
    drawQueued = true;
    requestAnimationFrame(() => { drawQueued = false; draw(); document.body.dataset.version = state.version; });
  }
}

// ---------------------------------------------------------------- the controls

function controls() {
  const filter = $('filter');
  filter.addEventListener('input', () => {
    try {
      state.filter = filter.value ? new RegExp(filter.value, 'i') : null;
      filter.classList.remove('bad');
    } catch (e) {
      filter.classList.add('bad');  // a regex being typed: keep the last good one
    }
    render();
  });
  $('x').addEventListener('change', () => { state.x = $('x').value; zoom(null); render(); });
  $('y').addEventListener('change', () => { state.log = $('y').value === 'log'; render(); });
  const smooth = $('smooth');
  smooth.value = state.smooth;
  $('smooth-out').textContent = state.smooth;
  let timer = null;
  smooth.addEventListener('input', () => {
    $('smooth-out').textContent = smooth.value;
    clearTimeout(timer);
    timer = setTimeout(() => { state.smooth = Number(smooth.value); load(); }, 150);
  });
  $('clear').addEventListener('click', () => { state.selected.clear(); render(); });
  window.addEventListener('resize', () => render());
  // a hidden tab stops its stream; shown again, it catches up from where it was
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') disconnect();
    else start();
  });
  // the ETA of a running run counts down between updates
  setInterval(() => {
    if (document.visibilityState === 'visible' && [...state.rows.values()].some(r => r.eta_at !== null)) renderTable();
  }, 1000);
}

// load the runs, then follow the stream; a failed load goes on to the stream, whose error tries again
function start() {
  load().then(connect, connect);
}

header();
setupCharts();
controls();
start();
