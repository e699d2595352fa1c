"""Who gets the CPU first: the loop (capture, inference, device writes) before the side work.

Design: docs/architecture.md, "Who gets the CPU first".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

import psutil

log = logging.getLogger(__name__)

#: The priority classes of Windows, where psutil has them (None elsewhere).
ABOVE_NORMAL_CLASS: int | None = getattr(psutil, "ABOVE_NORMAL_PRIORITY_CLASS", None)
BELOW_NORMAL_CLASS: int | None = getattr(psutil, "BELOW_NORMAL_PRIORITY_CLASS", None)
IDLE_CLASS: int | None = getattr(psutil, "IDLE_PRIORITY_CLASS", None)
#: A niceness this large or more is the lowest class (IDLE) where priorities are classes.
_IDLE_NICENESS = 15
_LOOP_ROLES: frozenset[str] = frozenset({"capture", "inference"})

AffinityMode = Literal["auto", "on", "off"]
Role = Literal["capture", "inference", "recorder"]

SIDE_NICENESS = 0
"""Default niceness of side processes (``[Streaming] SIDE_NICENESS``): none (see the setting)."""

_SIDE_ROLES: frozenset[str] = frozenset({"recorder"})


@dataclass(frozen=True)
class ProcessPriority:
    """What one process applies to itself: a niceness increment and its cores (None: inherited)."""

    role: Role
    niceness: int = 0
    cpus: tuple[int, ...] | None = None
    above_normal: bool = False  # raise to the "above normal" class (Windows; see the module)


@dataclass(frozen=True)
class PriorityPlan:
    """How a session places its processes, from ``[Streaming] CPU_AFFINITY`` and the machine.

    ``inference_cpus`` and ``other_cpus`` are empty when nothing is pinned.
    """

    affinity: AffinityMode
    available: tuple[int, ...]
    inference_cpus: tuple[int, ...] = ()
    other_cpus: tuple[int, ...] = ()
    side_niceness: int = SIDE_NICENESS

    def for_role(self, role: Role) -> ProcessPriority:
        """Return the priority a process of ``role`` applies to itself."""
        niceness = self.side_niceness if role in _SIDE_ROLES else 0
        cpus = self.inference_cpus if role == "inference" else self.other_cpus
        return ProcessPriority(role, niceness, cpus or None, above_normal=role in _LOOP_ROLES)

    def describe(self) -> dict[str, Any]:
        """Describe the plan, for ``session.json`` → ``priority``: what was asked, and where."""
        return {
            "cpu_affinity": self.affinity,
            "cores_available": list(self.available),
            "inference_cores": list(self.inference_cpus) or None,
            "other_cores": list(self.other_cpus) or None,
            "side_niceness": self.side_niceness,
            "loop_priority": loop_priority_support(),
            "pinning": "available" if can_pin() else _NO_PINNING,
        }


_NO_PINNING = "not available on this platform (macOS has no core affinity): the OS places work"


def loop_priority_support() -> dict[str, str]:
    """Return what the loop's processes ask for and get on this platform (``session.json``)."""
    if ABOVE_NORMAL_CLASS is not None:
        return {"asked": "above normal", "applied": "above normal (capture, inference, main)"}
    return {
        "asked": "above normal",
        "applied": "normal: raising a priority needs privileges on this platform",
    }


def inference_thread_count(configured: int, pinned: tuple[int, ...] | None = None) -> int:
    """Return the inference worker's thread count: ``[Pose] THREADS``, else by cores, at most 4."""
    if configured:
        return configured
    if pinned:
        return len(pinned)
    return max(1, min(4, len(available_cpus()) - 1))


def inference_pool_may_spin(pinned: tuple[int, ...] | None, threads: int) -> bool:
    """Whether the inference worker's idle pool threads may spin instead of sleeping.

    Only where the spinning cores are the worker's own: pinned, or on a machine that cannot pin
    (macOS) with two cores to spare. Why: docs/pose-models.md, "ONNX Runtime's thread pool".
    """
    if pinned:
        return True
    return not can_pin() and len(available_cpus()) >= threads + 2


def available_cpus() -> tuple[int, ...]:
    """Return the cores this process may run on (all of them where the OS cannot say)."""
    if can_pin():
        try:
            return tuple(sorted(psutil.Process().cpu_affinity()))
        except (psutil.Error, OSError) as error:
            log.debug("the cores of this process are unknown: %s", error)
    return tuple(range(os.cpu_count() or 1))


def plan_priorities(
    affinity: AffinityMode,
    inference_threads: int,
    cpus: tuple[int, ...] | None = None,
    side_niceness: int = SIDE_NICENESS,
) -> PriorityPlan:
    """Place the inference worker on its own cores when there are enough.

    ``affinity``: ``auto`` pins with 3 cores or more, ``on`` with 2 or more, ``off`` never. ``cpus``
    None reads this process's affinity mask.
    """
    usable = tuple(cpus) if cpus is not None else available_cpus()
    kept_for_side_work = 2 if affinity == "auto" else 1
    if affinity == "off" or len(usable) <= kept_for_side_work or not can_pin():
        return PriorityPlan(affinity, usable, side_niceness=side_niceness)
    worker = max(1, min(inference_threads, len(usable) - kept_for_side_work))
    return PriorityPlan(affinity, usable, usable[-worker:], usable[:-worker], side_niceness)


def can_pin() -> bool:
    """Whether this platform lets a process choose its cores (Linux, Windows; not macOS)."""
    return hasattr(psutil.Process, "cpu_affinity")


def lower_priority(niceness: int, process: psutil.Process | None = None) -> int:
    """Lower ``process`` by ``niceness`` steps (Windows: below normal, idle); return the result."""
    target = process or psutil.Process()
    if BELOW_NORMAL_CLASS is not None and IDLE_CLASS is not None:
        target.nice(IDLE_CLASS if niceness >= _IDLE_NICENESS else BELOW_NORMAL_CLASS)
    else:
        target.nice(min(19, target.nice() + niceness))
    return int(target.nice())


def raise_above_normal(process: psutil.Process | None = None) -> int | None:
    """Raise ``process`` to *above normal* where a user may (Windows); return the old or None."""
    if ABOVE_NORMAL_CLASS is None:
        return None
    target = process or psutil.Process()
    previous = int(target.nice())
    target.nice(ABOVE_NORMAL_CLASS)
    return previous


def apply_process_priority(priority: ProcessPriority | None) -> dict[str, Any]:
    """Apply ``priority`` to the calling process; return what applied (errors logged, not raised).

    Call it first thing in a process's entry point, before any thread starts.
    """
    if priority is None:
        return {}
    applied: dict[str, Any] = {"role": priority.role}
    not_applied: dict[str, str] = {}
    this = psutil.Process()
    if priority.niceness:
        try:
            applied["nice"] = lower_priority(priority.niceness, this)
        except (psutil.Error, OSError) as error:  # a locked-down system: run on at normal
            log.warning("could not lower the priority of this %s process: %s", priority.role, error)
            not_applied["nice"] = str(error)
    elif priority.above_normal:
        if ABOVE_NORMAL_CLASS is None:
            not_applied["above_normal"] = "raising a priority needs privileges on this platform"
        else:
            try:
                raise_above_normal(this)
                applied["nice"] = int(this.nice())
            except (psutil.Error, OSError) as error:
                log.warning(
                    "could not raise the priority of this %s process: %s", priority.role, error
                )
                not_applied["above_normal"] = str(error)
    if priority.cpus is not None:
        if not can_pin():
            not_applied["cpus"] = _NO_PINNING
        else:
            try:
                this.cpu_affinity(list(priority.cpus))
                applied["cpus"] = list(priority.cpus)
            except (psutil.Error, OSError) as error:  # cores taken away (cgroups) meanwhile
                log.warning(
                    "could not pin this %s process to cores %s: %s",
                    priority.role,
                    list(priority.cpus),
                    error,
                )
                not_applied["cpus"] = str(error)
    if not_applied:
        applied["not_applied"] = not_applied
    return applied


@dataclass(frozen=True)
class MainPlacement:
    """The main process's cores and priority before a stream changed them, to give back."""

    previous: tuple[int, ...] | None
    previous_priority: int | None = None

    def restore(self) -> None:
        """Give the main process its cores and priority back (a naive loop may run after)."""
        this = psutil.Process()
        try:
            if self.previous is not None:
                this.cpu_affinity(list(self.previous))
            if self.previous_priority is not None:
                this.nice(self.previous_priority)
        except (psutil.Error, OSError) as error:
            log.warning("could not give the main process its cores or priority back: %s", error)


def main_process_priority(plan: PriorityPlan) -> MainPlacement | None:
    """Keep the main process on ``plan.other_cpus`` and, on Windows, above normal; None if not."""
    previous_priority = None
    try:
        previous_priority = raise_above_normal()
    except (psutil.Error, OSError) as error:
        log.warning("could not raise the main process's priority: %s", error)
    if not plan.other_cpus or not can_pin():
        return None if previous_priority is None else MainPlacement(None, previous_priority)
    previous = available_cpus()
    try:
        psutil.Process().cpu_affinity(list(plan.other_cpus))
    except (psutil.Error, OSError) as error:
        log.warning("could not pin the main process to cores %s: %s", list(plan.other_cpus), error)
        return None if previous_priority is None else MainPlacement(None, previous_priority)
    return MainPlacement(previous, previous_priority)


def observed_priorities(pids: dict[str, int | None]) -> dict[str, dict[str, Any]]:
    """Niceness and cores each live process really runs with (read from the OS), by name."""
    observed: dict[str, dict[str, Any]] = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        try:
            process = psutil.Process(pid)
            entry: dict[str, Any] = {"nice": process.nice()}
            if hasattr(process, "cpu_affinity"):
                entry["cpus"] = process.cpu_affinity()
        except (psutil.Error, OSError):
            continue  # ended meanwhile: its last observed values are in an earlier session.json
        observed[name] = entry
    return observed
