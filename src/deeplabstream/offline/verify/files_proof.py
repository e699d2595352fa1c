"""The session's files proven, not assumed: digests, the model, the experiment, derived files.

Design: docs/verify.md, "offline.verify.files_proof".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.digest import file_sha256, text_sha256
from deeplabstream.offline.verify.frames import ExactRows
from deeplabstream.offline.verify.record_proof import recorded_entries
from deeplabstream.offline.verify.session_files import SessionFiles, changed_lab_files
from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.outputs.session_record import SessionRecord
from deeplabstream.settings.experiment_plan import ExperimentPlan

#: The pose CSV writes x and y with 3 decimals: a value off by more than half of the last one
#: was not written from pose_exact.csv.
POSE_CSV_DECIMALS = 3
#: The kinds of the lab's plugins verify never runs: devices act, outputs write; neither decides.
NEVER_RUN = ("device", "output")


@dataclass
class FileProof:
    """What the session's own record proves of its files, and what it does not."""

    files_recorded: int = 0
    files_proven: int = 0
    problems: list[str] = field(default_factory=list)  # each a reason the verdict is "differs"
    notes: list[str] = field(default_factory=list)  # what the reader should know (no failure)
    model: dict[str, Any] = field(default_factory=dict)
    experiments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def proven(self) -> bool:
        """True when every recorded digest was taken again and matched, and nothing differs."""
        return not self.problems


def prove_files(session: SessionFiles, exact: dict[str, ExactRows]) -> FileProof:
    """Take every recorded digest again; hold the derived files to ``pose_exact.csv``."""
    proof = FileProof()
    _digests(session, proof)
    _model(session, proof)
    _experiments(session, proof)
    recorded = recorded_entries(session.record)
    needed = [entry for entry in recorded if entry.get("kind") not in NEVER_RUN]
    for problem in changed_lab_files(needed):
        if problem not in proof.problems:  # a file several runs used: said once
            proof.problems.append(problem)
    others = [entry for entry in recorded if entry.get("kind") in NEVER_RUN]
    for problem in changed_lab_files(others):
        note = f"{problem}; verify never runs a device or an output, so it needs neither"
        if note not in proof.notes:
            proof.notes.append(note)
    for camera in session.cameras:
        rows = exact.get(camera.name)
        if rows is not None and camera.pose_csv is not None:
            _pose_csv_agrees(camera.name, camera.pose_csv, rows, proof)
        _frames_tables(session, camera.name, proof)
    return proof


def _digests(session: SessionFiles, proof: FileProof) -> None:
    recorded = session.record.get("files")
    if not recorded:
        proof.notes.append(
            "session.json holds no digests of its files (a session from before they were "
            "recorded, or one that did not close): no file is proven unchanged"
        )
        return
    proof.files_recorded = len(recorded)
    for name, entry in sorted(recorded.items()):
        path = session.folder / name
        if not path.is_file():
            proof.problems.append(f"{name} is missing (session.json recorded it at the close)")
            continue
        if file_sha256(path) != (entry or {}).get("sha256"):
            size = path.stat().st_size
            was = (entry or {}).get("bytes")
            how = f"; {size} bytes, {was} at the close" if was is not None and was != size else ""
            proof.problems.append(f"{name} changed after the session (its SHA-256 differs{how})")
            continue
        proof.files_proven += 1


def _model(session: SessionFiles, proof: FileProof) -> None:
    """Check the model that ran: the file named then must hold the bytes recorded."""
    for camera in session.cameras:
        model = session.model_record(camera.name)
        recorded = model.get("source_sha256") or model.get("sha256")
        named = model.get("source_file") or model.get("file")
        entry = {"camera": camera.name, "name": model.get("name"), "file": named}
        entry["recorded_sha256"] = recorded
        if recorded and named and Path(named).is_file():
            now = file_sha256(Path(named))
            entry["sha256_now"] = now
            if now != recorded:
                proof.problems.append(
                    f"{camera.name}: the model {model.get('name')!r} ({named}) differs from the "
                    f"one recorded (SHA-256 {recorded[:12]}... then, {now[:12]}... now): the "
                    "keypoints cannot be re-derived with the model that ran"
                )
        elif recorded and named:
            proof.problems.append(
                f"{camera.name}: the model {model.get('name')!r} is gone ({named}): the "
                "keypoints cannot be re-derived"
            )
        if entry not in proof.model.setdefault("cameras", []):
            proof.model["cameras"].append(entry)


def code_problems(session: SessionFiles) -> list[str]:
    """Name the recorded model and the lab's files verify needs that are gone or changed."""
    proof = FileProof()
    _model(session, proof)
    needed = [e for e in recorded_entries(session.record) if e.get("kind") not in NEVER_RUN]
    return proof.problems + changed_lab_files(needed)


def _experiments(session: SessionFiles, proof: FileProof) -> None:
    """Check each run's experiment: a class's module still the code that ran."""
    for run in SessionRecord.from_json(session.record).experiment_runs:
        if not run.plan:
            continue
        plan = ExperimentPlan.from_record(run.plan)
        entry = {"events_file": run.events_file, "name": plan.name, "kind": plan.kind}
        proof.experiments.append(entry | {"origin": plan.origin, "sha256": plan.sha256})
        file = plan.file
        if file is None:
            continue
        if plan.kind == "config":  # re-run from the text session.json holds
            if file.is_file() and text_sha256(_text(file)) != plan.sha256:
                proof.notes.append(
                    f"the experiment config {file} was edited since the session: verify re-runs "
                    "the text session.json recorded, the one that ran"
                )
            continue
        if not file.is_file():
            proof.problems.append(
                f"the experiment {plan.name!r}: its file {file} is gone: its decisions "
                "cannot be re-derived"
            )
        elif file_sha256(file) != plan.sha256:
            proof.problems.append(
                f"the experiment {plan.name!r}: {file} was edited after the session (its "
                "SHA-256 differs): its decisions are not re-derived with other code"
            )


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


def _pose_csv_agrees(camera: str, pose_csv: Path, exact: ExactRows, proof: FileProof) -> None:
    """``<camera>.pose.csv``'s analysed rows must be ``pose_exact.csv``'s, rounded as it writes."""
    try:
        table = read_pose_table(pose_csv, analysed_only=True)
    except (OSError, ValueError) as error:
        proof.problems.append(f"{pose_csv.name} cannot be read: {error}")
        return
    rows = {int(frame): i for i, frame in enumerate(exact.frames.tolist())}
    missing = [int(f) for f in table.frames.tolist() if int(f) not in rows]
    extra = len(rows) - (len(table.frames) - len(missing))
    if missing or extra:
        proof.problems.append(
            f"{pose_csv.name} and {camera}.pose_exact.csv hold other frames ({len(missing)} "
            f"only in {pose_csv.name}, {extra} only in pose_exact.csv)"
        )
        return
    order = [rows[int(f)] for f in table.frames.tolist()]
    exact_xy = np.asarray(exact.points[order][..., :2], dtype=np.float64)
    written_xy = table.points[..., :2]
    animals = min(exact_xy.shape[1], written_xy.shape[1])
    off = np.abs(exact_xy[:, :animals] - written_xy[:, :animals])
    half = 0.5 * 10.0**-POSE_CSV_DECIMALS + 1e-9
    bad = np.nanmax(np.where(np.isnan(off), 0.0, off), axis=(1, 2, 3)) > half
    both_nan = np.isnan(exact_xy[:, :animals]) == np.isnan(written_xy[:, :animals])
    bad |= ~np.all(both_nan, axis=(1, 2, 3))
    if bad.any():
        first = int(table.frames[int(np.argmax(bad))])
        proof.problems.append(
            f"{pose_csv.name} differs from {camera}.pose_exact.csv on {int(bad.sum())} frame(s) "
            f"beyond its rounding (the first: frame {first}): the file labs analyse does not "
            "hold what the experiment saw"
        )


def _frames_tables(session: SessionFiles, camera: str, proof: FileProof) -> None:
    """Check that the frames tables hold as many frames as the session says it recorded."""
    entry = (session.record.get("cameras") or {}).get(camera) or {}
    recorded = entry.get("frames_recorded")
    tables = [part.frames_table for c in session.cameras if c.name == camera for part in c.videos]
    counted = 0
    for table in tables:
        if table is None:
            return  # a replay's own video: no table
        with table.open(encoding="utf-8") as file:
            counted += max(0, sum(1 for _ in file) - 1)
    if not isinstance(recorded, int) or counted == recorded:
        return
    said = f"{camera}: its frames tables hold {counted} frames, session.json says {recorded}"
    if session.record.get("status") in ("running", "interrupted"):
        # A session that never closed: its count is the last one written while it ran, and
        # the recorder went on. Not a sign of frames removed (the record's own state is said).
        proof.notes.append(
            f"{said}: the session never closed (killed?), so session.json's count is the last "
            "one written while it ran, not the recording's end"
        )
    elif counted < recorded:
        proof.problems.append(f"{said} were recorded: frames were removed from the recording")
    else:
        proof.problems.append(
            f"{said} were recorded: frames were added to the recording's table after the close"
        )
