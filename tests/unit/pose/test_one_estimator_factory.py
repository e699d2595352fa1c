"""One way to build an estimator: :mod:`pose.loading` (issue 73, item 1).

Read with :mod:`ast`, every module of the package is searched for a call of an estimator kind
(a class of ``pose/`` named ``...Estimator``) or of a kind's opener (``open_*_estimator`` of
``pose/formats/``). Only the factory calls them, and a kind's own module its own parts (a
crop-zoom pair's two networks, the DeepLabCut top-down opener's one-animal kind): every other
caller asks :func:`pose.loading.open_estimator` (or its ensemble and reference siblings there).
"""

from __future__ import annotations

import ast
import functools

from tests.support.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "deeplabstream"
FACTORY = "pose/loading.py"
#: A kind built of other kinds, in the module that defines it: what it builds there.
PARTS = {
    "pose/runtime/cropzoom.py": {"NetworkEstimator"},  # its detector and pose networks
    "pose/formats/dlc3_topdown_animals.py": {"DlcTopDownEstimator"},  # the one-animal kind
}


@functools.cache
def _modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _builders(modules: dict[str, ast.Module]) -> dict[str, str]:
    """Return every estimator kind and opener of ``pose/``, with the module defining it."""
    found = {}
    for name, tree in modules.items():
        if not name.startswith("pose/"):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Estimator"):
                if node.name != "PoseEstimator":  # the protocol every kind follows
                    found[node.name] = name
            elif isinstance(node, ast.FunctionDef) and name != FACTORY:
                opener = node.name.startswith("open_") and node.name.endswith("_estimator")
                found |= {node.name: name} if opener else {}
    return found


def _called(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def test_nothing_outside_the_factory_builds_an_estimator() -> None:
    modules = _modules()
    builders = _builders(modules)
    assert {"NetworkEstimator", "ContextEstimator", "EnsembleEstimator"} <= set(builders)
    outside = {
        name: sorted(
            called
            for called in _called(tree) & set(builders)
            if builders[called] != name and called not in PARTS.get(name, set())
        )
        for name, tree in modules.items()
        if name != FACTORY
    }
    assert {name: calls for name, calls in outside.items() if calls} == {}


def test_the_factory_is_called_by_the_inference_worker_training_and_the_tools() -> None:
    """The builders issue 73 named each ask the factory now (a search that can find them)."""
    modules = _modules()
    for name in ("live/processes/analysis/models.py", "live/selftest/naive_loop.py",
                 "offline/training/behaviour_arena.py", "pose/context_video.py"):  # fmt: skip
        assert _called(modules[name]) & {"open_estimator", "open_ensemble_estimator"}, name
