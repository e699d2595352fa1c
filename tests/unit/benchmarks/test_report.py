"""docs/benchmarks.md regenerated from some results keeps the other benchmarks' sections."""

from __future__ import annotations

from benchmarks.report import EXTRA_SECTIONS, ORDER, TITLES, render

# two benchmarks whose sections are only their table
PLAIN = [name for name in ORDER if name not in EXTRA_SECTIONS]


def _result(name: str, value: float) -> dict:
    return {
        "benchmark": name,
        "started": "2026-11-23T19:00:00",
        "machine": {"cpu": "test cpu", "cores": 2, "load_average_1m_at_start": 0.1},
        "results": {"p50": value},
        "baseline": {"p50": 2 * value},
        "ratios": {"p50": 2.0},
        "figures": [{"key": "p50", "label": "frame -> command p50", "unit": "ms"}],
    }


def test_a_benchmark_without_results_keeps_its_last_section_and_its_machine() -> None:
    first, second = PLAIN[0], PLAIN[1]
    page = render({first: _result(first, 1.5), second: _result(second, 7.25)})
    assert "7.25" in page and "test cpu" in page
    again = render({first: _result(first, 3.5)}, previous=page)
    assert "3.5" in again and "1.5" not in again  # the new run replaces its own section
    assert "7.25" in again  # the other keeps its figures, with the date they were measured
    assert again.count(f"## {TITLES[second]}") == 1
    assert "test cpu" in again


def test_without_a_previous_page_a_missing_benchmark_is_not_run() -> None:
    page = render({})
    assert f"Not run yet: `python -m benchmarks.{PLAIN[0]}`." in page
    assert render({}, previous=page) == page  # a page of nothing stays nothing
