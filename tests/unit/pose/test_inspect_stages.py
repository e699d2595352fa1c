"""``deeplabstream-inspect`` checks every graph of a model that runs several, and the whole model.

Two kinds run more than one graph (``pose.stage_check``):

- a Lightning Pose context model (``heatmap_mhcrnn``): the real model of
  ``tests/fixtures/lp_context_mirror_mouse`` (composed again from the shared resnet18
  checkpoint, as ``test_pose_lightning_context.py`` does), its backbone graph and heads graph;
- a DeepLabCut top-down export (SSDLite detector + ``top_down_cspnext_s``): written here in
  DeepLabCut's export format (``torch.save({"config", "pose", "detector"})``) with the config of
  the real model of ``tests/fixtures/dlc3_topdown_cspnext_s`` and seeded random weights (the
  real export is not in the repository).

Each is checked whole (exit 0, per-stage parameters and figures), then with one graph corrupted
in the conversion cache (one initializer perturbed with the ``onnx`` package): inspect must exit
1 and name the graph. Converting takes tens of seconds: ``slow``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deeplabstream.pose import inspect
from deeplabstream.pose.formats.dlc3_topdown import topdown_decoding_of
from deeplabstream.pose.formats.lightning_context import context_of
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from tests.support.dlc3_exports import converted_models_cache
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.unit.pose.test_pose_lightning_context import CLIP, FIXTURE, compose_checkpoint

TOPDOWN_CONFIG = (
    PROJECT_ROOT / "tests" / "fixtures" / "dlc3_topdown_cspnext_s" / "pytorch_config.yaml"
)
IMAGE = "dlc3-openfield-cspnext_s/images/img0044.png"
SEED = 47


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from converted_models_cache(tmp_path_factory)


def _perturb_initializer(graph: Path, part: str = "") -> str:
    """Scale the largest float initializer whose name has ``part`` by 1.5, in place.

    Returns its name. (Deep in a network of random weights a perturbation may fade away:
    the pose graph's is taken in its heatmap head.)
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    floats = [
        i
        for i in model.graph.initializer
        if i.data_type == onnx.TensorProto.FLOAT and part in i.name
    ]
    largest = max(floats, key=lambda i: int(np.prod(i.dims)))
    values = numpy_helper.to_array(largest) * np.float32(1.5)
    largest.CopyFrom(numpy_helper.from_array(values.astype(np.float32), largest.name))
    onnx.save(model, str(graph))
    return largest.name


def _inspect(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = inspect.main(list(args))
    return status, capsys.readouterr().out


def _stage_lines(out: str) -> dict[str, list[float]]:
    """Each stage's printed differences, by stage name."""
    stages: dict[str, list[float]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("    ") and " (" in line:
            current = line.strip().split(" (")[0]
            stages[current] = []
        elif line.strip().startswith("max |difference|") and current:
            stages[current].append(float(line.split()[3]))
    return stages


# --- Lightning Pose context model --------------------------------------------------------------


@pytest.fixture(scope="module")
def context_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FIXTURE.is_dir():
        pytest.skip(f"{FIXTURE} is absent")
    return compose_checkpoint(tmp_path_factory.mktemp("lp_context") / "model")


@pytest.fixture(scope="module")
def context_model(context_checkpoint: Path, cache: Path) -> ModelDescription:
    return load_model(context_checkpoint)


@pytest.mark.slow  # the model is converted first (tens of seconds)
def test_a_context_model_has_both_graphs_checked_and_both_stages_counted(
    context_checkpoint: Path, context_model: ModelDescription, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = _inspect(
        capsys, str(context_checkpoint), "--frame", str(shared_data(CLIP)), "--frame-index", "40"
    )
    print(out)
    assert status == 0, out
    # resnet18's 11.2 M in the backbone; the two heads apart.
    parameters = next(line for line in out.splitlines() if line.startswith("parameters:"))
    # As docs/pose-models.md ("Check a model") shows it.
    assert parameters == "parameters:  11,228,498 in all: backbone 11,176,512, heads 51,986"
    assert "5 frames around" in out and "frame 40" in out
    stages = _stage_lines(out)
    assert set(stages) == {"backbone", "heads", "whole model"}
    assert len(stages["heads"]) == 3 and len(stages["whole model"]) == 2  # maps, xy, likelihood
    assert all(value <= 1e-2 for values in stages.values() for value in values)
    assert "each converted graph reproduces the network" in out


@pytest.mark.slow  # the model is converted first (tens of seconds)
def test_a_corrupted_heads_graph_fails_the_check_and_is_named(
    context_checkpoint: Path, context_model: ModelDescription, capsys: pytest.CaptureFixture[str]
) -> None:
    stages = context_of(context_model)
    assert stages is not None
    original = stages.heads_file.read_bytes()
    try:
        _perturb_initializer(stages.heads_file)
        status, out = _inspect(capsys, str(context_checkpoint))
    finally:
        stages.heads_file.write_bytes(original)
    print(out)
    assert status == 1, out
    failing = [line for line in out.splitlines() if "does NOT reproduce" in line]
    assert len(failing) == 2, out  # the heads graph, and so the whole model; not the backbone
    assert (
        failing[0].startswith(
            "result:      the heads graph does NOT reproduce the network (heatmaps"
        )
        and stages.heads_file.name in failing[0]
    )
    assert "whole model" in failing[1]
    assert "each converted graph reproduces" not in out


# --- DeepLabCut top-down export -----------------------------------------------------------------


def _random_topdown_export(path: Path) -> Path:
    """A top-down export in DeepLabCut's format: the real model's config, seeded random weights."""
    from types import SimpleNamespace

    from deeplabstream.pose.formats.dlc3_heads import head_spec
    from deeplabstream.pose.networks.dlc import DlcPoseNetwork, build_backbone
    from deeplabstream.pose.networks.ssdlite import DlcSsdLite

    config = yaml.safe_load(TOPDOWN_CONFIG.read_text())
    torch.manual_seed(SEED)
    export = SimpleNamespace(path=path, config=config)
    pose = DlcPoseNetwork(build_backbone(config["model"]["backbone"], path), head_spec(export))
    detector = DlcSsdLite()
    with torch.no_grad():  # BatchNorm statistics away from their defaults, as after training
        for module in (pose, detector):
            for name, buffer in module.named_buffers():
                if name.endswith("running_var"):
                    buffer.uniform_(0.5, 2.0)
                elif name.endswith("running_mean"):
                    buffer.uniform_(-0.1, 0.1)
    torch.save(
        {"config": config, "pose": pose.state_dict(), "detector": detector.state_dict()}, path
    )
    return path


@pytest.fixture(scope="module")
def topdown_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TOPDOWN_CONFIG.is_file():
        pytest.skip(f"{TOPDOWN_CONFIG} is absent")
    return _random_topdown_export(tmp_path_factory.mktemp("dlc_td") / "DLC_random_td.pt")


@pytest.fixture(scope="module")
def image() -> Path:
    return shared_data(IMAGE)


@pytest.fixture(scope="module")
def topdown_model(topdown_export: Path, image: Path, cache: Path) -> ModelDescription:
    return load_model(topdown_export, frame_size=(480, 640))


@pytest.mark.slow  # the model is converted first (tens of seconds)
def test_a_top_down_model_has_both_stages_checked_and_counted(
    topdown_export: Path,
    topdown_model: ModelDescription,
    image: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out = _inspect(capsys, str(topdown_export), "--frame", str(image))
    print(out)
    assert status == 0, out
    parameters = next(line for line in out.splitlines() if line.startswith("parameters:"))
    detector = sum(p.numel() for p in _modules_of(topdown_export)[0].parameters())
    pose = sum(p.numel() for p in _modules_of(topdown_export)[1].parameters())
    assert f"detector {detector:,}" in parameters and f"pose network {pose:,}" in parameters
    assert parameters.startswith(f"parameters:  {detector + pose:,} in all")
    # SSDLite + top_down_cspnext_s, as docs/pose-models.md ("Check a model") shows it.
    assert parameters.endswith("6,590,996 in all: detector 2,206,520, pose network 4,384,476")
    stages = _stage_lines(out)
    assert set(stages) == {"detector", "pose network", "whole model"}
    assert "boxes_px" in out and "xy_px" in out and "heatmaps" in out
    assert "each converted graph reproduces the network" in out


@pytest.mark.slow  # the model is converted first (tens of seconds)
def test_a_corrupted_pose_graph_fails_the_check_and_is_named(
    topdown_export: Path,
    topdown_model: ModelDescription,
    image: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    decoding = topdown_decoding_of(topdown_model)
    assert decoding is not None
    original = decoding.pose_graph.read_bytes()
    try:
        _perturb_initializer(decoding.pose_graph, "heatmap_head")
        status, out = _inspect(capsys, str(topdown_export), "--frame", str(image))
    finally:
        decoding.pose_graph.write_bytes(original)
    print(out)
    assert status == 1, out
    failing = [line for line in out.splitlines() if "does NOT reproduce" in line]
    assert failing and failing[0].startswith("result:      the pose network graph does NOT")
    assert decoding.pose_graph.name in failing[0]
    assert not any("the detector graph does NOT" in line for line in failing)


def _modules_of(export: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    from deeplabstream.pose.formats.dlc3 import read_export
    from deeplabstream.pose.formats.dlc3_topdown import build_detector_module, build_pose_module

    read = read_export(export)
    return build_detector_module(read), build_pose_module(read)


def test_a_keypoint_found_by_one_side_only_fails_the_check() -> None:
    from deeplabstream.pose.stage_check import WHOLE_TOLERANCES, StageCheck, keypoint_differences

    reference = np.array([[[10.0, 20.0, 0.9], [30.0, 40.0, 0.8]]])
    same = keypoint_differences(reference, reference + 1e-4)
    assert same == pytest.approx({"xy_px": 1e-4, "likelihood": 1e-4})
    assert not StageCheck("whole model", (), "keypoints", same, WHOLE_TOLERANCES).failed
    missing = reference.copy()
    missing[0, 1] = np.nan
    differences = keypoint_differences(reference, missing)
    assert differences["xy_px"] == np.inf
    check = StageCheck("whole model", (), "keypoints", differences, WHOLE_TOLERANCES)
    assert check.failed == ["xy_px", "likelihood"]
    nothing = np.full_like(reference, np.nan)
    assert keypoint_differences(nothing, nothing) == {"xy_px": 0.0, "likelihood": 0.0}
