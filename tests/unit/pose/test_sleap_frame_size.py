"""sleap-nn exports at other frame sizes than they were exported at (``pose.formats.sleap_resize``).

sleap-nn's exporter fixes the graph's resize by ``input_scale`` to the export size (a 512 x 512
crop of the 1024 x 1024 fly export was resized to 512 x 512, not 256 x 256: no fly found). The
program makes that resize follow each frame's size; at the export size nothing changes.
Real exports: the project's top-down and single-instance fixtures, the shared bottom-up one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.sleap_resize import find_baked_resizes, follow_frame_size
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.unit.pose.test_sleap_topdown import clip_frames

FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
TOPDOWN = FIXTURES / "sleap_topdown_flies" / "export_topdown"
SINGLE = FIXTURES / "sleap_single_openfield" / "export"
BOTTOMUP = "sleap-flies/onnx/flies_bottomup_tiny_onnx"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize(
    ("folder", "sizes"), [(TOPDOWN, (512, 512)), (SINGLE, (240, 320))], ids=["topdown", "single"]
)
def test_the_export_resizes_every_frame_to_one_size(folder: Path, sizes: tuple[int, int]) -> None:
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    (baked,) = find_baked_resizes(graph)
    assert baked.sizes == sizes  # the export size times input_scale 0.5


def test_a_scale_of_one_or_a_rewritten_graph_is_left_as_it_is() -> None:
    assert follow_frame_size(SINGLE / "model.onnx", 1.0) == SINGLE / "model.onnx"
    rewritten = follow_frame_size(SINGLE / "model.onnx", 0.5)
    graph = onnx.load(str(rewritten), load_external_data=False).graph
    assert find_baked_resizes(graph) == []
    assert follow_frame_size(rewritten, 0.5) == rewritten


def test_the_rewritten_graph_is_cached_beside_the_exports_metadata(cache: Path) -> None:
    rewritten = follow_frame_size(TOPDOWN / "model.onnx", 0.5)
    assert rewritten.is_relative_to(cache) and rewritten.name == "model.onnx"
    for name in ("export_metadata.json", "training_config_centroid.yaml"):
        assert (rewritten.parent / name).read_bytes() == (TOPDOWN / name).read_bytes()
    made = rewritten.stat().st_mtime_ns
    assert follow_frame_size(TOPDOWN / "model.onnx", 0.5) == rewritten
    assert rewritten.stat().st_mtime_ns == made  # taken from the cache, not made again


def _run(graph: Path, images: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})


def test_at_the_export_size_the_outputs_are_the_same_to_the_bit() -> None:
    frames = clip_frames(2)
    gray = np.ascontiguousarray(np.stack([f[None, :, :, 0] for f in frames]))
    original = _run(TOPDOWN / "model.onnx", gray)
    rewritten = _run(follow_frame_size(TOPDOWN / "model.onnx", 0.5), gray)
    for before, after in zip(original, rewritten, strict=True):
        assert np.array_equal(before, after, equal_nan=True)


def _animals(path: Path, frame: np.ndarray) -> np.ndarray:
    model = load_model(path)
    if frame.shape[:2] != (model.input_height, model.input_width):
        model = model.at_input_size(*frame.shape[:2])
    backend = open_backend(model, "onnxruntime", "cpu", 2)
    try:
        return NetworkEstimator(model, backend, frame.shape).estimate_animals([frame])[0]
    finally:
        backend.close()


@pytest.mark.parametrize("kind", ["topdown", "bottomup"])
def test_a_crop_finds_the_fly_where_the_whole_frame_does(kind: str) -> None:
    path = TOPDOWN if kind == "topdown" else shared_data(BOTTOMUP)
    frame = clip_frames(1)[0]
    whole = _animals(path, frame)
    centre = np.nanmean(whole[0, :, :2], axis=0)
    x0, y0 = (int(max(0.0, v - 256)) // 32 * 32 for v in centre)
    crop = np.ascontiguousarray(frame[y0 : y0 + 512, x0 : x0 + 512])
    found = _animals(path, crop)
    found[..., 0] += x0
    found[..., 1] += y0
    # The fly of the crop: where the whole frame has it (the network sees less around it).
    fly = found[np.argmax((~np.isnan(found[..., 0])).sum(axis=1))]
    assert (~np.isnan(fly[:, 0])).sum() >= 5
    assert np.linalg.norm(np.nanmean(fly[:, :2], axis=0) - centre) < 10
