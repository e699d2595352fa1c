"""A ``session.json`` that no session wrote never stops a start, a replay, ``--check`` or the
NWB export (issue 44, 2 to 4).

Each reader of the record goes through one reader (``outputs.session_record``) that opens only
regular files (a FIFO named ``session.json`` would block ``open()`` for ever, deaf to SIGINT and
SIGTERM), never reads more than :data:`MAX_RECORD_BYTES`, and never recurses without bound
(``[`` x 200000 raised RecursionError, which the repair did not catch). The start moves such a
file aside (``session.json.damaged``) and names it; ``--check`` and ``deeplabstream-nwb`` name
the file and what is wrong. ``--check`` also holds a record to the published schema
(``docs/session.schema.json``): ``{}``, ``status: "bogus"`` and ``schema_version: 99`` are
refused with the key and what is wrong.

A test that starts a command on a FIFO runs it in a subprocess with a timeout: without the fix
it would block for ever, and the timeout (never reached with the fix; the command ends on
its own) turns that into a failure instead of a hung test run.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from deeplabstream.outputs.session_record import (
    MAX_RECORD_BYTES,
    MAX_RECORD_NESTING,
    DamagedRecordError,
    SessionRecord,
    load_record,
)
from deeplabstream.outputs.session_record import main as session_record_main
from tests.faults.test_loop_health import cli
from tests.faults.test_session_faults import SETTINGS
from tests.support.files import make_ffv1_video
from tests.support.in_process import run_main_here
from tests.support.paths import PROJECT_ROOT as ROOT
from tests.support.processes import run_cli

SCHEMA = json.loads((ROOT / "docs" / "session.schema.json").read_text(encoding="utf-8"))
#: Far longer than any command here takes; reached only when a command blocks (the old code).
HANG_S = 180

fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def old_folder(out: Path, name: str) -> Path:
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "arena.frames.csv").write_text("frame_index\n0\n", encoding="utf-8")
    return folder


def deeply_nested(folder: Path) -> Path:
    path = folder / "session.json"
    path.write_text("[" * 200_000, encoding="utf-8")
    return path


def fifo(folder: Path) -> Path:
    path = folder / "session.json"
    os.mkfifo(path)
    return path


def oversized(folder: Path) -> Path:
    """A record one byte over the limit (sparse: it takes no disk), which was read whole."""
    path = folder / "session.json"
    with path.open("wb") as file:
        file.write(b'{"status": "finished", "notes": "')
        file.truncate(MAX_RECORD_BYTES + 1)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """A module of the project in its own process; fails (never hangs) when it blocks."""
    try:
        return subprocess.run(
            [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
            timeout=HANG_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:  # subprocess.run has killed it (SIGKILL)
        pytest.fail(f"{' '.join(args)} blocked: still running after {HANG_S} s")


def start(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    try:
        return cli(tmp_path, SETTINGS, "--frames", "10")
    except subprocess.TimeoutExpired:  # the start blocked on the old folder's session.json
        pytest.fail("the start blocked reading an old session's session.json")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (deeply_nested, f"nested deeper than {MAX_RECORD_NESTING}"),
        pytest.param(fifo, "not a regular file (a FIFO)", marks=fifo_only),
        (oversized, "larger than"),
    ],
    ids=["nested", "fifo", "oversized"],
)
def test_a_record_no_session_wrote_is_moved_aside_and_the_start_goes_on(tmp_path, make, reason):
    out = tmp_path / "out"
    folder = old_folder(out, "2020-01-01_00-00-01")
    path = make(folder)
    kind = stat.S_IFMT(os.stat(path).st_mode)
    result = start(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    moved = folder / "session.json.damaged"
    assert stat.S_IFMT(os.stat(moved).st_mode) == kind and not path.exists()  # kept as it was
    assert (folder / "arena.frames.csv").read_text() == "frame_index\n0\n"
    (new,) = [p for p in out.iterdir() if p != folder]
    info = json.loads((new / "session.json").read_text(encoding="utf-8"))
    (warning,) = [w for w in info["warnings"] if str(path) in w]
    assert reason in warning and "session.json.damaged" in warning
    assert f"warning: {warning}" in result.stdout
    assert info["cleanup_at_start"]["damaged_session_files_moved"] == [str(moved)]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (deeply_nested, f"nested deeper than {MAX_RECORD_NESTING}"),
        pytest.param(fifo, "not a regular file (a FIFO)", marks=fifo_only),
        (oversized, "larger than"),
    ],
    ids=["nested", "fifo", "oversized"],
)
def test_check_and_the_nwb_export_name_the_file_and_never_hang(tmp_path, make, reason):
    pytest.importorskip("pynwb")
    folder = old_folder(tmp_path, "2020-01-01_00-00-01")
    path = make(folder)
    check = run("deeplabstream.outputs.session_record", "--check", str(path))
    assert check.returncode == 1, check.stdout + check.stderr
    assert str(path) in check.stderr and reason in check.stderr
    assert "Traceback" not in check.stderr
    nwb = run("deeplabstream.outputs.nwb", str(folder))
    assert nwb.returncode == 1, nwb.stdout + nwb.stderr
    assert str(path) in nwb.stderr and reason in nwb.stderr
    assert "Traceback" not in nwb.stderr


def test_the_reader_refuses_nesting_json_itself_would_parse(tmp_path):
    """Deep but under Python's recursion limit: read, then refused (writing it back recursed)."""
    path = tmp_path / "session.json"
    depth = MAX_RECORD_NESTING + 1
    path.write_text('{"settings": ' + '{"a": ' * depth + "1" + "}" * (depth + 1))
    with pytest.raises(DamagedRecordError, match=f"nested deeper than {MAX_RECORD_NESTING}"):
        load_record(path)
    within = MAX_RECORD_NESTING - 2
    path.write_text('{"settings": ' + '{"a": ' * within + "1" + "}" * (within + 1))
    assert load_record(path).status == "running"


# -- --check holds a record to the published schema --------------------------------------------


@functools.cache
def _whole_record_validated() -> str:
    data = SessionRecord(status="finished", started="2026-11-25T10:00:00+00:00").to_json()
    jsonschema.validate(data, SCHEMA)  # seconds each: once, not for every parameter made of it
    return json.dumps(data)


def whole_record() -> dict:
    """A record as a session writes it, which the published schema accepts (a fresh copy)."""
    return json.loads(_whole_record_validated())


def check_here(path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m deeplabstream.outputs.session_record --check PATH``: its ``main`` in this
    process (the same parser and check; a regular file, which nothing here can block on)."""
    code, out, err = run_main_here(session_record_main, ["--check", str(path)])
    return subprocess.CompletedProcess(["session_record", "--check", str(path)], code, out, err)


def with_changes(**changes: object) -> dict:
    data = whole_record()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, ["'schema_version'", "missing"]),
        (with_changes(status="bogus"), ["status", "'bogus'", "running, finished, interrupted"]),
        (with_changes(schema_version=99), ["schema_version", "99", "above its maximum 2"]),
        (with_changes(errors=["a", 3]), ["errors[1]", "not a string"]),
        (with_changes(health={**whole_record()["health"], "verdict": "fine"}), ["health.verdict"]),
    ],
    ids=["empty", "status", "version", "errors", "verdict"],
)
def test_check_refuses_what_the_published_schema_refuses(tmp_path, data, words):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)  # the published schema says no ...
    path = tmp_path / "session.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    check = check_here(path)
    assert check.returncode == 1, check.stdout + check.stderr  # ... and so does --check
    assert str(path) in check.stderr and "Traceback" not in check.stderr
    for word in words:
        assert word in check.stderr, check.stderr


def test_check_accepts_a_whole_record(tmp_path):
    path = tmp_path / "session.json"
    path.write_text(json.dumps(whole_record()), encoding="utf-8")
    check = check_here(path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "status finished" in check.stdout


@pytest.mark.slow  # a whole session: the slow step (the default suite keeps under 15 min)
@fifo_only
def test_a_replay_into_a_folder_with_a_fifo_record_goes_on(tmp_path):
    """The replay starts as a session does: the FIFO is moved aside, the video replayed."""
    out = tmp_path / "out"
    folder = old_folder(out, "2020-01-01_00-00-01")
    path = fifo(folder)
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, frames=10, width=64, height=48)
    try:
        replay = run_cli(
            str(video), "--output-dir", str(out), "--fast", "--no-experiment",
            timeout=HANG_S, script="utils/VideoAnalyzer.py",
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the replay blocked reading an old session's session.json")
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    assert stat.S_ISFIFO(os.stat(folder / "session.json.damaged").st_mode) and not path.exists()
    info = json.loads((out / "clip" / "session.json").read_text(encoding="utf-8"))
    assert any(str(path) in w and "a FIFO" in w for w in info["warnings"]), info["warnings"]


def test_the_reader_works_where_the_os_has_no_o_nonblock(tmp_path, monkeypatch):
    """Windows' ``os`` has no ``O_NONBLOCK`` (and no FIFO): the reader opens the file plainly."""
    from deeplabstream.outputs.session_record import read_record_data

    monkeypatch.delattr(os, "O_NONBLOCK", raising=False)
    record = tmp_path / "session.json"
    record.write_text(json.dumps({"status": "finished", "errors": []}), encoding="utf-8")
    assert read_record_data(record) == {"status": "finished", "errors": []}
    record.write_bytes(b" " * (MAX_RECORD_BYTES + 1))
    with pytest.raises(DamagedRecordError):
        read_record_data(record)
