"""Find an experiment by name: a config, a class, a module of the lab's folder, or a path.

``load_experiment(name_or_path, settings_folder)`` accepts, tried in this order:

* a config name: the stem of a config in the lab's ``experiments/`` folder beside the settings
  file (``NAME = my_config`` finds ``experiments/my_config.ini``), else of a config shipped in
  the package (:data:`CONFIG_FOLDER`: ``"freezing_opto"``);
* a class of :data:`EXPERIMENTS`, the kind's registry
  (:class:`~deeplabstream.core.plugins.Registry`): the classes shipped in the package by
  ``module:Class`` (``"examples:AlternatingReward"``, also written
  ``"experiments.examples:AlternatingReward"`` or with ``deeplabstream.`` before it), the
  experiments of installed packages (entry point group ``deeplabstream.experiments``), a module
  of the lab's ``experiments/`` folder (``"my_module"`` when it defines one experiment, or
  ``"my_module:MyClass"``), or just ``"AlternatingReward"`` when one registered class has that
  name;
* a path named explicitly: ``PATH.ini`` (a config); on the command line only
  (``--experiment``), ``PATH.py`` (the one :class:`Experiment` subclass defined in it) or
  ``PATH.py:Class``. ``[Experiment] NAME`` never names a ``.py`` file (settings are data: the
  settings refuse it, saying to put the module in the lab's ``experiments/`` folder).

Python code is only imported from the package, from installed entry points, from the lab's
``experiments/`` folder beside the settings file, or from a ``.py`` file named on the command
line. An unknown name lists what exists, in the wording every plugin kind uses.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from deeplabstream.core.plugins import (
    PluginError,
    Registry,
    UnknownPluginError,
    subclasses_in,
)
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config import load_experiment_config

CONFIG_FOLDER = Path(__file__).resolve().parent / "configs"
"""The configs shipped in the package (examples a lab copies into its own folder)."""

LAB_FOLDER = "experiments"
"""The lab's folder of configs and modules, beside the settings file."""

_PACKAGE_PREFIXES = ("deeplabstream.", "experiments.")


class ExperimentNotFoundError(PluginError, LookupError):
    """No experiment of that name, or one that cannot be loaded; the message says what exists."""


def _registered_name(name: str) -> str:
    """Return the registered name: ``[deeplabstream.]experiments.examples:X`` is ``examples:X``."""
    text = name.strip()
    if ":" in text:
        for prefix in _PACKAGE_PREFIXES:
            text = text.removeprefix(prefix)
    return text


def _check_experiment_class(obj: Any) -> None:
    if not (inspect.isclass(obj) and issubclass(obj, Experiment)) or obj is Experiment:
        raise TypeError(
            f"expected a subclass of deeplabstream.experiments.base.Experiment, not {obj!r}"
        )
    if inspect.isabstract(obj):
        raise TypeError(f"{obj.__qualname__} is abstract (it does not define on_update)")


EXPERIMENTS: Registry[type[Experiment]] = Registry(
    "experiment",
    "deeplabstream.experiments",
    {"examples:AlternatingReward": "deeplabstream.experiments.examples:AlternatingReward"},
    advice="Set [Experiment] NAME (or --experiment) to one of them, to a config or module of the "
    "experiments/ folder beside the settings file (NAME = my_config, NAME = my_module:MyClass), "
    "or to the path of an .ini file; --experiment may also name a .py file "
    "(docs/experiments.md).",
    check=_check_experiment_class,
    lab_folder=LAB_FOLDER,
    normalise=_registered_name,
    find_in_module=lambda module: subclasses_in(module, Experiment),
)
"""Every experiment class by name: shipped (``module:Class``), then installed."""


def lab_folder(settings_folder: Path | None) -> Path | None:
    """Return the lab's ``experiments/`` folder beside the settings file (None: no settings)."""
    return EXPERIMENTS.lab_path(settings_folder)


def config_names() -> list[str]:
    """Return the shipped configs: stems of the package's ``experiments/configs/*.ini``, sorted."""
    return sorted(path.stem for path in CONFIG_FOLDER.glob("*.ini"))


def lab_config_names(settings_folder: Path | None) -> list[str]:
    """Return the lab's configs: stems of ``experiments/*.ini`` beside the settings file."""
    folder = lab_folder(settings_folder)
    if folder is None or not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.ini"))


def experiment_classes() -> dict[str, type[Experiment]]:
    """``name`` -> class, for every registered experiment that loads (shipped and installed)."""
    loaded, _ = EXPERIMENTS.load_all()
    return loaded


def available_experiments(settings_folder: Path | None = None) -> list[str]:
    """Every name :func:`load_experiment` accepts without a path.

    The lab's configs and modules first (when the settings file's folder is given), then the
    shipped configs, then the registered classes.
    """
    lab_configs = lab_config_names(settings_folder)
    lab_modules = [path.stem for path in EXPERIMENTS.lab_modules(settings_folder)]
    shipped = [name for name in config_names() if name not in lab_configs]
    return [*lab_configs, *lab_modules, *shipped, *EXPERIMENTS.names()]


def config_file_of(name_or_path: str | Path, settings_folder: Path | None = None) -> Path | None:
    """Return the config file an experiment name reads, or None (a class, or nothing found).

    The same resolution as :func:`load_experiment`, without loading: the window's region editor
    edits this file.
    """
    text = str(name_or_path).strip()
    if text.lower().endswith(".py") or ".py:" in text.lower():
        return None
    if text.lower().endswith(".ini") or isinstance(name_or_path, Path):
        path = Path(text).expanduser()
        if not path.is_file() and path.name == text:  # "freezing_opto.ini": by its name
            path = _named_config(path.stem, settings_folder) or path
        return path.resolve() if path.is_file() else None
    if ":" in text or "/" in text or "\\" in text:
        return None
    return _named_config(text, settings_folder)


def _named_config(stem: str, settings_folder: Path | None) -> Path | None:
    """Return the config ``stem``: the lab's (beside the settings file) before the shipped one."""
    folder = lab_folder(settings_folder)
    for candidate in (folder / f"{stem}.ini" if folder else None, CONFIG_FOLDER / f"{stem}.ini"):
        if candidate is not None and candidate.is_file():
            return candidate.resolve()
    return None


def resolved_name(name: str, settings_folder: Path | None) -> str:
    """Return ``name`` as another process finds it without the settings file's folder.

    A config or module of the lab's folder becomes its path (``/lab/experiments/x.ini``,
    ``/lab/experiments/m.py:Class``); any other name is returned unchanged.
    """
    text = name.strip()
    folder = lab_folder(settings_folder)
    if folder is None or "/" in text or "\\" in text or text.lower().endswith((".ini", ".py")):
        return name
    config = folder / f"{text}.ini"
    if ":" not in text and config.is_file():
        return str(config.resolve())
    module, _, attr = text.partition(":")
    path = folder / f"{module}.py"
    if "." not in module and path.is_file():
        return f"{path.resolve()}:{attr}" if attr else str(path.resolve())
    return name


def load_experiment(name_or_path: str | Path, settings_folder: Path | None = None) -> Experiment:
    """Return a new experiment from its name or path (see the module docstring).

    Parameters
    ----------
    name_or_path
        ``[Experiment] NAME`` or ``--experiment``.
    settings_folder
        The folder of the settings file, where the lab's ``experiments/`` folder is (None:
        only the package, installed packages and explicit paths).

    Raises
    ------
    ExperimentNotFoundError
        Unknown name, missing file, or a module that cannot be imported; the message lists
        what exists or gives the error.
    experiments.config.ExperimentConfigError
        The config file has problems (each one named).
    """
    text = str(name_or_path).strip()
    config = config_file_of(name_or_path, settings_folder)
    if config is not None:
        return load_experiment_config(config).build()
    if text.lower().endswith(".ini") or isinstance(name_or_path, Path):
        raise ExperimentNotFoundError(
            f"experiment config file not found: {Path(text).expanduser().resolve()}"
        )
    is_file = text.lower().endswith(".py") or ".py:" in text.lower()
    if not is_file and ("/" in text or "\\" in text):
        raise ExperimentNotFoundError(
            f"{text!r} is not an experiment: a path must end in .ini or .py"
        )
    try:
        if is_file:  # named on the command line (the settings refuse a .py NAME)
            return _from_named_file(text, settings_folder)()
        return EXPERIMENTS.get(text, settings_folder)()
    except UnknownPluginError as error:
        if is_file:
            raise ExperimentNotFoundError(str(error)) from None
        by_class_name = _by_class_name(text)
        if by_class_name is not None:
            return by_class_name()
        raise ExperimentNotFoundError(unknown_message(text, settings_folder)) from None
    except PluginError as error:  # a module or entry point that fails to import, a wrong class
        raise ExperimentNotFoundError(str(error)) from None


def _from_named_file(text: str, settings_folder: Path | None) -> type[Experiment]:
    """Return the experiment class of ``PATH.py`` or ``PATH.py:Class`` (from the command line).

    A relative path is taken from the current folder, else from the settings file's folder.
    """
    lower = text.lower()
    cut = lower.rindex(".py") + len(".py")
    path, attr = Path(text[:cut]).expanduser(), text[cut:].removeprefix(":")
    if not path.is_absolute() and not path.is_file() and settings_folder is not None:
        path = Path(settings_folder) / path
    return EXPERIMENTS.get_file(path, attr)


def _by_class_name(text: str) -> type[Experiment] | None:
    """Return the one registered class named ``text`` (``AlternatingReward``), if exactly one."""
    if ":" in text:
        return None
    matches = [name for name in EXPERIMENTS.names() if name.rpartition(":")[2] == text]
    if len(matches) > 1:
        raise ExperimentNotFoundError(
            f"{text!r} names several experiment classes: {', '.join(matches)}; give one of them"
        )
    if not matches:
        return None
    try:
        return EXPERIMENTS.get(matches[0])
    except PluginError as error:  # an installed experiment that fails to import
        raise ExperimentNotFoundError(str(error)) from None


def unknown_message(text: str, settings_folder: Path | None = None) -> str:
    """Return the message for an unknown experiment: configs and classes, the lab's folder's."""
    return EXPERIMENTS.unknown_message(
        text,
        settings_folder,
        also_known=config_names(),
        also_in_lab=lab_config_names(settings_folder),
    )
