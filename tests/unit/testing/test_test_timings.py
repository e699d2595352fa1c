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


WITH_CPU = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="3" time="90.0">
<testcase classname="tests.integration.test_stream" name="test_waits" time="60.0">
<properties><property name="cpu_s" value="2.50" /></properties></testcase>
<testcase classname="tests.unit.pose.test_pose_dlc3" name="test_converts" time="20.0">
<properties><property name="cpu_s" value="19.25" /></properties></testcase>
<testcase classname="tests.unit.core.test_digest" name="test_sha" time="0.5"/>
</testsuite></testsuites>
"""


def test_cpu_seconds_are_read_and_order_the_lists_when_asked(
    timings: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "slow.xml"
    report.write_text(WITH_CPU, encoding="utf-8")
    cpu = {case.name: case.cpu_seconds for case in timings.read_cases([report])}
    assert cpu == {"test_waits": 2.5, "test_converts": 19.25, "test_sha": None}
    assert timings.main([str(report), "--top", "2", "--by", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "22 CPU s (2 of the tests counted)"
    slowest = out.split("The 2 slowest tests in CPU seconds:\n")[1].split("\n\n")[0].splitlines()
    assert slowest == [
        "     20.0 s     19.2 cpu  passed   tests/unit/pose/test_pose_dlc3.py::test_converts",
        "     60.0 s      2.5 cpu  passed   tests/integration/test_stream.py::test_waits",
    ]
    areas = out.split("CPU seconds per area:\n")[1].split("\n\n")[0].splitlines()
    assert areas[0] == "     19.2 s   88.5 %      1 tests  model formats"  # of 21.75 CPU s
    assert timings.main([str(report), "--top", "1"]) == 0  # by pytest's seconds
    assert "60.0 s      2.5 cpu" in capsys.readouterr().out.split("slowest tests:\n")[1]


def test_the_conftest_writes_each_tests_cpu_seconds_into_the_report(
    timings: ModuleType, tmp_path: Path
) -> None:
    """A real pytest run of a test that burns CPU in a child process: its report holds the time."""
    import subprocess

    test_file = tmp_path / "test_burn.py"
    test_file.write_text(
        "import subprocess, sys\n"
        "def test_burn():\n"
        "    subprocess.run([sys.executable, '-c', 'sum(i * i for i in range(3_000_000))'],"
        " check=True)\n"
    )
    report = tmp_path / "r.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
         "-p", "tests.conftest", "--rootdir", str(tmp_path), f"--junitxml={report}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (case,) = timings.read_cases([report])
    if sys.platform == "win32":
        assert case.cpu_seconds is None  # no resource module: no figure
    else:
        assert case.cpu_seconds is not None and case.cpu_seconds > 0.05, case
