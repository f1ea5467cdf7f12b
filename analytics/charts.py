"""Server-rendered SVG charts: no JavaScript, no CDN, readable on a phone.

Colours come from CSS classes (``s0``..``s5``) in static/analytics/analytics.css.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

W, H = 480, 220
PAD_L, PAD_R, PAD_T, PAD_B = 52, 14, 12, 36


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}".rstrip("0").rstrip(".") if v else "0"


def _join(parts: list[str]) -> SafeString:
    return mark_safe("".join(parts))  # noqa: S308 - every part was built by format_html


def _n(v: float) -> str:
    return f"{v:.1f}"


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(v))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * magnitude:
            return step * magnitude
    return v


def line_chart(
    title: str, x_labels: Sequence[str], series: dict[str, Sequence[float | None]], unit: str = ""
) -> SafeString:
    """One polyline per series; gaps (None) break the line."""
    values = [v for vs in series.values() for v in vs if v is not None]
    top = _nice_max(max(values, default=0.0))
    n = max(len(x_labels), 1)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(i: int) -> float:
        return PAD_L + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - v / top)

    parts: list[str] = []
    for k in range(5):
        v = top * k / 4
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                PAD_L,
                W - PAD_R,
                _n(y(v)),
                _n(y(v)),
                PAD_L - 6,
                _n(y(v) + 4),
                _fmt(v),
            )
        )
    if x_labels:
        for i in sorted({0, (n - 1) // 2, n - 1}):
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(x(i)),
                    H - PAD_B + 16,
                    x_labels[i],
                )
            )
    for idx, (name, vs) in enumerate(series.items()):
        css = f"s{idx % 6}"
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, val in enumerate(vs):
            if val is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(val):.1f}")
            parts.append(
                format_html(
                    '<circle class="pt {}" cx="{}" cy="{}" r="2.5"><title>{} · {}: {}{}</title></circle>',
                    css,
                    _n(x(i)),
                    _n(y(val)),
                    name,
                    x_labels[i] if i < len(x_labels) else "",
                    _fmt(val),
                    unit,
                )
            )
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(format_html('<polyline class="line {}" fill="none" points="{}"/>', css, " ".join(seg)))
    legend = _join(
        [
            format_html('<span class="key"><span class="swatch s{}"></span>{}</span>', i % 6, name)
            for i, name in enumerate(series)
        ]
    )
    empty = (
        ""
        if values
        else format_html('<text class="tick" x="{}" y="{}" text-anchor="middle">No data</text>', W // 2, H // 2)
    )
    return format_html(
        '<figure class="chart" data-chart="line"><figcaption>{}</figcaption>'
        '<svg viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">{}{}</svg>'
        '<div class="legend">{}</div></figure>',
        title,
        W,
        H,
        title,
        _join(parts),
        empty,
        legend,
    )


def bar_chart(title: str, items: Sequence[tuple[str, float | None]], unit: str = "", css: str = "s0") -> SafeString:
    """Horizontal bars, one per label (long model names stay readable on a phone)."""
    row_h, label_w = 28, 170
    height = max(len(items), 1) * row_h + 8
    top = _nice_max(max((v for _, v in items if v is not None), default=0.0))
    plot_w = W - label_w - 80
    parts: list[str] = []
    for i, (label, v) in enumerate(items):
        y0 = 4 + i * row_h
        width = 0.0 if v is None else plot_w * v / top
        shown = "-" if v is None else f"{_fmt(v)}{unit}"
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            format_html(
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="bar {}" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>'
                '<text class="val" x="{}" y="{}">{}</text>',
                label_w - 6,
                y0 + 16,
                short,
                css,
                label_w,
                y0 + 3,
                _n(width),
                row_h - 8,
                label,
                shown,
                _n(label_w + width + 4),
                y0 + 16,
                shown,
            )
        )
    if not items:
        parts.append(format_html('<text class="tick" x="{}" y="18" text-anchor="middle">No data</text>', W // 2))
    return format_html(
        '<figure class="chart" data-chart="bar"><figcaption>{}</figcaption>'
        '<svg viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">{}</svg></figure>',
        title,
        W,
        height,
        title,
        _join(parts),
    )


__all__ = ["bar_chart", "line_chart"]
