"""Small server-side SVG charts for ``crossroads ui`` (inline in the page: no JavaScript, no CDN).

Stacked bars of decisions per target over time and histograms on the routers page; eval plots (curves
and grouped bars) on the evals pages. Every bar carries ``data-*`` attributes with its numbers and a
``<title>`` tooltip, so a test (or a screen reader) reads the chart's values, not its pixels.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PALETTE", "histogram_svg", "lines_svg", "grouped_bars_svg", "stacked_series_svg"]

PALETTE = ["#457b9d", "#e07a1f", "#2a9d8f", "#b5179e", "#8d99ae", "#e9c46a", "#6a4c93", "#d62828", "#52b788", "#264653"]


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _open(w: int, h: int, cls: str, label: str) -> str:
    return (f'<svg class="chart {cls}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'role="img" aria-label="{_e(label)}" font-family="system-ui, sans-serif" font-size="10">')


def stacked_series_svg(series: Mapping[str, Any], *, width: int = 560, height: int = 150) -> str:
    """Decisions per target per time bucket as stacked bars. ``series``: ``start`` (epoch s), ``width``
    (bucket seconds), ``buckets``, ``targets`` [(name, counts per bucket)]."""
    nb = int(series.get("buckets") or 0)
    targets: Sequence[tuple[str, Sequence[int]]] = series.get("targets") or []
    if not nb or not targets:
        return ""
    totals = [sum(c[i] for _, c in targets) for i in range(nb)]
    top = max(totals) or 1
    left, bottom, top_pad = 34, 18, 6
    pw, ph = width - left - 4, height - bottom - top_pad
    bw = pw / nb
    out = [_open(width, height, "series", "decisions per target over time")]
    out.append(f'<text x="{left - 4}" y="{top_pad + 8}" text-anchor="end">{top}</text>'
               f'<text x="{left - 4}" y="{top_pad + ph}" text-anchor="end">0</text>'
               f'<line x1="{left}" y1="{top_pad + ph}" x2="{left + pw}" y2="{top_pad + ph}" stroke="#9aa5b1"/>')
    start, w = float(series["start"]), float(series["width"])
    for i in range(nb):
        y = float(top_pad + ph)
        t0 = dt.datetime.fromtimestamp(start + i * w).strftime("%Y-%m-%d %H:%M:%S")
        for k, (name, counts) in enumerate(targets):
            n = counts[i]
            if not n:
                continue
            h = n / top * ph
            y -= h
            out.append(f'<rect class="seg" data-bucket="{i}" data-target="{_e(name)}" data-count="{n}" x="{left + i * bw + 0.5:.1f}" '
                       f'y="{y:.1f}" width="{max(bw - 1, 0.5):.1f}" height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                       f'<title>{_e(name)}: {n} ({t0} + {w:g} s)</title></rect>')
    fmt = "%H:%M:%S" if w < 60 else "%H:%M" if w < 86400 else "%m-%d"
    for i in (0, nb - 1) if nb > 1 else (0,):
        anchor = "start" if i == 0 else "end"
        x = left + (i * bw if i == 0 else (i + 1) * bw)
        out.append(f'<text x="{x:.1f}" y="{height - 4}" text-anchor="{anchor}">'
                   f'{dt.datetime.fromtimestamp(start + (i if i == 0 else i + 1) * w).strftime(fmt)}</text>')
    out.append("</svg>")
    legend = "".join(f'<span class="legend-item"><i style="background:{PALETTE[k % len(PALETTE)]}"></i>{_e(n)}</span>'
                     for k, (n, _) in enumerate(targets))
    return "".join(out) + f'<div class="legend">{legend}</div>'


def histogram_svg(hist: Mapping[str, Any], *, label: str, width: int = 270, height: int = 120) -> str:
    """A histogram (``counts``, ``edges``) as bars; each bar has ``data-lo``/``data-hi``/``data-count``."""
    counts: Sequence[int] = hist.get("counts") or []
    edges: Sequence[float] = hist.get("edges") or []
    if not counts or not sum(counts):
        return ""
    top = max(counts)
    left, bottom, top_pad = 30, 18, 14
    pw, ph = width - left - 4, height - bottom - top_pad
    bw = pw / len(counts)
    out = [_open(width, height, "hist", label),
           f'<text x="{left}" y="10" font-weight="600">{_e(label)}</text>',
           f'<text x="{left - 4}" y="{top_pad + 8}" text-anchor="end">{top}</text>',
           f'<line x1="{left}" y1="{top_pad + ph}" x2="{left + pw}" y2="{top_pad + ph}" stroke="#9aa5b1"/>']
    for i, n in enumerate(counts):
        h = n / top * ph
        out.append(f'<rect class="bin" data-lo="{edges[i]:.6g}" data-hi="{edges[i + 1]:.6g}" data-count="{n}" '
                   f'x="{left + i * bw + 0.5:.1f}" y="{top_pad + ph - h:.1f}" width="{max(bw - 1, 0.5):.1f}" height="{h:.1f}" '
                   f'fill="#457b9d"><title>[{_fmt(edges[i])}, {_fmt(edges[i + 1])}): {n}</title></rect>')
    out.append(f'<text x="{left}" y="{height - 4}">{_fmt(edges[0])}</text>'
               f'<text x="{left + pw}" y="{height - 4}" text-anchor="end">{_fmt(edges[-1])}</text></svg>')
    return "".join(out)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log and lo > 0:
        return [10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    step = (hi - lo) / 4 or 1.0
    return [lo + i * step for i in range(5)]


def lines_svg(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str,
              logx: bool = False, width: int = 520, height: int = 300) -> str:
    """Curves (or single points) per name, with axes, ticks and a legend."""
    pts = [(x, y) for s in series.values() for x, y in s if x is not None and y is not None
           and math.isfinite(x) and math.isfinite(y) and (not logx or x > 0)]
    if not pts:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if logx:
        x0, x1 = math.log10(x0), math.log10(x1)
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    left, right, top_pad, bottom = 46, 130, 22, 34
    pw, ph = width - left - right, height - top_pad - bottom

    def px(x: float) -> float:
        return left + ((math.log10(x) if logx else x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top_pad + ph - (y - y0) / (y1 - y0) * ph

    out = [_open(width, height, "lines", title), f'<text x="{left}" y="14" font-weight="600">{_e(title)}</text>',
           f'<rect x="{left}" y="{top_pad}" width="{pw}" height="{ph}" fill="none" stroke="#c5ccd3"/>']
    for t in _ticks(10 ** x0 if logx else x0, 10 ** x1 if logx else x1, logx):
        if (10 ** x0 if logx else x0) - 1e-12 <= t <= (10 ** x1 if logx else x1) + 1e-12:
            out.append(f'<text x="{px(t):.1f}" y="{top_pad + ph + 12}" text-anchor="middle">{_fmt(t)}</text>')
    for t in _ticks(y0, y1, False):
        out.append(f'<text x="{left - 4}" y="{py(t) + 3:.1f}" text-anchor="end">{_fmt(t)}</text>'
                   f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + pw}" y2="{py(t):.1f}" stroke="#eef1f5"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">{_e(xlabel)}</text>'
               f'<text x="12" y="{top_pad + ph / 2}" transform="rotate(-90 12 {top_pad + ph / 2})" text-anchor="middle">{_e(ylabel)}</text>')
    for k, (name, s) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        good = sorted((x, y) for x, y in s if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
                      and (not logx or x > 0))
        if len(good) > 1:
            d = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(good))
            out.append(f'<path class="curve" data-name="{_e(name)}" d="{d}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        for x, y in good if len(good) <= 60 else ():
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{2.5 if len(good) > 1 else 4}" fill="{color}">'
                       f'<title>{_e(name)}: ({_fmt(x)}, {_fmt(y)})</title></circle>')
        ly = top_pad + 10 + k * 14
        out.append(f'<rect x="{left + pw + 8}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{left + pw + 22}" y="{ly}">{_e(name[:18])}</text>')
    out.append("</svg>")
    return "".join(out)


def grouped_bars_svg(values: Mapping[str, Mapping[str, float | None]], *, title: str, width: int = 560,
                     height: int = 260) -> str:
    """Bars per router (groups) and metric (colours): ``values[router][metric]``."""
    routers = list(values)
    metrics = list(dict.fromkeys(m for r in routers for m in values[r]))
    nums = [v for r in routers for v in values[r].values() if v is not None and math.isfinite(v)]
    if not routers or not metrics or not nums:
        return ""
    lo, hi = min(0.0, *nums), max(0.0, *nums) or 1.0
    left, top_pad, bottom = 46, 22, 48
    pw, ph = width - left - 140, height - top_pad - bottom
    gw = pw / len(routers)
    bw = gw * 0.8 / len(metrics)

    def py(v: float) -> float:
        return top_pad + ph - (v - lo) / (hi - lo) * ph

    out = [_open(width, height, "bars", title), f'<text x="{left}" y="14" font-weight="600">{_e(title)}</text>',
           f'<line x1="{left}" y1="{py(0):.1f}" x2="{left + pw}" y2="{py(0):.1f}" stroke="#9aa5b1"/>',
           f'<text x="{left - 4}" y="{py(hi) + 3:.1f}" text-anchor="end">{_fmt(hi)}</text>',
           f'<text x="{left - 4}" y="{py(lo) + 3:.1f}" text-anchor="end">{_fmt(lo)}</text>']
    for i, r in enumerate(routers):
        for j, m in enumerate(metrics):
            v = values[r].get(m)
            if v is None or not math.isfinite(v):
                continue
            y, h = min(py(v), py(0)), abs(py(v) - py(0))
            out.append(f'<rect class="metric-bar" data-router="{_e(r)}" data-metric="{_e(m)}" data-value="{v:.6g}" '
                       f'x="{left + i * gw + gw * 0.1 + j * bw:.1f}" y="{y:.1f}" width="{max(bw - 1, 0.5):.1f}" height="{h:.1f}" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"><title>{_e(r)} {_e(m)}: {_fmt(v)}</title></rect>')
        out.append(f'<text x="{left + i * gw + gw / 2:.1f}" y="{top_pad + ph + 14}" text-anchor="middle">{_e(r[:16])}</text>')
    for j, m in enumerate(metrics):
        ly = top_pad + 10 + j * 14
        out.append(f'<rect x="{left + pw + 8}" y="{ly - 8}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
                   f'<text x="{left + pw + 22}" y="{ly}">{_e(m[:20])}</text>')
    out.append("</svg>")
    return "".join(out)
