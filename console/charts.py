"""Charts drawn on the server as inline SVG: no JavaScript, no library, no CDN."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, AXIS = 960, 170, 18  # viewBox units; the SVG scales to its card's width


def access_ending_svg(days, peak: int) -> SafeString:
    """Stacked bars per day (tokens below, asset grants above); each part links to its filtered list."""
    if not days:
        return SafeString("")
    slot = WIDTH / len(days)
    bar = max(slot - 2, 1)
    scale = (HEIGHT - AXIS - 14) / peak if peak else 0
    parts = []
    for index, day in enumerate(days):
        x = round(index * slot + 1, 1)
        base = HEIGHT - AXIS
        label = day.day.strftime("%a %d %b")
        for count, css, url, what in ((day.tokens, "bar-tokens", day.tokens_url, "token"),
                                      (day.grants, "bar-grants", day.grants_url, "asset grant")):
            if not count:
                continue
            height = max(round(count * scale, 1), 1.5)
            base -= height
            parts.append(format_html(
                '<a href="{}"><rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}{} end</title>'
                "</rect></a>", url, css, x, round(base, 1), round(bar, 1), height, label, count, what,
                "s" if count != 1 else "",
            ))
        if index % 7 == 0:
            parts.append(format_html('<text x="{}" y="{}">{}</text>', x, HEIGHT - 4, day.day.strftime("%d %b")))
    parts.append(format_html('<text x="0" y="10">{} a day at most</text>', peak))
    body = format_html_join("", "{}", ((part,) for part in parts))
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="Access ending per day, next {} days">{}'
        "</svg>", WIDTH, HEIGHT, len(days) - 1, body,
    )
