"""An experiment or a trigger run alone on observations, as the live loop runs it.

docs/plugins.md, "Testing a plugin alone".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation, Observations
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.testing.plugin_settings import PluginCheckError


@dataclass
class ExperimentRun:
    """What an experiment did on the observations: its runtime, and the actions of each update."""

    runtime: ExperimentRuntime
    actions: list[list[Action]] = field(default_factory=list)  # per update, then the stop's
    stopped: list[Action] = field(default_factory=list)

    @property
    def all_actions(self) -> list[Action]:
        """Every action, in order, the stop's switch-offs last."""
        return [a for update in self.actions for a in update] + self.stopped


def run_experiment(
    experiment: Experiment | str,
    observations: Iterable[Observation | Observations],
    *,
    settings_folder: Path | None = None,
    stop: bool = True,
) -> ExperimentRun:
    """Run ``experiment`` (an object, or its ``[Experiment] NAME``) on each observation.

    With ``stop`` the runtime is stopped after the last. Raises :class:`PluginCheckError` when a
    hook returns anything but actions.
    """
    with using_settings_folder(settings_folder):  # its triggers: the lab's, as a session's
        if isinstance(experiment, str):
            experiment = load_experiment(experiment, settings_folder)
        runtime = ExperimentRuntime(experiment)
        run = ExperimentRun(runtime)
        runtime.start()
        for observation in observations:
            try:
                run.actions.append(runtime.update(observation))
            except TypeError as error:  # a hook returned something else than actions
                raise PluginCheckError(f"experiment {runtime.name!r}: {error}") from error
            runtime.events.settle()
        if stop:
            run.stopped = runtime.stop()
            runtime.events.commit()
    return run


def run_trigger(trigger: Trigger, observations: Iterable[Observation | Observations]) -> list[bool]:
    """Return ``trigger``'s state after each observation, updated as an experiment does."""
    states = []
    for observation in observations:
        state = trigger.update(observation)
        if not isinstance(state, bool):
            raise PluginCheckError(
                f"trigger {trigger.kind or type(trigger).__name__!r}: update returned "
                f"{state!r}; a trigger's step returns True or False"
            )
        states.append(state)
    return states
