r"""Write ``tests/durations.json``: each test file's seconds, from JUnit XML reports of a run.

    python -m pytest -m "not slow" -n 2 --dist loadfile --junitxml=default.xml
    python -m pytest -m slow -n 2 --dist loadfile --junitxml=slow.xml
    python scripts/test_durations.py default.xml slow.xml

``tests/conftest.py`` hands the files to pytest-xdist's workers longest first, so that the two
workers of a CI machine finish together instead of one waiting on the other's last long file.
The figures only order the files: a stale or missing entry never fails a test.
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "durations.json"


def test_file_of(classname: str) -> str | None:
    """Return the file of a JUnit ``classname`` (``tests.unit.test_x`` or ``...test_x.Class``)."""
    parts = classname.split(".")
    while parts:
        candidate = Path(*parts).with_suffix(".py")
        if (ROOT / candidate).is_file():
            return candidate.as_posix()
        parts.pop()
    return None


def seconds_per_file(reports: list[Path]) -> dict[str, float]:
    """Sum every test case's time (set-up, call and tear-down) by its file."""
    seconds: dict[str, float] = defaultdict(float)
    for report in reports:
        for case in ET.parse(report).iter("testcase"):
            file = test_file_of(case.get("classname", ""))
            if file is not None:
                seconds[file] += float(case.get("time", 0.0))
    return {file: round(total, 1) for file, total in sorted(seconds.items())}


def main() -> None:
    """Read the reports given, write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="pytest --junitxml reports")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    figures = seconds_per_file(args.reports)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"{args.out}: {len(figures)} files, {sum(figures.values()):.0f} s")


if __name__ == "__main__":
    main()
