"""Small, dependency-free SVG charts for the backtest report: a cumulative-gains (lift)
curve, score distributions by outcome, and churn rate by band or quantile.

Each function returns a complete standalone SVG document (text), readable in any browser
and embeddable with ``<img src=...>``. Colours are chosen to survive greyscale printing
and the common colour-vision deficiencies (blue / orange / grey).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from scoring.i18n import Translator, translator

ENGLISH = translator()

WIDTH = 560
HEIGHT = 340
_MARGIN_LEFT = 58
_MARGIN_RIGHT = 18
_MARGIN_TOP = 50
_MARGIN_BOTTOM = 52
PALETTE = ("#1f5fa8", "#e07b00", "#6b6b6b", "#2a9d5b", "#b8336a")
_FONT = "font-family='Helvetica, Arial, sans-serif'"


def _frame(title: str, x_label: str, y_label: str, body: list[str]) -> str:
    plot_w = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_h = HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
    head = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label='{escape(title)}'>",
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
        f"<text x='{_MARGIN_LEFT}' y='22' {_FONT} font-size='15' font-weight='bold' "
        f"fill='#222'>{escape(title)}</text>",
        f"<text x='{_MARGIN_LEFT + plot_w / 2:.1f}' y='{HEIGHT - 10}' {_FONT} font-size='12' "
        f"text-anchor='middle' fill='#444'>{escape(x_label)}</text>",
        f"<text transform='translate(15,{_MARGIN_TOP + plot_h / 2:.1f}) rotate(-90)' {_FONT} "
        f"font-size='12' text-anchor='middle' fill='#444'>{escape(y_label)}</text>",
        f"<rect x='{_MARGIN_LEFT}' y='{_MARGIN_TOP}' width='{plot_w}' height='{plot_h}' "
        "fill='none' stroke='#bbb'/>",
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"


def _x(v: float, lo: float, hi: float) -> float:
    plot_w = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    return _MARGIN_LEFT + (v - lo) / (hi - lo) * plot_w if hi > lo else _MARGIN_LEFT


def _y(v: float, lo: float, hi: float) -> float:
    plot_h = HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
    return _MARGIN_TOP + plot_h - (v - lo) / (hi - lo) * plot_h if hi > lo else _MARGIN_TOP


def _ticks(lo: float, hi: float, n: int, fmt: str, axis: str,
           t: Translator = ENGLISH) -> list[str]:
    """Tick marks; ``fmt`` "{:.0%}" writes a share as the locale writes a percent."""
    out = []
    for i in range(n + 1):
        v = lo + (hi - lo) * i / n
        label = t.percent(100 * v) if fmt == "{:.0%}" else fmt.format(v)
        if axis == "x":
            x = _x(v, lo, hi)
            y0 = HEIGHT - _MARGIN_BOTTOM
            out.append(f"<line x1='{x:.1f}' y1='{y0}' x2='{x:.1f}' y2='{y0 + 4}' stroke='#888'/>")
            out.append(f"<text x='{x:.1f}' y='{y0 + 17}' {_FONT} font-size='11' "
                       f"text-anchor='middle' fill='#555'>{label}</text>")
        else:
            y = _y(v, lo, hi)
            out.append(f"<line x1='{_MARGIN_LEFT}' y1='{y:.1f}' x2='{WIDTH - _MARGIN_RIGHT}' "
                       f"y2='{y:.1f}' stroke='#eee'/>")
            out.append(f"<text x='{_MARGIN_LEFT - 6}' y='{y + 4:.1f}' {_FONT} font-size='11' "
                       f"text-anchor='end' fill='#555'>{label}</text>")
    return out


def _legend(names: Sequence[str], colours: Sequence[str], dashed: Sequence[bool] = (),
            where: str = "top-left") -> list[str]:
    """A legend inside the plot: ``top-left`` or ``bottom-right`` (where gains curves,
    which run above the diagonal, leave room)."""
    out = []
    widest = max((len(n) for n in names), default=0) * 6.6 + 34
    x = _MARGIN_LEFT + 10 if where == "top-left" else WIDTH - _MARGIN_RIGHT - widest - 6
    y = (_MARGIN_TOP + 14 if where == "top-left"
         else HEIGHT - _MARGIN_BOTTOM - 17 * len(names) + 6)
    out.append(f"<rect x='{x - 6}' y='{y - 14}' width='{widest:.0f}' "
               f"height='{17 * len(names) + 4}' fill='white' fill-opacity='0.85'/>")
    for i, (name, colour) in enumerate(zip(names, colours, strict=True)):
        dash = " stroke-dasharray='5,4'" if i < len(dashed) and dashed[i] else ""
        yy = y + i * 17
        out.append(f"<line x1='{x}' y1='{yy - 4}' x2='{x + 22}' y2='{yy - 4}' "
                   f"stroke='{colour}' stroke-width='3'{dash}/>")
        out.append(f"<text x='{x + 28}' y='{yy}' {_FONT} font-size='12' fill='#222'>"
                   f"{escape(name)}</text>")
    return out


def _legend_row(names: Sequence[str], colours: Sequence[str]) -> list[str]:
    """A one-line legend between the title and the plot."""
    out = []
    x = float(_MARGIN_LEFT)
    y = _MARGIN_TOP - 8
    for name, colour in zip(names, colours, strict=True):
        out.append(f"<rect x='{x:.0f}' y='{y - 9}' width='12' height='10' fill='{colour}'/>")
        out.append(f"<text x='{x + 16:.0f}' y='{y}' {_FONT} font-size='11' fill='#222'>"
                   f"{escape(name)}</text>")
        x += 16 + len(name) * 6.0 + 18
    return out


def gains_chart(
    title: str, curves: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    t: Translator = ENGLISH,
) -> str:
    """Cumulative gains: share of churners caught (y) when contacting the riskiest share
    of accounts (x), one line per model, and the diagonal of a random pick; labels in
    ``t``'s language."""
    body = _ticks(0, 1, 5, "{:.0%}", "x", t) + _ticks(0, 1, 5, "{:.0%}", "y", t)
    body.append(
        f"<line x1='{_x(0, 0, 1):.1f}' y1='{_y(0, 0, 1):.1f}' x2='{_x(1, 0, 1):.1f}' "
        f"y2='{_y(1, 0, 1):.1f}' stroke='#999' stroke-width='1.5' stroke-dasharray='5,4'/>"
    )
    x10 = _x(0.1, 0, 1)
    top = t.pgettext("chart", "top %(share)s", share=t.percent(10))
    body.append(f"<line x1='{x10:.1f}' y1='{_MARGIN_TOP}' x2='{x10:.1f}' "
                f"y2='{HEIGHT - _MARGIN_BOTTOM}' stroke='#d9d9d9' stroke-width='1'/>")
    body.append(f"<text x='{x10 + 3:.1f}' y='{HEIGHT - _MARGIN_BOTTOM - 6}' {_FONT} "
                f"font-size='10' fill='#777'>{escape(top)}</text>")
    names, colours = [], []
    for i, (name, points) in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{_x(px, 0, 1):.1f},{_y(py, 0, 1):.1f}" for px, py in points)
        body.append(f"<polyline points='{path}' fill='none' stroke='{colour}' "
                    "stroke-width='2.5'/>")
        names.append(name)
        colours.append(colour)
    names.append(t.pgettext("chart", "random pick"))
    colours.append("#999")
    body += _legend(names, colours, [False] * (len(names) - 1) + [True], where="bottom-right")
    return _frame(title, t.pgettext("chart", "share of accounts contacted (riskiest first)"),
                  t.pgettext("chart", "share of churners caught"), body)


def distribution_chart(
    title: str, groups: Sequence[tuple[str, Sequence[float]]], lo: float = 0.0,
    hi: float = 100.0, bins: int = 20, x_label: str | None = None,
    t: Translator = ENGLISH,
) -> str:
    """Histograms (share of each group per bin) drawn as outlined step lines so that the
    groups stay readable on top of one another."""
    width = (hi - lo) / bins
    shares: list[list[float]] = []
    for _, values in groups:
        counts = [0] * bins
        for v in values:
            b = min(bins - 1, max(0, int((v - lo) / width)))
            counts[b] += 1
        total = len(values) or 1
        shares.append([c / total for c in counts])
    top = max((max(s) for s in shares if s), default=0.0)
    top = max(0.04, min(1.0, math.ceil(top * 25 + 1e-9) / 25))  # ticks on whole percents
    body = _ticks(lo, hi, 5, "{:.0f}", "x", t) + _ticks(0, top, 4, "{:.0%}", "y", t)
    names, colours = [], []
    for i, ((name, values), share) in enumerate(zip(groups, shares, strict=True)):
        colour = PALETTE[i % len(PALETTE)]
        pts = [f"{_x(lo, lo, hi):.1f},{_y(0, 0, top):.1f}"]
        for b, s in enumerate(share):
            x0, x1 = _x(lo + b * width, lo, hi), _x(lo + (b + 1) * width, lo, hi)
            y = _y(s, 0, top)
            pts.append(f"{x0:.1f},{y:.1f}")
            pts.append(f"{x1:.1f},{y:.1f}")
        pts.append(f"{_x(hi, lo, hi):.1f},{_y(0, 0, top):.1f}")
        body.append(f"<polygon points='{' '.join(pts)}' fill='{colour}' fill-opacity='0.18' "
                    f"stroke='{colour}' stroke-width='2'/>")
        names.append(f"{name} (n={len(values)})")
        colours.append(colour)
    body += _legend(names, colours)
    x_label = t.pgettext("chart", "health score") if x_label is None else x_label
    return _frame(title, x_label, t.pgettext("chart", "share of accounts"), body)


def rate_chart(
    title: str, series: Sequence[tuple[str, Sequence[tuple[str, float | None, float]]]],
    base_rate: float | None = None, x_label: str = "", t: Translator = ENGLISH,
) -> str:
    """Grouped bars: churn rate (y) per category, one bar per series; each bar is labelled
    with its rate and the number of accounts behind it. ``series``: (name, [(category,
    rate or None, accounts)])."""
    categories = [c for c, _, _ in series[0][1]] if series else []
    rates = [r for _, rows in series for _, r, _ in rows if r is not None]
    top = max([*rates, base_rate or 0.0, 0.05])
    top = min(1.0, (int(top * 10) + 1) / 10)
    body = _ticks(0, top, 5, "{:.0%}", "y", t)
    plot_w = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    slot = plot_w / max(1, len(categories))
    bar = slot * 0.7 / max(1, len(series))
    none = t.pgettext("chart", "none")
    for ci, category in enumerate(categories):
        cx = _MARGIN_LEFT + slot * ci + slot / 2
        body.append(f"<text x='{cx:.1f}' y='{HEIGHT - _MARGIN_BOTTOM + 17}' {_FONT} "
                    f"font-size='12' text-anchor='middle' fill='#333'>{escape(category)}</text>")
        for si, (_, rows) in enumerate(series):
            _, rate, count = rows[ci]
            colour = PALETTE[si % len(PALETTE)]
            x0 = cx - slot * 0.35 + si * bar
            if rate is None:
                body.append(f"<text x='{x0 + bar / 2:.1f}' y='{_y(0, 0, top) - 4:.1f}' "
                            f"{_FONT} font-size='10' text-anchor='middle' fill='#999'>"
                            f"{escape(none)}</text>")
                continue
            y = _y(rate, 0, top)
            h = _y(0, 0, top) - y
            body.append(f"<rect x='{x0:.1f}' y='{y:.1f}' width='{bar - 2:.1f}' "
                        f"height='{max(h, 0.5):.1f}' fill='{colour}'/>")
            label = t.percent(100 * rate)
            label = label if len(series) > 1 else f"{label} (n={count:.0f})"
            body.append(f"<text x='{x0 + bar / 2 - 1:.1f}' y='{y - 4:.1f}' {_FONT} "
                        f"font-size='10' text-anchor='middle' fill='#222'>{label}</text>")
    if base_rate is not None:
        y = _y(base_rate, 0, top)
        average = t.pgettext("chart", "average churn %(rate)s", rate=t.percent(100 * base_rate))
        body.append(f"<line x1='{_MARGIN_LEFT}' y1='{y:.1f}' x2='{WIDTH - _MARGIN_RIGHT}' "
                    f"y2='{y:.1f}' stroke='#b8336a' stroke-width='1.5' stroke-dasharray='6,4'/>")
        body.append(f"<text x='{WIDTH - _MARGIN_RIGHT - 4}' y='{y - 5:.1f}' {_FONT} "
                    f"font-size='11' text-anchor='end' fill='#b8336a'>{escape(average)}</text>")
    if len(series) > 1:
        body += _legend_row([n for n, _ in series], PALETTE[: len(series)])
    return _frame(title, x_label, t.pgettext("chart", "churn rate"), body)
