"""deeplabstream-verify catches a session changed after its close, whatever the codec.

Two real sessions of the simulated arena (DeepLabStream.py as a process, the bundled model, a
two-region experiment), one recorded in H.264 (the default) and one in FFV1, made once each.
Every test changes a copy the way a careless or a dishonest hand would, then verifies it with
``--decisions-only``: the files against the digests recorded at the close, and the decisions
re-derived from the live keypoints (seconds; the recording is not analysed again, which the slow
tests in test_verify.py do). The untouched sessions must agree.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deeplabstream.offline.verify.verification import verify_session
from tests.support.paths import PROJECT_ROOT
from tests.support.verify_sessions import make_session

CODECS = ("h264", "ffv1")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One session per codec (240 frames: four region entries), made once.

    Both at once: a session mostly waits on its camera's 30 fps and on its processes' start,
    so the second need not wait for the first (each is its own process, folder and output).
    """
    folders = {codec: tmp_path_factory.mktemp(codec) for codec in CODECS}
    with ThreadPoolExecutor(max_workers=len(CODECS)) as pool:
        made = {
            codec: pool.submit(make_session, folders[codec], codec=codec, frames=240)
            for codec in CODECS
        }
        return {codec: future.result() for codec, future in made.items()}


def _copy(session: Path, tmp_path: Path) -> Path:
    copy = tmp_path / session.name
    shutil.copytree(session, copy, ignore=shutil.ignore_patterns("verify"))
    return copy


def _verify(session: Path) -> dict:
    return verify_session(session, keypoints=False).summary


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _record(session: Path) -> dict:
    return json.loads((session / "session.json").read_text(encoding="utf-8"))


def _write_record(session: Path, record: dict) -> None:
    (session / "session.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


@pytest.mark.parametrize("codec", CODECS)
def test_an_untouched_session_has_every_decision_re_derived_exactly(
    sessions: dict[str, Path], codec: str
) -> None:
    summary = _verify(sessions[codec])
    (run,) = summary["decisions"]
    assert run["not_re_derived"] is None
    assert run["rows_equal"] == run["rows_live"] == run["rows_re_derived"] > 5
    assert run["updates_re_derived"] == run["updates_live"] > 50  # a loaded machine skips some
    assert summary["files"]["proven"] == summary["files"]["recorded"] > 8
    assert summary["reasons"] == []
    assert summary["verdict"] == "agrees in part"  # the recording was not analysed again
    assert summary["not_checked"] == [
        "the keypoints were not re-derived from the recording (--decisions-only)"
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_a_deleted_action_row_is_named_with_its_frame(
    sessions: dict[str, Path], codec: str, tmp_path: Path
) -> None:
    session = _copy(sessions[codec], tmp_path)
    columns, rows = _rows(session / "events.csv")
    action = next(row for row in rows if row["kind"] == "action" and row["keypoint"])
    rows.remove(action)
    _write_rows(session / "events.csv", columns, rows)
    summary = _verify(session)
    assert summary["verdict"] == "differs"
    assert any("events.csv changed after the session" in r for r in summary["reasons"])
    (difference,) = summary["decisions"][0]["differences"]
    assert difference["change"] == "re-derived, not in events.csv"
    assert difference["frame_index"] == action["frame_index"]
    assert difference["kind"] == "action" and difference["detail"] == action["detail"]


@pytest.mark.parametrize("codec", CODECS)
def test_an_added_action_and_a_moved_trigger_are_named(
    sessions: dict[str, Path], codec: str, tmp_path: Path
) -> None:
    session = _copy(sessions[codec], tmp_path)
    columns, rows = _rows(session / "events.csv")
    trigger = next(i for i, row in enumerate(rows) if row["kind"] == "trigger")
    rows[trigger] = {**rows[trigger], "frame_index": str(int(rows[trigger]["frame_index"]) + 3)}
    spurious = {**next(r for r in rows if r["kind"] == "action"), "frame_index": "7"}
    rows.insert(1, spurious)
    _write_rows(session / "events.csv", columns, rows)
    # The digests too, as a hand would that knew of them: the decisions still tell.
    record = _record(session)
    record["files"].pop("events.csv")
    _write_record(session, record)
    summary = _verify(session)
    assert summary["verdict"] == "differs"
    changes = {(d["change"], d["frame_index"]) for d in summary["decisions"][0]["differences"]}
    assert ("in events.csv, not re-derived", "7") in changes
    assert any(change == "changed" for change, _ in changes)


def test_edited_pose_exact_keypoints_change_the_decisions_and_the_digest(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    session = _copy(sessions["h264"], tmp_path)
    path = session / "arena.pose_exact.csv"
    columns, rows = _rows(path)
    for row in rows[100:140]:  # the nose 15 px to the right on 40 frames
        row["nose_x"] = repr(float(row["nose_x"]) + 15.0)
    _write_rows(path, columns, rows)
    summary = _verify(session)
    assert summary["verdict"] == "differs"
    assert any("arena.pose_exact.csv changed after the session" in r for r in summary["reasons"])
    assert any("pose.csv differs from arena.pose_exact.csv" in r for r in summary["reasons"])


def test_an_edited_pose_csv_is_held_to_pose_exact(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    session = _copy(sessions["h264"], tmp_path)
    path = session / "arena.pose.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    edited, moved = [], 0
    for number, line in enumerate(lines):
        cells = line.rstrip("\n").split(",")
        shown = cells[1] and cells[1].lower() != "nan"
        if 3 + 50 <= number < 3 + 100 and shown:  # up to 50 rows: the first x 60 px further
            cells[1] = f"{float(cells[1]) + 60:.3f}"
            moved += 1  # a frame skipped live (a loaded machine) has an empty row
        edited.append(",".join(cells) + "\n")
    path.write_text("".join(edited), encoding="utf-8")
    record = _record(session)
    record["files"].pop("arena.pose.csv")  # its digest gone too: the file still tells
    _write_record(session, record)
    summary = _verify(session)
    assert summary["verdict"] == "differs"
    (reason,) = [r for r in summary["reasons"] if "arena.pose.csv differs" in r]
    assert f"{moved} frame(s)" in reason and moved > 10


def test_frames_removed_with_their_table_rows_are_counted(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    session = _copy(sessions["ffv1"], tmp_path)
    table = session / "arena.frames.csv"
    lines = table.read_text(encoding="utf-8").splitlines(keepends=True)
    middle = len(lines) // 2  # ten rows from the middle, however many the recorder wrote
    table.write_text("".join(lines[: middle - 5] + lines[middle + 5 :]), encoding="utf-8")
    summary = _verify(session)
    assert summary["verdict"] == "differs"
    assert any("arena.frames.csv changed after the session" in r for r in summary["reasons"])
    assert any("frames were removed from the recording" in r for r in summary["reasons"])


def test_another_experiment_written_into_session_json_is_caught(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    session = _copy(sessions["ffv1"], tmp_path)
    record = _record(session)
    plan = record["experiment_runs"][0]["plan"]
    plan["config_text"] = plan["config_text"].replace("circle 480 240 60", "circle 480 240 20")
    record["settings"]["Experiment"]["NAME"] = "reward_on_dwell"
    _write_record(session, record)
    summary = _verify(session)
    assert summary["verdict"] == "differs"
    assert any("NAME" in r and "reward_on_dwell" in r for r in summary["reasons"])
    assert summary["decisions"][0]["differences"]  # the smaller region: fewer entries


def test_the_config_file_edited_after_the_session_is_not_what_is_re_run(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    session = sessions["ffv1"]
    record = _record(session)
    config = Path(record["experiment_runs"][0]["plan"]["file"])
    original = config.read_text(encoding="utf-8")
    try:
        config.write_text(original.replace("circle 160 240 60", "circle 10 10 5"), "utf-8")
        summary = _verify(session)
    finally:
        config.write_text(original, encoding="utf-8")
    assert summary["reasons"] == []  # the recorded text is re-run, not today's file
    assert any("edited since the session" in note for note in summary["notes"])


def test_a_session_folder_carrying_code_runs_none_of_it(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    session = _copy(sessions["ffv1"], tmp_path)
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    for folder in ("formats", "triggers", "experiments", "devices", "backends", "outputs"):
        (session / folder).mkdir()
        (session / folder / "zz_lab.py").write_text(code, encoding="utf-8")
        (session / folder / "region.py").write_text(code, encoding="utf-8")
    (session / "settings.ini").write_text("[Experiment]\nNAME = zz_lab\n", encoding="utf-8")
    record = _record(session)
    record["settings"]["file"] = "settings.ini"  # relative: read against the current folder
    _write_record(session, record)
    result = subprocess.run(  # cd SESSION; deeplabstream-verify .
        [sys.executable, "-m", "deeplabstream.offline.verify", ".", "--decisions-only"],
        cwd=session, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
    )  # fmt: skip
    output = result.stdout + result.stderr
    exit_code = result.returncode
    summary = json.loads((session / "verify" / "summary.json").read_text(encoding="utf-8"))
    assert not marker.exists(), output
    assert exit_code in (1, 3), output  # session.json was edited: it may differ, never run code
    assert summary["decisions"][0]["rows_equal"] > 0
