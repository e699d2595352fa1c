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


def _series(name: str, values: list[float], goals: dict[str, list[bool | None]]) -> dict:
    runs = []
    for value in values:
        run = _result(name, value)
        runs.append(run)
    return {
        "benchmark": f"series_{name}",
        "series_of": name,
        "label": "200fps",
        "arguments": ["--fps", "200"],
        "machine": runs[0]["machine"],
        "started": "2026-11-24T10:00:00",
        "runs": runs,
        "goals_met": {
            text: {"met": sum(ok is True for ok in each), "runs": len(each), "each": each}
            for text, each in goals.items()
        },
    }


def test_a_variant_and_a_series_get_sections_under_their_benchmark_and_are_kept() -> None:
    variant = _result("latency_test_200fps", 4.25)
    series = _series("latency_test", [5.5, 6.5], {"board p50 <= 6.0 ms": [True, False]})
    page = render(
        {
            "latency_test": _result("latency_test", 9.0),
            "latency_test_200fps": variant,
            "series_latency_test_200fps": series,
        }
    )
    base = page.index(f"## {TITLES['latency_test']}\n")
    assert page.index(f"## {TITLES['latency_test']}: 200fps\n") > base
    series_at = page.index(f"## {TITLES['latency_test']}: series of runs (200fps)\n")
    assert "| run 1 | run 2 |" in page[series_at:]
    assert "5.500 / 11" in page[series_at:]  # app / baseline of run 1
    assert "| board p50 <= 6.0 ms | yes | **no** | 1 of 2 |" in page
    # a later page made from other results keeps both sections, whole
    again = render({"latency_test": _result("latency_test", 8.0)}, previous=page)
    assert "4.250" in again and "| board p50 <= 6.0 ms | yes | **no** | 1 of 2 |" in again
    assert again.count(f"## {TITLES['latency_test']}: 200fps\n") == 1
