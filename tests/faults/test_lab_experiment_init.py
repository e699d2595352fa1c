"""Issue 71 (partly): a lab experiment that cannot be made is blamed on what it does.

Before: a class whose ``__init__`` raised, or one that lacks ``on_update`` (so abstract), was
reported as "defines no experiment class" (or the exception without its class). Now the class
and the exception, or the class and what it lacks, are named before the start.
"""

from __future__ import annotations

from pathlib import Path

from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.settings import load_settings
from tests.support.files import write_settings

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"
    "[Experiment]\nNAME = boom\n"
)
HEAD = "from deeplabstream.experiments.base import Experiment\n\n\nclass Boom(Experiment):\n"
RAISES = "        raise RuntimeError(\"the lab's calibration table is missing\")\n"


def _problems(tmp_path: Path, body: str) -> list[str]:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "boom.py").write_text(HEAD + body, encoding="utf-8")
    settings = load_settings(write_settings(tmp_path, SETTINGS))
    return check_before_start(settings, pose=True, experiment=True)


def test_a_lab_experiment_raising_in_init_is_named_with_its_class_and_error(
    tmp_path: Path,
) -> None:
    body = (
        "    def __init__(self):\n        super().__init__()\n" + RAISES
        + "\n    def on_update(self, obs, t):\n        return ()\n"
    )  # fmt: skip
    (problem,) = _problems(tmp_path, body)
    file = tmp_path / "experiments" / "boom.py"
    assert problem.endswith(
        f"experiment class Boom ({file}) raised RuntimeError in its __init__: the lab's "
        "calibration table is missing. Fix the class, or name another experiment."
    ), problem
    assert "defines no experiment class" not in problem


def test_a_lab_experiment_without_on_update_is_named_with_what_it_lacks(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "    def __init__(self):\n" + RAISES)
    assert "class Boom lacks on_update, so it cannot be made" in problem, problem
    assert "defines no experiment class" not in problem
