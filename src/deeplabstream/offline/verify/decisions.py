"""The decisions re-derived: the recorded experiment run again on the live keypoints.

Design: docs/verify.md, "offline.verify.decisions".
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.call_watchdog import CallStalled, time_limit
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EVENT_COLUMNS, EventLog
from deeplabstream.experiments.observation import Observation, paired_update, unnamed_rows
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.offline.verify.frames import ExactRows, read_exact_rows
from deeplabstream.offline.verify.record_proof import incomplete_why
from deeplabstream.offline.verify.session_files import SessionFiles, changed_lab_files
from deeplabstream.outputs.pose.files import IDENTITY_SUFFIX, UNNAMED_COLUMN
from deeplabstream.pose.ensemble.causal import CausalEks
from deeplabstream.pose.ensemble.statistics import ensemble_frame
from deeplabstream.settings.experiment_plan import ExperimentPlan, plain_option

#: The columns of events.csv that are the live run's own facts, not decisions: host times, and
#: what a device did. Every other column is compared exactly.
LIVE_FACTS = ("host_timestamp", "pose_ready", "decided", "written", "acknowledged", "not_sent")
DECISION_COLUMNS = tuple(column for column in EVENT_COLUMNS if column not in LIVE_FACTS)
#: An update that the live loop interrupted (stuck) is interrupted here after this long too.
UPDATE_LIMIT_S = 3.0
FAILED_PREFIX = "experiment stopped: "


@dataclass
class RunCheck:
    """One experiment run's decisions, live against re-derived."""

    events_file: str
    name: str
    plan: dict[str, Any] | None
    updates_live: int = 0
    updates_rederived: int = 0
    rows_live: int = 0
    rows_rederived: int = 0
    rows_equal: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    not_re_derived: str | None = None  # why the decisions could not be re-derived at all
    explained: list[str] = field(default_factory=list)  # recorded facts that bound the check
    not_sent: int = 0  # live action rows whose command never left (a device failed)
    #: Recorded options that are not what the recorded experiment, built again, has.
    option_problems: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """True when every decision row equals its re-derived row."""
        return self.not_re_derived is None and not self.differences

    @property
    def rows_only_live(self) -> int:
        """Rows in the events file that were not re-derived (added, or deleted from the other)."""
        return sum(1 for d in self.differences if d["change"] == "in events.csv, not re-derived")

    @property
    def rows_only_rederived(self) -> int:
        """Rows re-derived that the events file lacks (deleted from it)."""
        return sum(1 for d in self.differences if d["change"] == "re-derived, not in events.csv")

    @property
    def rows_changed(self) -> int:
        """Rows on both sides, the same event with other values (moved, another position)."""
        return sum(1 for d in self.differences if d["change"] == "changed")

    def counts(self) -> str:
        """Return the rows in words, adding up on both sides (equal + changed + one side's own)."""
        return (
            f"{self.rows_equal} decision row(s) equal, {self.rows_changed} changed, "
            f"{self.rows_only_live} only in {self.events_file}, {self.rows_only_rederived} only "
            f"re-derived ({self.rows_live} in {self.events_file}, {self.rows_rederived} "
            f"re-derived; {self.updates_rederived} updates re-run)"
        )

    def reasons(self) -> list[str]:
        """Why this run's decisions differ (empty: they agree)."""
        if self.not_re_derived is not None:
            return list(self.option_problems)
        if not self.differences:
            return list(self.option_problems)
        first = self.differences[0]
        return [
            *self.option_problems,
            f"{self.events_file}: {len(self.differences)} decision row(s) differ from the "
            f"experiment re-run on the live keypoints; the first: {first['change']} at frame "
            f"{first.get('frame_index') or '?'} ({first.get('kind')} {first.get('name')} "
            f"{first.get('detail')})".rstrip(),
        ]


def check_decisions(session: SessionFiles, rows: dict[str, ExactRows]) -> list[RunCheck]:
    """Re-derive every experiment run of ``session`` and compare it with its events file.

    ``rows``: each camera's ``pose_exact.csv`` (:func:`exact_rows_of`).
    """
    runs = session.record.get("experiment_runs") or []
    if not runs and session.record.get("experiment"):
        runs = [session.record["experiment"]]
    return [
        _check_run(session, {**run, "_index": index}, rows)
        for index, run in enumerate(runs)
        if isinstance(run, dict) and run
    ]


def exact_rows_of(session: SessionFiles) -> dict[str, ExactRows]:
    """Each camera's pose_exact.csv, read to the bit."""
    found = {}
    pose = session.record.get("pose") or {}
    for camera in session.cameras:
        if camera.pose_exact is None:
            continue
        figures = (pose.get("cameras") or {}).get(camera.name) or {}
        keypoints = tuple(session.model_record(camera.name).get("keypoints") or ())
        found[camera.name] = read_exact_rows(
            camera.pose_exact, keypoints, figures.get("pose_exact_dtype")
        )
    return found


def _check_run(session: SessionFiles, run: dict[str, Any], rows: dict[str, ExactRows]) -> RunCheck:
    events_file = str(run.get("events_file") or "events.csv")
    check = RunCheck(events_file, str(run.get("name") or "?"), run.get("plan"))
    live_path = session.folder / events_file
    live = _read_rows(live_path) if live_path.is_file() else []  # a FIFO is no file: not read
    check.rows_live = len(live)
    check.not_sent = sum(1 for row in live if row.get("not_sent"))
    updates = run.get("updates") or {}
    check.updates_live = int(updates.get("count") or 0)
    why = _why_not_re_derivable(session, run, rows, live_path)
    if why is not None:
        check.not_re_derived = why
        return check
    plan = ExperimentPlan.from_record(run["plan"])
    try:
        runtime = ExperimentRuntime(plan.build())
    except Exception as error:  # the recorded plan no longer builds: say so, do not guess
        check.not_re_derived = f"the recorded experiment cannot be built now: {error}"
        return check
    check.option_problems = _options_as_recorded(run, runtime)
    reads = _reads_besides_keypoints(runtime)
    if reads:
        check.not_re_derived = (
            f"the experiment reads {', '.join(reads)} besides keypoints, which the recorded "
            "keypoints do not hold"
        )
        return check
    rederived = _run_again(session, runtime, run, rows, check)
    _compare(check, live, rederived)
    return check


def _why_not_re_derivable(
    session: SessionFiles, run: dict[str, Any], rows: dict[str, ExactRows], events: Path
) -> str | None:
    if not events.is_file():
        return f"{events.name} is missing"
    if run.get("rebuilt_from_files") and session.record.get("status") != "finished":
        return incomplete_why(session.record)
    if run.get("rebuilt_from_files"):
        return "its inference worker died: the events after its death were never decided"
    if not run.get("plan"):
        if session.record.get("status") != "finished":
            return incomplete_why(session.record)
        return "the session recorded no plan of its experiment (made before plans were recorded)"
    updates = run.get("updates") or {}
    if not updates.get("first_batch"):
        return "the session recorded no batches of its updates (made before they were recorded)"
    changed = changed_lab_files(run.get("plugin_files") or [])
    if changed:
        return "; ".join(changed)
    if not rows:
        return "no pose_exact.csv: the live keypoints are not kept to the bit"
    return None


def _options_as_recorded(run: dict[str, Any], runtime: ExperimentRuntime) -> list[str]:
    """Name each option (and the name) session.json records that the rebuilt experiment lacks."""
    # The run's name, the plan's options and the run's parameters: all were written from the
    # experiment that ran, which the recorded plan builds again, so each must hold the value it has.
    index = run.get("_index", 0)
    options = runtime.experiment.options
    used = {f.name: plain_option(getattr(options, f.name)) for f in dataclasses.fields(options)}
    recorded = {
        f"plan.options.{name}": (entry or {}).get("value")
        for name, entry in ((run.get("plan") or {}).get("options") or {}).items()
    }
    # The run's parameters: the options as the experiment reported them at its end; a dict
    # among them (prediction) also holds what it measured live, so only plain values compare.
    recorded |= {
        f"parameters.{k}": v
        for k, v in (run.get("parameters") or {}).items()
        if v is None or isinstance(v, str | int | float | bool)
    }
    problems = _triggers_as_recorded(run, runtime, index)
    if run.get("name") is not None and run["name"] != runtime.name:
        problems.append(
            f"experiment_runs[{index}].name is {run['name']!r} in session.json, but the recorded "
            f"experiment, built again, is named {runtime.name!r}: session.json was changed"
        )
    for where, value in recorded.items():
        name = where.rsplit(".", 1)[1]
        if name in used and not _same_value(value, used[name]):
            problems.append(
                f"experiment_runs[{index}].{where} is {value!r} in session.json, but the recorded "
                f"experiment, built again, has {used[name]!r}: session.json was changed"
            )
    return problems


def _triggers_as_recorded(run: dict[str, Any], runtime: ExperimentRuntime, index: int) -> list[str]:
    """Name each trigger whose recorded geometry is not the one the recorded plan builds."""
    # experiment_runs[i].triggers.NAME.trigger (a region's shape and place, a dwell's time) was
    # written from the triggers that ran, which the recorded plan builds again: a holder of the
    # lab's key who moves a region in session.json is named, in every verify, whole or
    # --decisions-only (both re-derive the decisions from the plan).
    problems = []
    for name, entry in (run.get("triggers") or {}).items():
        recorded = (entry or {}).get("trigger") if isinstance(entry, dict) else None
        trigger = runtime.triggers.get(name)
        if recorded is None:
            continue
        where = f"experiment_runs[{index}].triggers.{name}.trigger"
        if trigger is None:
            problems.append(
                f"{where} is recorded, but the recorded experiment, built again, has no trigger "
                f"{name!r}: session.json was changed"
            )
        elif not _same_value(recorded, trigger.describe()):
            built = json.loads(json.dumps(trigger.describe(), default=str))
            problems.append(
                f"{where} is {recorded!r} in session.json, but the recorded experiment, built "
                f"again from its plan, has {built!r}: session.json was changed"
            )
    return problems


def _same_value(recorded: Any, used: Any) -> bool:
    """Equal as JSON holds them (a tuple is a list there; 1 and 1.0 are one number)."""
    used = json.loads(json.dumps(used, default=str))
    if isinstance(recorded, bool) or isinstance(used, bool):
        return recorded is used
    if isinstance(recorded, int | float) and isinstance(used, int | float):
        return float(recorded) == float(used)
    return bool(recorded == used)


def _reads_besides_keypoints(runtime: ExperimentRuntime) -> list[str]:
    """Return what the experiment's triggers or its own code read besides keypoints."""
    reads = set(type(runtime.experiment).reads)
    pending: list[Trigger] = list(runtime.triggers.values())
    while pending:
        trigger = pending.pop()
        inner = getattr(trigger, "inner", None) or getattr(trigger, "trigger", None)
        pending.extend(
            (inner,) if isinstance(inner, Trigger) else tuple(getattr(trigger, "children", ()))
        )
        reads.update(type(trigger).reads)
    return sorted(reads)


def _run_again(
    session: SessionFiles,
    runtime: ExperimentRuntime,
    run: dict[str, Any],
    rows: dict[str, ExactRows],
    check: RunCheck,
) -> list[dict[str, str]]:
    """Feed the runtime the live updates of ``run``; return its events as events.csv's rows."""
    updates = run["updates"]
    first, last = int(updates["first_batch"]), int(updates["last_batch"])
    runtime.recording.defer_details = True  # as live: made when the update settles
    runtime.start()
    latest: dict[str, Observation] = {}
    error = str(run.get("error") or "")
    stuck = "did not return within" in error
    for batch, observations, lead in _updates(session, rows, first, last):
        if runtime.prediction is not None and math.isfinite(lead):
            runtime.prediction.lead.replay(lead)
        subject, _ = paired_update(latest, observations)
        check.updates_rederived += 1
        if stuck and batch == last:  # interrupted live: its events are not decisions
            check.explained.append(
                f"the update of batch {batch} did not return live ({error}); its rows are not "
                "compared"
            )
            break
        try:
            with time_limit(f"experiment {runtime.name!r}: its update", UPDATE_LIMIT_S):
                runtime.update(subject)
        except CallStalled:
            break
        except Exception:
            break
        runtime.events.settle()
    latest_s = max((o.time_s for o in latest.values()), default=None)
    if error:
        runtime.stop(None, f"failed: {error.removeprefix(FAILED_PREFIX)}")
    else:
        runtime.stop(latest_s, "stopped")
    runtime.events.settle()
    runtime.events.commit()
    return _rows_of(runtime.events)


def _updates(
    session: SessionFiles, rows: dict[str, ExactRows], first: int, last: int
) -> list[tuple[int, list[Observation], float]]:
    """Return the live updates from batch ``first`` to ``last``: each batch's observations."""
    by_batch: dict[int, list[tuple[str, int]]] = {}
    for camera, exact in rows.items():
        inside = np.nonzero((exact.batches >= first) & (exact.batches <= last))[0]
        for row in inside.tolist():
            by_batch.setdefault(int(exact.batches[row]), []).append((camera, row))
    plan = {c.name: c for c in session.settings.cameras}
    host = {camera.name: _host_times(camera.pose_times) for camera in session.cameras}
    unnamed = {camera.name: _unnamed(session.folder, camera.name) for camera in session.cameras}
    ensembles = {camera: _ensemble(session, exact) for camera, exact in rows.items()}
    updates = []
    for batch in sorted(by_batch):
        observations, lead = [], math.nan
        for camera, row in by_batch[batch]:
            exact = rows[camera]
            observation = _observation(session, camera, exact, row, host[camera], plan.get(camera))
            hidden = unnamed[camera].get(int(exact.frames[row]))
            if hidden:  # animals the live rules did not see (unsure after a merge): empty
                observation = _without(observation, hidden)
            ensemble = ensembles[camera]
            if ensemble is not None:  # its spread, its models' values, its causal filter's
                observation = dataclasses.replace(
                    observation,
                    ensemble_std=ensemble.std[row],
                    members=exact.members[row] if exact.members is not None else None,
                    smoothed=ensemble.smoothed_at(row, observation.keypoints),
                )
            observations.append(observation)
            if math.isfinite(exact.leads[row]):
                lead = float(exact.leads[row])
        updates.append((batch, observations, lead))
    return updates


def _observation(
    session: SessionFiles,
    camera: str,
    exact: ExactRows,
    row: int,
    host: dict[int, float],
    settings: Any,
) -> Observation:
    frame_index = int(exact.frames[row])
    animals = exact.points[row]
    keypoints = tuple(session.model_record(camera).get("keypoints") or ())
    confidence = exact.identity[row] if exact.identity is not None else None
    common = getattr(settings, "common", None)
    return Observation(
        time_s=float(exact.times[row]),
        camera=camera,
        frame_index=frame_index,
        keypoints=animals[0],
        names=keypoints,
        host_time_s=host.get(frame_index),
        animals=animals if exact.multi_animal else None,
        pixels_per_mm=getattr(common, "pixels_per_mm", None),
        identity_confidence=confidence,
    )


@dataclass
class _Ensemble:
    """A camera's ensemble as the live loop made it for each analysed row, in order."""

    std: np.ndarray  # (N, K)
    smoothed: np.ndarray | None  # (N, K, 2): the causal filter's positions; None: off

    def smoothed_at(self, row: int, keypoints: np.ndarray) -> np.ndarray | None:
        if self.smoothed is None:
            return None
        return np.column_stack([self.smoothed[row], keypoints[:, 2]])


def _ensemble(session: SessionFiles, exact: ExactRows) -> _Ensemble | None:
    """Recompute a camera's ensemble statistics and causal filter over every analysed row."""
    # The live loop filtered every frame it analysed, in order, from the analysis' start: the same
    # functions run on the same models' values (pose_exact.csv's model<i>_) give the same spread and
    # positions.
    if exact.members is None:
        return None
    pose = session.settings.pose
    frames = [ensemble_frame(members) for members in exact.members]
    std = np.stack([frame.std for frame in frames]) if frames else np.zeros((0, 0))
    if pose.ensemble_smoothing != "causal":
        return _Ensemble(std, None)
    causal = CausalEks(exact.members.shape[2], pose.eks_smooth_param, pose.eks_var_mode)
    means = [
        causal.update(members, frame).mean
        for members, frame in zip(exact.members, frames, strict=True)
    ]
    return _Ensemble(std, np.stack(means) if means else None)


def _unnamed(folder: Path, camera: str) -> dict[int, list[tuple[int, str | None]]]:
    """Per frame, what the live rules did not see: ``identity.csv``'s ``unnamed``."""
    # Each entry is an animal (row) and a keypoint name: None for the whole animal, a name for a
    # single keypoint withheld (individual:keypoint).
    path = folder / f"{camera}{IDENTITY_SUFFIX}"
    if not path.is_file():
        return {}
    found: dict[int, list[tuple[int, str | None]]] = {}
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        if not header or header[-1] != UNNAMED_COLUMN:
            return {}
        individuals = header[1:-1]
        for row in reader:
            if row and row[-1].strip():
                hidden: list[tuple[int, str | None]] = []
                for token in row[-1].split():
                    name, _, keypoint = token.partition(":")
                    if name in individuals:
                        hidden.append((individuals.index(name), keypoint or None))
                found[int(row[0])] = hidden
    return found


def _without(observation: Observation, hidden: list[tuple[int, str | None]]) -> Observation:
    """Return the observation with what the live rules did not see empty, and withheld."""
    animals = observation.animals
    if animals is None:
        return observation
    shown = np.array(animals, copy=True)
    withheld = np.zeros(shown.shape[:2], bool)
    for row, keypoint in hidden:
        if keypoint is None:
            withheld[row] = True
        elif keypoint in observation.names:
            withheld[row, observation.names.index(keypoint)] = True
    shown[withheld] = np.nan
    return dataclasses.replace(
        observation,
        animals=shown,
        keypoints=shown[0],
        withheld=withheld[0],
        animals_withheld=withheld,
        unnamed_rows=unnamed_rows(animals, withheld),
    )


def _host_times(path: Path | None) -> dict[int, float]:
    if path is None:
        return {}
    data = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(0, 1), ndmin=2)
    known = ~np.isnan(data[:, 1]) if data.size else np.zeros(0, dtype=bool)
    return {int(f): float(t) for f, t in data[known]}


def _rows_of(events: EventLog) -> list[dict[str, str]]:
    return list(csv.DictReader(events.to_csv_text().splitlines()))


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def _decision(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(row.get(column) or "" for column in DECISION_COLUMNS)


def _compare(check: RunCheck, live: list[dict[str, str]], rederived: list[dict[str, str]]) -> None:
    """Match the rows in order; list every row added, missing or changed, with its frame."""
    # Where the two differ, a live row and a re-derived row are one event changed (moved to another
    # frame, another position) when they have the same kind, name and detail; any other row is only
    # on its own side.
    check.rows_rederived = len(rederived)
    a = [_decision(row) for row in live]
    b = [_decision(row) for row in rederived]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            check.rows_equal += i2 - i1
            continue
        unmatched = list(range(j1, j2))
        for i in range(i1, i2):
            j = next((j for j in unmatched if _same_event(live[i], rederived[j])), None)
            if j is None:
                check.differences.append(
                    _difference("in events.csv, not re-derived", live[i], None)
                )
                continue
            unmatched.remove(j)
            check.differences.append(_difference("changed", live[i], rederived[j]))
        for j in unmatched:
            check.differences.append(
                _difference("re-derived, not in events.csv", None, rederived[j])
            )
    check.differences.sort(key=_frame_order)


def _same_event(live: dict[str, str], rederived: dict[str, str]) -> bool:
    return all(live.get(c) == rederived.get(c) for c in ("kind", "name", "detail"))


def _frame_order(difference: dict[str, Any]) -> float:
    frame = difference.get("frame_index")
    return float(frame) if isinstance(frame, str) and frame else math.inf


def _difference(
    change: str, live: dict[str, str] | None, rederived: dict[str, str] | None
) -> dict[str, Any]:
    """One row that differs: where it is, and both sides' decision columns."""
    either = live if live is not None else rederived
    assert either is not None
    columns = [
        column
        for column in DECISION_COLUMNS
        if live is not None and rederived is not None and live.get(column) != rederived.get(column)
    ]
    return {
        "change": change,
        "kind": either.get("kind"),
        "name": either.get("name"),
        "detail": either.get("detail"),
        "camera": either.get("camera"),
        "frame_index": either.get("frame_index"),
        "time_s": either.get("time_s"),
        "columns_differing": columns,
        "live": {c: live.get(c) for c in DECISION_COLUMNS} if live is not None else None,
        "re_derived": (
            {c: rederived.get(c) for c in DECISION_COLUMNS} if rederived is not None else None
        ),
    }
