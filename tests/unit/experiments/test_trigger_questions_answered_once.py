"""The questions an experiment asks of its triggers are answered in one place: the named trigger.

``is_true``, ``rose``, ``fell``, ``animals_rose`` and ``animals_fell`` are answered by
``NamedTrigger`` (its state before and after the update); ``Experiment``'s calls of the same
names find it by name. No protocol lists them and the engine answers none of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

import deeplabstream
from deeplabstream.experiments.base import Experiment, NamedTrigger
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.regions import Region

SRC = Path(deeplabstream.__file__).parent
QUESTIONS = ("is_true", "rose", "fell", "animals_rose", "animals_fell")


def _defining_classes(method: str) -> list[str]:
    """Every class in src/ that defines ``method``, as ``module:Class``."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if f"def {method}(" not in text:
            continue  # parsed only where the name is defined
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(item, ast.FunctionDef) and item.name == method for item in node.body
            ):
                found.append(f"{path.relative_to(SRC).as_posix()}:{node.name}")
    return found


def test_each_question_is_answered_by_the_named_trigger_and_asked_by_name_only() -> None:
    for question in QUESTIONS:
        assert sorted(_defining_classes(question)) == [
            "experiments/base.py:Experiment",  # the lab's call, by the trigger's name
            "experiments/base.py:NamedTrigger",  # the answer
        ], question
    base = (SRC / "experiments" / "base.py").read_text(encoding="utf-8")
    assert "trigger_states" not in base and "TriggerAnswers" not in base


class _Zone(Experiment):
    """One region; the test reads its answers after each update."""

    def __init__(self) -> None:
        super().__init__()
        self.add_trigger("zone", Region(Circle(100, 100, 20), "inside", "nose"))

    def on_update(self, obs: object, t: float) -> list:
        return []


def _at(frame: int, x: float) -> Observation:
    keypoints = np.array([[x, 100.0, 0.9]])
    return Observation(frame / 30, "top", frame, keypoints, ("nose",))


def test_the_experiments_calls_and_the_named_trigger_give_the_same_answers() -> None:
    experiment = _Zone()
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    named = experiment.triggers["zone"]
    assert isinstance(named, NamedTrigger)
    seen = []
    for frame, x in enumerate((300, 100, 100, 300, 300)):  # out, in, in, out, out
        runtime.update(_at(frame, x))
        asked = tuple(getattr(experiment, q)("zone") for q in QUESTIONS)
        assert asked == tuple(getattr(named, q)() for q in QUESTIONS)
        seen.append(asked[:3])
    assert seen == [
        (False, False, False),
        (True, True, False),
        (True, False, False),
        (False, False, True),
        (False, False, False),
    ]
    named.reset()  # a reset between updates leaves the edges of the updates as they were
    assert experiment.is_true("zone") is False and named.state_after is False
