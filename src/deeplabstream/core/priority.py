"""Who gets the CPU first: the loop (capture, inference, device writes) before the side work.

A closed loop is only as fast as its slowest wake-up. On a machine with few cores, the recorder's
encoder, the display and the main process compete with the inference worker for the same cores,
and the scheduler lets them run in the middle of a pose estimate: the loop's tail latency grows
although its average work does not. Two measures, both possible without root:

* **Niceness.** Side processes (recorders, also of companion streams such as depth) of a live
  session can run at ``[Streaming] SIDE_NICENESS``: when a loop process wakes up, the scheduler
  prefers it at once, and the side work uses what is left. Their throughput is unchanged while
  the CPU is not saturated; when it is (fast cameras, other programs), niced recorders fall
  behind by more than the ring holds and lose frames (counted), so it is off by default. An
  offline session (a video replayed as fast as it is analysed) saturates the CPU by design and
  nobody waits for its latency: its recorders keep the normal priority whatever the setting.
* **Core affinity** (``[Streaming] CPU_AFFINITY``). Pinned, the inference worker gets its own
  cores (as many as it has threads); capture, recording and the main process share the others.
  A worker on its own core is never pre-empted by the encoder, and its caches stay warm. But the
  side work is then confined to the other cores: ``auto`` pins only where at least two cores
  remain for it (3 or more cores), ``on`` pins on 2 cores too (right for light side work: one
  camera at 30 fps), ``off`` leaves placement to the OS.

Priorities are applied by each process to itself as its first act (:func:`apply_process_priority`),
before it starts threads (ONNX Runtime's pool, the encoder's), which inherit them.
The main process and the GUI thread keep the normal priority: the processes they start would
inherit a lower one, and a process cannot raise its priority again without privileges.

:func:`observed_priorities` reads back what each process really runs with, for ``session.json``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

AffinityMode = Literal["auto", "on", "off"]
Role = Literal["capture", "inference", "recorder"]

SIDE_NICENESS = 0
"""Default niceness of side processes (``[Streaming] SIDE_NICENESS``): none (see the setting)."""

_SIDE_ROLES: frozenset[str] = frozenset({"recorder"})


@dataclass(frozen=True)
class ProcessPriority:
    """What one process applies to itself: a niceness increment and, optionally, its cores.

    Attributes
    ----------
    role
        ``capture``, ``inference`` or ``recorder`` (for logs and ``session.json``).
    niceness
        Added to the process's niceness (0: unchanged).
    cpus
        The cores it may run on; None leaves the inherited set.
    """

    role: Role
    niceness: int = 0
    cpus: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PriorityPlan:
    """How a session places its processes, from ``[Streaming] CPU_AFFINITY`` and the machine.

    Attributes
    ----------
    affinity
        ``auto`` or ``off``.
    available
        The cores this process may use (its affinity mask when the session started).
    inference_cpus
        The cores of the inference worker (empty: not pinned).
    other_cpus
        The cores of capture, recording and the main process (empty: not pinned).
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
        return ProcessPriority(role, niceness, cpus or None)

    def describe(self) -> dict[str, Any]:
        """Describe the plan, for ``session.json`` → ``priority``."""
        return {
            "cpu_affinity": self.affinity,
            "cores_available": list(self.available),
            "inference_cores": list(self.inference_cpus) or None,
            "other_cores": list(self.other_cpus) or None,
            "side_niceness": self.side_niceness,
        }


def inference_thread_count(configured: int, pinned: tuple[int, ...] | None = None) -> int:
    """Return the inference worker's thread count.

    ``[Pose] THREADS``, else one per core it is pinned to, else one less than the cores (one
    stays for capture and recording), at most 4.
    """
    if configured:
        return configured
    if pinned:
        return len(pinned)
    return max(1, min(4, len(available_cpus()) - 1))


def available_cpus() -> tuple[int, ...]:
    """Return the cores this process may run on (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def plan_priorities(
    affinity: AffinityMode,
    inference_threads: int,
    cpus: tuple[int, ...] | None = None,
    side_niceness: int = SIDE_NICENESS,
) -> PriorityPlan:
    """Place the inference worker on its own cores when there are enough.

    Parameters
    ----------
    affinity
        ``auto`` pins when at least two cores remain for capture and recording (3 or more
        cores); ``on`` pins whenever there are 2 or more (side work then shares what the worker
        leaves: one core of two); ``off`` never pins.
    inference_threads
        The worker's thread count (``[Pose] THREADS`` or its automatic value).
    cpus
        The usable cores; None reads this process's affinity mask.
    side_niceness
        Niceness the recorders add (0: none).

    Returns
    -------
    PriorityPlan
        When pinned, the worker gets the last ``min(threads, n - 2)`` cores (``on``:
        ``n - 1``), everything else the first ones. Otherwise nothing is pinned.
    """
    usable = tuple(cpus) if cpus is not None else available_cpus()
    kept_for_side_work = 2 if affinity == "auto" else 1
    if affinity == "off" or len(usable) <= kept_for_side_work or not _can_pin():
        return PriorityPlan(affinity, usable, side_niceness=side_niceness)
    worker = max(1, min(inference_threads, len(usable) - kept_for_side_work))
    return PriorityPlan(affinity, usable, usable[-worker:], usable[:-worker], side_niceness)


def _can_pin() -> bool:
    return hasattr(os, "sched_setaffinity")


def apply_process_priority(priority: ProcessPriority | None) -> dict[str, Any]:
    """Apply ``priority`` to the calling process; what was applied (errors are logged, not raised).

    Call it first thing in a process's entry point, before any thread starts, so that the
    threads it later starts inherit the niceness and the cores.
    """
    if priority is None:
        return {}
    applied: dict[str, Any] = {"role": priority.role}
    if priority.niceness:
        try:
            applied["nice"] = os.nice(priority.niceness)
        except OSError as error:  # a locked-down system: run on at the normal priority
            log.warning("could not lower the priority of this %s process: %s", priority.role, error)
    if priority.cpus is not None and _can_pin():
        try:
            os.sched_setaffinity(0, priority.cpus)
            applied["cpus"] = list(priority.cpus)
        except OSError as error:  # cores taken away (cgroups) meanwhile: run where allowed
            log.warning(
                "could not pin this %s process to cores %s: %s",
                priority.role,
                list(priority.cpus),
                error,
            )
    return applied


@dataclass(frozen=True)
class MainPlacement:
    """The main process's cores before a stream moved it off the inference worker's cores."""

    previous: tuple[int, ...]

    def restore(self) -> None:
        """Give the main process its cores back (a benchmark's naive loop runs after)."""
        try:
            os.sched_setaffinity(0, self.previous)
        except OSError as error:
            log.warning("could not give the main process its cores back: %s", error)


def main_process_priority(plan: PriorityPlan) -> MainPlacement | None:
    """Keep the main process (and a GUI's drawing) on ``plan.other_cpus``; None if not pinned.

    Its children set their own cores first thing, so the worker still gets its cores.
    """
    if not plan.other_cpus or not _can_pin():
        return None
    previous = available_cpus()
    try:
        os.sched_setaffinity(0, plan.other_cpus)
    except OSError as error:
        log.warning("could not pin the main process to cores %s: %s", list(plan.other_cpus), error)
        return None
    return MainPlacement(previous)


def observed_priorities(pids: dict[str, int | None]) -> dict[str, dict[str, Any]]:
    """Niceness and cores each live process really runs with (read from the OS), by name."""
    import psutil

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
