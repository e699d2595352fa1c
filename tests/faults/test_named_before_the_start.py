"""Bad input found late, or named wrongly (issue 63): each named by its key before anything starts.

- ``EKS_SMOOTH_PARAM = 1,2`` for a 6-keypoint ensemble crashed the worker after the start;
- ``deeplabstream-replay --experiment broken`` (a bad trigger key) exited 1 and left a folder;
  its check before the start looked at an ensemble's first member only; without ``--settings`` it
  read the checkout's settings.ini, not the working folder's;
- bad ``KEYPOINT_MAP`` pairs were blamed on MODEL_PATH; a self-referencing symbolic link as the
  model read "RuntimeError: Symlink loop"; a deleted recording read "no camera was recorded";
- the same model listed three times in an ensemble (its spread always 0: every
  ``MAX_ENSEMBLE_STD`` rule passes), ``FRAMERATE`` and ``framerate`` in one section (the first
  taken) and a lab module linked from outside its folder (not in ``plugin_files``) were silent;
- an output folder or model path that is not valid UTF-8 failed after the start;
- Ctrl-C while the model loads with ``--experiment-enabled`` kept a folder of empty files and
  sent two switch-offs to a device never switched on; a Ctrl-C in the launcher's first
  milliseconds could print a ``KeyboardInterrupt`` (the standard library's ``signal`` imported
  first);
- a camera at a tenth of its FRAMERATE in a 2.5 s session read "ok" (tested with the 4.5 s
  session's case, ``tests/faults/test_found_before_start.py``);
- a ``session.json`` with a byte-order mark was moved aside; ``frames_recorded = 1e30`` or NaN
  was taken as a figure.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.plugins import plugin_files_entry
from deeplabstream.experiments.config.parse import ExperimentConfigError, parse_experiment_config
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.hardware.cameras import CAMERAS
from deeplabstream.live.session.preflight import (
    check_before_start,
    model_problems,
    output_folder_problems,
)
from deeplabstream.offline.replay.command import build_parser, check_inputs, options_from
from deeplabstream.offline.verify.session_files import VerifyError, read_session
from deeplabstream.outputs.session_record import (
    DamagedRecordError,
    PoseRun,
    load_record,
    read_record_data,
)
from deeplabstream.pose.loading import BUNDLED_MODEL
from deeplabstream.settings import load_settings
from deeplabstream.settings.loader import default_settings_file, settings_as_dict
from tests.faults.test_start_up_stop import _assert_stopped_cleanly, _run_until_held
from tests.support.ensembles import arena_clip, perturbed_member, renamed_member
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.unit.core.test_lab_folders import PLUGINS
from tests.unit.outputs.test_session_record import a_record

KEYPOINTS = ("nose", "left_ear", "right_ear", "neck", "body_center", "tail_base")
CAMERA = "[Camera arena]\nSOURCE = synthetic\n"
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file names and signals")


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models of an ensemble: the bundled one perturbed, and one that says snout for nose.

    Not a byte-identical copy of the bundled model: an ensemble refuses it (a copy's spread is 0).
    """
    folder = tmp_path_factory.mktemp("members")
    copy = perturbed_member(folder / "copy", seed=5, scale=0.01)
    shutil.copytree(BUNDLED_MODEL, folder / "snouty")
    return {"copy": copy, "snouty": renamed_member(folder / "snouty", {"nose": "snout"})}


def _problems(tmp_path: Path, pose: str, camera: str = CAMERA) -> list[str]:
    settings = load_settings(write_settings(tmp_path, f"{camera}[Pose]\n{pose}"))
    return check_before_start(settings, pose=True, experiment=False)


def _models(*paths: Path) -> str:
    return "MODEL_PATH = " + "\n    ".join(str(path) for path in paths) + "\n"


# -- 9. found before the start ---------------------------------------------------------------


def test_an_eks_smooth_param_of_another_count_is_refused_by_its_key(tmp_path, members) -> None:
    pose = _models(BUNDLED_MODEL, members["copy"]) + "ENSEMBLE_SMOOTHING = causal\n"
    (problem,) = _problems(tmp_path, pose + "EKS_SMOOTH_PARAM = 1,2\n")
    assert problem.startswith(f"[Pose] EKS_SMOOTH_PARAM in {tmp_path / 'settings.ini'} gives 2 ")
    assert "the ensemble of camera 'arena' has 6 keypoints (nose, left_ear" in problem
    assert _problems(tmp_path, pose + "EKS_SMOOTH_PARAM = 1,2,3,4,5,6\n") == []
    assert _problems(tmp_path, pose + "EKS_SMOOTH_PARAM = 7\n") == []


def _replay_problems(tmp_path: Path, *argv: str) -> list[str]:
    video = tmp_path / "arena.mkv"
    if not video.exists():
        arena_clip(video, 3)
    options = options_from(build_parser().parse_args([str(video), *argv]))
    return check_inputs(options, [video])


BROKEN = (
    "[Trigger zone]\nKIND = region\nSHAPE = rect 0 0 320 480\nKEYPOINT = nose\nBOGUS_KEY = 3\n"
    "[Stimulation light]\nDEVICE = light\nCOMMAND = pulse\nCHANNEL = 0\nDURATION = 0.01\n"
    "[Rule zone]\nWHEN = zone\nDO = light\n"
)


def test_a_replays_bad_trigger_key_is_refused_before_the_start(tmp_path: Path) -> None:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "broken.ini").write_text(BROKEN)
    settings = write_settings(tmp_path, "[Device light]\nTYPE = log\n")
    (problem,) = _replay_problems(tmp_path, "--settings", str(settings), "--experiment", "broken")
    assert problem.startswith("--experiment ('broken'): ")
    assert "[Trigger zone] BOGUS_KEY: unknown key for KIND = region" in problem


@pytest.mark.slow  # the replay command's imports and a clip
def test_the_replay_command_exits_2_and_makes_no_folder_for_a_bad_trigger_key(tmp_path) -> None:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "broken.ini").write_text(BROKEN)
    (tmp_path / "settings.ini").write_text("[Device light]\nTYPE = log\n")  # the folder's own
    arena_clip(tmp_path / "arena.mkv", 3)
    result = subprocess.run(
        [sys.executable, "-c", "from deeplabstream.launch import replay; replay()",
         str(tmp_path / "arena.mkv"), "--experiment", "broken", "--output-dir",
         str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "BOGUS_KEY: unknown key" in result.stderr  # so the working folder's settings.ini
    assert not (tmp_path / "out").exists()


def test_without_settings_the_working_folders_settings_ini_is_read(tmp_path, monkeypatch) -> None:
    (tmp_path / "settings.ini").write_text(CAMERA)
    monkeypatch.chdir(tmp_path)
    assert default_settings_file() == tmp_path / "settings.ini"


@pytest.mark.parametrize("member", ["other_keypoints", "missing"])
def test_a_replay_checks_every_member_of_an_ensemble_before_the_start(
    tmp_path: Path, members: dict[str, Path], member: str
) -> None:
    second = members["snouty"] if member == "other_keypoints" else tmp_path / "gone"
    settings = write_settings(tmp_path, "[Pose]\n" + _models(BUNDLED_MODEL, second))
    (problem,) = _replay_problems(tmp_path, "--settings", str(settings), "--no-experiment")
    assert problem.startswith(f"[Pose] MODEL_PATH in {settings}: ")
    expected = "model 2 " if member == "other_keypoints" else f"{second}: model not found"
    assert expected in problem, problem


# -- 10. named by the right key -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pair", "said"),
    [
        ("snout=nostril", "snout=nostril: 'nostril' is no keypoint of the ensemble"),
        ("foo=nose", "foo=nose: no model of the ensemble after the first has a keypoint 'foo'"),
    ],
)
def test_a_keypoint_map_pair_that_maps_nothing_is_blamed_on_keypoint_map(
    tmp_path: Path, members: dict[str, Path], pair: str, said: str
) -> None:
    pose = _models(BUNDLED_MODEL, members["snouty"]) + f"KEYPOINT_MAP = {pair}\n"
    (problem,) = _problems(tmp_path, pose)
    assert (
        problem
        == f"[Pose] KEYPOINT_MAP in {tmp_path / 'settings.ini'}: " + problem.split(": ", 1)[1]
    )
    assert said in problem and "MODEL_PATH" not in problem
    own = CAMERA + f"KEYPOINT_MAP = {pair}\n"  # a camera's own map is named by its section
    (problem,) = _problems(tmp_path, _models(BUNDLED_MODEL, members["snouty"]), own)
    assert problem.startswith("[Camera arena] KEYPOINT_MAP in ")
    assert _problems(tmp_path, _models(BUNDLED_MODEL, members["snouty"]) + "KEYPOINT_MAP = "
                     "snout=nose\n") == []  # fmt: skip


def test_a_keypoint_map_pair_of_two_equals_signs_is_refused_as_syntax(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"\[Pose\] KEYPOINT_MAP = 'snout=nose=x'"):
        load_settings(write_settings(tmp_path, CAMERA + "[Pose]\nKEYPOINT_MAP = snout=nose=x\n"))


@POSIX
def test_a_model_that_is_a_link_to_itself_or_nowhere_says_so(tmp_path: Path) -> None:
    loop, dangling = tmp_path / "loop.onnx", tmp_path / "dangling.onnx"
    loop.symlink_to("loop.onnx")
    dangling.symlink_to("nowhere.onnx")
    (problem,) = model_problems(loop, "--model")
    assert problem.startswith(f"--model: {loop}: a symbolic link (to loop.onnx) that leads back")
    assert "RuntimeError" not in problem
    (problem,) = model_problems(dangling, "--model")
    assert f"{dangling}: a symbolic link to nowhere.onnx, which does not exist" in problem


def _recorded_session(folder: Path) -> Path:
    """A session folder that recorded camera 'arena' (its settings, record and frames table)."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = load_settings(write_settings(folder.parent, CAMERA))
    data = a_record().to_json()
    data["settings"] = settings_as_dict(settings)
    data["pose"] = PoseRun.from_json(
        {"model": {"name": "arena"}, "cameras": {"arena": {}}}
    ).to_json()
    (folder / "session.json").write_text(json.dumps(data), encoding="utf-8")
    (folder / "arena.frames.csv").write_text("frame_index,host_timestamp\n", encoding="utf-8")
    return folder


def test_verify_names_a_recording_that_is_gone(tmp_path: Path) -> None:
    folder = _recorded_session(tmp_path / "session")  # session.json says arena.mp4
    with pytest.raises(VerifyError) as refused:
        read_session(folder)
    text = str(refused.value)
    assert text.startswith(f"{folder / 'arena.mp4'}: gone. session.json says camera 'arena' was")
    assert "no camera of this session was recorded" not in text


# -- 11. accepted silently before --------------------------------------------------------


def test_the_same_model_twice_in_an_ensemble_is_refused(tmp_path, members) -> None:
    copy = members["copy"]
    problems = _problems(tmp_path, _models(BUNDLED_MODEL, copy, copy, Path(f"{copy}/")))
    assert len(problems) == 2, problems
    assert f"model 3 ({copy}) is model 2 ({copy}) again" in problems[0]
    assert (
        "spread would be 0 on every frame and every MAX_ENSEMBLE_STD rule would pass"
        in (problems[0])
    )


def test_a_byte_identical_copy_of_a_model_at_another_path_is_refused_naming_both(
    tmp_path: Path,
) -> None:
    """Issue 71: a copy at another path was accepted as a member (every variance 0)."""
    copy = tmp_path / "copied_model"
    shutil.copytree(BUNDLED_MODEL, copy)
    (problem,) = _problems(tmp_path, _models(BUNDLED_MODEL, copy))
    assert f"model 2 ({copy}) is a byte-identical copy of model 1 ({BUNDLED_MODEL})" in problem
    assert "the ensemble's spread would be 0 and every MAX_ENSEMBLE_STD rule would pass" in (
        problem
    )


def test_one_key_in_two_cases_in_a_section_is_refused_naming_both(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, CAMERA + "FRAMERATE = 60\nframerate = 15\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(settings)
    assert f"{settings}: [Camera arena]: FRAMERATE = '60' and framerate = '15' are one key" in (
        str(refused.value)
    )
    with pytest.raises(ExperimentConfigError, match=r"\[Trigger t\]: KIND = 'every' and kind ="):
        parse_experiment_config("[Trigger t]\nKIND = every\nkind = after\n")


@POSIX
def test_a_lab_module_linked_from_elsewhere_is_recorded_with_its_link(tmp_path: Path) -> None:
    """Decided: it runs (a lab's shared code), recorded by the file that ran and by its link."""
    shared = tmp_path / "shared_code" / "arena_cam.py"
    shared.parent.mkdir()
    shared.write_text(textwrap.dedent(PLUGINS["cameras"]))
    rig = tmp_path / "rig"
    (rig / "cameras").mkdir(parents=True)
    (rig / "cameras" / "arena_cam.py").symlink_to(shared)
    CAMERAS.get("arena_cam", rig)
    (entry,) = plugin_files_entry({"camera": {"arena_cam": CAMERAS.origin("arena_cam", rig)}})
    assert entry["file"] == str(shared) and entry["link"] == str(rig / "cameras" / "arena_cam.py")
    assert entry["sha256"] is not None


# -- 12. names that are not UTF-8 ---------------------------------------------------------


@POSIX
def test_a_folder_or_model_whose_name_is_not_utf8_is_refused_before_the_start(tmp_path) -> None:
    settings = load_settings(write_settings(tmp_path, CAMERA))
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/out\xff"))
    (problem,) = output_folder_problems(settings, folder)
    assert problem.startswith(f"--output-dir: {tmp_path}/out\\xff: its name is not valid UTF-8")
    problem.encode("utf-8")  # printable: the byte is shown, not kept
    model = Path(os.fsdecode(os.fsencode(tmp_path) + b"/model\xfe"))
    shutil.copytree(BUNDLED_MODEL, model)
    (problem,) = model_problems(model, "--model")
    assert problem.startswith(f"--model: {tmp_path}/model\\xfe: its name is not valid UTF-8")


# -- 13. Ctrl-C while the model loads, with an experiment ------------------------------------


def test_an_experiment_stopped_before_its_first_pose_sends_nothing() -> None:
    runtime = ExperimentRuntime(load_experiment("ExampleExperiment"))
    runtime.start()  # its devices open: the session's clock starts at the first pose
    assert runtime.stop() == []  # no switch-off to a device it never switched on
    started = ExperimentRuntime(load_experiment("ExampleExperiment"))
    started.start(0.0)  # a session that ran switches off what it used or declared
    assert {action.command for action in started.stop(1.0)} == {"off"}


@POSIX
@pytest.mark.slow  # the model loads
def test_ctrl_c_while_the_model_loads_with_an_experiment_leaves_no_folder(tmp_path) -> None:
    settings = write_settings(
        tmp_path, CAMERA + "FRAMERATE = 30\n[Device stimulus_box]\nTYPE = log\n"
    )
    command = [
        sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
        "--headless", "--output-dir", str(tmp_path / "out"), "--experiment-enabled",
    ]  # fmt: skip
    # Released at once: the worker finishes loading, opens the devices, then reads the stop.
    code, out, err, children = _run_until_held(tmp_path, "pose-load", command, release=True)
    _assert_stopped_cleanly(code, out, err, children)
    assert "Nothing was recorded or analysed: its session folder" in out, out
    out_folder = tmp_path / "out"
    assert not out_folder.exists() or not any(out_folder.iterdir())  # no folder of empty files


# -- 15. session.json read as written, its figures checked ---------------------------------


def test_a_session_json_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text(json.dumps(a_record().to_json()), encoding="utf-8-sig")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert load_record(path) == a_record()


@pytest.mark.parametrize("value", [1e30, math.nan, 10**30])
def test_an_impossible_count_is_damage_never_a_figure(tmp_path: Path, value: float) -> None:
    folder = _recorded_session(tmp_path / "session")
    data = read_record_data(folder / "session.json")
    data["cameras"]["arena"]["frames_recorded"] = value
    (folder / "session.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DamagedRecordError, match=r"cameras\.arena\.frames_recorded is "):
        load_record(folder / "session.json")
    with pytest.raises(VerifyError, match="damaged, so its figures cannot be taken"):
        read_session(folder)
