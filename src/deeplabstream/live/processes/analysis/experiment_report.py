"""What a running experiment tells the window (its status) and ``session.json`` (its summary)."""

from __future__ import annotations

from typing import Any

from deeplabstream.core.plugins import plugin_files_entry
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.registry import experiment_origin
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.kinds import kind_origin
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from deeplabstream.live.processes.messages import EventView, ExperimentStatus, TriggerView

#: At most this many events ride on one status (the newest); a status says how many there were.
#: A few per status is usual; the bound keeps a status well inside a pipe's buffer (64 KiB), so
#: sending it never waits for the GUI.
STATUS_EVENTS = 200


class StatusReporter:
    """Makes a run's statuses, each with the events recorded since the previous one."""

    def __init__(self, run: ExperimentRun) -> None:
        self.run = run
        self._events_sent = 0  # events of the log already sent with a status

    def status(self) -> ExperimentStatus:
        """Return what the live view shows of the experiment now, with the events since last call.

        Takes those events (at most :data:`STATUS_EVENTS`): call it only to send the status.
        """
        runtime = self.run.runtime
        events = runtime.events.events
        first = max(self._events_sent, len(events) - STATUS_EVENTS)
        new_events = tuple(
            EventView(e.time_s, e.kind, e.name, e.detail, e.trial, e.animal) for e in events[first:]
        )
        self._events_sent = len(events)
        started, now = runtime.machine.started_s, runtime.now_s
        return ExperimentStatus(
            name=runtime.name,
            state=runtime.state,
            trials=len(runtime.trials),
            trial=runtime.trial.index if runtime.trial is not None else None,
            actions=self.run.actions,
            last_event=_last_event_text(runtime),
            triggers=_trigger_views(runtime),
            error=self.run.error,
            new_events=new_events,
            events_total=len(events),
            elapsed_s=now - started if started is not None and now is not None else 0.0,
        )


def _last_event_text(runtime: ExperimentRuntime) -> str:
    events = runtime.events.events
    if not events:
        return ""
    last = events[-1]
    text = f"{last.kind} {last.name} {last.detail}".strip()
    return text if last.trial is None else f"{text} (trial {last.trial})"


def _trigger_views(runtime: ExperimentRuntime) -> tuple[TriggerView, ...]:
    states = runtime.trigger_states
    return tuple(
        TriggerView(
            name,
            trigger.state_after,
            tuple(trigger.shapes()),
            getattr(trigger, "camera", None),
            states.counts.get(name, 0),
            states.seconds_active.get(name, 0.0),
            tuple(sorted((trigger.animal_states() or {}).items())),
        )
        for name, trigger in states.triggers.items()
    )


def run_summary(run: ExperimentRun) -> dict[str, Any]:
    """For ``session.json``: the experiment's own summary plus its commands and latencies."""
    runtime = run.runtime
    writer_error = getattr(runtime.events.writer, "error", None)
    return {
        **runtime.summary(),
        "events_file": run.events_path.name,
        "actions": run.actions,
        # the worker's batch counts of its first and last update, and how many it was given:
        # which rows of pose_exact.csv it decided on (deeplabstream-verify re-runs them)
        "updates": {
            "count": run.updates,
            "first_batch": run.batches[0],
            "last_batch": run.batches[1],
        },
        # decided, but the command never left (the device was gone): events.csv not_sent
        "actions_not_sent": run.not_sent,
        "plugins": experiment_plugins(runtime),
        # its lab files' paths and SHA-256, as this process ran them (core/plugins/lab_files.py)
        "plugin_files": plugin_files_entry(experiment_plugins(runtime)),
        # what ran: its file, content (a config's text), SHA-256 and options with their origins
        "plan": run.plan,
        "error": run.error,
        "file_errors": [writer_error] if writer_error else [],
        # The experiment's update alone, on every update (docs/outputs.md, health).
        "update_ms": run.update_ns.figures(),
        "latency_ms": {
            "frame_to_command_written": run.write_ns.figures(),
            "frame_to_device_acknowledged": run.ack_ns.figures(),
            "camera_pairing_error": run.pairing_ns.figures(),
        },
    }


def experiment_plugins(runtime: ExperimentRuntime) -> dict[str, dict[str, str]]:
    """Return the experiment's class and its triggers' kinds, each with where its code is from."""
    kinds: dict[str, str] = {}
    pending: list[Trigger] = list(runtime.triggers.values())
    while pending:
        trigger = pending.pop()
        # A wrapper of one trigger: an experiment's named trigger, a filter, an animal's view.
        inner = getattr(trigger, "inner", None) or getattr(trigger, "trigger", None)
        children: tuple[Trigger, ...] = (
            (inner,) if isinstance(inner, Trigger) else tuple(getattr(trigger, "children", ()))
        )
        pending.extend(children)
        if trigger.kind and all(child.kind != trigger.kind for child in children):  # no wrapper
            kinds.setdefault(trigger.kind, kind_origin(trigger.kind, type(trigger)))
    found = {"experiment": {runtime.name: experiment_origin(runtime.experiment)}}
    return found | ({"trigger": dict(sorted(kinds.items()))} if kinds else {})
