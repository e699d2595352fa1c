"""docs/reliability.md names every fault test, and only tests that exist (anywhere in tests/)."""

from __future__ import annotations

import re

from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT


def _test_names(folder) -> set[str]:
    return {
        name
        for path in folder.rglob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(), flags=re.MULTILINE)
    }


def test_the_fault_table_names_every_fault_test_and_no_other():
    fault_tests = _test_names(ROOT / "tests" / "faults")  # was tests/integration/faults: none
    fault_tests.discard("test_the_fault_table_names_every_fault_test_and_no_other")
    page = (ROOT / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", page))
    assert fault_tests - named == set(), "fault tests missing from docs/reliability.md"
    # A row may also name a unit or integration test outside faults/, as long as it exists.
    assert named - _test_names(ROOT / "tests") == set(), (
        "docs/reliability.md names tests that do not exist"
    )
