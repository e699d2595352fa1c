"""Helpers shared by the benchmarks: percentiles, machine description, JSON results, tables.

Every benchmark reports a list of :class:`Figure`: one measured value of the project beside the
same value measured for the baseline in the same run. :func:`save_result` writes them to
``benchmarks/results/<name>.json`` and :func:`print_table` prints them aligned.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from recording.session import cpu_model

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Figure:
    """One measured figure of the project beside the same figure of the baseline.

    ``key`` names it in the JSON file (``results[key]``, ``baseline[key]``, ``ratios[key]``);
    ``label`` names it in the printed table. ``ratio`` is how many times better the project is
    (baseline / value when lower is better, value / baseline when higher is better).
    """

    key: str
    label: str
    value: float | None
    baseline: float | None
    unit: str = ""
    higher_is_better: bool = False
    goal: str = ""
    compare: bool = True  # False: shown side by side, but "better" makes no sense (no ratio)

    @property
    def ratio(self) -> float | None:
        """Times better than the baseline (> 1: the project wins); None when undefined."""
        if not self.compare or self.value is None or self.baseline is None:
            return None
        better, worse = (
            (self.value, self.baseline) if self.higher_is_better else (self.baseline, self.value)
        )
        if worse == 0:
            return None
        return round(better / worse, 3)


def now_iso() -> str:
    """The local time now, ISO 8601 with the offset (the ``started`` key)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def summarize_ms(samples_ns: Sequence[int] | np.ndarray) -> dict[str, float | int]:
    """Count, mean, p50/p95/p99 and max of durations given in ns, in ms (rounded to 1 us)."""
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if values.size == 0:
        return {"count": 0}
    summary: dict[str, float | int] = {"count": int(values.size)}
    summary["mean"] = round(float(values.mean()), 3)
    for percentile, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        summary[f"p{percentile}"] = round(float(value), 3)
    summary["max"] = round(float(values.max()), 3)
    return summary


def package_version(name: str) -> str | None:
    """An installed package's version, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_description() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, OS, Python and the key packages."""
    description: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "av": package_version("av"),
    }
    if hasattr(os, "getloadavg"):  # other work on the machine disturbs the figures
        description["load_average_1m_at_start"] = round(os.getloadavg()[0], 2)
    try:
        import psutil

        description["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    except ImportError:
        pass
    return description


def describe_machine_line(machine: dict[str, Any]) -> str:
    """The machine in one line, for the top of a printed table."""
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python "
        f"{machine['python']}, numpy {machine['numpy']}, av {machine['av']}"
    )


def save_result(
    name: str,
    figures: Iterable[Figure],
    *,
    started: str,
    machine: dict[str, Any],
    details: dict[str, Any] | None = None,
    baseline_details: dict[str, Any] | None = None,
) -> Path:
    """Write ``benchmarks/results/<name>.json``; return its path.

    ``results``/``baseline``/``ratios`` map each figure's key to its value; ``details`` and
    ``baseline_details`` (raw counts, per-process figures, parameters) go under the key
    ``details`` inside ``results`` and ``baseline``.
    """
    figures = list(figures)
    results: dict[str, Any] = {f.key: f.value for f in figures}
    baseline: dict[str, Any] = {f.key: f.baseline for f in figures}
    if details:
        results["details"] = details
    if baseline_details:
        baseline["details"] = baseline_details
    data = {
        "benchmark": name,
        "machine": machine,
        "started": started,
        "results": results,
        "baseline": baseline,
        "ratios": {f.key: f.ratio for f in figures},
        # How to show each figure (benchmarks/report.py writes docs/benchmarks.md from these).
        "figures": [
            {"key": f.key, "label": f.label, "unit": f.unit, "goal": f.goal} for f in figures
        ],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_number(value: float | None) -> str:
    """A figure for the table: thousands separated, three significant decimals at most."""
    if value is None:
        return "-"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def table_lines(
    figures: Iterable[Figure], project: str = "project", baseline: str = "baseline"
) -> list[str]:
    """The figures as aligned text lines: label, project value, baseline value, ratio, goal."""
    figures = list(figures)
    show_goal = any(f.goal for f in figures)
    header = ["figure", project, baseline, "x better"] + (["goal"] if show_goal else [])
    rows = [header]
    for figure in figures:
        label = f"{figure.label} ({figure.unit})" if figure.unit else figure.label
        ratio = figure.ratio
        row = [
            label,
            format_number(figure.value),
            format_number(figure.baseline),
            "-" if ratio is None else f"{ratio:.2f}",
        ]
        rows.append([*row, figure.goal] if show_goal else row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:4], widths[1:4], strict=True)]
        cells += row[4:]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def print_table(
    title: str,
    figures: Iterable[Figure],
    machine: dict[str, Any],
    *,
    project: str = "project",
    baseline: str = "baseline",
) -> None:
    """Print a title, the machine and the figures beside their baselines."""
    print()
    print(title)
    print(f"machine: {describe_machine_line(machine)}")
    print()
    for line in table_lines(figures, project, baseline):
        print(line)
    print(flush=True)
