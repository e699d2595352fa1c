"""What verify proves of session.json itself, of a lossy camera's keypoints; its verdict line."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.digest import text_sha256
from deeplabstream.offline.verify.codec_bound import (
    MIN_BOUND_PX,
    NOISE_FACTOR,
    bound_from,
    decode_frames,
    encode_again,
    sample_runs,
)
from deeplabstream.offline.verify.frames import PoseSeries
from deeplabstream.offline.verify.keypoints import CameraFacts, compare_keypoints
from deeplabstream.offline.verify.record_proof import (
    fields_against_each_other,
    prove_record,
    recorded_code_of,
)
from deeplabstream.offline.verify.verification import verdict_line
from deeplabstream.outputs.video import recording_stem
from deeplabstream.settings.sections import RecordingSettings

TEXT = "[Experiment]\nDESCRIPTION = entries\n"
LAB = "lab folder: /lab/devices/box.py"
RECORD = {
    "status": "finished",
    "settings": {"Experiment": {"NAME": "entries"}},
    "plugins": {"device": {"box": LAB}},
    "plugin_files": [{"kind": "device", "name": "box", "file": "/lab/devices/box.py"}],
    "experiment": {"name": "entries", "events_file": "events.csv"},
    "experiment_runs": [
        {
            "name": "entries",
            "events_file": "events.csv",
            "plan": {"name": "entries", "kind": "config", "config_text": TEXT,
                     "sha256": text_sha256(TEXT)},
        }
    ],
}  # fmt: skip


def _changed(*path: str | int, value: object) -> dict:
    record = copy.deepcopy(RECORD)
    place = record
    for name in path[:-1]:
        place = place[name]
    place[path[-1]] = value
    return record


def test_a_consistent_record_has_no_field_against_another() -> None:
    assert fields_against_each_other(RECORD) == []


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("experiment_runs", 0, "plan", "config_text"), TEXT + "# x\n", ".plan.sha256 is not"),
        (("experiment_runs", 0, "name"), "dwell", "the last of experiment_runs says 'dwell'"),
        (("experiment", "name"), "dwell", "experiment.name is 'dwell'"),
        (("settings", "Experiment", "NAME"), "dwell", "settings.Experiment.NAME is 'dwell'"),
        (("plugin_files", 0, "file"), "/x/devices/box.py", "plugin_files lists /x/devices/box"),
    ],
)
def test_a_field_that_disagrees_is_named(path: tuple, value: object, named: str) -> None:
    problems = fields_against_each_other(_changed(*path, value=value))
    assert any(named in problem for problem in problems), problems


def test_an_unsigned_record_differs_unless_accepted_and_code_inside_is_never_run(
    tmp_path: Path,
) -> None:
    record = _changed("plugin_files", 0, "file", value=str(tmp_path / "devices" / "box.py"))
    record["plugins"]["device"]["box"] = f"lab folder: {tmp_path / 'devices' / 'box.py'}"
    record["plugin_files"][0]["sha256"] = "ab" * 32
    proof = prove_record(tmp_path, record)
    assert "session.json is not signed" in proof.problems[0]
    assert "inside the session folder checked" in proof.problems[1]
    assert recorded_code_of(tmp_path, record) == {}
    accepted = prove_record(tmp_path, copy.deepcopy(RECORD), unsigned=True)
    assert accepted.problems == [] and "(accepted: --unsigned)" in accepted.not_checked[0]
    trusted = prove_record(tmp_path, copy.deepcopy(RECORD), trusted=("SHA256:x",))
    assert trusted.problems[0].startswith("unsigned by your key: ")


def test_a_killed_session_says_why_it_is_incomplete(tmp_path: Path) -> None:
    proof = prove_record(tmp_path, _changed("status", value="interrupted"))
    assert "it was killed and never closed" in proof.problems[0]


def _poses(frames: int, shift: float, seed: int = 1) -> tuple[PoseSeries, PoseSeries]:
    rng = np.random.default_rng(seed)
    reference = np.zeros((frames, 1, 2, 3))
    reference[..., :2] = rng.random((frames, 1, 2, 2)) * 400
    reference[..., 2] = 0.9
    live = reference.copy()
    live[..., :2] += rng.normal(0, 0.1, (frames, 1, 2, 2))  # a codec's noise
    live[..., 0] += shift
    index = np.arange(frames)
    names = ("nose", "tail")
    return PoseSeries(index, live, names, True), PoseSeries(index, reference, names, True)


@pytest.mark.parametrize(("shift", "differs"), [(0.0, False), (2.0, True), (5.0, True)])
def test_a_coordinated_shift_on_a_lossy_recording_is_named(shift: float, differs: bool) -> None:
    live, reference = _poses(200, shift)
    facts = CameraFacts(False, False, False, False, 1, False, 0.5, 4.0)
    result = compare_keypoints("arena", live, reference, set(range(200)), 0, facts)
    offsets = [o["keypoint"] for o in result.offsets]
    assert offsets == (["nose", "tail"] if differs else [])
    assert bool(result.reasons()) is differs
    if differs:
        assert "sits" in result.reasons()[0] and "the keypoints were moved" in result.reasons()[0]
    assert result.frames["within_bound"] + result.frames["differs"] == 200


def test_a_lossy_camera_without_a_bound_is_not_verifiable_and_said() -> None:
    live, reference = _poses(40, 0.0)
    facts = CameraFacts(False, False, False, False, 1, False, 0.5, None)
    result = compare_keypoints("arena", live, reference, set(range(40)), 0, facts)
    assert result.frames["not_verifiable"] == 40
    assert result.not_verifiable == {"no bound could be measured for the lossy recording": 40}


def test_the_bound_is_the_measured_noise_times_its_factor() -> None:
    moved = np.array([[0.1, 0.2], [np.nan, 0.1], [0.3, 0.05]])
    bound = bound_from(moved, 3, "libx264 CRF 18")
    assert bound.bound_px == pytest.approx(NOISE_FACTOR * 0.1)
    assert bound.keypoints == 5 and bound.max_px == pytest.approx(0.3)
    assert "40 x the median" in bound.describe()
    assert bound_from(np.zeros((2, 2)), 2, "").bound_px == MIN_BOUND_PX
    assert bound_from(np.full((2, 2), np.nan), 2, "").bound_px is None


def test_runs_are_consecutive_and_spread() -> None:
    runs = sample_runs(list(range(0, 1000)))
    assert len(runs) == 6 and all(run == list(range(run[0], run[0] + 10)) for run in runs)
    assert runs[0][0] == 0 and runs[-1][-1] == 999
    assert sample_runs([3, 4]) == [list(range(3, 13))]


def test_frames_encoded_again_as_the_recorder_does(tmp_path: Path) -> None:
    """A small H.264 file: the frames decoded where asked, and encoded once more."""
    from deeplabstream.core.frames import FrameGeometry
    from deeplabstream.outputs.video import VideoWriter

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(40)]
    writer = VideoWriter(tmp_path / "a.mp4", FrameGeometry(48, 64, 3), "h264", 30.0)
    for number, frame in enumerate(frames):
        writer.encode(writer.frame_from(frame), number / 30)
    writer.close()
    decoded = decode_frames(tmp_path / "a.mp4", [0, 5, 31, 39])
    assert sorted(decoded) == [0, 5, 31, 39]
    again = encode_again([decoded[31], decoded[39]], RecordingSettings())
    assert len(again) == 2 and again[0].shape == (48, 64, 3)


def test_a_recording_started_again_has_files_of_its_own() -> None:
    assert recording_stem("arena", 1) == "arena"
    assert recording_stem("arena", 2) == "arena.part2"


def test_the_verdict_line_says_how_much_was_checked() -> None:
    summary = {"verdict": "agrees", "coverage": {"frames": {"checked": 58, "analysed": 905}}}
    assert verdict_line(summary) == "agrees: 58 of 905 analysed frames checked (6 %)"


@pytest.mark.parametrize(("moves", "rare"), [([6.0], True), ([6.0, 6.0], False), ([9.0], False)])
def test_a_rare_frame_beyond_the_lossy_bound_is_named_not_held_against(
    moves: list[float], rare: bool
) -> None:
    """One frame in 200 beyond a 4 px bound, within twice it: the codec's rare larger move."""
    live, reference = _poses(200, 0.0)
    for row, move in enumerate(moves):
        live.points[50 + row, 0, 0, 0] += move
    facts = CameraFacts(False, False, False, False, 1, False, 0.5, 4.0)
    result = compare_keypoints("arena", live, reference, set(range(200)), 0, facts)
    assert bool(result.reasons()) is not rare
    from deeplabstream.offline.verify.keypoints import RARE_TAIL

    assert result.not_verifiable.get(RARE_TAIL, 0) == (len(moves) if rare else 0)


# -- trusted signers (round eight) -------------------------------------------------------------


def _signed_by_another_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, str]:
    """RECORD edited (another animal) and re-signed with a key of another installation."""
    from deeplabstream.outputs.signature import (
        KEY_VARIABLE,
        fingerprint,
        installation_key,
        public_bytes,
        sign_record,
    )

    own = installation_key()  # the tests' own installation key: trusted without a list
    monkeypatch.setenv(KEY_VARIABLE, str(tmp_path / "forger.pem"))
    forger = installation_key()
    monkeypatch.setenv(KEY_VARIABLE, str(tmp_path / "own.pem"))
    assert own is not None and forger is not None
    record = copy.deepcopy(RECORD) | {"metadata": {"animal": "mouse13"}}
    return sign_record(record, forger), fingerprint(public_bytes(forger.public_key()))


def _summary_of(proof: object, verdict: str = "agrees") -> dict:
    summary = {
        "verdict": verdict,
        "coverage": {"frames": {"checked": 240, "analysed": 240}},
        "signature": proof.signer,  # type: ignore[attr-defined]
    }
    if proof.not_checked and verdict == "agrees":  # type: ignore[attr-defined]
        summary["verdict"] = "agrees in part"
    return summary


def test_a_record_re_signed_by_a_key_in_no_list_never_reads_a_bare_agrees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deeplabstream.offline.verify.command import EXIT_UNTRUSTED, exit_code
    from deeplabstream.outputs.signature import trusted_signers

    monkeypatch.setenv("DEEPLABSTREAM_ALLOWED_SIGNERS", str(tmp_path / "none"))
    record, forger = _signed_by_another_key(tmp_path, monkeypatch)
    settings = tmp_path / "lab" / "settings.ini"
    settings.parent.mkdir()
    proof = prove_record(tmp_path / "s", record, signers=trusted_signers(settings))
    assert proof.problems == []
    assert proof.not_checked and forger in proof.not_checked[0]
    assert "in no list of trusted signers" in proof.not_checked[0]
    summary = _summary_of(proof)
    line = verdict_line(summary)
    assert line.startswith("agrees in part: ") and f"signed by {forger}" in line
    assert line.endswith("NOT a trusted signer")
    assert exit_code(summary) == EXIT_UNTRUSTED == 4
    # The same key in the lab's list, beside its settings file: a bare "agrees", named.
    (settings.parent / "allowed_signers").write_text(
        f"# keys this lab signs with\nrig3 {forger}\n", encoding="utf-8"
    )
    proof = prove_record(tmp_path / "s", record, signers=trusted_signers(settings))
    assert proof.not_checked == [] and proof.problems == []
    summary = _summary_of(proof)
    assert exit_code(summary) == 0
    assert verdict_line(summary) == (
        f"agrees: 240 of 240 analysed frames checked (100 %); signed by {forger} (rig3), "
        f"trusted: the lab list {settings.parent / 'allowed_signers'}"
    )


def test_the_users_list_trusts_a_key_and_a_bad_line_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deeplabstream.outputs.signature import SigningError, trusted_signers

    record, forger = _signed_by_another_key(tmp_path, monkeypatch)
    user_list = tmp_path / "user" / "allowed_signers"
    user_list.parent.mkdir()
    monkeypatch.setenv("DEEPLABSTREAM_ALLOWED_SIGNERS", str(user_list))
    public = record["signature"]["public_key"]  # the base64 key, as session.json holds it
    user_list.write_text(f"jane {public}\n", encoding="utf-8")
    proof = prove_record(tmp_path / "s", record, signers=trusted_signers(None))
    assert proof.not_checked == [] and proof.signer["trusted_by"] == f"your list {user_list}"
    assert proof.signer["name"] == "jane" and proof.signer["fingerprint"] == forger
    user_list.write_text("jane\n", encoding="utf-8")
    with pytest.raises(SigningError, match=r"allowed_signers, line 1: give a name and a key"):
        trusted_signers(None)


def test_a_threshold_no_live_keypoint_reaches_is_blamed_on_the_settings() -> None:
    from deeplabstream.offline.verify.verification import threshold_blame

    rng = np.random.default_rng(3)
    points = np.zeros((600, 1, 4, 3))
    points[..., 2] = rng.uniform(0.55, 0.9, size=(600, 1, 4))  # what the model gave live
    record = {"settings": {"Pose": {"LIKELIHOOD_THRESHOLD": 0.95}, "cameras": {"arena": {}}}}
    blame = threshold_blame(record, "arena", points)
    assert blame is not None and blame.startswith("arena: the likelihood threshold in the settings")
    assert "settings.Pose.LIKELIHOOD_THRESHOLD is 0.95" in blame and "0 of 2400" in blame
    record["settings"]["Pose"]["LIKELIHOOD_THRESHOLD"] = 0.5  # as it ran: not blamed
    assert threshold_blame(record, "arena", points) is None
    record["settings"]["cameras"]["arena"]["LIKELIHOOD_THRESHOLD"] = 0.99  # the camera's own
    assert "settings.cameras.arena.LIKELIHOOD_THRESHOLD is 0.99" in str(
        threshold_blame(record, "arena", points)
    )


@pytest.mark.parametrize(
    ("status", "counted", "said"),
    [
        ("interrupted", 250, "the session never closed (killed?)"),
        ("finished", 200, "frames were removed from the recording"),
        ("finished", 250, "frames were added to the recording's table after the close"),
    ],
)
def test_a_frames_table_against_the_recorded_count_names_its_cause(
    tmp_path: Path, status: str, counted: int, said: str
) -> None:
    """Plain data stands in for the session's files (only its record and tables are read)."""
    from types import SimpleNamespace

    from deeplabstream.offline.verify.files_proof import FileProof, _frames_tables

    table = tmp_path / "arena.frames.csv"
    table.write_text("frame\n" + "".join(f"{i}\n" for i in range(counted)), encoding="utf-8")
    part = SimpleNamespace(frames_table=table)
    session = SimpleNamespace(
        record={"status": status, "cameras": {"arena": {"frames_recorded": 230}}},
        cameras=[SimpleNamespace(name="arena", videos=[part])],
    )
    proof = FileProof()
    _frames_tables(session, "arena", proof)  # type: ignore[arg-type]
    found = proof.problems + proof.notes
    assert len(found) == 1 and said in found[0], found
    assert (status == "interrupted") == bool(proof.notes)
    assert not any("removed" in text for text in found) or status == "finished"
