"""The experiment of a run, resolved once: where it comes from, its content, its options.

Design: docs/architecture.md, "settings.experiment_plan".
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deeplabstream.core.digest import file_sha256, text_sha256
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.plugins import PluginError, code_origin
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config.parse import (
    EXPERIMENT_KEYS,
    ExperimentConfigError,
    parse_experiment_config,
)
from deeplabstream.experiments.options import ExperimentOptions
from deeplabstream.experiments.registry import (
    CONFIG_FOLDER,
    EXPERIMENTS,
    ExperimentNotFoundError,
    resolved_name,
)

ExperimentKind = Literal["config", "class"]


class ExperimentInitError(DeepLabStreamError, RuntimeError):
    """An experiment class whose ``__init__`` raised; the message names the class and error."""


@dataclass(frozen=True)
class PlannedOption:
    """One option of the experiment as it runs: its value and where it came from."""

    name: str  # ExperimentOptions' field
    value: Any
    origin: str  # "[Experiment] HOLD in /lab/x.ini", "the class Staircase", "default"


@dataclass(frozen=True)
class ExperimentPlan:
    """An experiment resolved once; frozen and picklable.

    ``kind`` is ``config`` (data) or ``class`` (code); ``locator`` is what another process finds it
    by; ``sha256`` is of the config's text or the class's module file; ``config_text`` None for a
    class; ``options`` carry their origins.
    """

    name: str
    named_by: str
    kind: ExperimentKind
    locator: str
    file: Path | None
    origin: str
    sha256: str
    config_text: str | None = None
    options: tuple[PlannedOption, ...] = ()
    _made: list[Experiment] = field(default_factory=list, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Cross to another process without the experiment made here (a lab object)."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["_made"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`__getstate__`."""
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def experiment(self) -> Experiment:
        """Return this process's experiment of the plan, made once (the checks read it)."""
        if not self._made:
            self._made.append(self.build())
        return self._made[0]

    def build(self) -> Experiment:
        """Return a new experiment from the plan: a config from its text, a class by its locator.

        ExperimentNotFoundError when the class's module file changed since the plan.
        """
        if self.kind == "config":
            assert self.config_text is not None
            return parse_experiment_config(self.config_text, self.file or self.name).build()
        try:
            found = EXPERIMENTS.find(self.locator)
        except PluginError as error:
            raise ExperimentNotFoundError(str(error)) from None
        if isinstance(found, Path) or not (
            isinstance(found, type) and issubclass(found, Experiment)
        ):
            raise ExperimentNotFoundError(f"{self.named_by}: {self.locator} is not a class now")
        if self.file is not None and file_sha256(self.file) != self.sha256:
            raise ExperimentNotFoundError(
                f"{self.named_by}: {self.file} changed since the experiment was planned "
                f"(SHA-256 {self.sha256[:12]}... recorded); start again to run the new code"
            )
        return _made_from(found)

    def record(self) -> dict[str, Any]:
        """Return the plan as ``session.json`` records it beside each experiment run."""
        return {
            "name": self.name,
            "named_by": self.named_by,
            "kind": self.kind,
            "locator": self.locator,
            "file": None if self.file is None else str(self.file),
            "origin": self.origin,
            "sha256": self.sha256,
            "config_text": self.config_text,
            "options": {
                option.name: {"value": plain_option(option.value), "origin": option.origin}
                for option in self.options
            },
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ExperimentPlan:
        """Return the plan ``session.json`` recorded (its options as recorded, not resolved)."""
        options = tuple(
            PlannedOption(name, entry.get("value"), str(entry.get("origin", "")))
            for name, entry in (record.get("options") or {}).items()
        )
        file = record.get("file")
        return cls(
            name=str(record["name"]),
            named_by=str(record.get("named_by", "session.json")),
            kind=record["kind"],
            locator=str(record.get("locator") or record["name"]),
            file=Path(file) if file else None,
            origin=str(record.get("origin", "")),
            sha256=str(record.get("sha256", "")),
            config_text=record.get("config_text"),
            options=options,
        )


def resolve_experiment(name: str, settings_folder: Path | None, named_by: str) -> ExperimentPlan:
    """Return the plan of experiment ``name``: its file, content, hash and options.

    Raises ExperimentNotFoundError or ExperimentConfigError (each problem named).
    """
    locator = resolved_name(name, settings_folder)
    try:
        found = EXPERIMENTS.find(name, settings_folder)
    except PluginError as error:
        raise ExperimentNotFoundError(str(error)) from None
    if isinstance(found, Path):
        return _config_plan(name, named_by, locator, found)
    return _class_plan(name, named_by, locator, found)


def _config_plan(name: str, named_by: str, locator: str, file: Path) -> ExperimentPlan:
    file = file.expanduser().resolve()
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ExperimentConfigError([f"{file}: cannot be read: {error}"]) from None
    config = parse_experiment_config(text, file)
    experiment = config.build()
    shipped = file.is_relative_to(CONFIG_FOLDER)
    plan = ExperimentPlan(
        name=name,
        named_by=named_by,
        kind="config",
        locator=str(file),
        file=file,
        origin="built in" if shipped else f"file: {file}",
        sha256=text_sha256(text),
        config_text=text,
        options=_options(experiment.options, config.experiment_keys, f"in {file}"),
    )
    plan._made.append(experiment)
    return plan


def _made_from(found: type[Experiment]) -> Experiment:
    """Return an experiment of the class ``found``; ExperimentInitError when it raises."""
    try:
        return found()
    except Exception as error:  # the lab's __init__: named with its class, not lost
        raise ExperimentInitError(
            f"experiment class {found.__qualname__} ({inspect.getfile(found)}) raised "
            f"{type(error).__name__} in its __init__: {error}"
        ) from error


def _class_plan(name: str, named_by: str, locator: str, found: type[Experiment]) -> ExperimentPlan:
    experiment = _made_from(found)
    source = inspect.getsourcefile(found)
    file = Path(source).resolve() if source else None
    plan = ExperimentPlan(
        name=name,
        named_by=named_by,
        kind="class",
        locator=locator,
        file=file,
        origin=code_origin(found),
        sha256=file_sha256(file) if file is not None else "",
        options=_options(experiment.options, None, f"the class {found.__qualname__}"),
    )
    plan._made.append(experiment)
    return plan


def _options(
    options: ExperimentOptions, keys_given: frozenset[str] | None, where: str
) -> tuple[PlannedOption, ...]:
    """Return each option with its origin: the config key that set it, the class, or default."""
    # A class's options are known only as values: one that differs from the default is the class's,
    # else the default.
    defaults = ExperimentOptions()
    planned = []
    for option in dataclasses.fields(ExperimentOptions):
        value = getattr(options, option.name)
        key = EXPERIMENT_KEYS.get(option.name)
        if keys_given is not None:
            given = key is not None and any(k in keys_given for k in key)
            origin = f"[Experiment] {key[0]} {where}" if given and key else "default"
        else:
            origin = where if value != getattr(defaults, option.name) else "default"
        planned.append(PlannedOption(option.name, value, origin))
    return tuple(planned)


def plain_option(value: Any) -> Any:
    """Return an option's value as JSON holds it (prediction settings as their description)."""
    describe = getattr(value, "describe", None)
    return describe() if callable(describe) else value
