"""Ensembles end to end: three models live and in a replay, rules gated on their agreement.

The ensemble is the bundled model and two copies of it with perturbed weights
(tests/support/ensembles.py): one agrees with it to a fraction of a pixel, the other is made to
disagree, by a few pixels on some keypoints in some frames and by many elsewhere. The real
pipeline (the video or synthetic camera's process, the inference worker running the three ONNX
Runtime sessions on each frame, the experiment, the pose files) runs a lab's config whose rules
read each keypoint with ``MAX_ENSEMBLE_STD = 4`` (``HOLD_S = 0``: each frame decides alone): each
rule must fire exactly where the keypoint's models agree, computed independently from the models'
own values the session wrote (``pose_exact.csv``, NumPy's std as Lightning Pose takes it), and a
rule without the key fires regardless. The replay also checks every ensemble file and column,
the causal filter's rule (``SMOOTHED = true``) against the filter recomputed from the same
values, and ``deeplabstream-eks`` on the replay's folder.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.experiments.triggers.geometry import parse_shape
from deeplabstream.outputs.pose.files import read_ensemble_exact
from deeplabstream.pose.ensemble.causal import CausalEks
from deeplabstream.pose.loading import BUNDLED_MODEL
from tests.support.ensembles import arena_clip, perturbed_member
from tests.support.files import write_settings
from tests.support.in_process import run_main_here
from tests.support.processes import only_session, run_cli

KEYPOINTS = ("nose", "left_ear", "right_ear", "neck", "body_center", "tail_base")
MAX_STD = 4.0
MIN_LIKELIHOOD = 0.5
ZONE = "rect 0 0 320 480"  # the left half, which the clip's mouse walks into and out of
FRAMES = 90
SMOOTH = 20.0

# A replay of three models (about 25 s here), the package's smoother, a live session.
pytestmark = pytest.mark.slow


def _experiment() -> str:
    """The lab's config: per keypoint a rule gated on the spread; one not gated; one smoothed."""
    parts = [f"[Experiment]\nMIN_LIKELIHOOD = {MIN_LIKELIHOOD}\nHOLD = 0\n"]
    triggers = {
        **{f"agree_{k}": f"SHAPE = rect 0 0 640 480\nKEYPOINT = {k}\nMAX_ENSEMBLE_STD = {MAX_STD}"
           for k in KEYPOINTS},
        "ungated": "SHAPE = rect 0 0 640 480\nKEYPOINT = left_ear",
        "smoothed_zone": f"SHAPE = {ZONE}\nKEYPOINT = body_center\nSMOOTHED = true",
    }  # fmt: skip
    for channel, (name, keys) in enumerate(triggers.items()):
        parts.append(
            f"[Trigger {name}]\nKIND = region\n{keys}\n\n"
            f"[Stimulation {name}_light]\nDEVICE = light\nCOMMAND = pulse\nCHANNEL = {channel}\n"
            f"DURATION = 0.01\n\n[Rule {name}]\nWHEN = {name}\nDO = {name}_light\n"
        )
    return "\n".join(parts)


def _lab(folder: Path, cameras: str, members: list[Path]) -> Path:
    (folder / "experiments").mkdir()
    (folder / "experiments" / "ensemble_rules.ini").write_text(_experiment())
    models = "\n    ".join(str(path) for path in [BUNDLED_MODEL, *members])
    pose = (
        f"[Pose]\nMODEL_PATH = {models}\nENSEMBLE_SMOOTHING = causal\n"
        f"EKS_SMOOTH_PARAM = {SMOOTH}\nEKS_VAR_MODE = var\n"
    )
    return write_settings(
        folder,
        f"{cameras}{pose}[Experiment]\nNAME = ensemble_rules\n[Device light]\nTYPE = log\n",
    )


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("members")
    return [perturbed_member(folder / "agrees", 1, 0.02), perturbed_member(folder / "odd", 7, 0.3)]


def _fired(events: pd.DataFrame, rule: str) -> list[int]:
    pulses = events[(events["kind"] == "action") & events["detail"].str.endswith(f"reason={rule}")]
    return [int(frame) for frame in pulses["frame_index"]]


def _rises(frames: np.ndarray, flags: np.ndarray) -> list[int]:
    return [int(frames[n]) for n in range(len(flags)) if flags[n] and not (n and flags[n - 1])]


def _check_rules(session: Path, stem: str) -> None:
    """Each gated rule fired exactly on the rises of its keypoint's agreement, from the files."""
    exact = read_ensemble_exact(session / f"{stem}.pose_exact.csv")
    assert exact is not None and exact.members.shape[1:] == (3, 6, 3)
    assert exact.keypoints == KEYPOINTS
    events = pd.read_csv(session / "events.csv", keep_default_na=False, dtype=str)
    xy = exact.members[..., :2]
    std = np.std(xy, axis=1).mean(axis=-1)  # (T, K): Lightning Pose's ensemble std dev
    likelihood = exact.members[..., 2].mean(axis=1)
    mixed = 0
    for k, keypoint in enumerate(KEYPOINTS):
        agree = (std[:, k] <= MAX_STD) & (likelihood[:, k] >= MIN_LIKELIHOOD)
        mixed += bool(agree.any() and not agree.all())
        assert _fired(events, f"agree_{keypoint}") == _rises(exact.frames, agree), keypoint
    assert mixed, "the odd model must disagree on some keypoints in some frames only"
    seen = likelihood[:, 1] >= MIN_LIKELIHOOD  # not gated: the spread is not looked at
    assert _fired(events, "ungated") == _rises(exact.frames, seen)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory, members: list[Path]) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    arena_clip(folder / "arena.mkv", FRAMES)
    settings = _lab(folder, "[Camera arena]\nSOURCE = synthetic\n", members)
    from deeplabstream.offline.replay.command import main

    # utils/VideoAnalyzer.py's command, its main in this process: the files are the point here.
    code, said, complained = run_main_here(
        main,
        [str(folder / "arena.mkv"), "--fast", "--settings", str(settings), "--output-dir",
         str(folder / "out")],
    )  # fmt: skip
    assert code == 0, said[-3000:] + complained[-3000:]
    return only_session(folder / "out")


def test_done_when_a_replay_with_three_models_writes_the_ensemble_columns(replay: Path) -> None:
    pose = pd.read_csv(replay / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert list(dict.fromkeys(pose.columns.get_level_values(2))) == ["x", "y", "likelihood"]
    assert len(pose) == FRAMES  # --fast: every frame, DeepLabCut's layout unchanged
    ensemble = pd.read_csv(replay / "arena.ensemble.csv", header=[0, 1, 2], index_col=0)
    coords = ["x", "y", "likelihood", "x_var", "y_var"]
    assert list(dict.fromkeys(ensemble.columns.get_level_values(2))) == coords
    assert list(dict.fromkeys(ensemble.columns.get_level_values(1))) == list(KEYPOINTS)
    exact = read_ensemble_exact(replay / "arena.pose_exact.csv")
    assert exact is not None and list(exact.frames) == list(range(FRAMES))
    median = np.median(exact.members[..., :2], axis=1)
    variance = np.var(exact.members[..., :2], axis=1)
    for k, keypoint in enumerate(KEYPOINTS):
        part = ensemble.xs(keypoint, axis=1, level=1).droplevel(0, axis=1)
        np.testing.assert_allclose(part[["x", "y"]], median[:, k], atol=6e-4)
        np.testing.assert_allclose(part[["x", "y"]], pose.xs(keypoint, axis=1, level=1).iloc[:, :2])
        np.testing.assert_allclose(part[["x_var", "y_var"]], variance[:, k], rtol=1e-7)
    table = pd.read_parquet(replay / "arena.pose.pqt")
    assert {f"{k}_{c}" for k in KEYPOINTS for c in coords[3:]} <= set(table.columns)
    record = json.loads((replay / "session.json").read_text())["pose"]["model"]
    assert [model["name"] for model in record["ensemble"]] == ["arena", "agrees", "odd"]
    timing = pd.read_csv(replay / "arena.pose_timing.csv")
    assert {"model1_ms", "model2_ms", "model3_ms"} <= set(timing.columns)


def test_done_when_a_replayed_rule_fires_only_where_the_members_agree(replay: Path) -> None:
    _check_rules(replay, "arena")


def test_a_rule_reads_the_causal_filters_positions(replay: Path) -> None:
    exact = read_ensemble_exact(replay / "arena.pose_exact.csv")
    assert exact is not None
    steps = CausalEks(6, SMOOTH, "var").run(exact.members)
    body = np.array([step.mean[4] for step in steps])
    likelihood = exact.members[:, :, 4, 2].mean(axis=1)
    causal = pd.read_csv(replay / "arena.eks_causal.csv", header=[0, 1, 2], index_col=0)
    written = causal.xs("body_center", axis=1, level=1).droplevel(0, axis=1)
    np.testing.assert_allclose(written[["x", "y"]], body, atol=6e-4)
    assert list(dict.fromkeys(causal.columns.get_level_values(2)))[-2:] == [
        "x_posterior_var", "y_posterior_var",
    ]  # fmt: skip
    zone = parse_shape(ZONE)
    inside = np.array([zone.contains(x, y) for x, y in body]) & (likelihood >= MIN_LIKELIHOOD)
    assert inside.any() and not inside.all()
    events = pd.read_csv(replay / "events.csv", keep_default_na=False, dtype=str)
    assert _fired(events, "smoothed_zone") == _rises(exact.frames, inside)


def test_deeplabstream_eks_smooths_the_replay_beside_its_files(replay: Path) -> None:
    pytest.importorskip("eks", reason="pip install --no-deps -r requirements-ensembles.txt")
    from deeplabstream.offline.eks.command import main

    # deeplabstream-eks's main in this process: the smoothed files are the point here.
    code, said, complained = run_main_here(main, [str(replay)])
    assert code == 0, said[-3000:] + complained[-3000:]
    smoothed = pd.read_csv(replay / "arena.eks.csv", header=[0, 1, 2], index_col=0)
    assert len(smoothed) == FRAMES and not smoothed.isna().any().any()
    assert "EKS_SMOOTH_PARAM = " in said
    assert json.loads((replay / "arena.eks.json").read_text())["models"] == 3


def test_done_when_a_live_session_with_three_models_writes_the_ensemble_columns(
    tmp_path: Path, members: list[Path]
) -> None:
    cameras = textwrap.dedent("""
        [Camera arena]
        SOURCE = synthetic
        MOTION = waypoints
        WAYPOINTS = 0: 480 240; 45: 160 240; 89: 480 240
    """)
    recording = "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    # A ring that holds every frame: the recorder may lag three models on a busy 2-core machine
    # without losing one (a lost frame would be counted and fail the session).
    ring = f"[Streaming]\nBUFFER_SECONDS = {FRAMES / 30 + 1:.0f}\n"
    settings = _lab(tmp_path, cameras + recording + ring, members)
    result = run_cli(
        "--settings", str(settings), "--headless", "--experiment-enabled", "--frames",
        str(FRAMES), "--recording-enabled", "--output-dir", str(tmp_path / "out"), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    for suffix in (".ensemble.csv", ".eks_causal.csv", ".pose.pqt"):
        assert (session / f"arena{suffix}").is_file(), suffix
    _check_rules(session, "arena")
    # verify covers it: the spread and the causal filter re-derived from the models' values,
    # every decision row exactly; the ensemble re-run on the recording, to the bit.
    from tests.support.verify_sessions import verify_here

    # deeplabstream-verify's main in this process (verify_here): its verdict is the point.
    _, summary, said = verify_here(session)
    written = session / "verify" / "summary.json"
    assert written.is_file(), said[-5000:]
    (run,) = summary["decisions"]
    assert run["rows_equal"] == run["rows_live"] > 0, said
    assert summary["reasons"] == [], said
    camera = summary["keypoints"]["arena"]
    lost = camera["frames"]["not_verifiable"]  # a loaded machine's recorder may lose frames
    assert camera["frames"]["to_the_bit"] == camera["frames_analysed_live"] - lost > 0
