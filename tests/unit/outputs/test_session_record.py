"""Issue 37: ``session.json`` is one typed, versioned record (outputs/session_record.py).

Round trip, a version-1 file, damaged files (reported and moved aside, never a crash), keys the
record does not know (kept), and the published JSON Schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from deeplabstream.live.session.report.summary import summary_lines
from deeplabstream.outputs.folder import RESERVE_FILE
from deeplabstream.outputs.session_record import (
    SCHEMA_VERSION,
    CameraRecord,
    Clock,
    DamagedRecordError,
    Health,
    PoseRun,
    Recording,
    SessionRecord,
    json_schema,
    load_record,
    parse_record,
    schema_text,
)
from deeplabstream.outputs.session_repair import recover_interrupted_sessions
from tests.support.paths import PROJECT_ROOT

SCHEMA_FILE = PROJECT_ROOT / "docs" / "session.schema.json"

#: A session.json as the code before the typed record wrote it (version 1: no schema_version),
#: trimmed to what a reader needs; an older one still, with ``pose`` and no ``pose_runs``.
VERSION_1 = {
    "format": "deeplabstream-session/1",
    "status": "finished",
    "stop_reason": "every camera has ended (frame limit reached)",
    "started": "2026-11-24T21:59:17.161564+00:00",
    "ended": "2026-11-24T21:59:22.582036+00:00",
    "clock": {
        "host_clock": "time.perf_counter (system-wide monotonic), seconds",
        "host_time_at_start": 13458.545647474,
        "wall_time_at_start": "2026-11-24T21:59:17.161564+00:00",
    },
    "errors": [],
    "warnings": [],
    "cameras": {
        "arena": {
            "source": "synthetic",
            "status": "ended",
            "end": "frame limit reached",
            "width": 640,
            "height": 480,
            "channels": 3,
            "nominal_fps": 30.0,
            "measured_fps": 30.016,
            "frames_captured": 90,
            "frames_dropped_by_camera": 0,
            "frames_recorded": 90,
            "frames_lost_in_recording": 0,
            "frames_dropped": 0,
            "recordings": [
                {"video": "arena.mp4", "frames_table": "arena.frames.csv", "frames": 90,
                 "lost": 0, "error": None}
            ],
            "device": {"kind": "simulated arena", "seed": 1},
        }
    },
    "pose": {
        "model": {"name": "arena", "framework": "deeplabstream", "precision": "fp32"},
        "cameras": {
            "arena": {
                "frames_analysed": 90, "frames_skipped": 0, "analysed_fps": 30.061,
                "latency_ms": {"p50": 3.78, "p95": 7.718, "p99": 9.122, "max": 9.122, "count": 90},
                "pose_file": "arena.pose.csv",
            }
        },
    },
    "experiment": None,
    "health": {
        "deadline": {"setting": "auto", "applies": True, "miss_tolerance_percent": 1.0,
                     "judged": "frame -> pose ready"},
        "cameras": {},
        "experiments": [],
        "stalls": {"count": 0, "longest_s": 0.0, "frames_not_analysed": 0, "list": []},
        "verdict": "warning",
        "problems": ["pose estimation alone was late"],
    },
    "processes": {"main": 14167, "capture:arena": 14176},
}  # fmt: skip


def a_record() -> SessionRecord:
    """A record as a session makes it (not read from a file)."""
    camera = CameraRecord(
        camera_id=0,
        source="synthetic",
        record=True,
        status="ended",
        end="frame limit reached",
        width=320,
        height=240,
        channels=3,
        nominal_fps=30.0,
        measured_fps=29.9,
        frames_captured=60,
        frames_recorded=60,
        recordings=(Recording(video="arena.mp4", frames_table="arena.frames.csv", frames=60),),
        device={"kind": "simulated arena"},
    )
    return SessionRecord(
        status="finished",
        started="2026-11-24T21:59:17+00:00",
        ended="2026-11-24T21:59:19+00:00",
        clock=Clock(host_time_at_start=1.5, wall_time_at_start="2026-11-24T21:59:17+00:00"),
        errors=("camera 'arena': a recording stopped",),
        cameras={"arena": camera},
        pose_runs=(PoseRun.from_json({"model": {"name": "arena"}, "cameras": {}}),),
        health=Health(verdict="error"),
        processes={"main": 1, "pose": None},
    )


def test_a_record_round_trips_through_its_json():
    record = a_record()
    data = record.to_json()
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["format"] == "deeplabstream-session/1"
    assert "replay" not in data  # an optional part the session did not fill is not written
    again = SessionRecord.from_json(json.loads(json.dumps(data)))
    assert again == record
    assert again.to_json() == data
    assert list(again.to_json()) == list(data)  # in the same order


def test_a_file_round_trips_byte_for_byte_including_nulls_and_absent_keys():
    data = {**copy.deepcopy(VERSION_1), "schema_version": SCHEMA_VERSION}
    data["cameras"]["arena"]["recordings"][0]["running"] = None  # present, null: kept so
    assert SessionRecord.from_json(data).to_json() == data


def test_a_version_1_file_is_read_with_its_runs_and_its_loop_warnings():
    record = SessionRecord.from_json(copy.deepcopy(VERSION_1))
    assert record.schema_version == 1
    assert [run.model_of("arena").name for run in record.pose_runs] == ["arena"]
    assert record.pose_runs[0].cameras["arena"].frames_analysed == 90
    assert record.experiment_runs == ()
    assert record.cameras["arena"].recordings[0].frames == 90
    # Before loop_warnings existed, a "warning" verdict's problems were the loop's warnings.
    assert record.health.warnings_of_the_loop() == ("pose estimation alone was late",)
    lines = summary_lines(record)
    assert lines[0] == "Stopped: every camera has ended (frame limit reached)"
    assert "  arena: 90 frames analysed (30.1 fps), 0 skipped; frame-to-pose latency " in (
        lines[2][:75]
    )
    assert "  warning: pose estimation alone was late" in lines
    # Written back, it stays version 1 and gains no key it did not have, but its runs list.
    written = record.to_json()
    assert written["schema_version"] == 1
    assert set(written) - set(VERSION_1) == {"schema_version", "pose_runs"}


def test_a_camera_setting_is_its_own_else_the_pose_sections_as_the_session_ran():
    settings = {
        "Pose": {"LIKELIHOOD_THRESHOLD": 0.6, "BACKEND": "onnxruntime"},
        "cameras": {
            "top": {"LIKELIHOOD_THRESHOLD": 0.8, "FRAMERATE": 30},
            "side": {"LIKELIHOOD_THRESHOLD": None},  # recorded null: inherits [Pose]'s
        },
    }
    record = SessionRecord.from_json({"schema_version": SCHEMA_VERSION, "settings": settings})
    assert record.camera_setting("top", "LIKELIHOOD_THRESHOLD") == 0.8
    assert record.camera_setting("side", "LIKELIHOOD_THRESHOLD") == 0.6
    assert record.camera_setting("gone", "BACKEND") == "onnxruntime"
    assert record.camera_setting("top", "FRAMERATE") == 30
    assert record.camera_setting("side", "FRAMERATE") is None  # nowhere: the caller decides
    assert SessionRecord().camera_setting("top", "FRAMERATE") is None  # no settings recorded


def test_keys_the_record_does_not_know_are_kept():
    data = {**copy.deepcopy(VERSION_1), "schema_version": SCHEMA_VERSION}
    data["lab_plugin"] = {"opto_pulses": 12}  # a plugin's own key at the top
    data["cameras"]["arena"]["lab_figure"] = [1, 2, 3]  # and inside a camera
    data["pose"]["cameras"]["arena"]["worker_wait"] = {"mode": "auto"}
    data["health"]["stalls"]["list"] = [{"camera": "arena", "at_s": 1.0, "new_key": True}]
    record = SessionRecord.from_json(data)
    assert record.extra == {"lab_plugin": {"opto_pulses": 12}}
    assert record.cameras["arena"].extra == {"lab_figure": [1, 2, 3]}
    assert record.to_json() == data
    # A later version's file is read too: its new keys kept, its version unchanged.
    later = {**data, "schema_version": SCHEMA_VERSION + 1, "new_part": {"a": 1}}
    assert SessionRecord.from_json(later).to_json() == later


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["cameras"]["arena"]["recordings"][0].update(frames="x"),
         "cameras.arena.recordings[0].frames"),
        (lambda d: d["cameras"]["arena"].update(frames_captured=-3),
         "cameras.arena.frames_captured"),
        (lambda d: d["cameras"]["arena"].update(recordings={"video": "a.mp4"}),
         "cameras.arena.recordings"),
        (lambda d: d.update(cameras=[1, 2]), "session.json.cameras"),
        (lambda d: d.update(errors="disk full"), "session.json.errors"),
        (lambda d: d.update(processes=[4]), "session.json.processes"),
        (lambda d: d["health"].update(verdict=3), "health.verdict"),
        (lambda d: d["pose"]["cameras"]["arena"].update(latency_ms=[1.0]), "latency_ms"),
        (lambda d: d["cameras"]["arena"].update(width=True), "cameras.arena.width"),
    ],
)  # fmt: skip
def test_a_figure_of_the_wrong_type_is_damage_named_by_its_key(change, named):
    data = copy.deepcopy(VERSION_1)
    change(data)
    with pytest.raises(DamagedRecordError, match=named.replace("[", r"\[").replace("]", r"\]")):
        SessionRecord.from_json(data)


@pytest.mark.parametrize(
    ("text", "words"),
    [("[1, 2, 3]", "a list, not an object"),
     ('{"status": "running", "processes": ', "not valid JSON"),
     ("", "not valid JSON"), ("null", "null, not an object")],
)  # fmt: skip
def test_a_list_truncated_json_or_null_is_damage(text, words):
    with pytest.raises(DamagedRecordError, match=words):
        parse_record(text)


def test_a_file_not_utf8_is_damage(tmp_path: Path):
    path = tmp_path / "session.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DamagedRecordError, match="not UTF-8"):
        load_record(path)


def _running(frames: object = 10) -> dict:
    data = copy.deepcopy(VERSION_1)
    data.update(status="running", processes={"main": 999_999_999}, main_process_started=1.0)
    data["cameras"]["arena"]["recordings"][0]["frames"] = frames
    return data


def test_damaged_files_are_moved_aside_and_named_never_raised(tmp_path: Path):
    contents = {
        "2020-01-01_00-00-01": "[1, 2, 3]",
        "2020-01-01_00-00-02": json.dumps(_running(frames="x")),
        "2020-01-01_00-00-03": '{"status": "running", "processes": ',
        "2020-01-01_00-00-04": json.dumps({"status": "running", "cameras": {"a": {"width": "x"}}}),
        "2020-01-01_00-00-05": json.dumps(_running()),  # whole: marked interrupted
        "2020-01-01_00-00-06": json.dumps({**VERSION_1, "processes": [4]}),  # finished: left
    }
    for name, text in contents.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "session.json").write_text(text, encoding="utf-8")
        (tmp_path / name / RESERVE_FILE).write_bytes(b"\0")
    recovery = recover_interrupted_sessions(tmp_path)
    damaged = [f"2020-01-01_00-00-0{i}" for i in (1, 2, 3, 4)]
    assert sorted(recovery.damaged) == [tmp_path / n / "session.json.damaged" for n in damaged]
    for name in damaged:
        moved = tmp_path / name / "session.json.damaged"
        assert moved.read_text(encoding="utf-8") == contents[name]  # byte for byte
        assert not (tmp_path / name / "session.json").exists()
    assert len(recovery.warnings) == 4
    assert "cameras.arena.recordings[0].frames" in recovery.warnings[1]
    assert recovery.interrupted == [tmp_path / "2020-01-01_00-00-05"]
    repaired = load_record(tmp_path / "2020-01-01_00-00-05" / "session.json")
    assert repaired.status == "interrupted" and "interrupted" in repaired.errors[0]
    assert repaired.cameras["arena"].repaired_from_files is True
    assert not (tmp_path / "2020-01-01_00-00-05" / RESERVE_FILE).exists()
    finished = tmp_path / "2020-01-01_00-00-06" / "session.json"
    assert finished.read_text(encoding="utf-8") == contents["2020-01-01_00-00-06"]  # untouched


def test_the_published_schema_is_the_one_the_classes_give():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "docs/session.schema.json is out of date: python -m "
        "deeplabstream.outputs.session_record --schema docs/session.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_the_schema_accepts_a_record_and_names_a_damaged_one():
    schema = json_schema()
    jsonschema.validate(a_record().to_json(), schema)
    data = a_record().to_json()
    data["cameras"]["arena"]["frames_captured"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    del data["cameras"]["arena"]["frames_captured"]  # a key every version-2 file has
    with pytest.raises(jsonschema.ValidationError, match="frames_captured"):
        jsonschema.validate(data, schema)


def test_docs_outputs_names_every_top_level_key_and_the_schema():
    text = (PROJECT_ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    assert "session.schema.json" in text
    for key in json_schema()["properties"]:
        assert f"`{key}`" in text, key
