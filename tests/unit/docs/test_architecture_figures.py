"""scripts/architecture_figures.py: the figures of docs/architecture.md, measured again.

On a tiny package written here (three modules, a class a lab would subclass, a block copied
with other blank lines, comments and indentation, one repeated in its own file) every figure
is checked exactly; on this checkout, one decision of the example experiment is traced.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

import deeplabstream  # imported from this checkout before the script looks (see main's test)
from tests.support.paths import PROJECT_ROOT

LAB = '''\
"""A lab's module."""

import math


class Experiment:
    """The class a lab subclasses."""

    kind = "test"
    _hidden = 1
    left, right = 1, 2

    def __init__(self) -> None:
        self.x = 1

    @property
    def value(self) -> int:
        return self.x

    @value.setter
    def value(self, new: int) -> None:
        self.x = new

    def _private(self) -> None:
        pass

    class Inner:
        def go(self) -> None:
            pass


def block(values):
    total = 0
    for value in values:
        # a comment, dropped
        total += value

        total *= 2
    total -= 1
    return math.floor(total)
'''

TOOLS = """\
class Helper:
    def block(values):
        total = 0

        for value in values:
            total += value  # a trailing comment is part of the line
            total *= 2
        total -= 1
        return math.floor(total)


def block(values):
    total = 0
    # another comment
    for value in values:
                total += value
                total *= 2
    total -= 1
    return math.floor(total)


def first():
    a = 1
    b = 2
    c = 3
    d = 4
    e = 5
    return a + b + c + d + e


def second():
    a = 1
    b = 2
    c = 3
    d = 4
    e = 5
    return a + b + c + d + e
"""


@pytest.fixture(scope="module")
def figures_script() -> ModuleType:
    """scripts/architecture_figures.py, imported as a module (its main does not run)."""
    path = PROJECT_ROOT / "scripts" / "architecture_figures.py"
    spec = importlib.util.spec_from_file_location("architecture_figures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_checkout(tmp_path: Path) -> Path:
    """A checkout whose package has three modules (a cache folder and a text file beside)."""
    package = tmp_path / "src" / "deeplabstream"
    (package / "sub" / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The package."""\n')
    (package / "lab.py").write_text(LAB)
    (package / "sub" / "tools.py").write_text(TOOLS)
    (package / "sub" / "__pycache__" / "tools.py").write_text(TOOLS)  # not a module
    (package / "sub" / "notes.txt").write_text(TOOLS)
    return tmp_path


def test_modules_and_lines_are_every_py_file_and_its_physical_lines(
    figures_script: ModuleType, tiny_checkout: Path
) -> None:
    package = figures_script.package_folder(tiny_checkout)
    size = figures_script.source_size(package)
    assert (size.modules, size.lines) == (3, 1 + 40 + 37)
    assert [figures_script.physical_lines(text) for text in ("", "a\n", "a\nb", "\n\n")] == [
        0,
        1,
        2,
        2,
    ]
    with pytest.raises(figures_script.NotMeasuredError, match="not a package folder"):
        figures_script.package_folder(tiny_checkout / "src")


def test_classes_are_measured_by_lines_methods_and_public_names(
    figures_script: ModuleType, tiny_checkout: Path
) -> None:
    classes = figures_script.class_figures(figures_script.package_folder(tiny_checkout))
    measured = [(c.module, c.name, c.line, c.lines, c.methods, c.public_names) for c in classes]
    # Experiment: __init__, the property's getter and setter, _private; public: kind, left,
    # right, value, Inner.
    assert measured == [
        ("lab.py", "Experiment", 6, 24, 4, 5),
        ("sub/tools.py", "Helper", 1, 9, 1, 1),
        ("lab.py", "Experiment.Inner", 27, 3, 1, 1),
    ]
    assert figures_script.experiment_class(classes) == classes[0]
    with pytest.raises(figures_script.NotMeasuredError, match="0 classes named 'Experiment'"):
        figures_script.experiment_class(classes[1:])


def test_duplicate_pairs_are_shared_windows_of_normalised_lines_merged(
    figures_script: ModuleType, tiny_checkout: Path
) -> None:
    pairs = figures_script.duplicate_pairs(figures_script.package_folder(tiny_checkout))
    found = [(pair.first, pair.second, pair.shared_lines) for pair in pairs]
    # block, copied with other blank lines, comments and indentation: 7 normalised lines, two
    # windows merged into one pair. Helper.block's trailing comment makes one line differ, so
    # no six lines in a row match. first and second share their bodies within one file.
    assert found == [
        ("lab.py:32-40", "sub/tools.py:12-19", 7),
        ("sub/tools.py:23-28", "sub/tools.py:32-37", 6),
    ]


def test_a_moved_entry_point_is_named_not_measured(
    figures_script: ModuleType, tiny_checkout: Path
) -> None:
    package = figures_script.package_folder(tiny_checkout)
    with pytest.raises(figures_script.NotMeasuredError) as raised:
        figures_script.find_one(package, figures_script.OPENERS, "the worker's experiment opener")
    assert "none of open_experiment_run, ExperimentRun.open is defined" in str(raised.value)
    assert "adapt open_decision" in str(raised.value)


def test_the_command_prints_and_writes_every_figure_and_fails_on_one_not_measured(
    figures_script: ModuleType,
    tiny_checkout: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert deeplabstream.__file__ is not None  # imported already: the tiny package cannot be
    big = "class Big:\n" + "".join(f"    x{index} = {index}\n" for index in range(501))
    (tiny_checkout / "src" / "deeplabstream" / "big.py").write_text(big)
    out = tmp_path / "figures.json"
    status = figures_script.main(["--root", str(tiny_checkout), "--json", str(out)])
    printed = capsys.readouterr().out
    assert status == 1  # the trace cannot import a second deeplabstream into this process
    assert "modules, lines: 4 modules, 580 lines" in printed
    assert "the Experiment class (lab.py): 24 lines, 4 methods, 5 public names" in printed
    assert "  502    0  501  Big (big.py)  over 500 lines\n" in printed
    assert "   24    4    5  Experiment (lab.py)\n" in printed
    assert "classes over 500 lines: 1 (Big 502)" in printed
    assert "files one decision runs through: not measured: deeplabstream is imported" in printed
    assert "pairs of places sharing 6 or more lines: 2 (this script's own finder" in printed
    figures = json.loads(out.read_text())
    assert (figures["modules"], figures["lines"], figures["duplicate_pairs"]) == (4, 580, 2)
    assert [figure["name"] for figure in figures["classes_over_limit"]] == ["Big"]
    assert "process of its own" in figures["decision_trace"]["error"]


def test_one_decision_of_the_example_experiment_is_traced_through_the_runtime(
    figures_script: ModuleType,
) -> None:
    package = figures_script.package_folder(PROJECT_ROOT)
    trace = figures_script.decision_trace(package)
    runtime = figures_script.definitions(package, "ExperimentRuntime")
    assert len(runtime) == 1
    runtime_file = runtime[0].removeprefix("deeplabstream.").replace(".", "/") + ".py"
    entry_file = trace.entry.split(":")[0].removeprefix("deeplabstream.").replace(".", "/")
    assert len(trace.files) > 2
    assert {runtime_file, f"{entry_file}.py"} <= set(trace.files)
    assert all((package / name).is_file() for name in trace.files)
    assert trace.lines == sum(
        len((package / name).read_text(encoding="utf-8").splitlines()) for name in trace.files
    )
