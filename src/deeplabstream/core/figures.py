"""A measured figure beside its baseline, and the aligned table benchmarks and reports print."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured figure beside the baseline's; ``ratio``: how many times better ours is."""

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


def format_number(value: float | None) -> str:
    """Format a figure for the table: thousands separated, three significant decimals at most."""
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
    """Return the figures as aligned lines: label, project value, baseline value, ratio, goal."""
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
