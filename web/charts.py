"""Charts drawn on the server as SVG: no CDN, no JavaScript, printable, readable without colour."""

from __future__ import annotations

from markupsafe import Markup, escape

PALETTE = ("#1f5f9e", "#e07b00", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41")
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 54


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def stacked_bars(
    labels: list[str],
    series: dict[str, list[float]],
    title: str,
    series_names: dict[str, str] | None = None,
) -> Markup:
    """Bars per label, stacked by series (e.g. tickets per day by channel), with a legend."""
    series_names = series_names or {}
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar = max(slot * 0.7, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e1e4ea"/>'
        )
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{value:g}</text>'
        )
    for i, label in enumerate(labels):
        x = LEFT + slot * i + (slot - bar) / 2
        y = TOP + plot_h
        for s_index, (name, values) in enumerate(series.items()):
            value = values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{PALETTE[s_index % len(PALETTE)]}">'
                f"<title>{escape(label)} · {escape(series_names.get(name, name))}: {value:g}</title></rect>"
            )
        if len(labels) <= 16 or i % max(len(labels) // 12, 1) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h + 14}" font-size="10" text-anchor="middle">{escape(label)}</text>'
            )
    legend_x = LEFT
    for s_index, name in enumerate(series):
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 18}" width="10" height="10" fill="{PALETTE[s_index % len(PALETTE)]}"/>'
        )
        text = escape(series_names.get(name, name))
        parts.append(f'<text x="{legend_x + 14}" y="{HEIGHT - 9}" font-size="11">{text}</text>')
        legend_x += 24 + 12 * len(str(text))
    parts.append("</svg>")
    return Markup("".join(parts))


def bars(labels: list[str], values: list[float], title: str) -> Markup:
    return stacked_bars(labels, {title: values}, title)
