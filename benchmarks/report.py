"""What every benchmark writes besides its table: its raw numbers as JSON and a chart as PNG.

A script builds one ``Row`` per target and concurrency (the baseline among them) and calls
``write_report``; by default both files land in ``docs/figures/`` beside the README's other
figures (``--report-dir`` in the scripts moves them). The chart shows throughput and p99
latency per target, grouped by concurrency, the baseline first (grey) and each other bar
labelled with its ratio to the baseline measured in the same run.

Two runs compare from their JSON (same targets and concurrencies: ratios new / old)::

    .venv/bin/python benchmarks/report.py old.json new.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
SCHEMA = 1


@dataclass(frozen=True)
class Row:
    """One measured target at one concurrency. ``extra``: any other figure of the row."""

    target: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    extra: Mapping[str, Any] = field(default_factory=dict)


def write_report(
    name: str,
    rows: Sequence[Row],
    *,
    baseline: str | None,
    title: str,
    parameters: Mapping[str, Any] | None = None,
    out_dir: Path | None = None,
    off_chart: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Writes ``<name>.json`` and ``<name>.png`` into ``out_dir`` and returns their paths.
    Targets in ``off_chart`` (a load generator's ceiling, say) are in the JSON only."""
    if not rows:
        raise ValueError("a report needs at least one row")
    if baseline is not None and baseline not in {r.target for r in rows}:
        raise ValueError(f"baseline {baseline!r} is not one of the rows' targets")
    out_dir = out_dir or FIGURES
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "schema": SCHEMA,
        "benchmark": name,
        "title": title,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "parameters": dict(parameters or {}),
        "baseline": baseline,
        "rows": [asdict(row) | {"extra": dict(row.extra)} for row in rows],
    }
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    png_path = out_dir / f"{name}.png"
    charted = [row for row in rows if row.target not in off_chart]
    _chart(charted, baseline=baseline, title=title, path=png_path)
    print(f"report: {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    print(f"chart:  {png_path.relative_to(ROOT) if png_path.is_relative_to(ROOT) else png_path}")
    return json_path, png_path


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _chart(rows: Sequence[Row], *, baseline: str | None, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    levels = sorted({r.concurrency for r in rows})
    targets = list(dict.fromkeys(r.target for r in rows))
    if baseline is not None:
        targets.remove(baseline)
        targets.insert(0, baseline)
    by_key = {(r.target, r.concurrency): r for r in rows}
    colours = plt.get_cmap("tab10").colors
    width = 0.8 / len(targets)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    panels = (
        ("requests_per_s", "throughput (requests/s, higher is better)"),
        ("p99_ms", "p99 latency (ms, lower is better)"),
    )
    for axis, (metric, label) in zip(axes, panels, strict=True):
        for index, target in enumerate(targets):
            xs, heights = [], []
            for position, level in enumerate(levels):
                row = by_key.get((target, level))
                if row is not None:
                    xs.append(position + (index - (len(targets) - 1) / 2) * width)
                    heights.append(getattr(row, metric))
            is_base = target == baseline
            bars = axis.bar(
                xs,
                heights,
                width,
                label=f"{target} (baseline)" if is_base else target,
                color="#9e9e9e" if is_base else colours[index % len(colours)],
                hatch="//" if is_base else None,
                edgecolor="white",
            )
            if baseline is not None and not is_base:
                ratios = []
                for x in xs:
                    level = levels[round(x)]
                    base = by_key.get((baseline, level))
                    value = getattr(by_key[(target, level)], metric)
                    base_value = getattr(base, metric) if base else 0
                    ratios.append(f"{value / base_value:.2f}x" if base_value else "")
                axis.bar_label(bars, labels=ratios, fontsize=7, padding=2)
        axis.set_xticks(range(len(levels)), [f"concurrency {c}" for c in levels])
        axis.set_title(label, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
        axis.margins(y=0.15)
    axes[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per (target, concurrency) present in both runs: the figures and new / old."""
    if old.get("benchmark") != new.get("benchmark"):
        raise ValueError(
            f"not the same benchmark: {old.get('benchmark')} vs {new.get('benchmark')}"
        )
    before = {(r["target"], r["concurrency"]): r for r in old["rows"]}

    def ratio(new_value: float, old_value: float) -> str:
        return f"{new_value / old_value:>6.2f}" if old_value else f"{'-':>6}"

    lines = [
        f"{new['benchmark']}: {old.get('created')} ({old.get('commit')}) -> "
        f"{new.get('created')} ({new.get('commit')})",
        f"{'target':<14} {'conc':>4} {'req/s old':>10} {'new':>9} {'x':>6}"
        f"   {'p99 ms old':>10} {'new':>8} {'x':>6}",
    ]
    for row in new["rows"]:
        was = before.get((row["target"], row["concurrency"]))
        if was is None:
            continue
        lines.append(
            f"{row['target']:<14} {row['concurrency']:>4} {was['requests_per_s']:>10.0f} "
            f"{row['requests_per_s']:>9.0f} {ratio(row['requests_per_s'], was['requests_per_s'])}"
            f"   {was['p99_ms']:>10.2f} {row['p99_ms']:>8.2f} {ratio(row['p99_ms'], was['p99_ms'])}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare two benchmark runs (their JSON).")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    try:
        lines = compare(json.loads(args.old.read_text()), json.loads(args.new.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
