"""The comparison report as one self-contained web page: a latency histogram per version and
the paired agreement over time, drawn as inline SVG (no script, no CDN, no plotting library:
the router can serve it and a browser opens it from disk)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_WIDTH, _HEIGHT, _PAD = 520, 200, 36
_COLOURS = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1")


def render_html(report: Mapping[str, Any]) -> str:
    title = f"modelway compare: {report['model']} alias {report['alias']}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;"
        "text-align:right}th:first-child,td:first-child{text-align:left}"
        "figure{display:inline-block;margin:0 2em 2em 0}figcaption{font-weight:600}</style>",
        "</head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{report['records']} records, {escape(str(report.get('first')))} to "
        f"{escape(str(report.get('last')))}</p>",
        _versions_table(report["versions"]),
        "<h2>Latency</h2>",
    ]
    for index, version in enumerate(report["versions"]):
        caption = f"v{version['version']} ({version['role']}): p50 {version['p50_ms']} ms, "
        caption += f"p99 {version['p99_ms']} ms"
        parts.append(
            _figure(caption, _histogram_svg(version["latency_histogram"], _COLOURS[index % 4]))
        )
    parts.append("<h2>Agreement</h2>")
    if not report["pairs"]:
        parts.append("<p>No primary/shadow pairs were captured.</p>")
    for pair in report["pairs"]:
        caption = f"v{pair['primary']} vs shadow v{pair['shadow']}: {pair['compared']} pairs, "
        caption += f"agreement {pair['agreement']}"
        parts.append(_figure(caption, _timeline_svg(pair["timeline"])))
        parts.append(_outputs_table(pair["outputs"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


def _versions_table(versions: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        "<table><tr><th>version</th><th>role</th><th>requests</th><th>error rate</th>"
        "<th>p50 ms</th><th>p99 ms</th><th>drift (max PSI)</th></tr>"
    ]
    for v in versions:
        drift = v.get("drift") or {}
        psi = [
            f"{name}: {d['psi_max']} ({d['level']})"
            for name, d in (drift.get("inputs") or {}).items()
            if d.get("rows")
        ]
        cells = [
            f"v{v['version']}",
            v["role"],
            v["requests"],
            v["error_rate"],
            v["p50_ms"],
            v["p99_ms"],
            "; ".join(psi) or "-",
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _outputs_table(outputs: Sequence[Mapping[str, Any]]) -> str:
    rows = ["<table><tr><th>output</th><th>measure</th><th>rows</th><th>value</th></tr>"]
    for o in outputs:
        value = o.get("agreement", o.get("mean"))
        if o["measure"] == "max_abs_diff":
            value = f"max {o['max']}, mean {o['mean']}"
        elif o["measure"] == "cosine":
            value = f"mean {o['mean']}, min {o['min']}"
        cells = [o["output"], o["measure"], o["rows"], value]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _svg(body: list[str], *, x_label: str, y_label: str) -> str:
    axes = (
        f"<line x1='{_PAD}' y1='{_HEIGHT - _PAD}' x2='{_WIDTH - 8}' y2='{_HEIGHT - _PAD}' "
        "stroke='#555'/>"
        f"<line x1='{_PAD}' y1='8' x2='{_PAD}' y2='{_HEIGHT - _PAD}' stroke='#555'/>"
        f"<text x='{_WIDTH / 2}' y='{_HEIGHT - 6}' text-anchor='middle' font-size='11'>"
        f"{escape(x_label)}</text>"
        f"<text x='10' y='{_HEIGHT / 2}' font-size='11' transform='rotate(-90 10 {_HEIGHT / 2})' "
        f"text-anchor='middle'>{escape(y_label)}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{_HEIGHT}' "
        f"viewBox='0 0 {_WIDTH} {_HEIGHT}' role='img'>{axes}{''.join(body)}</svg>"
    )


def _histogram_svg(histogram: Mapping[str, Any], colour: str) -> str:
    counts, edges = histogram.get("counts") or [], histogram.get("edges") or []
    if not counts:
        return _svg([], x_label="latency (ms)", y_label="requests")
    plot_w, plot_h = _WIDTH - _PAD - 8, _HEIGHT - _PAD - 8
    top = max(counts) or 1
    bar = plot_w / len(counts)
    body = []
    for i, count in enumerate(counts):
        h = plot_h * count / top
        body.append(
            f"<rect x='{_PAD + i * bar:.1f}' y='{_HEIGHT - _PAD - h:.1f}' width='{bar - 1:.1f}' "
            f"height='{h:.1f}' fill='{colour}'><title>{edges[i]}-{edges[i + 1]} ms: {count}"
            "</title></rect>"
        )
    for i in (0, len(edges) // 2, len(edges) - 1):
        body.append(
            f"<text x='{_PAD + i * bar:.1f}' y='{_HEIGHT - _PAD + 14}' font-size='10' "
            f"text-anchor='middle'>{edges[i]}</text>"
        )
    body.append(f"<text x='{_PAD + 4}' y='16' font-size='10'>{top}</text>")
    return _svg(body, x_label="latency (ms)", y_label="requests")


def _timeline_svg(timeline: Sequence[Mapping[str, Any]]) -> str:
    points = [p for p in timeline if p.get("agreement") is not None]
    if not points:
        return _svg([], x_label="time", y_label="agreement")
    plot_w, plot_h = _WIDTH - _PAD - 8, _HEIGHT - _PAD - 8
    step = plot_w / max(1, len(points) - 1)

    def xy(i: int, value: float) -> str:
        return f"{_PAD + i * step:.1f},{_HEIGHT - _PAD - plot_h * value:.1f}"

    line = " ".join(xy(i, float(p["agreement"])) for i, p in enumerate(points))
    body = [f"<polyline fill='none' stroke='{_COLOURS[0]}' stroke-width='2' points='{line}'/>"]
    for i, p in enumerate(points):
        x, y = xy(i, float(p["agreement"])).split(",")
        body.append(
            f"<circle cx='{x}' cy='{y}' r='3' fill='{_COLOURS[0]}'><title>{escape(p['from'])}: "
            f"{p['agreement']} over {p['pairs']} pairs</title></circle>"
        )
    for value in (0.0, 0.5, 1.0):
        tick = _HEIGHT - _PAD - plot_h * value
        body.append(
            f"<text x='{_PAD - 4}' y='{tick + 3:.1f}' font-size='10' text-anchor='end'>"
            f"{value}</text>"
        )
    body.append(
        f"<text x='{_PAD}' y='{_HEIGHT - _PAD + 14}' font-size='10'>"
        f"{escape(points[0]['from'][11:19])}</text>"
        f"<text x='{_WIDTH - 8}' y='{_HEIGHT - _PAD + 14}' font-size='10' text-anchor='end'>"
        f"{escape(points[-1]['to'][11:19])}</text>"
    )
    return _svg(body, x_label="time (UTC)", y_label="agreement")
