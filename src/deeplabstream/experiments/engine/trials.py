"""The trial machine of an experiment: its state, trials and their timing, the session's end.

Its design: docs/experiments-internals.md (`experiments.engine.trials`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.events import EventKind
from deeplabstream.experiments.options import ExperimentOptions
from deeplabstream.experiments.trial import EPSILON_S, ExperimentState, Output, Trial


class LogEvent(Protocol):
    """Log one event of the machine (the experiment's event log)."""

    def __call__(
        self, kind: EventKind, name: str, detail: str, *, trial: int | None = None
    ) -> None:
        """Record ``kind`` ``name`` ``detail`` (in ``trial``, else the one in progress)."""
        ...


class TrialMachine:
    """States, trials, timing and held outputs of one experiment (docs/experiments-internals.md).

    Parameters
    ----------
    options
        The experiment's options (checked when they were made): the trial timing.
    name
        Returns the experiment's name (its ``finish`` event names it).
    log
        Records an event (``trial_start``, ``trial_end``, ``pause``, ``finish``...).
    log_action
        Records an ``action`` event for an action emitted in a trial (or None).
    trial_ended
        Returns the actions of a trial's end (the experiment's ``on_trial_end``).
    """

    def __init__(
        self,
        options: ExperimentOptions,
        *,
        name: Callable[[], str],
        log: LogEvent,
        log_action: Callable[[Action, int | None, bool], None],
        trial_ended: Callable[[Trial], Iterable[Action]],
    ) -> None:
        self.options = options  # read where used: never copied, so never out of date
        self._name = name
        self._log = log
        self._log_action = log_action
        self._trial_ended = trial_ended

        self.state: ExperimentState = "idle"
        self.trials: list[Trial] = []
        self.trial: Trial | None = None  # the trial in progress
        self.started_s: float | None = None
        self.ended_s: float | None = None
        self.finish_reason = ""
        self.now_s: float | None = None  # the latest frame time seen
        self.stopped = False
        # Why the experiment asked to end the session (end_session), until it has finished.
        self.end_requested: str | None = None
        self.action_count = 0
        self._out: list[Action] = []  # the actions of the call in progress, in order
        self._ended: list[Trial] = []  # trials ended whose outputs are not yet switched off
        self.held: dict[Output, int | None] = {}  # output -> trial that switched it on
        self.outputs: dict[Output, None] = {}  # every output used or declared

    # ----------------------------------------------------------------------------------------
    # Clock and session
    # ----------------------------------------------------------------------------------------

    def advance_clock(self, time_s: float | None) -> None:
        """Move the clock to ``time_s`` (never back: an older frame counts at the latest time)."""
        if time_s is None:
            return
        if not math.isfinite(time_s):
            raise ValueError(f"frame time must be finite, not {time_s!r}")
        self.now_s = float(time_s) if self.now_s is None else max(self.now_s, float(time_s))

    def begin(self, time_s: float) -> None:
        """Start the session at frame time ``time_s``."""
        self.started_s = time_s
        self.advance_clock(time_s)

    def session_over(self) -> bool:
        """Whether ``session_duration_s`` has passed since the start."""
        duration, started, now = self.options.session_duration_s, self.started_s, self.now_s
        if duration is None or started is None or now is None:
            return False
        return now - started >= duration - EPSILON_S

    @property
    def finished(self) -> bool:
        """Whether the session has finished."""
        return self.state == "finished"

    # ----------------------------------------------------------------------------------------
    # Trials
    # ----------------------------------------------------------------------------------------

    @property
    def can_start_trial(self) -> bool:
        """Whether :meth:`start_trial` would start one now."""
        return self.state == "waiting" and (
            self.options.max_trials is None or len(self.trials) < self.options.max_trials
        )

    def start_trial(self, cause: str) -> bool:
        """Start a trial now if the state allows it; return whether it started."""
        if not self.can_start_trial:
            return False
        assert self.now_s is not None
        trial = Trial(len(self.trials) + 1, cause or self._name(), self.now_s)
        self.trials.append(trial)
        self.trial = trial
        self.state = "in_trial"
        self._log("trial_start", trial.cause, "", trial=trial.index)
        return True

    def end_trial(self, reason: str) -> bool:
        """End the trial in progress now (its outputs go off in :meth:`close_ended_trials`)."""
        trial = self.trial
        if trial is None:
            return False
        assert self.now_s is not None
        trial.end_s, trial.end_reason = self.now_s, reason
        self.trial = None
        self._ended.append(trial)
        self._log("trial_end", trial.cause, reason, trial=trial.index)
        if self.state == "in_trial":
            self.state = "waiting" if self.options.inter_trial_interval_s <= 0 else "inter_trial"
        return True

    def advance(self) -> None:
        """End a trial that lasted ``trial_duration_s``; leave the inter-trial interval after it."""
        now = self.now_s
        assert now is not None
        trial, duration = self.trial, self.options.trial_duration_s
        if (
            trial is not None
            and duration is not None
            and duration > 0
            and now - trial.start_s >= duration - EPSILON_S
        ):
            self.end_trial(f"trial duration of {duration:g} s reached")
        if self.state == "inter_trial":
            last_end = self.trials[-1].end_s if self.trials else None
            interval_s = self.options.inter_trial_interval_s
            if last_end is None or now - last_end >= interval_s - EPSILON_S:
                self.state = "waiting"

    def end_instant_trial(self) -> None:
        """End a trial of ``trial_duration_s = 0`` in the update it started in."""
        if self.trial is not None and self.options.trial_duration_s == 0:
            self.end_trial("instant trial (trial duration 0)")

    def close_ended_trials(self) -> None:
        """Switch off what ended trials held, emit their end's actions, finish when it is time.

        Finishes after ``max_trials`` trials, or when the experiment asked to end the session
        (:meth:`request_end`): after the actions emitted so far in this call.
        """
        while self._ended:
            trial = self._ended.pop(0)
            if self.options.switch_off_at_trial_end:
                held = [o for o, owner in self.held.items() if owner == trial.index]
                self.switch_off(held, f"trial {trial.index} ended", trial.index)
            label = f"trial {trial.index} ended"
            for action in self._trial_ended(trial) or ():
                self.emit(action if action.reason else action.with_reason(label), trial.index)
        if self.state == "finished":
            return
        if self.end_requested is not None:
            self.finish(self.end_requested)
        elif (
            self.trial is None
            and self.options.max_trials is not None
            and len(self.trials) >= self.options.max_trials
        ):
            self.finish(f"{self.options.max_trials} trials done")

    def request_end(self, reason: str) -> None:
        """Finish the session once the actions of the call in progress are emitted."""
        if self.state != "finished" and self.end_requested is None:
            self.end_requested = reason

    def finish(self, reason: str) -> None:
        """End the trial, switch held outputs off, and finish (once) for ``reason``."""
        if self.state == "finished":
            return
        self.end_trial(reason)
        self.state = "finished"  # before closing trials: no second finish for max_trials
        self.close_ended_trials()
        self.switch_off(list(self.held), "finish", from_pose=False)
        self.finish_reason = reason
        self.ended_s = self.now_s
        self.end_requested = None
        self._log("finish", self._name(), reason)

    # ----------------------------------------------------------------------------------------
    # Pause, resume, stop
    # ----------------------------------------------------------------------------------------

    def pause(self) -> None:
        """End the trial in progress and switch held outputs off; the state becomes ``paused``."""
        self._log("pause", "pause", "")
        self.end_trial("paused")
        self.close_ended_trials()
        if self.state != "finished":
            self.switch_off(list(self.held), "pause", from_pose=False)
            self.state = "paused"

    def resume(self) -> None:
        """Leave ``paused`` (the inter-trial interval counts from the last trial's end)."""
        self._log("resume", "resume", "")
        ended = [t.end_s for t in self.trials if t.end_s is not None]
        pause = ended and self.options.inter_trial_interval_s > 0
        self.state = "inter_trial" if pause else "waiting"

    def stop(self, reason: str) -> None:
        """Finish (if not finished) and switch off every output used or declared.

        An experiment stopped before its first pose (Ctrl-C while the model loaded) decided
        nothing and switched nothing on: it sends nothing to its devices.
        """
        self.stopped = True
        if self.state != "finished":
            self.finish(reason)
        if self.started_s is None and not self.action_count:
            return
        done = {a.output for a in self._out if a.command == "off"}
        self.switch_off([o for o in self.outputs if o not in done], "stop", from_pose=False)

    # ----------------------------------------------------------------------------------------
    # Actions and outputs
    # ----------------------------------------------------------------------------------------

    def switch_off(
        self,
        outputs: list[Output],
        reason: str,
        trial: int | None = None,
        from_pose: bool = True,
    ) -> None:
        """Emit an ``off`` for each of ``outputs``.

        ``from_pose`` False: the machine's own switch-off (at a finish, pause or stop), which no
        pose decided: its event carries no keypoint, position or animal.
        """
        for device, channel in outputs:
            self.emit(Action.off(device, channel, reason=reason), trial, from_pose)

    def emit(self, action: Action, trial: int | None = None, from_pose: bool = True) -> None:
        """Log ``action``, follow which outputs it holds, and queue it for this call's return.

        ``from_pose``: whether a pose decided it (its event carries the deciding keypoint).
        """
        if trial is None:
            if self.trial is not None:
                trial = self.trial.index
            elif self._ended:
                trial = self._ended[-1].index
        output = action.output
        self.outputs[output] = None
        if action.holds:
            self.held[output] = self.trial.index if self.trial is not None else None
        else:
            self.held.pop(output, None)
        self.action_count += 1
        self._log_action(action, trial, from_pose)
        self._out.append(action)

    def default_reason(self, name: str) -> str:
        """Return the reason of an action returned without one: the trial's, else ``name``."""
        trial = self.trial or (self._ended[-1] if self._ended else None)
        return f"trial {trial.index}" if trial is not None else name

    def open_call(self) -> None:
        """Start collecting the actions of a new call (update, pause, stop)."""
        self._out = []

    def take_out(self) -> list[Action]:
        """Return the actions emitted in this call, in order, and forget them."""
        out, self._out = self._out, []
        return out

    def declare_output(self, output: Output) -> None:
        """Count ``output`` as used: :meth:`stop` switches it off."""
        self.outputs[output] = None
