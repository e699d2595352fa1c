"""scripts/test_timings.py: the slowest tests and the seconds per area, read from JUnit reports.

A small report written here, in the form pytest's ``--junitxml`` writes (a test in a class, a
parametrized one, a skipped and a failed one, two tiers' reports), is read back exactly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import PROJECT_ROOT

DEFAULT_TIER = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4" time="30.0">
<testcase classname="tests.unit.pose.test_pose_dlc3" name="test_parity[onnxruntime]" time="12.5"/>
<testcase classname="tests.unit.pose.test_pose_dlc3" name="test_parity[pytorch]" time="0.5"/>
<testcase classname="tests.faults.test_refusals.TestModels" name="test_named" time="7.25">
<failure message="assert 1 == 2">boom</failure></testcase>
<testcase classname="tests.unit.core.test_digest" name="test_sha" time="0.01">
<skipped message="no data">skip</skipped></testcase>
</testsuite></testsuites>
"""
SLOW_TIER = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="2" time="90.0">
<testcase classname="tests.integration.test_verify_record" name="test_tampered" time="60.0"/>
<testcase classname="tests.integration.test_stream" name="test_session" time="20.0"/>
</testsuite></testsuites>
"""


@pytest.fixture(scope="module")
def timings() -> ModuleType:
    path = PROJECT_ROOT / "scripts" / "test_timings.py"
    spec = importlib.util.spec_from_file_location("test_timings_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def reports(tmp_path: Path) -> list[Path]:
    default, slow = tmp_path / "default.xml", tmp_path / "slow.xml"
    default.write_text(DEFAULT_TIER, encoding="utf-8")
    slow.write_text(SLOW_TIER, encoding="utf-8")
    return [default, slow]


def test_each_case_is_read_with_its_file_time_and_outcome(
    timings: ModuleType, reports: list[Path]
) -> None:
    cases = {case.node_id: case for case in timings.read_cases(reports)}
    assert sorted(cases) == [
        "tests/faults/test_refusals.py::TestModels::test_named",
        "tests/integration/test_stream.py::test_session",
        "tests/integration/test_verify_record.py::test_tampered",
        "tests/unit/core/test_digest.py::test_sha",
        "tests/unit/pose/test_pose_dlc3.py::test_parity[onnxruntime]",
        "tests/unit/pose/test_pose_dlc3.py::test_parity[pytorch]",
    ]
    named = cases["tests/faults/test_refusals.py::TestModels::test_named"]
    assert (named.file, named.seconds, named.outcome) == (
        "tests/faults/test_refusals.py",
        7.25,
        "failed",
    )
    assert cases["tests/unit/core/test_digest.py::test_sha"].outcome == "skipped"
    assert cases["tests/integration/test_stream.py::test_session"].outcome == "passed"


def test_areas_sum_their_files_first_rule_first(timings: ModuleType, reports: list[Path]) -> None:
    cases = timings.read_cases(reports)
    by_area = {area: (s, n) for area, s, n in timings.seconds_by(cases, "area")}
    assert by_area == {
        "verify": (60.0, 1),  # an integration file, counted once, to its first area
        "integration sessions": (20.0, 1),
        "model formats": (13.0, 2),
        "fault sessions": (7.25, 1),
        "unit": (0.01, 1),
    }


def test_the_printout_lists_the_slowest_first_and_cuts_at_top(
    timings: ModuleType, reports: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert timings.main([*map(str, reports), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 tests, 100 s in all")
    slowest = out.split("The 2 slowest tests:\n")[1].split("\n\n")[0].splitlines()
    assert slowest == [
        "     60.0 s  passed   tests/integration/test_verify_record.py::test_tampered",
        "     20.0 s  passed   tests/integration/test_stream.py::test_session",
    ]
    areas = out.split("Seconds per area:\n")[1].split("\n\n")[0].splitlines()
    assert areas[0] == "     60.0 s   59.8 %      1 tests  verify"  # of 100.26 s
    assert len(areas) == 5
    files = out.split("The 2 slowest files:\n")[1].splitlines()
    assert files == [
        "     60.0 s      1 tests  tests/integration/test_verify_record.py",
        "     20.0 s      1 tests  tests/integration/test_stream.py",
    ]


def test_a_missing_report_is_named(
    timings: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert timings.main([str(tmp_path / "none.xml")]) == 2
    assert "none.xml" in capsys.readouterr().err


def test_the_class_name_gives_the_file(timings: ModuleType) -> None:
    assert timings.file_of("tests.unit.test_x") == "tests/unit/test_x.py"
    assert timings.file_of("tests.unit.test_x.TestY") == "tests/unit/test_x.py"
    assert timings.file_of("tests.unit.test_x.TestY.TestZ") == "tests/unit/test_x.py"
