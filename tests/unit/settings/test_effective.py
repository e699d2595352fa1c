"""Each camera's effective settings, resolved once (settings/effective.py), and read everywhere.

A camera's own ``MODEL_PATH`` wins over ``[Pose]``'s, and ``--model`` stands in for ``[Pose]``'s;
a replay's video camera has no keys of its own. The last test checks that no other module
re-derives the rule: the session, the preflight, the worker and the window read the plan.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from pathlib import Path

import pytest

from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.offline.replay.job import ReplayOptions
from deeplabstream.offline.replay.session import replay_settings
from deeplabstream.pose.runtime.cropping import CropSettings
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import (
    MODEL_OPTION,
    CameraPlan,
    EffectiveCamera,
    Origin,
    resolve_cameras,
)
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

RIG = (
    "[Camera left]\nSOURCE = synthetic\nMODEL_PATH = models/left\nLIKELIHOOD_THRESHOLD = 0.8\n"
    "DYNAMIC_CROP = on\nDYNAMIC_CROP_MARGIN = 64\nFLIP = true\nPIXELS_PER_MM = 2.5\n"
    "[Camera right]\nSOURCE = synthetic\n"
    "[Pose]\nMODEL_PATH = models/shared\nLIKELIHOOD_THRESHOLD = 0.3\nDYNAMIC_CROP_MARGIN = 96\n"
)


def _plan(tmp_path: Path, text: str = RIG, model: Path | None = None) -> CameraPlan:
    return resolve_cameras(load_settings(write_settings(tmp_path, text)), model=model)


def test_a_camera_runs_its_own_model_and_the_others_the_shared_one(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    file = tmp_path / "settings.ini"
    left, right = plan.cameras
    assert (left.name, right.name) == ("left", "right")
    assert left.model == tmp_path / "models/left"  # relative to the settings file
    assert left.own_model and left.model_named_by == f"[Camera left] MODEL_PATH in {file}"
    assert right.model == tmp_path / "models/shared" == plan.shared_model
    assert not right.own_model and right.model_named_by == f"[Pose] MODEL_PATH in {file}"
    assert plan.models == (tmp_path / "models/left", tmp_path / "models/shared")
    assert left.model_key == str(tmp_path / "models/left")
    assert not plan.model_option
    assert plan.models_by_camera() == {"left": left.model, "right": right.model}


def test_the_camera_keys_win_over_the_pose_keys(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    left, right = plan.camera("left"), plan.camera("right")
    assert (left.likelihood_threshold, right.likelihood_threshold) == (0.8, 0.3)
    # Its crop: its own DYNAMIC_CROP and margin, its own threshold as the crop's likelihood.
    assert left.dynamic_crop == CropSettings(True, 64, 0.8, None, 64, 30)
    assert right.dynamic_crop == CropSettings(False, 96, 0.3, None, 64, 30)
    assert (left.flip, right.flip) == (True, False)
    assert (left.pixels_per_mm, right.pixels_per_mm) == (2.5, None)
    assert plan.threshold("left") == 0.8
    assert plan.threshold("not a camera") == 0.3  # [Pose]'s
    with pytest.raises(KeyError):
        plan.camera("not a camera")


def test_model_replaces_the_pose_model_but_never_a_camera_s_own(tmp_path: Path) -> None:
    option = tmp_path / "elsewhere" / "model.onnx"
    plan = _plan(tmp_path, model=option)
    left, right = plan.cameras
    assert left.model == tmp_path / "models/left" and left.own_model
    assert right.model == option == plan.shared_model
    assert right.model_named_by == MODEL_OPTION == plan.shared_model_named_by == "--model"
    assert plan.model_option


def test_no_model_anywhere_is_the_bundled_one(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "[Camera arena]\nSOURCE = synthetic\n")
    (arena,) = plan.cameras
    assert arena.model is None and arena.model_key == "" and plan.models == (None,)
    # The defaults of EffectiveCamera are those of a camera without keys under a default [Pose].
    assert dataclasses.replace(arena, model_named_by="[Pose] MODEL_PATH") == EffectiveCamera(
        "arena"
    )


def test_settings_without_cameras_run_the_shared_model(tmp_path: Path) -> None:
    settings = load_settings(write_settings(tmp_path, RIG))
    bare = dataclasses.replace(settings, cameras=())
    assert resolve_cameras(bare).models_by_camera() == {None: tmp_path / "models/shared"}
    option = tmp_path / "option"
    assert resolve_cameras(bare, model=option).models_by_camera() == {None: option}


def test_a_replay_s_video_camera_runs_model_or_the_pose_model(tmp_path: Path) -> None:
    """The replay replaces the file's cameras (their own models too) by the video's."""
    base = load_settings(write_settings(tmp_path, RIG))
    video = tmp_path / "mouse.mp4"
    option = tmp_path / "other_model"
    replayed = replay_settings(base, video, ReplayOptions(model=option))
    (camera,) = resolve_cameras(replayed).cameras
    assert camera.model == option and not camera.own_model
    assert camera.likelihood_threshold == 0.3 and not camera.dynamic_crop.enabled
    (camera,) = resolve_cameras(replay_settings(base, video, ReplayOptions())).cameras
    assert camera.model == tmp_path / "models/shared"


def test_the_plan_crosses_to_the_worker_whole(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert pickle.loads(pickle.dumps(plan)) == plan
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.cameras[0].model = None  # type: ignore[misc]


def test_the_checks_name_the_key_that_named_each_model(tmp_path: Path) -> None:
    """Missing models are named by their camera's key, [Pose]'s, or --model."""
    settings = load_settings(write_settings(tmp_path, RIG))
    problems = check_before_start(settings, pose=True, experiment=False)
    assert [p.split(":")[0] for p in problems] == [
        f"[Camera left] MODEL_PATH in {tmp_path / 'settings.ini'}",
        f"[Pose] MODEL_PATH in {tmp_path / 'settings.ini'}",
    ]
    option = tmp_path / "missing.onnx"
    with_option = dataclasses.replace(
        settings, pose=dataclasses.replace(settings.pose, model_path=(option,))
    )
    problems = check_before_start(with_option, pose=True, experiment=False, model_option=option)
    assert [p.split(":")[0] for p in problems] == [
        f"[Camera left] MODEL_PATH in {tmp_path / 'settings.ini'}",
        "--model",
    ]
    assert str(option) in problems[1]


def test_a_session_resolves_its_plan_once_and_again_after_a_reread(tmp_path: Path) -> None:
    from deeplabstream.live.session.live import LiveSession

    settings = load_settings(write_settings(tmp_path, RIG))
    stream = LiveSession(settings, output_dir=tmp_path / "sessions")
    plan = stream.camera_plan
    assert stream.camera_plan is plan
    assert plan == resolve_cameras(settings)
    assert stream.likelihood_threshold("right") == 0.3
    edited = RIG.replace("LIKELIHOOD_THRESHOLD = 0.3", "LIKELIHOOD_THRESHOLD = 0.6")
    stream.reload_settings(load_settings(write_settings(tmp_path, edited, name="edited.ini")))
    assert stream.camera_plan is not plan
    assert stream.likelihood_threshold("right") == 0.6  # [Pose]'s, re-read
    assert stream.likelihood_threshold("left") == 0.8  # its own


# --- no module re-derives it ---------------------------------------------------------------------

#: Where the rule lives: the one module that resolves it.
RESOLVER = Path("src/deeplabstream/settings/effective.py")
#: What re-deriving a camera's effective settings looks like.
REDERIVED = {
    # "the camera's own MODEL_PATH, else [Pose]'s" (or a --model's)
    "a model fallback": re.compile(r"model_path\s+or\b|\belse\s+[\w.]*pose\.model_path\b"),
    # a camera's own keys read where [Pose]'s would apply
    "a camera's own key": re.compile(
        r"\bcommon\.(model_path|likelihood_threshold|dynamic_crop\w*)\b"
    ),
    # the worker's model from [Pose] instead of its camera's
    "the worker's shared model": re.compile(r"\bjob\.settings\.model_path\b"),
    # a crop made from [Pose] and a camera's keys outside the plan
    "a crop resolved again": re.compile(r"cropping import (\([^)]*|[^\n(]*)\bcrop_settings\b"),
    # --model written into the settings outside the plan (it goes one way: resolve_cameras)
    "--model applied again": re.compile(r"replace\(\s*[\w.]*pose,\s*model_path="),
}


def _sources() -> list[Path]:
    folders = [PROJECT_ROOT / "src", PROJECT_ROOT / "utils", PROJECT_ROOT / "benchmarks"]
    files = [PROJECT_ROOT / "app.py", PROJECT_ROOT / "DeepLabStream.py"]
    return [*files, *(path for folder in folders for path in sorted(folder.rglob("*.py")))]


def test_no_module_but_the_resolver_derives_a_camera_s_effective_settings() -> None:
    found = []
    for path in _sources():
        if path == PROJECT_ROOT / RESOLVER:
            continue
        text = path.read_text(encoding="utf-8")
        for what, pattern in REDERIVED.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {what}: {match[0]!r}")
    assert not found, "read settings.effective.resolve_cameras instead:\n" + "\n".join(found)


def test_the_guard_sees_what_it_looks_for() -> None:
    """The patterns match the forms the rule had before it was resolved in one place."""
    before = [
        "paths = {camera.common.model_path or settings.pose.model_path for camera in cams}",
        "    path = camera.model_path or job.settings.model_path",
        "load_model(model if model is not None else settings.pose.model_path)",
        "own = branch.settings.common.likelihood_threshold",
        "from deeplabstream.pose.runtime.cropping import crop_settings",
        "from deeplabstream.pose.runtime.cropping import CropSettings, crop_settings",
        "from pose.runtime.cropping import (\n    CropSettings,\n    crop_settings,\n)",
        "settings = replace(settings, pose=replace(settings.pose, model_path=model))",
        "pose = dataclasses.replace(settings.pose, model_path=options.model)",
    ]
    for line in before:
        assert any(p.search(line) for p in REDERIVED.values()), line


# --- made once per run, where the command line (or the window) meets the file ---------------------

#: The modules that make a run's plan: where settings enter a run. Every other module is handed
#: the plan (the checks before the start, the session, the worker, the self-tests).
PLAN_MADE_IN = {
    RESOLVER,
    Path("src/deeplabstream/app/headless_run.py"),  # DeepLabStream.py's run, with --model
    Path("src/deeplabstream/app/gui/session.py"),  # the window's Start Stream
    Path("src/deeplabstream/app/gui/rig_check.py"),  # the Rig tab's summary of a settings text
    Path("src/deeplabstream/app/gui/keypoint_map.py"),  # the Rig tab's keypoints of each model
    Path("src/deeplabstream/offline/replay/command.py"),  # the replay batch's checks, --model
    Path("src/deeplabstream/offline/replay/session.py"),  # each replayed video, --model
    Path("src/deeplabstream/offline/verify/reanalysis.py"),  # verify's reference run of a session
    Path("src/deeplabstream/live/session/preflight.py"),  # check_before_start: settings alone
    Path("src/deeplabstream/live/session/live.py"),  # a settings file re-read while streaming
    Path("benchmarks/replay.py"),  # the replay benchmark's model, --model
}


def test_the_plan_is_made_only_where_settings_enter_a_run() -> None:
    made = re.compile(r"\bresolve_cameras\(")
    found = sorted(
        f"{path.relative_to(PROJECT_ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        for path in _sources()
        if path.relative_to(PROJECT_ROOT) not in PLAN_MADE_IN
        for text in [path.read_text(encoding="utf-8")]
        for match in made.finditer(text)
    )
    assert not found, "take the plan you are handed instead:\n" + "\n".join(found)


def test_the_origin_of_each_value_is_recorded(tmp_path: Path) -> None:
    left, right = _plan(tmp_path).cameras
    assert (left.model_origin, right.model_origin) == (Origin.CAMERA, Origin.POSE)
    assert (left.threshold_origin, right.threshold_origin) == (Origin.CAMERA, Origin.POSE)
    option = tmp_path / "option.onnx"
    plan = _plan(tmp_path, model=option)
    assert plan.camera("right").model_origin is plan.shared_model_origin is Origin.MODEL_OPTION
    # --model goes one way: into the plan's settings, which the session and session.json take
    assert plan.settings.pose.model_path == (option,)
    bare = _plan(tmp_path, "[Camera arena]\nSOURCE = synthetic\n")
    assert bare.camera("arena").model_origin is bare.shared_model_origin is Origin.DEFAULT


def test_a_session_runs_the_plan_it_is_handed(tmp_path: Path) -> None:
    from deeplabstream.live.session.live import LiveSession

    option = tmp_path / "option.onnx"
    plan = _plan(tmp_path, model=option)
    stream = LiveSession(plan.settings, output_dir=tmp_path / "sessions", plan=plan)
    assert stream.camera_plan is plan
    assert stream.camera_plan.camera("right").model == option
