"""Find an experiment by name: a config file, a class of the ``experiments`` package, or a path.

``load_experiment(name_or_path)`` accepts:

* a config name: the stem of a file in ``experiments/configs/`` (``"freezing_opto"``);
* a class of the ``experiments`` package: ``"module:Class"`` (``"examples:AlternatingReward"``,
  or ``"experiments.examples:AlternatingReward"``), or just ``"AlternatingReward"`` when one
  module of the package has a class of that name;
* a path named explicitly: ``PATH.ini`` (a config), ``PATH.py`` (the one :class:`Experiment`
  subclass defined in it) or ``PATH.py:Class``.

Python code is only ever imported from the project's ``experiments`` package or from a ``.py``
file the user names; an unknown name lists what exists.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType

import deeplabstream.experiments as experiments
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config import load_experiment_config

CONFIG_FOLDER = Path(__file__).resolve().parent / "configs"
INFRASTRUCTURE_MODULES = frozenset(
    {"actions", "base", "config", "events", "observation", "registry", "triggers"}
)
"""Modules of the package that define no experiments (not searched for classes)."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON_FILE = re.compile(r"^(?P<path>.+\.py)(?::(?P<cls>[A-Za-z_][A-Za-z0-9_]*))?$", re.IGNORECASE)


class ExperimentNotFoundError(LookupError):
    """No experiment of that name; the message lists the ones there are."""


def config_names() -> list[str]:
    """Return the shipped configs: stems of ``experiments/configs/*.ini``, sorted."""
    return sorted(path.stem for path in CONFIG_FOLDER.glob("*.ini"))


def experiment_classes() -> dict[str, type[Experiment]]:
    """``"module:Class"`` -> class, for every concrete Experiment defined in the package."""
    found: dict[str, type[Experiment]] = {}
    for info in sorted(pkgutil.iter_modules(experiments.__path__), key=lambda i: i.name):
        if info.name in INFRASTRUCTURE_MODULES or info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"deeplabstream.experiments.{info.name}")
        for name, cls in _classes_in(module).items():
            found[f"{info.name}:{name}"] = cls
    return found


def available_experiments() -> list[str]:
    """Every name :func:`load_experiment` accepts without a path: configs, then classes."""
    return [*config_names(), *experiment_classes()]


def config_file_of(name_or_path: str | Path) -> Path | None:
    """Return the config file an experiment name reads, or None (a class, or nothing found).

    The same resolution as :func:`load_experiment`, without loading: the window's region editor
    edits this file.
    """
    text = str(name_or_path).strip()
    if _PYTHON_FILE.match(text):
        return None
    if text.lower().endswith(".ini") or isinstance(name_or_path, Path):
        path = Path(text).expanduser()
        if not path.is_file() and path.name == text and (CONFIG_FOLDER / text).is_file():
            path = CONFIG_FOLDER / text
        return path.resolve() if path.is_file() else None
    if ":" in text or "/" in text or "\\" in text:
        return None
    config = CONFIG_FOLDER / f"{text}.ini"
    return config if config.is_file() else None


def load_experiment(name_or_path: str | Path) -> Experiment:
    """Return a new experiment from a config name, ``module:Class``, or an ``.ini``/``.py`` path.

    Raises
    ------
    ExperimentNotFoundError
        Unknown name or missing file; the message lists what exists.
    experiments.config.ExperimentConfigError
        The config file has problems (each one named).
    """
    text = str(name_or_path).strip()
    python_file = _PYTHON_FILE.match(text)
    if python_file:
        return _from_python_file(Path(python_file["path"]), python_file["cls"] or "")
    if text.lower().endswith(".ini") or isinstance(name_or_path, Path):
        path = Path(text).expanduser()
        if not path.is_file() and path.name == text and (CONFIG_FOLDER / text).is_file():
            path = CONFIG_FOLDER / text  # "freezing_opto.ini": the shipped one
        if not path.is_file():
            raise ExperimentNotFoundError(f"experiment config file not found: {path.resolve()}")
        return load_experiment_config(path).build()
    if ":" in text:
        return _from_package(text)
    if "/" in text or "\\" in text:
        raise ExperimentNotFoundError(
            f"{text!r} is not an experiment: a path must end in .ini or .py"
        )
    config = CONFIG_FOLDER / f"{text}.ini"
    if config.is_file():
        return load_experiment_config(config).build()
    classes = experiment_classes()
    matches = [key for key in classes if key.split(":")[1] == text]
    if len(matches) == 1:
        return classes[matches[0]]()
    if len(matches) > 1:
        raise ExperimentNotFoundError(
            f"{text!r} names several classes: {', '.join(matches)}; give module:Class"
        )
    raise ExperimentNotFoundError(_unknown(text))


def _unknown(text: str) -> str:
    configs = ", ".join(config_names()) or "none"
    classes = ", ".join(experiment_classes()) or "none"
    return (
        f"unknown experiment {text!r}. Configs (experiments/configs/): {configs}. "
        f"Classes (experiments package): {classes}. Or give the path of an .ini or .py file."
    )


def _from_package(text: str) -> Experiment:
    module_name, _, class_name = text.partition(":")
    module_name = module_name.removeprefix("deeplabstream.").removeprefix("experiments.")
    if not (_IDENTIFIER.match(module_name) and _IDENTIFIER.match(class_name)):
        raise ExperimentNotFoundError(f"{text!r}: expected module:Class, for example {_example()}")
    if (
        module_name in INFRASTRUCTURE_MODULES
        or not (Path(experiments.__file__).parent / f"{module_name}.py").is_file()
    ):
        raise ExperimentNotFoundError(
            f"no experiment module {module_name!r} in the experiments package. "
            + _unknown(text).split(". ", 1)[1]
        )
    module = importlib.import_module(f"deeplabstream.experiments.{module_name}")
    classes = _classes_in(module)
    if class_name not in classes:
        raise ExperimentNotFoundError(
            f"experiments.{module_name} has no experiment class {class_name!r}; it has: "
            f"{', '.join(classes) or 'none'}"
        )
    return classes[class_name]()


def _from_python_file(path: Path, class_name: str) -> Experiment:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ExperimentNotFoundError(f"experiment file not found: {path}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"_experiment_file_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ExperimentNotFoundError(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    classes = _classes_in(module)
    if class_name:
        if class_name not in classes:
            raise ExperimentNotFoundError(
                f"{path} has no experiment class {class_name!r}; it has: "
                f"{', '.join(classes) or 'none'}"
            )
        return classes[class_name]()
    if len(classes) != 1:
        listed = ", ".join(classes) or "none"
        raise ExperimentNotFoundError(
            f"{path} defines {len(classes)} experiment classes ({listed}); name one as "
            f"{path.name}:Class"
        )
    return next(iter(classes.values()))()


def _classes_in(module: ModuleType) -> dict[str, type[Experiment]]:
    """Concrete Experiment subclasses defined in ``module`` (not imported into it)."""
    return {
        name: cls
        for name, cls in vars(module).items()
        if inspect.isclass(cls)
        and issubclass(cls, Experiment)
        and cls.__module__ == module.__name__
        and not inspect.isabstract(cls)
        and not name.startswith("_")
    }


def _example() -> str:
    return "examples:AlternatingReward"
