"""DeepLabCut 3.0 exports: rebuilt network, conversion, parity with DeepLabCut, errors, live run.

The parity tests use ../shared/data/dlc3-openfield-cspnext_s (a real DeepLabCut 3.0.2 export,
its clip, 10 labeled PNGs and DeepLabCut's own predictions on them; see its README) in place,
and skip when it is absent. Converted graphs go to the test run's temporary cache folder
(``DEEPLABSTREAM_CACHE``), never into the shared folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deeplabstream.pose.formats.conversion import CACHE_ENV, run_graph
from deeplabstream.pose.formats.dlc3 import build_module, read_export
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.dlc3_exports import run_converted_models_cache
from tests.support.files import read_video, write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

DLC = "dlc3-openfield-cspnext_s"
EXPORT = "model/DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
CLIP = "clip/m3v1mp4_first100.mp4"
IMAGES = ("0000", "0020", "0044", "0047", "0064", "0067", "0080", "0100", "0103", "0112")
XY_TOLERANCE = 1e-3  # pixels
LIKELIHOOD_TOLERANCE = 1e-4


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test run's cache folder for converted graphs (the export converted once a run)."""
    yield from run_converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def export_path() -> Path:
    return shared_data(f"{DLC}/{EXPORT}")


@pytest.fixture(scope="module")
def description(cache: Path, export_path: Path) -> ModelDescription:
    before = sorted(p.name for p in export_path.parent.iterdir())
    loaded = load_model(export_path)
    assert sorted(p.name for p in export_path.parent.iterdir()) == before  # nothing written
    return loaded


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    """The clip's 100 frames, BGR."""
    return read_video(shared_data(f"{DLC}/{CLIP}"))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """The 10 labeled PNGs, BGR."""
    return [cv2.imread(str(shared_data(f"{DLC}/images/img{n}.png"))) for n in IMAGES]


def _clip_reference(keypoints: tuple[str, ...]) -> np.ndarray:
    """DeepLabCut's analyze_videos (batch 4) predictions: (100, K, 3)."""
    (csv,) = shared_data(f"{DLC}/reference/analyze_videos_bs4").glob("*.csv")
    table = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    table.columns = table.columns.droplevel(0)
    assert list(table.index) == list(range(100))
    columns = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    return table[columns].to_numpy(np.float64).reshape(len(table), len(keypoints), 3)


def _images_reference(keypoints: tuple[str, ...]) -> np.ndarray:
    """DeepLabCut's analyze_images predictions, in IMAGES order: (10, K, 3)."""
    (csv,) = shared_data(f"{DLC}/reference/analyze_images").glob("*.csv")
    table = pd.read_csv(csv, header=[0, 1, 2, 3], index_col=0)
    table.columns = table.columns.droplevel([0, 1])  # scorer, individuals
    table = table.loc[[f"images/img{n}.png" for n in IMAGES]]
    columns = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    return table[columns].to_numpy(np.float64).reshape(len(table), len(keypoints), 3)


def _estimate(description: ModelDescription, frames: list[np.ndarray], backend: str) -> np.ndarray:
    opened = open_backend(description, backend, "cpu", threads=1)
    try:
        return NetworkEstimator(description, opened, frames[0].shape, 4).estimate(frames)
    finally:
        opened.close()


def _max_differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    diff = np.abs(ours - theirs).max(axis=(0, 1))
    return {"dx": float(diff[0]), "dy": float(diff[1]), "dlikelihood": float(diff[2])}


def _dlc_input(bgr: np.ndarray) -> np.ndarray:
    """DeepLabCut's own normalisation of a frame: (img - mean*255) * (1 / (std*255))."""
    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255
    rgb = bgr[..., ::-1].astype(np.float32)
    return ((rgb - mean) * (1 / std)).transpose(2, 0, 1)[None].copy()


# --- the real model -----------------------------------------------------------------------------


def test_the_clip_decodes_to_deeplabcuts_frames(clip_frames: list[np.ndarray]) -> None:
    import hashlib
    import json

    expected = json.loads(shared_data(f"{DLC}/clip/clip_frames_rgb_md5.json").read_text())["md5"]
    got = [
        hashlib.md5(np.ascontiguousarray(f[..., ::-1]).tobytes()).hexdigest() for f in clip_frames
    ]
    assert got == expected


def test_export_is_described(description: ModelDescription, cache: Path) -> None:
    assert description.framework == "deeplabcut"
    assert description.keypoints == ("snout", "leftear", "rightear", "tailbase")
    assert (description.input_height, description.input_width) == (480, 640)
    assert description.stride == 16.0 and description.any_input_size
    assert description.output_kind == "coordinates" and description.output_names == ("keypoints",)
    assert description.model_file.parent == cache and description.model_file.suffix == ".onnx"
    assert description.source_file == shared_data(f"{DLC}/{EXPORT}")
    assert load_model(shared_data(f"{DLC}/{EXPORT}")).model_file == description.model_file  # cached


def test_raw_head_outputs_equal_deeplabcuts(
    description: ModelDescription, clip_frames: list[np.ndarray], images: list[np.ndarray]
) -> None:
    """Heatmaps and locref of the rebuilt network and of its graph, on DeepLabCut's input."""
    module = build_module(read_export(shared_data(f"{DLC}/{EXPORT}")))
    with np.load(shared_data(f"{DLC}/reference/raw_head_outputs.npz")) as raw:
        cases = {
            "clip_frame000": clip_frames[0],
            "clip_frame050": clip_frames[50],
            "img0044.png": images[IMAGES.index("0044")],
        }
        for name, frame in cases.items():
            batch = _dlc_input(frame)
            with torch.inference_mode():
                keypoints, heatmaps, locref = module(torch.from_numpy(batch))
            graph = run_graph(description.model_file, "images", batch, threads=1)
            for label, ours in (("pytorch", [keypoints, heatmaps, locref]), ("onnx", graph)):
                ours = [np.asarray(o) for o in ours]
                np.testing.assert_allclose(
                    ours[1], raw[f"{name}__heatmap"], atol=1e-5, err_msg=label
                )
                np.testing.assert_allclose(
                    ours[2], raw[f"{name}__locref"], atol=1e-4, err_msg=label
                )
                poses = raw[f"{name}__poses"][0]
                np.testing.assert_allclose(ours[0][..., :2], poses[..., :2], atol=1e-3)
                np.testing.assert_allclose(ours[0][..., 2], poses[..., 2], atol=1e-5)


@pytest.mark.parametrize(
    ("backend", "step"),
    [
        ("onnxruntime", 1),
        ("pytorch", 5),  # eager PyTorch is slow on a small CPU: every 5th frame here ...
        pytest.param("pytorch", 1, marks=pytest.mark.slow),  # ... and all of them when slow
    ],
)
def test_clip_matches_deeplabcut(
    description: ModelDescription,
    clip_frames: list[np.ndarray],
    backend: str,
    step: int,
    record_property,
) -> None:
    ours = _estimate(description, clip_frames[::step], backend)
    diff = _max_differences(ours, _clip_reference(description.keypoints)[::step])
    record_property(f"dlc_clip_{backend}_every_{step}", diff)
    print(f"clip (every frame of {step}), {backend} vs DeepLabCut analyze_videos: {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE


@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_labeled_images_match_deeplabcut(
    description: ModelDescription, images: list[np.ndarray], backend: str, record_property
) -> None:
    ours = _estimate(description, images, backend)
    diff = _max_differences(ours, _images_reference(description.keypoints))
    record_property(f"dlc_images_{backend}", diff)
    print(f"labeled images, {backend} vs DeepLabCut analyze_images: {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE


def test_runs_at_another_frame_size(
    description: ModelDescription, clip_frames: list[np.ndarray]
) -> None:
    """The graph is fully convolutional: a smaller camera runs at its own size, like DLC."""
    small = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in clip_frames[:3]]
    at_size = description.at_input_size(240, 320)
    assert at_size.model_file == description.model_file
    graph = _estimate(at_size, small, "onnxruntime")
    eager = _estimate(at_size, small, "pytorch")
    assert graph.shape == (3, 4, 3)
    np.testing.assert_allclose(graph, eager, atol=1e-3)
    assert (graph[..., 0] < 320).all() and (graph[..., 1] < 240).all()


def test_openvino_gives_deeplabcuts_keypoints(
    description: ModelDescription, clip_frames: list[np.ndarray], record_property
) -> None:
    """The optional OpenVINO backend runs the same graph: equal keypoints, whole frame and crop."""
    pytest.importorskip(
        "openvino",
        reason="the optional openvino package is not installed "
        "(pip install -r requirements-openvino.txt)",
    )
    frames = clip_frames[::5]
    ours = _estimate(description, frames, "openvino")
    diff = _max_differences(ours, _clip_reference(description.keypoints)[::5])
    record_property("dlc_clip_openvino_every_5", diff)
    print(f"clip (every 5th frame), openvino vs DeepLabCut analyze_videos: {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE
    # One compiled model serves every input size (a dynamic crop's, here 256x192).
    crops = [np.ascontiguousarray(f[96:288, 192:448]) for f in clip_frames[:3]]
    at_size = description.at_input_size(192, 256)
    np.testing.assert_allclose(
        _estimate(at_size, crops, "openvino"), _estimate(at_size, crops, "onnxruntime"), atol=1e-3
    )


def test_openvino_missing_says_what_to_install(
    description: ModelDescription, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(ModelError, match=r"requirements-openvino\.txt"):
        open_backend(description, "openvino", "cpu", 1)
    with pytest.raises(ModelError, match="cpu"):
        open_backend(description, "openvino", "cuda", 1)


@pytest.mark.slow
def test_fp16_differs_from_fp32_by_a_measured_amount(
    cache: Path, clip_frames: list[np.ndarray], record_property
) -> None:
    fp16 = load_model(shared_data(f"{DLC}/{EXPORT}"), precision="fp16")
    assert fp16.precision == "fp16" and fp16.model_file.name.count(".fp16.") == 1
    frames = clip_frames[::10]
    ours = _estimate(fp16, frames, "onnxruntime")
    diff = _max_differences(ours, _clip_reference(fp16.keypoints)[::10])
    record_property("dlc_clip_fp16_onnx", diff)
    print(f"clip (every 10th frame), fp16 ONNX vs DeepLabCut: {diff}")
    assert diff["dlikelihood"] < 0.01  # the same network, to fp16's precision
    assert np.median(np.abs(ours - _clip_reference(fp16.keypoints)[::10])[..., :2]) < 0.1


def test_inspect_prints_the_model_and_checks_the_conversion_on_a_frame(cache: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deeplabstream.pose.inspect",
            str(shared_data(f"{DLC}/{EXPORT}")),
            "--frame",
            str(shared_data(f"{DLC}/images/img0044.png")),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "DeepLabCut 3.x export" in out and "cspnext_s" in out
    assert "snout, leftear, rightear, tailbase" in out and "640x480" in out
    assert "stride:      16" in out
    parameters = int(re.search(r"parameters:\s+([\d,]+)", out).group(1).replace(",", ""))
    export = read_export(shared_data(f"{DLC}/{EXPORT}"))
    float_weights = [
        v
        for k, v in export.state_dict.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    assert parameters == sum(v.numel() for v in float_weights)
    assert "img0044.png (640x480)" in out
    assert "reproduces the network" in out
    heatmaps = float(re.search(r"heatmaps\s+([\d.e+-]+)", out).group(1))
    assert heatmaps < 1e-4


def test_runs_live_in_the_app_and_matches_deeplabcut(tmp_path: Path, cache: Path) -> None:
    clip = shared_data(f"{DLC}/{CLIP}")
    settings = write_settings(
        tmp_path, f"[Camera openfield]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(shared_data(f"{DLC}/{EXPORT}")),
        "--frames",  # a second of the clip at its own rate: live frames, some analysed
        "30",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=300,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    ours = pd.read_csv(session / "openfield.pose.csv", header=[0, 1, 2], index_col=0)
    ours = ours.dropna(how="all")  # the frames analysed (the others are empty rows)
    assert len(ours) >= 2 and ours.index.is_monotonic_increasing
    keypoints = ("snout", "leftear", "rightear", "tailbase")
    assert tuple(ours.columns.get_level_values(1)[::3]) == keypoints
    theirs = _clip_reference(keypoints)[ours.index.to_numpy()]
    diff = _max_differences(ours.to_numpy().reshape(len(ours), 4, 3), theirs)
    print(f"live, {len(ours)} frames analysed, vs DeepLabCut: {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE
    model = json.loads((session / "session.json").read_text())["pose"]["model"]
    assert model["source_file"] == str(shared_data(f"{DLC}/{EXPORT}"))  # the file named
    assert Path(model["file"]).is_relative_to(cache)  # the graph converted from it


# --- a resnet_50 export with DeepLabCut's exact key layout (random weights) ----------------------

_LEAF = re.compile(r"^(\s*)\((\w+)\): (\w+)\((.*)\)$")
_OPEN = re.compile(r"^(\s*)\((\w+)\): (\w+)\($")


def _layout_from_module_print(text: str) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes implied by a PyTorch module print (DeepLabCut's own)."""
    shapes: dict[str, tuple[int, ...]] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = _OPEN.match(line) or _LEAF.match(line)
        if not match:
            continue
        indent, name, kind = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = ".".join([n for _, n in stack] + [name])
        if _OPEN.match(line):
            stack.append((indent, name))
            continue
        shapes |= _leaf_parameters(prefix, kind, match.group(4))
    return shapes


def _leaf_parameters(prefix: str, kind: str, args: str) -> dict[str, tuple[int, ...]]:
    numbers = [int(n) for n in re.findall(r"\d+", args.split("=")[0])]  # positional args
    found = re.search(r"kernel_size=\((\d+), (\d+)\)", args)
    kernel = tuple(int(n) for n in found.groups()) if found else ()
    groups = int(re.search(r"groups=(\d+)", args).group(1)) if "groups=" in args else 1
    bias = "bias=False" not in args
    if kind == "Conv2d":
        c_in, c_out = numbers[:2]
        out = {f"{prefix}.weight": (c_out, c_in // groups, *kernel)}
        return out | ({f"{prefix}.bias": (c_out,)} if bias else {})
    if kind == "ConvTranspose2d":
        c_in, c_out = numbers[:2]
        out = {f"{prefix}.weight": (c_in, c_out // groups, *kernel)}
        return out | ({f"{prefix}.bias": (c_out,)} if bias else {})
    if kind == "GroupNorm":
        channels = numbers[1]
        return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,)}
    if kind in ("BatchNorm2d", "SyncBatchNorm"):
        c = numbers[0]
        return {
            f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")
        } | {f"{prefix}.num_batches_tracked": ()}
    return {}


@pytest.fixture(scope="module")
def resnet_layout() -> dict[str, tuple[int, ...]]:
    folder = shared_data(f"{DLC}/resnet_50-description")
    layout = _layout_from_module_print((folder / "model_architecture.txt").read_text())
    described = (folder / "describe_export.txt").read_text()
    count = int(re.search(r"tensors: (\d+) elements: (\d+)", described).group(1))
    elements = int(re.search(r"tensors: (\d+) elements: (\d+)", described).group(2))
    assert len(layout) == count and sum(int(np.prod(s)) for s in layout.values()) == elements
    for name, shape in re.findall(r"^\s+(\S+) \(([\d, ]*)\)", described, re.MULTILINE):
        assert layout[name] == tuple(int(n) for n in shape.split(",") if n.strip())
    return layout


def _write_export(path: Path, layout: dict[str, tuple[int, ...]], config: dict) -> Path:
    generator = torch.Generator().manual_seed(0)
    weights = {}
    for name, shape in layout.items():
        if name.endswith("num_batches_tracked"):
            weights[name] = torch.tensor(0)
        elif name.endswith(("bias", "running_mean")):
            weights[name] = torch.zeros(shape)
        elif name.endswith("running_var") or len(shape) == 1:  # norms: identity
            weights[name] = torch.ones(shape)
        else:  # convolutions: variance-preserving random weights
            fan_in = int(np.prod(shape[1:]))
            weights[name] = torch.randn(shape, generator=generator) / np.sqrt(fan_in)
    torch.save({"config": config, "pose": weights}, path)
    return path


def _resnet_config() -> dict:
    text = shared_data(f"{DLC}/resnet_50-description/pytorch_config.yaml").read_text()
    return yaml.safe_load(text)


@pytest.mark.slow
def test_resnet_50_export_loads_converts_and_runs(
    tmp_path: Path, cache: Path, resnet_layout: dict[str, tuple[int, ...]]
) -> None:
    path = _write_export(tmp_path / "resnet_50.pt", resnet_layout, _resnet_config())
    description = load_model(path, frame_size=(120, 160))
    assert description.stride == 8.0 and description.keypoints[0] == "snout"
    frames = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), np.uint8) for i in range(2)]
    graph = _estimate(description, frames, "onnxruntime")
    eager = _estimate(description, frames, "pytorch")
    assert graph.shape == (2, 4, 3) and np.isfinite(graph).all()
    np.testing.assert_allclose(graph[..., 2], eager[..., 2], atol=1e-4)


def test_resnet_50_keys_that_do_not_fit_are_named(
    tmp_path: Path, resnet_layout: dict[str, tuple[int, ...]]
) -> None:
    layout = dict(resnet_layout)
    del layout["backbone.model.layer4.2.bn3.weight"]
    layout["backbone.model.layer5.0.conv1.weight"] = (4, 4, 1, 1)
    layout["heads.bodypart.locref_head.deconv_layers.0.weight"] = (2048, 6, 3, 3)
    path = _write_export(tmp_path / "bad.pt", layout, _resnet_config())
    with pytest.raises(ModelError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "resnet_50" in message
    assert "1 missing: backbone.model.layer4.2.bn3.weight" in message
    assert "1 unexpected: backbone.model.layer5.0.conv1.weight" in message
    assert "heads.bodypart.locref_head.deconv_layers.0.weight (2048, 6, 3, 3)" in message
    assert "(network: (2048, 8, 3, 3))" in message


# --- unsupported and damaged files --------------------------------------------------------------


def _variant(tmp_path: Path, change: dict, name: str = "variant.pt") -> Path:
    export = read_export(shared_data(f"{DLC}/{EXPORT}"))
    config = yaml.safe_load(yaml.safe_dump(export.config))
    for dotted, value in change.items():
        section = config
        *parents, last = dotted.split(".")
        for key in parents:
            section = section.setdefault(key, {})
        section[last] = value
    path = tmp_path / name
    torch.save({"config": config, "pose": export.state_dict}, path)
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {
                "method": "td",
                "detector": {
                    "model": {"type": "FasterRCNN", "variant": "fasterrcnn_resnet50_fpn"}
                },
            },
            r"method 'td'.*FasterRCNN detector of variant fasterrcnn_resnet50_fpn\b.*"
            r"supported: single-animal bottom-up",
        ),
        (
            {"metadata.individuals": ["mouse1", "mouse2", "mouse3"]},
            r"3 individuals \(multi-animal\)",
        ),
        (
            {
                "net_type": "dlcrnet_stride16_ms5",
                "model.backbone": {"type": "DLCRNet", "model_name": "resnet50_gn"},
            },
            r"export of dlcrnet_stride16_ms5 with backbone DLCRNet.*HRNet",
        ),
        (
            {"model.heads.bodypart.type": "DLCRNetHead"},
            r"heads \{'bodypart': 'DLCRNetHead'\}",
        ),
        ({"data.inference.resize": {"height": 256, "width": 256}}, r"pre-processing uses resize"),
    ],
)
def test_unsupported_exports_say_what_they_hold(
    tmp_path: Path, change: dict, expected: str
) -> None:
    with pytest.raises(ModelError, match=expected):
        load_model(_variant(tmp_path, change))


def test_cspnext_weights_that_do_not_fit_are_named(tmp_path: Path) -> None:
    path = _variant(tmp_path, {"model.backbone.widen_factor": 0.75, "net_type": "cspnext_m"})
    with pytest.raises(
        ModelError, match=r"do not fit a cspnext_m network.*wrong shape: backbone\.stem"
    ):
        load_model(path)


def test_damaged_and_foreign_files(tmp_path: Path) -> None:
    garbage = tmp_path / "snapshot.pt"
    garbage.write_bytes(b"\x00not a model at all")
    with pytest.raises(ModelError, match=r"snapshot\.pt: not a readable DeepLabCut 3\.0 export"):
        load_model(garbage)
    plain = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, plain)
    with pytest.raises(
        ModelError, match=r"expected a DeepLabCut 3\.0 export .* found \['conv\.weight'\]"
    ):
        load_model(plain)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(shared_data(f"{DLC}/{EXPORT}").read_bytes()[:100_000])
    with pytest.raises(ModelError, match=r"not a readable DeepLabCut 3\.0 export"):
        load_model(truncated)


# --- other networks and the head without location refinement ------------------------------------


@pytest.mark.parametrize(
    ("deepen", "widen", "channels", "blocks"),
    [
        (0.33, 0.5, 512, (1, 2, 2, 1)),
        (0.67, 0.75, 768, (2, 4, 4, 2)),
        (1.33, 1.25, 1280, (4, 8, 8, 4)),
    ],
)
def test_cspnext_sizes_match_deeplabcuts_configs(
    deepen: float, widen: float, channels: int, blocks: tuple[int, ...]
) -> None:
    """cspnext_s/m/x: DeepLabCut's backbone_output_channels, blocks from its deepen factor."""
    from deeplabstream.pose.networks.cspnext import CSPNeXt, CSPNeXtConfig

    network = CSPNeXt(CSPNeXtConfig(deepen_factor=deepen, widen_factor=widen)).eval()
    assert network.out_channels == channels
    assert tuple(len(getattr(network, f"stage{i}")[-1].blocks) for i in range(1, 5)) == blocks
    with torch.inference_mode():
        assert network(torch.zeros(1, 3, 64, 96)).shape == (1, channels, 2, 3)


def test_resnet_101_is_timms_batchnorm_resnet_at_stride_16(tmp_path: Path) -> None:
    from deeplabstream.pose.formats.dlc3 import DlcExport, build_backbone

    config = _resnet_config()
    config["model"]["backbone"]["model_name"] = "resnet101"
    backbone = build_backbone(DlcExport(tmp_path / "x.pt", config, {}))
    keys = backbone.state_dict()
    assert "model.layer3.22.bn3.running_var" in keys and "model.layer3.23.conv1.weight" not in keys
    assert backbone.stride == 16
    layer4 = backbone.model.layer4
    assert layer4[0].conv2.dilation == (1, 1) and layer4[1].conv2.dilation == (2, 2)
    with torch.inference_mode():
        assert backbone.eval()(torch.zeros(1, 3, 64, 96)).shape == (1, 2048, 4, 6)


def _without_locref(tmp_path: Path) -> Path:
    export = read_export(shared_data(f"{DLC}/{EXPORT}"))
    config = yaml.safe_load(yaml.safe_dump(export.config))
    head = config["model"]["heads"]["bodypart"]
    head["predictor"]["location_refinement"] = False
    head["locref_config"] = None
    weights = {k: v for k, v in export.state_dict.items() if ".locref_head." not in k}
    path = tmp_path / "no_locref.pt"
    torch.save({"config": config, "pose": weights}, path)
    return path


def test_head_without_location_refinement_decodes_cell_centres(
    tmp_path: Path, images: list[np.ndarray]
) -> None:
    full = build_module(read_export(shared_data(f"{DLC}/{EXPORT}")))
    plain = build_module(read_export(_without_locref(tmp_path)))
    batch = torch.from_numpy(_dlc_input(images[2]))
    with torch.inference_mode():
        keypoints, heatmaps, locref = full(batch)
        outputs = plain(batch)
    assert len(outputs) == 2  # keypoints and heatmaps only
    np.testing.assert_array_equal(outputs[1], heatmaps)
    # Without refinement a keypoint is its cell's centre: the refined one minus its offset.
    index = heatmaps[0].reshape(4, -1).argmax(1)
    row, col = np.divmod(index.numpy(), heatmaps.shape[3])
    np.testing.assert_allclose(outputs[0][0, :, 0], col * 16 + 8)
    np.testing.assert_allclose(outputs[0][0, :, 1], row * 16 + 8)
    offsets = locref[0].reshape(4, 2, -1)[np.arange(4), :, index] * 7.2801
    np.testing.assert_allclose(outputs[0][0, :, :2] + offsets, keypoints[0, :, :2], atol=1e-4)


@pytest.mark.slow
def test_head_without_location_refinement_converts_and_runs(
    tmp_path: Path, cache: Path, images: list[np.ndarray]
) -> None:
    description = load_model(_without_locref(tmp_path))
    graph = _estimate(description, images[:2], "onnxruntime")
    eager = _estimate(description, images[:2], "pytorch")
    np.testing.assert_allclose(graph, eager, atol=1e-4)
    assert ((graph[..., :2] - 8) % 16 == 0).all()  # cell centres


def test_an_export_with_detector_weights_is_named(tmp_path: Path) -> None:
    export = read_export(shared_data(f"{DLC}/{EXPORT}"))
    path = tmp_path / "top_down.pt"
    detector = {"backbone.weight": torch.zeros(2)}
    torch.save({"config": export.config, "pose": export.state_dict, "detector": detector}, path)
    with pytest.raises(ModelError, match=r"cspnext_s with a detector, which this program cannot"):
        load_model(path)


@pytest.mark.slow  # a whole replay or window session (the default suite keeps under 15 min)
def test_runs_live_in_the_gui_from_the_file_as_deeplabcut_wrote_it(
    qtbot, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deeplabstream.app.gui.main_window import MainWindow
    from deeplabstream.app.gui.session import Part

    clip = shared_data(f"{DLC}/{CLIP}")
    export = shared_data(f"{DLC}/{EXPORT}")
    monkeypatch.setenv("DEEPLABSTREAM_LOCK_FILE", str(tmp_path / "lock"))
    settings = write_settings(
        tmp_path,
        f"[Camera openfield]\nSOURCE = video\nPATH = {clip}\nPACING = native\nLOOP = true\n"
        f"[Pose]\nMODEL_PATH = {export}\n",
    )
    window = MainWindow(settings, tmp_path / "out")
    window.show()  # (not qtbot.addWidget: it would delete the window while it still closes)
    controller = window.controller
    for part in (Part.STREAM, Part.ANALYSIS):
        controller.start(part)
        qtbot.waitUntil(
            lambda p=part: controller.busy is None and controller.running(p), timeout=120_000
        )
    view = window.view_side.live_view.views["openfield"]
    qtbot.waitUntil(lambda: view.pose_frame_index is not None, timeout=30_000)
    assert controller.stream.pose.analysis.keypoints_of("openfield") == (
        "snout",
        "leftear",
        "rightear",
        "tailbase",
    )
    window.close()  # stops in the background; the window goes once the files are final
    qtbot.waitUntil(lambda: window.closed_down, timeout=120_000)
    session = only_session(tmp_path / "out")
    ours = pd.read_csv(session / "openfield.pose.csv", header=[0, 1, 2], index_col=0)
    ours = ours.dropna(how="all")  # the frames analysed (the others are empty rows)
    in_clip = ours.index.to_numpy() % 100  # the clip loops; the camera's counter goes on
    theirs = _clip_reference(("snout", "leftear", "rightear", "tailbase"))[in_clip]
    diff = _max_differences(ours.to_numpy().reshape(len(ours), 4, 3), theirs)
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE


@pytest.mark.slow
def test_video_analyzer_fast_on_the_clip_equals_deeplabcut(tmp_path: Path, cache: Path) -> None:
    """The issue's replay check: every frame of the clip, from the .pt as DeepLabCut wrote it."""
    clip = shared_data(f"{DLC}/{CLIP}")
    result = run_cli(
        str(clip),
        "--fast",
        "--no-experiment",
        "--model",
        str(shared_data(f"{DLC}/{EXPORT}")),
        "--output-dir",
        str(tmp_path),
        script="utils/VideoAnalyzer.py",
        timeout=300,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ours = pd.read_csv(
        tmp_path / "m3v1mp4_first100" / "m3v1mp4_first100.pose.csv", header=[0, 1, 2], index_col=0
    )
    assert ours.index.tolist() == list(range(100))  # every frame, in order
    # Dynamic cropping is off by default: every frame analysed whole, and recorded as such.
    session = tmp_path / "m3v1mp4_first100"
    timing = pd.read_csv(session / "m3v1mp4_first100.pose_timing.csv")
    regions = timing[["crop_x", "crop_y", "crop_width", "crop_height"]].to_numpy()
    assert (regions == [0, 0, 640, 480]).all()
    figures = json.loads((session / "session.json").read_text())["pose"]["cameras"]
    assert figures["m3v1mp4_first100"]["frames_full_frame"] == 100
    assert figures["m3v1mp4_first100"]["frames_cropped"] == 0
    keypoints = ("snout", "leftear", "rightear", "tailbase")
    diff = _max_differences(ours.to_numpy().reshape(100, 4, 3), _clip_reference(keypoints))
    print(f"VideoAnalyzer --fast, 100 frames, vs DeepLabCut: {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE
