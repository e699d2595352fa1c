"""The experiment is built from the run's plan, never again from its name (issue 73, item 5).

Read with :mod:`ast`: ``load_experiment`` (a name -> a new experiment) is called only by the
registry that defines it and by the plugin harness a lab's own tests name an experiment to
(``deeplabstream.testing``). The replay's checks and the window's rig read
``CameraPlan.experiment_plan().experiment()``, the one the start checks too.
"""

from __future__ import annotations

import ast

from tests.support.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "deeplabstream"
BY_NAME = {"experiments/registry.py", "testing/experiments.py"}


def test_no_module_rebuilds_the_experiment_from_its_name() -> None:
    callers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name == "load_experiment":
                    callers.add(path.relative_to(PACKAGE).as_posix())
    assert callers <= BY_NAME, sorted(callers - BY_NAME)
