"""
runs.py report: training runs as one self-contained HTML page.

Inline CSS and SVG only: no script, no font, no image, nothing from the network. The page opens
from a file, offline, with JavaScript off, and prints. Standard library only.
"""
import datetime
import html
import math

from logger import format_value

WIDTH, HEIGHT = 1080, 440                     # the chart's drawing, in CSS pixels
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 12, 36     # room for the axis labels
CURVE_POINTS = 24000   # progress points drawn in all, spread over the runs: 400 runs stay under 2 MB
MIN_POINTS = 60        # and at least this many for each run
MAX_LEGEND = 20        # the chart's legend and dots on the val curve: for this many runs at most
OPEN_DETAILS = 3       # where each run came from: shown open for this many runs at most

CSS = '''
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1f2328; max-width: 1140px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
p { margin: 6px 0; }
.meta, figcaption, dt { color: #57606a; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eaeef2; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; position: sticky; top: 0; }
td.n { text-align: right; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 7px; }
.completed { color: #1a7f37; } .failed, .killed { color: #cf222e; }
.interrupted, .terminated { color: #9a6700; } .running { color: #0969da; }
code, dd { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
figure { margin: 0; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-size: 12px; fill: #57606a; }
svg path { fill: none; }
.grid { stroke: #eaeef2; } .axis { stroke: #8c959f; }
.run path { stroke-linejoin: round; }
.run .raw { stroke-width: 1; opacity: .22; } .run .avg { stroke-width: 1.3; opacity: .75; }
.run .train { stroke-width: 1.6; stroke-dasharray: 5 3; } .run .val { stroke-width: 2.4; }
.run .dots { stroke-width: 6; stroke-linecap: round; }
.run:hover path { stroke-width: 3; opacity: 1; }
ul.legend { list-style: none; padding: 0; margin: 6px 0; }
details { border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 10px; margin: 6px 0; }
summary { cursor: pointer; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0 8px 17px; }
dd { margin: 0; overflow-wrap: anywhere; }
h3 { font-size: 14px; margin: 10px 0 0 17px; }
'''


def esc(value):
    return html.escape(str(value))


def render(title, chains, header, rows, keys, drawn, limits, colors, smooth, leave_out, origins):
    """The page. rows: the summary's cells per run; drawn: runs.curves() per run; origins: for each
    run, for each of its logs, (label, text) pairs of where it came from."""
    swatch = [f'<span class="sw" style="background:{c}"></span>' for c in colors]
    now = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
    parts = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f'<title>{esc(title)}</title><style>{CSS}</style></head><body>',
             f'<h1>{esc(title)}</h1><p class="meta">{len(chains)} run{"s" * (len(chains) != 1)}, '
             f'written {now} by <code>runs.py report</code></p>',
             '<h2>Loss</h2>', chart(chains, drawn, limits, colors, smooth, leave_out, keys),
             '<h2>Runs</h2>', summary_table(header, rows, swatch),
             '<h2>Config that differs</h2>', config_table(chains, keys, swatch),
             '<h2>Where each run came from</h2>', origin_list(chains, header, rows, origins, swatch),
             '</body></html>\n']
    return '\n'.join(parts)


def summary_table(header, rows, swatch):
    numeric = {'duration', 'steps', 'last val', 'best val', 'best bpb'}
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f'<th>{esc(h)}</th>' for h in header]
    out.append('</tr></thead><tbody>')
    for row, sw in zip(rows, swatch):
        cells = [f'<td>{sw}{esc(row[0])}</td>']
        for h, cell in zip(header[1:], row[1:]):
            cls = ' class="n"' if h in numeric else f' class="{esc(cell)}"' if h == 'status' else ''
            cells.append(f'<td{cls}>{esc(cell)}</td>')
        out.append('<tr>' + ''.join(cells) + '</tr>')
    out.append('</tbody></table></div>')
    return ''.join(out)


def config_table(chains, keys, swatch):
    if not keys:
        return '<p>Every run has the same config.</p>' if len(chains) > 1 else \
            '<p>One run: its whole config is under "Where each run came from".</p>'
    out = ['<div class="scroll"><table><thead><tr><th>run</th>']
    out += [f'<th>{esc(k)}</th>' for k in keys]
    out.append('</tr></thead><tbody>')
    for chain, sw in zip(chains, swatch):
        cells = ''.join(f'<td>{esc(format_value(chain.config[k])) if k in chain.config else "-"}</td>' for k in keys)
        out.append(f'<tr><td>{sw}{esc(chain.name)}</td>{cells}</tr>')
    out.append('</tbody></table></div>')
    return ''.join(out)


def origin_list(chains, header, rows, origins, swatch):
    out = []
    for chain, row, logs, sw in zip(chains, rows, origins, swatch):
        cell = dict(zip(header, row))
        name, duration, state, steps = cell['run'], cell['duration'], cell['status'], cell['steps']
        out.append(f'<details{" open" if len(chains) <= OPEN_DETAILS else ""}><summary>{sw}<b>{esc(name)}</b>: '
                   f'<span class="{esc(state)}">{esc(state)}</span>, {esc(duration)}, {esc(steps)} steps</summary>')
        for i, items in enumerate(logs):
            if len(logs) > 1:
                out.append(f'<h3>{"first run" if i == 0 else f"resumed, attempt {i + 1}"}</h3>')
            out.append('<dl>' + ''.join(f'<dt>{esc(label)}</dt><dd>{esc(text)}</dd>' for label, text in items)
                       + '</dl>')
        if len(chains) == 1:
            config = ' '.join(f'{k}={format_value(v)}' for k, v in sorted(chain.config.items()))
            out.append(f'<dl><dt>config</dt><dd>{esc(config)}</dd></dl>')
        out.append('</details>')
    return '\n'.join(out)


# ---------------------------------------------------------------------- the chart

def nice_ticks(lo, hi, count):
    """Round numbers between lo and hi, about count of them."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(s * magnitude for s in (1, 2, 2.5, 5, 10) if s * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_text(value, step):
    if step >= 1:
        return f'{value / 1000:g}k' if abs(value) >= 10000 else f'{value:g}'
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f'{value:.{decimals + (step * 10 ** decimals % 1 > 0)}f}'


def envelope(points, buckets):
    """At most 2 * buckets points: the lowest and the highest of each bucket, in order, so that a
    noisy curve keeps its spread."""
    if len(points) <= 2 * buckets:
        return points
    size = len(points) / buckets
    out = []
    for b in range(buckets):
        chunk = points[int(b * size):int((b + 1) * size)]
        low, high = min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])
        out += sorted({low, high})
    return out


def thinned(points, count):
    """At most about count points, evenly apart, keeping the last: for a smooth curve."""
    if len(points) <= count:
        return points
    stride = math.ceil(len(points) / count)
    return points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])


def chart(chains, drawn, limits, colors, smooth, leave_out, keys):
    xs = [x for c in drawn for name in ('val', 'train', 'progress') for x, _ in c[name]]
    if not xs or limits is None:
        return '<p>No losses logged yet.</p>'
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    y0, y1 = limits
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(points):
        return ' '.join(f'{LEFT + (x - x0) / (x1 - x0) * plot_w:.1f} {TOP + (y1 - y) / (y1 - y0) * plot_h:.1f}'
                        for x, y in points)

    out = [f'<figure><svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
           f'role="img" aria-label="loss against iteration">',
           # curves leave the top, not the sides: a dot on the last evaluation shows whole
           f'<defs><clipPath id="area"><rect x="{LEFT - 5}" y="{TOP}" width="{plot_w + 10}" '
           f'height="{plot_h + 5}"/></clipPath></defs>']
    x_ticks, y_ticks = nice_ticks(x0, x1, 8), nice_ticks(y0, y1, 6)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 0.1
    for x in x_ticks:
        px = LEFT + (x - x0) / (x1 - x0) * plot_w
        out.append(f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>'
                   f'<text x="{px:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{tick_text(x, x_step)}</text>')
    for y in y_ticks:
        py = TOP + (y1 - y) / (y1 - y0) * plot_h
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py:.1f}" y2="{py:.1f}"/>'
                   f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{tick_text(y, y_step)}</text>')
    out.append(f'<path class="axis" d="M{LEFT} {TOP}V{TOP + plot_h}H{LEFT + plot_w}"/>'
               f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">iteration</text>'
               f'<text transform="translate(13 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">loss</text>')
    out.append('<g clip-path="url(#area)">')
    budget = max(MIN_POINTS, CURVE_POINTS // len(chains))
    dots = len(chains) <= MAX_LEGEND
    for chain, c, color in zip(chains, drawn, colors):
        out.append(f'<g class="run" stroke="{color}"><title>{esc(chain.name)}</title>')
        if c['progress']:
            raw = envelope(c['progress'], budget // 4) if smooth else envelope(c['progress'], budget // 2)
            out.append(f'<path class="raw" d="M{xy(raw)}"/>')
        if c['smoothed']:
            out.append(f'<path class="avg" d="M{xy(thinned(c["smoothed"], budget // 2))}"/>')
        if c['train']:
            out.append(f'<path class="train" d="M{xy(c["train"])}"/>')
        if c['val']:
            out.append(f'<path class="val" d="M{xy(c["val"])}"/>')
            if dots:
                out.append('<path class="dots" d="' + ''.join(f'M{xy([p])}h0' for p in c['val']) + '"/>')
        out.append('</g>')
    out.append('</g></svg>')
    caption = ('val loss: thick line' + (' with a dot at each evaluation' if dots else '')
               + '; train loss at evaluations: dashed; the loss of each progress line: faint'
               + (f', and its moving average (weight {smooth})' if smooth else '') + '. '
               f'The loss axis shows each run after its first {leave_out:.0%} of iterations; '
               'the higher losses before that go off the top.')
    out.append(f'<figcaption>{esc(caption)}</figcaption>')
    if dots:
        out.append('<ul class="legend">' + ''.join(
            f'<li><span class="sw" style="background:{color}"></span>{esc(chain.name)} '
            f'<code>{esc(" ".join(f"{k}={format_value(chain.config[k])}" for k in keys if k in chain.config))}</code></li>'
            for chain, color in zip(chains, colors)) + '</ul>')
    out.append('</figure>')
    return '\n'.join(out)
