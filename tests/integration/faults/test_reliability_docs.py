"""docs/reliability.md names every fault test, and only tests that exist."""

from __future__ import annotations

import re

from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT


def test_the_fault_table_names_every_fault_test_and_no_other():
    tests = {
        name
        for path in (ROOT / "tests" / "integration" / "faults").glob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(), flags=re.MULTILINE)
    }
    tests.discard("test_the_fault_table_names_every_fault_test_and_no_other")
    page = (ROOT / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", page))
    assert tests - named == set(), "fault tests missing from docs/reliability.md"
    assert named - tests == set(), "docs/reliability.md names tests that do not exist"
