"""Issue 25: what cannot work is refused before anything starts; ``BACKEND = pytorch`` runs.

A calibration that cannot triangulate, a torch file that is not what its name claims, or a model
that ``[Pose] BACKEND = pytorch`` cannot run gives exit code 2, a message naming the file and
what to do, and no session folder. One case of each kind runs a real ``DeepLabStream.py``
process; the others ask the command's check before the start in this process (the checks of
``test_preflight.py``: ``_run`` and ``_refusal``). The formats the pytorch backend claims run
with it.
"""

from __future__ import annotations

import ast
import json
import math
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from deeplabstream.core.pinhole import (
    PinholeCamera,
    matrix_to_rodrigues,
    read_calibration,
    write_calibration,
)
from tests.faults.test_preflight import CAMERA, _assert_refused, _assert_says, _refusal, _run
from tests.support.models import bundled_model_with_torchscript
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

REDO = "deeplabstream-calibrate"


# --- a calibration that cannot triangulate ------------------------------------------------------


def _rig(tmp_path: Path, change) -> tuple[str, Path]:
    """The simulated 3D rig's settings text and its calibration, changed by ``change``."""
    calibration = tmp_path / "rig-3d.toml"
    cameras = read_calibration(PROJECT_ROOT / "docs" / "rig-3d.toml")
    cameras.update({camera.name: camera for camera in change(cameras)})
    write_calibration(calibration, list(cameras.values()))
    text = (PROJECT_ROOT / "docs" / "rig-3d.ini").read_text(encoding="utf-8")
    return text.replace("CALIBRATION = rig-3d.toml", f"CALIBRATION = {calibration}"), calibration


def _with(camera: PinholeCamera, **changes) -> PinholeCamera:
    values = {
        "matrix": camera.matrix,
        "distortions": camera.distortions,
        "rotation": camera.rotation,
        "translation": camera.translation,
        **changes,
    }
    return PinholeCamera(camera.name, camera.size, **values)


def _zero_focal_length(cameras: dict) -> list[PinholeCamera]:
    matrix = cameras["left"].matrix.copy()
    matrix[0, 0] = matrix[1, 1] = 0.0
    return [_with(cameras["left"], matrix=matrix)]


def _at_the_top_cameras_centre(cameras: dict) -> list[PinholeCamera]:
    """``front`` moved to ``top``'s centre, looking as before."""
    front, top = cameras["front"], cameras["top"]
    return [_with(front, translation=-front.rotation_matrix @ top.center)]


def _folding_lens(cameras: dict) -> list[PinholeCamera]:
    """A diverged solve's lens: k3 = -40 folds the image back on itself away from its centre."""
    return [_with(cameras["front"], distortions=np.array([0.0, 0.0, 0.0, 0.0, -40.0]))]


def _turned_away(cameras: dict) -> list[PinholeCamera]:
    """``front`` turned round where it stands (180 degrees about its own vertical axis).

    It looks away from the arena, so no point is in front of it and of another camera: a
    calibration whose views were solved apart, or a camera mounted the other way.
    """
    front = cameras["front"]
    rotation = np.diag([-1.0, 1.0, -1.0]) @ front.rotation_matrix
    return [
        _with(front, rotation=matrix_to_rodrigues(rotation), translation=-rotation @ front.center)
    ]


@pytest.mark.parametrize(
    ("change", "words", "process"),
    [
        (_zero_focal_length, ("camera 'left'", "focal lengths fx = 0 px, fy = 0 px"), True),
        (_at_the_top_cameras_centre, ("cameras 'top' and 'front' are at the same centre",), False),
        (_folding_lens, ("'top' and 'front' fail a reprojection round trip",), False),
        (
            _turned_away,
            ("camera(s) 'front' share no view with any other calibrated camera",),
            False,
        ),
    ],
    ids=["zero-focal-length", "one-centre", "round-trip", "no-shared-view"],
)
def test_a_calibration_that_cannot_triangulate_is_refused_before_the_start(
    tmp_path: Path, change, words: tuple[str, ...], process: bool
) -> None:
    text, calibration = _rig(tmp_path, change)
    words = ("[Triangulation] CALIBRATION", str(calibration), *words, REDO)
    if process:  # the command itself: exit 2, nothing started
        _assert_refused(tmp_path, _run(tmp_path, text, "--pose-enabled"), *words)
    else:
        _assert_says(_refusal(tmp_path, text, "--pose-enabled"), *words)


@pytest.mark.parametrize(
    ("written", "words"),
    [
        # aniposelib reads a 3 x 3 rotation too; this one squashes z: not a rotation.
        (
            [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 0.0]],
            ("[cam_0]", "not a rotation matrix", "det R = 0"),
        ),
        ([math.nan, 0.0, 0.0], ("camera 'top'", "non-finite numbers (nan or inf)")),
    ],
    ids=["singular-rotation", "non-finite"],
)
def test_a_calibration_file_with_impossible_numbers_is_refused_before_the_start(
    tmp_path: Path, written: list, words: tuple[str, ...]
) -> None:
    text, calibration = _rig(tmp_path, lambda cameras: [])
    document = tomllib.loads(calibration.read_text())
    assert document["cam_0"]["rotation"] == [math.pi, 0.0, 0.0]  # the top camera's
    document["cam_0"]["rotation"] = written  # as another tool could write it
    calibration.write_text(tomli_w.dumps(document))
    _assert_says(_refusal(tmp_path, text, "--pose-enabled"), str(calibration), *words, REDO)


# --- a torch file whose contents are not what it claims ----------------------------------------


def _dict_file(path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"a": torch.zeros(3)}, path)
    return path


def test_a_torch_dict_named_pt_is_refused_before_the_start(tmp_path: Path) -> None:
    model = _dict_file(tmp_path / "dict.pt")
    result = _run(tmp_path, CAMERA, "--pose-enabled", "--model", str(model))
    _assert_refused(
        tmp_path, result, "--model", str(model), "expected a DeepLabCut 3.0 export", "['a']"
    )


def test_a_torch_dict_named_ckpt_is_refused_before_the_start(tmp_path: Path) -> None:
    model = _dict_file(tmp_path / "dict.ckpt")
    refusal = _refusal(tmp_path, CAMERA, "--pose-enabled", "--model", str(model))
    _assert_says(refusal, "--model", str(model), "no config.yaml")
    # The same file where Lightning Pose keeps its checkpoints, beside a config: opened and
    # refused for what it holds.
    folder = tmp_path / "lp-model"
    folder.mkdir()
    (folder / "config.yaml").write_text("data:\n  keypoint_names: [nose]\nmodel: {}\n")
    inside = _dict_file(folder / "tb_logs" / "run" / "version_0" / "checkpoints" / "dict.ckpt")
    for named in (folder, inside):
        refusal = _refusal(tmp_path, CAMERA, "--pose-enabled", "--model", str(named))
        _assert_says(refusal, str(inside), "expected a Lightning checkpoint with a 'state_dict'")


# --- [Pose] BACKEND = pytorch --------------------------------------------------------------------

PYTORCH = "[Pose]\nBACKEND = pytorch\n"


def test_pytorch_backend_refuses_the_bundled_model_before_the_start(tmp_path: Path) -> None:
    result = _run(tmp_path, CAMERA + PYTORCH, "--pose-enabled")
    _assert_refused(
        tmp_path,
        result,
        "[Pose] BACKEND = pytorch",
        "for the bundled model",
        "has no TorchScript file",
        "set BACKEND = onnxruntime",
    )


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (
            "lp-mirror-mouse-resnet18/model",
            ("Lightning Pose export", "its checkpoint", "epoch=39-step=200-best.ckpt"),
        ),
        ("sleap-flies/onnx/flies_bottomup_tiny_onnx", ("sleap-nn model",)),
    ],
    ids=["lightning-pose-export", "sleap-export"],
)
def test_pytorch_backend_refuses_onnx_only_exports_before_the_start(
    tmp_path: Path, model: str, words: tuple[str, ...]
) -> None:
    path = shared_data(model)
    refusal = _refusal(tmp_path, CAMERA + PYTORCH, "--pose-enabled", "--model", str(path))
    _assert_says(refusal, "[Pose] BACKEND = pytorch", str(path), "an ONNX graph only", *words)


def _run_pytorch(tmp_path: Path, model: Path, frames: int, **env: str) -> dict:
    """Analyse every frame of a short video (lockstep) with BACKEND = pytorch; session.json."""
    from tests.support.files import make_ffv1_video, write_settings

    clip = tmp_path / "clip.mkv"
    make_ffv1_video(clip, frames, 320, 256)
    camera = f"[Camera arena]\nSOURCE = video\nPATH = {clip}\nPACING = lockstep\n"
    settings = write_settings(tmp_path, camera + PYTORCH)
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--model", str(model),
        "--output-dir", str(tmp_path / "out"), timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return json.loads((only_session(tmp_path / "out") / "session.json").read_text())


@pytest.mark.slow  # a network traced, then a whole session run on torch
def test_pytorch_backend_runs_a_model_of_this_project_with_torchscript(tmp_path: Path) -> None:
    model = bundled_model_with_torchscript(tmp_path / "model")
    info = _run_pytorch(tmp_path, model, frames=20)
    figures = info["pose"]["cameras"]["arena"]
    assert figures["frames_analysed"] == 20 and figures["pose_rows"] == 20
    assert info["pose"]["model"]["provider"] == "torch cpu"


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        "dlc3-openfield-cspnext_s/model/"
        "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt",
        "lp-mirror-mouse-resnet18/model/tb_logs/mirror_mouse_resnet18_cpu/version_0/checkpoints/"
        "epoch=39-step=200-best.ckpt",
    ],
    ids=["deeplabcut-export", "lightning-pose-checkpoint"],
)
def test_pytorch_backend_runs_converted_models(tmp_path: Path, model: str) -> None:
    info = _run_pytorch(
        tmp_path, shared_data(model), frames=5, DEEPLABSTREAM_CACHE=str(tmp_path / "cache")
    )
    figures = info["pose"]["cameras"]["arena"]
    assert figures["frames_analysed"] == 5 and figures["pose_rows"] == 5
    assert info["pose"]["model"]["provider"] == "torch cpu"


LABELS_READER = "src/deeplabstream/offline/labels_hdf5.py"


def test_no_code_unpickles_a_model_file() -> None:
    """No ``weights_only=False``, and no pickle is loaded but behind ``--trust-pickle``."""
    # the one, behind --trust-pickle
    allowed = {("src/deeplabstream/offline/training/behaviour.py", "loads")}
    found = []
    # the project's own code: build/ and the venv hold copies and other people's code
    sources = [*PROJECT_ROOT.glob("*.py")] + [
        path
        for folder in ("src", "utils", "benchmarks", "scripts", "cameras", "experiments")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
    ]
    for path in sorted(sources):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            unsafe = any(
                k.arg == "weights_only"
                and not (isinstance(k.value, ast.Constant) and k.value.value is True)
                for k in node.keywords
            )
            if name == "torch.load" and not any(k.arg == "weights_only" for k in node.keywords):
                unsafe = True  # say it: a default changed once already
            pickle_call = re.fullmatch(r"(c?[Pp]ickle|joblib|dill)\.(loads?|Unpickler)", name)
            if pickle_call and (relative, pickle_call.group(2)) not in allowed:
                unsafe = True
            if unsafe:
                found.append(f"{relative}:{node.lineno}: {ast.unparse(node)[:80]}")
        # An unpickler of its own refuses every global: the labels' .h5 reader only.
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            bases = [ast.unparse(base) for base in getattr(node, "bases", [])]
            if "pickle.Unpickler" in bases and relative != LABELS_READER:
                found.append(f"{relative}:{node.lineno}: an unpickler of its own")
    assert found == [], found
    training = PROJECT_ROOT / "src" / "deeplabstream" / "offline" / "training"
    assert "--trust-pickle" in (training / "behaviour.py").read_text()
