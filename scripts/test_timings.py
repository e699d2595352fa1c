r"""Print what the test suite costs: the slowest tests and the seconds per area, from JUnit reports.

The test command of README.md (and ``.ci/run``) writes one JUnit XML report per tier::

    .test-reports/default.xml   (pytest -m "not slow" ... --junitxml=.test-reports/default.xml)
    .test-reports/slow.xml      (pytest -m slow ... --junitxml=.test-reports/slow.xml)

Then::

    python scripts/test_timings.py                      # the reports of the last run
    python scripts/test_timings.py a.xml b.xml --top 50

Each test case's time is pytest's total of its set-up, call and tear-down (a module fixture's
set-up counts to the first test that uses it). The seconds are the workers' summed seconds, not
the wall-clock time of a run on several workers. Beside them, the test's CPU seconds (its
process and the processes it started and waited for; the ``cpu_s`` property tests/conftest.py
adds, absent on Windows): a test's wall-clock time grows with what else runs, its CPU time
much less, so ``--by cpu`` compares runs made at different loads. The figures are for choosing
what to make cheaper: a test never reads them.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / ".test-reports"

#: The areas of the suite, first match wins: (area, file patterns relative to the repository).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gpu", ("tests/gpu/*",)),
    ("verify", ("tests/*test_verify*",)),
    ("replay", ("tests/*replay*",)),
    (
        "gui",
        (
            "tests/unit/app/gui/*",
            "tests/unit/app/display/*",
            "tests/*test_app_window*",
            "tests/*test_window*",
        ),
    ),
    ("model formats", ("tests/unit/pose/test_pose_*", "tests/unit/pose/test_bundled_model*")),
    ("training", ("tests/unit/offline/training/*",)),
    ("integration sessions", ("tests/integration/*",)),
    ("fault sessions", ("tests/faults/*",)),
    ("unit", ("tests/unit/*",)),
)


@dataclass(frozen=True)
class Case:
    """One test case of a report: its file, its id within the file, seconds and outcome."""

    file: str
    name: str
    seconds: float
    outcome: str
    cpu_seconds: float | None = None

    @property
    def node_id(self) -> str:
        """The id pytest prints (``file::name``)."""
        return f"{self.file}::{self.name}"


def file_of(classname: str) -> str:
    """Return the test file of a JUnit ``classname`` (``tests.unit.test_x`` or ``...test_x.Cls``).

    The module is the last dotted part that starts with ``test_`` (pytest's file pattern);
    classes start with ``Test``. A name without one is taken as a path as it stands.
    """
    parts = classname.split(".")
    modules = [i for i, part in enumerate(parts) if part.startswith("test_")]
    if not modules:
        return "/".join(parts) + ".py" if classname else "(unknown)"
    last = modules[-1]
    return "/".join(parts[: last + 1]) + ".py"


#: The JUnit property that holds a test's CPU seconds (tests/conftest.py writes it).
CPU_PROPERTY = "cpu_s"


def _cpu_seconds(case: ET.Element) -> float | None:
    for prop in case.iter("property"):
        if prop.get("name") == CPU_PROPERTY:
            return float(prop.get("value", "nan"))
    return None


def _outcome(case: ET.Element) -> str:
    for outcome in ("failure", "error", "skipped"):
        if case.find(outcome) is not None:
            return "failed" if outcome == "failure" else outcome
    return "passed"


def read_cases(reports: Iterable[Path]) -> list[Case]:
    """Every test case of the reports, with its file worked out from its class name."""
    cases = []
    for report in reports:
        for case in ET.parse(report).iter("testcase"):
            classname = case.get("classname", "")
            file = file_of(classname)
            module = file.removesuffix(".py").replace("/", ".")
            inner = classname.removeprefix(module).lstrip(".")
            name = case.get("name", "")
            cases.append(
                Case(
                    file=file,
                    name=f"{inner.replace('.', '::')}::{name}" if inner else name,
                    seconds=float(case.get("time", 0.0) or 0.0),
                    outcome=_outcome(case),
                    cpu_seconds=_cpu_seconds(case),
                )
            )
    return cases


def area_of(file: str) -> str:
    """Return the area of a test file (``AREAS``, first match), else its folder."""
    for area, patterns in AREAS:
        if any(fnmatch.fnmatch(file, pattern) for pattern in patterns):
            return area
    return str(Path(file).parent)


def _measure(case: Case, by: str) -> float:
    """Return the seconds ``by`` names: ``wall`` (pytest's) or ``cpu`` (0 where not counted)."""
    return case.seconds if by == "wall" else case.cpu_seconds or 0.0


def seconds_by(cases: Iterable[Case], key: str, by: str = "wall") -> list[tuple[str, float, int]]:
    """Sum the seconds by ``area`` or ``file``: (name, seconds, tests), most seconds first."""
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for case in cases:
        group = area_of(case.file) if key == "area" else case.file
        seconds[group] += _measure(case, by)
        counts[group] += 1
    return sorted(
        ((group, seconds[group], counts[group]) for group in seconds), key=lambda r: -r[1]
    )


def _cpu_column(seconds: float | None) -> str:
    return f"{seconds:9.1f} cpu" if seconds is not None else f"{'-':>9} cpu"


def report(cases: list[Case], top: int, by: str = "wall") -> str:
    """Return the text printed: the slowest tests, the seconds per area, the slowest files.

    ``by`` (``wall`` or ``cpu``) is what the lists are ordered and the areas and files summed by.
    """
    total = sum(case.seconds for case in cases)
    counted = [case.cpu_seconds for case in cases if case.cpu_seconds is not None]
    lines = [f"{len(cases)} tests, {total:.0f} s in all (the workers' seconds summed)"]
    if counted:
        lines.append(f"{sum(counted):.0f} CPU s ({len(counted)} of the tests counted)")
    lines += ["", f"The {top} slowest tests{' in CPU seconds' if by == 'cpu' else ''}:"]
    for case in sorted(cases, key=lambda c: -_measure(c, by))[:top]:
        cpu = _cpu_column(case.cpu_seconds) if counted else ""
        lines.append(f"{case.seconds:9.1f} s{cpu}  {case.outcome:<7}  {case.node_id}")
    unit = "CPU seconds" if by == "cpu" else "Seconds"
    whole = sum(_measure(case, by) for case in cases)
    lines += ["", f"{unit} per area:"]
    for area, seconds, count in seconds_by(cases, "area", by):
        share = 100 * seconds / whole if whole else 0.0
        lines.append(f"{seconds:9.1f} s  {share:5.1f} %  {count:5d} tests  {area}")
    lines += ["", f"The {top} slowest files{' in CPU seconds' if by == 'cpu' else ''}:"]
    for file, seconds, count in seconds_by(cases, "file", by)[:top]:
        lines.append(f"{seconds:9.1f} s  {count:5d} tests  {file}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Read the reports given (else those of the last run) and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "reports",
        nargs="*",
        type=Path,
        help=f"pytest --junitxml reports (default: {REPORTS.relative_to(ROOT)}/*.xml)",
    )
    parser.add_argument("--top", type=int, default=30, help="how many tests and files to list")
    parser.add_argument(
        "--by",
        choices=("wall", "cpu"),
        default="wall",
        help="order and sum by pytest's seconds (wall) or by the tests' CPU seconds (cpu)",
    )
    args = parser.parse_args(argv)
    reports = args.reports or sorted(REPORTS.glob("*.xml"))
    if not reports:
        print(
            f"no reports: run the tests with --junitxml (README.md's test command writes "
            f"{REPORTS.relative_to(ROOT)}/default.xml and slow.xml)",
            file=sys.stderr,
        )
        return 2
    missing = [str(path) for path in reports if not path.is_file()]
    if missing:
        print(f"no such report: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(report(read_cases(reports), args.top, args.by))
    return 0


if __name__ == "__main__":
    sys.exit(main())
