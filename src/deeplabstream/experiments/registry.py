"""Find an experiment by name: a config, a class, a module of the lab's folder, or a path.

The names accepted, in the order tried, and where code is imported from: docs/experiments.md
(Where experiments are found). It is the experiments' kind of the one
:class:`~deeplabstream.core.plugins.Registry`; its errors become :class:`ExperimentNotFoundError`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from deeplabstream.core.plugins import (
    LAB_ORIGIN,
    DataFiles,
    PluginError,
    Registry,
    code_origin,
    subclasses_in,
)
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config.parse import load_experiment_config

CONFIG_FOLDER = Path(__file__).resolve().parent / "configs"
"""The configs shipped in the package (examples a lab copies into its own folder)."""

LAB_FOLDER = "experiments"
"""The lab's folder of configs and modules, beside the settings file."""

CONFIGS = DataFiles(".ini", CONFIG_FOLDER, "config")
"""The experiments written as configs: the lab's ``experiments/*.ini``, then the shipped ones."""

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
    data_files=CONFIGS,
    by_class_name=True,
)
"""Every experiment by name: the configs (lab's, then shipped), the classes shipped
(``module:Class``), installed, and of the lab's folder."""


def lab_folder(settings_folder: Path | None) -> Path | None:
    """Return the lab's ``experiments/`` folder beside the settings file (None: no settings)."""
    return EXPERIMENTS.lab.path(settings_folder)


def config_names() -> list[str]:
    """Return the shipped configs: stems of the package's ``experiments/configs/*.ini``, sorted."""
    return CONFIGS.shipped_names()


def available_experiments(settings_folder: Path | None = None) -> list[str]:
    """Every name :func:`load_experiment` accepts without a path.

    The lab's configs and modules first (when the settings file's folder is given), then the
    shipped configs, then the registered classes.
    """
    return EXPERIMENTS.available(settings_folder)


def config_file_of(name_or_path: str | Path, settings_folder: Path | None = None) -> Path | None:
    """Return the config file an experiment name reads, or None (a class, or nothing found).

    The same resolution as :func:`load_experiment`, without loading: the window's region editor
    edits this file.
    """
    return CONFIGS.file_of(name_or_path, lab_folder(settings_folder))


def resolved_name(name: str, settings_folder: Path | None) -> str:
    """Return ``name`` as another process finds it without the settings file's folder.

    A config or module of the lab's folder becomes its path (``/lab/experiments/x.ini``,
    ``/lab/experiments/m.py:Class``); any other name is returned unchanged.
    """
    return EXPERIMENTS.resolved_name(name, settings_folder)


def experiment_origin(experiment: Experiment) -> str:
    """Return where an experiment comes from, in :func:`~core.plugins.code_origin`'s words.

    A config's experiment by its config file: ``built in`` for one shipped in the package,
    ``lab folder: FILE`` for the lab's (also when it has a shipped one's name) or one named by
    its path; any other by its class.
    """
    config_file = getattr(getattr(experiment, "config", None), "file", None)
    if config_file is None:
        return code_origin(type(experiment))
    path = Path(config_file).resolve()
    return "built in" if path.parent == CONFIG_FOLDER else f"{LAB_ORIGIN}{path}"


def load_experiment(name_or_path: str | Path, settings_folder: Path | None = None) -> Experiment:
    """Return a new experiment from its name or path (docs/experiments.md).

    ``name_or_path`` is ``[Experiment] NAME`` or ``--experiment``; ``settings_folder`` is where
    the lab's ``experiments/`` folder is (None: only the package, installed packages and paths).

    Raises
    ------
    ExperimentNotFoundError
        Unknown name, missing file, or a module that cannot be imported; the message lists
        what exists or gives the error.
    experiments.config.parse.ExperimentConfigError
        The config file has problems (each one named).
    """
    try:
        found = EXPERIMENTS.find(name_or_path, settings_folder)
        if not isinstance(found, Path):
            return found()
    except PluginError as error:  # unknown, a module that fails to import, a wrong class
        raise ExperimentNotFoundError(str(error)) from None
    return load_experiment_config(found).build()
