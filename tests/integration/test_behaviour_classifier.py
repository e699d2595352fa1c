"""Issue 19's "done when": a classifier-triggered laser, live and replayed, against the truth.

The shipped experiment ``freezing_classifier`` pulses the laser while the shipped classifier
(``experiments/classifiers/arena-behaviours.onnx``, trained on poses the bundled model found in
simulated arenas of seeds 1-6) sees the mouse freezing for more than 2 s. Here it runs on a seed
the classifier never saw, live (a headless session of the simulated arena, real processes) and
in ``utils/VideoAnalyzer.py`` on the recorded video. Checked: laser trains start while the mouse
really freezes, with their latencies in ``events.csv``; the live trigger's decisions equal the
offline classifier's (batch features, the same ONNX model, the same bout filter) on the same
frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.behaviour.classifier import BehaviourClassifier
from deeplabstream.behaviour.features import features_of
from deeplabstream.experiments.config.parse import load_experiment_config
from deeplabstream.experiments.triggers.classifier import BoutFilter, bout_decisions
from deeplabstream.hardware.simulator.arena import BEHAVIOUR_NAMES, ArenaParams, simulate_behaviours
from deeplabstream.hardware.simulator.truth import read_behaviours
from deeplabstream.outputs.pose.table import read_pose_table
from tests.support.paths import PACKAGE_ROOT

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PACKAGE_ROOT / "experiments" / "configs" / "freezing_classifier.ini"
FRAMES = 900  # 30 s at 30 fps


def _seed_with_long_freezes(first: int = 100) -> int:
    """The first seed >= ``first`` (none trained on) whose 30 s hold two freezes over 3 s.

    Chosen by the simulator's own labels, so the test does not depend on one seed's luck.
    """
    for seed in range(first, first + 200):
        params = ArenaParams(seed=seed, framerate=30.0, behaviours=BEHAVIOUR_NAMES)
        _, labels = simulate_behaviours(params, FRAMES)
        frozen = np.r_[False, labels == "freezing", False].astype(np.int8)
        starts, ends = np.flatnonzero(np.diff(frozen) == 1), np.flatnonzero(np.diff(frozen) == -1)
        if np.sum(ends - starts >= 90) >= 2:
            return seed
    raise AssertionError("no seed with two long freezes in 30 s: the simulator changed")


def _settings(tmp_path: Path, seed: int) -> Path:
    path = tmp_path / "settings.ini"
    path.write_text(
        f"[Camera arena]\nSOURCE = synthetic\nSEED = {seed}\nFRAMERATE = 30\n"
        "BEHAVIOURS = walking, freezing, grooming, rearing\nPIXELS_PER_MM = 1.0\n"
        # No deadline: the laser's timing against the truth is checked here, not the machine's
        # speed (a loaded 2-core machine missed the 100 ms deadline on 2 % of frames once).
        "[Experiment]\nNAME = freezing_classifier\nDEADLINE_MS = off\n[Device laser]\nTYPE = log\n"
        # A ring that holds the whole session: the recorder may lag a busy 2-core machine by
        # seconds without losing a frame (a lost frame is counted and fails the session).
        f"[Streaming]\nBUFFER_SECONDS = {FRAMES / 30 + 1:.0f}\n"
    )
    return path


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _only_session(folder: Path) -> Path:
    (session,) = [p.parent for p in folder.glob("*/session.json")]
    return session


def _offline_decisions(session: Path, pose_file: str, times_file: str) -> pd.Series:
    """The classifier trigger's decisions, computed offline from the session's pose file."""
    trigger = load_experiment_config(CONFIG).triggers["freezing"]
    classifier = BehaviourClassifier.load(Path(trigger.params["model"]), pixels_per_mm=1.0)
    table = read_pose_table(session / pose_file)
    times = pd.read_csv(session / times_file)
    analysed = ~np.isnan(table.points[:, 0, :, 2]).all(axis=1)
    order = [table.keypoints.index(name) for name in classifier.keypoints]
    points = table.points[analysed, 0][:, order]
    stamps = times["camera_timestamp"].to_numpy()[analysed]
    probabilities = classifier.probabilities_of(
        features_of(points, stamps, classifier.spec, classifier.pixels_per_mm)
    )[:, classifier.behaviours.index("freezing")]
    probabilities[stamps - stamps[0] < classifier.spec.window_s] = np.nan  # window not yet full
    bouts = BoutFilter(
        float(trigger.params["threshold"]),
        float(trigger.params["release"]),
        float(trigger.params["min_bout_s"]),
    )
    return pd.Series(bout_decisions(probabilities, stamps, bouts), index=table.frames[analysed])


def _live_decisions(events: pd.DataFrame, frames: np.ndarray) -> pd.Series:
    """The trigger's state at each analysed frame, from its changes in ``events.csv``."""
    changes = events[(events["kind"] == "trigger") & (events["name"] == "freezing")]
    state = pd.Series(np.nan, index=frames)
    state.iloc[0] = 0.0
    for frame, detail in zip(changes["frame_index"], changes["detail"], strict=True):
        state.loc[int(frame)] = 1.0 if str(detail).startswith("true") else 0.0
    return state.ffill().astype(bool)


def _check_laser_follows_freezing(
    session: Path, labels_file: Path, video_frames: Path | None = None
) -> pd.DataFrame:
    """Check the laser trains started in true freezes; ``video_frames``: a replay's frames."""
    events = pd.read_csv(session / "events.csv")
    trains = events[(events["kind"] == "action") & events["detail"].str.startswith("pattern")]
    assert len(trains) >= 2, events.tail(30)
    truth = read_behaviours(labels_file)
    label_of = dict(zip(truth.frames.tolist(), truth.labels.tolist(), strict=True))
    frames = trains["frame_index"].astype(int).tolist()
    if video_frames is not None:  # a replay numbers the video's frames; the table maps them back
        camera_frames = pd.read_csv(video_frames)["frame_index"].to_numpy()
        frames = [int(camera_frames[frame]) for frame in frames]
    onsets = [label_of[frame] for frame in frames]
    assert onsets.count("freezing") == len(onsets), onsets  # the light starts in freezes only
    assert (trains["written"] >= trains["pose_ready"]).all()  # prompted by a pose, then sent
    return events


@pytest.mark.slow
def test_done_when_the_freezing_classifier_drives_the_laser_live_and_replayed(tmp_path):
    seed = _seed_with_long_freezes()
    settings = _settings(tmp_path, seed)
    _run(
        ["DeepLabStream.py", "--headless", "--settings", str(settings), "--experiment-enabled",
         "--recording-enabled", "--frames", str(FRAMES), "--output-dir", str(tmp_path / "live")]
    )  # fmt: skip
    live = _only_session(tmp_path / "live")
    info = json.loads((live / "session.json").read_text())
    figures = info["pose_runs"][0]["cameras"]["arena"]
    events = _check_laser_follows_freezing(live, live / "arena.behaviour.csv")

    # The live trigger decided as the offline classifier does, frame by frame.
    offline = _offline_decisions(live, figures["pose_file"], figures["pose_times_file"])
    assert offline.sum() > 0
    live_state = _live_decisions(events, offline.index.to_numpy())
    differ = offline.index[offline.to_numpy() != live_state.to_numpy()]
    assert len(differ) == 0, f"frames where live and offline differ: {differ.tolist()[:20]}"

    # The recorded video, replayed: the same experiment drives the (logged) laser again.
    _run(
        ["utils/VideoAnalyzer.py", str(live / "arena.mp4"), "--settings", str(settings),
         "--fast", "--output-dir", str(tmp_path / "replay")],
        timeout=600,
    )  # fmt: skip
    replayed = _only_session(tmp_path / "replay")
    _check_laser_follows_freezing(replayed, live / "arena.behaviour.csv", live / "arena.frames.csv")
