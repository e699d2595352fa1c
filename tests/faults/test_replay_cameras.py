"""Issue 53 (11): a replay whose video's name is not the live camera's never drops its regions.

Regions drawn on the live camera ``arena`` (``CAMERA = arena``) saw no pose of a replay of
``trial_03.mkv`` (its camera ``trial_03``): nothing drawn, nothing evaluated, 0 events, exit 0.
The replay now refuses it before anything starts, naming the regions' camera and the way to map
the video to it (``--camera arena``), and with that option the regions read the video's poses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deeplabstream.offline.replay.command import main as replay_main
from deeplabstream.offline.replay.regions import region_camera_problems
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import resolve_cameras
from tests.support.files import make_ffv1_video, write_settings
from tests.support.in_process import run_main_here
from tests.support.paths import PROJECT_ROOT

REGIONS = """
[Experiment]
TRIAL_DURATION = 0

[Trigger nose_in_left]
KIND = region
SHAPE = circle 40 60 30
KEYPOINT = nose
CAMERA = {left}

[Trigger nose_in_right]
KIND = region
SHAPE = circle 120 60 30
KEYPOINT = nose
CAMERA = {right}

[Stimulation pulse]
DEVICE = stimulus_box
COMMAND = pulse
CHANNEL = 1
DURATION = 0.1

[Rule entry]
WHEN = nose_in_left
EDGE = rising
DO = pulse
"""


def _lab(tmp_path: Path, left: str = "arena", right: str = "arena") -> Path:
    (tmp_path / "experiments").mkdir(exist_ok=True)
    config = REGIONS.format(left=left, right=right)
    (tmp_path / "experiments" / "arena_regions.ini").write_text(config, encoding="utf-8")
    return write_settings(
        tmp_path,
        "[Experiment]\nNAME = arena_regions\n[Device stimulus_box]\nTYPE = log\n",
    )


def _replay(settings: Path, video: Path, output: Path, *args: str):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(video),
         "--settings", str(settings), "--output-dir", str(output), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_regions_of_another_camera_are_refused_and_mapped_with_camera(tmp_path):
    settings = _lab(tmp_path)
    video = tmp_path / "trial_03.mkv"
    make_ffv1_video(video, 30)
    # Refused by the command's main in this process; the mapped replay below is a real one.
    refused = tmp_path / "refused"
    code, out, err = run_main_here(
        replay_main, [str(video), "--settings", str(settings), "--output-dir", str(refused)]
    )
    assert code == 2, out[-3000:] + err[-3000:]
    assert (
        f"{video}: the experiment's triggers read camera(s) 'arena' (camera 'arena': "
        "nose_in_left, nose_in_right), but this replay's camera is 'trial_03'"
    ) in err, err
    assert "--camera arena" in err
    assert not (tmp_path / "refused").exists()  # nothing started
    mapped = _replay(settings, video, tmp_path / "out", "--camera", "arena")
    assert mapped.returncode == 0, mapped.stdout[-3000:] + mapped.stderr[-3000:]
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert folder.name.startswith("trial_03")  # the folder is still named after the video
    info = json.loads((folder / "session.json").read_text())
    assert list(info["cameras"]) == ["arena"]
    assert info["pose"]["cameras"]["arena"]["frames_analysed"] == 30
    assert (folder / "arena.pose.csv").is_file() and (folder / "events.csv").is_file()


def test_an_experiment_of_two_cameras_cannot_be_mapped_to_one_video(tmp_path):
    plan = resolve_cameras(load_settings(_lab(tmp_path, "left", "right"), cameras_required=False))
    (problem,) = region_camera_problems(plan, "left", tmp_path / "left.mkv")
    assert "camera(s) 'right' (camera 'right': nose_in_right)" in problem
    (problem,) = region_camera_problems(plan, "top", tmp_path / "top.mkv")
    assert "'left', 'right'" in problem and "A replay plays one video as one camera" in problem
    one = resolve_cameras(load_settings(_lab(tmp_path), cameras_required=False))
    assert region_camera_problems(one, "arena", tmp_path / "arena.mkv") == []
