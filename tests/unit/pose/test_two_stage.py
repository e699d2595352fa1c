"""Two-stage models (a detector, then the pose model on crops): the crops, where they come from,
and which part of the model a late frame is blamed on.

Common to sleap-nn top-down models (``pose.decoding.sleap_topdown``, run by ``NetworkEstimator``)
and DeepLabCut 3.0 top-down models (``pose.formats.dlc3_topdown``):

- the crops kept in buffers between frames are the reference implementations' values exactly
  (sleap-nn's grid: the one-crop ``cut_crop``; DeepLabCut's ``top_down_crop``: a zero canvas
  resized by OpenCV, as the code before the buffers did it);
- ``[Pose] CROP_FROM = previous_frame`` crops around the camera's previous frame's detections,
  its first frame (and a frame whose animal left its crop) around its own;
- a miss blamed on ``inference`` names the part (detector, crop, pose ...) that took longest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from deeplabstream.core.deadline import (
    INFERENCE,
    DeadlineAccount,
    inference_parts,
    model_parts,
    stage_name,
)
from deeplabstream.pose.decoding.sleap_topdown import CropCutter, cut_crop
from deeplabstream.pose.decoding.two_stage import PreviousDetections, left_the_crop
from deeplabstream.pose.formats.dlc3_topdown import STAGES as DLC_STAGES
from deeplabstream.pose.formats.dlc3_topdown import (
    CropSettings,
    DlcTopDownDecoding,
    DlcTopDownEstimator,
    pixels,
    top_down_crop,
)
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import (
    open_backend,
    second_graph_device,
    second_graph_threads,
)
from deeplabstream.pose.runtime.estimator import NetworkEstimator, open_second_stage

MS = 1_000_000


# --- the crops equal the reference implementations ----------------------------------------------


@pytest.mark.parametrize(
    ("channels", "height", "width", "crop"),
    [(1, 1024, 1024, (144, 144)), (3, 200, 300, (48, 64)), (1, 90, 120, (144, 160))],
)
def test_sleap_crops_cut_in_buffers_are_the_one_crop_references_values(
    channels: int, height: int, width: int, crop: tuple[int, int]
) -> None:
    rng = np.random.default_rng(channels * height)
    images = rng.integers(0, 256, (3, channels, height, width), np.uint8)
    cutter = CropCutter(crop)
    for turn in range(60):
        n = int(rng.integers(1, 5))
        frames = rng.integers(0, 3, n)
        centers = np.stack(
            [rng.uniform(-20, width + 20, n), rng.uniform(-20, height + 20, n)], axis=1
        ).astype(np.float32)
        if turn % 3 == 0:  # on the frame's edges: rows and columns outside are zeros
            centers[:, 0] = rng.choice([0.0, width - 1.0, 0.5, width - 1.5], n)
            centers[:, 1] = rng.choice([0.0, height - 1.0, 2.25, height - 0.75], n)
        crops = cutter.cut(images, frames, centers)
        assert crops.shape == (n, channels, *crop) and crops.dtype == np.float32
        for row in range(n):
            expected = cut_crop(images[frames[row]], centers[row], crop)
            assert np.array_equal(crops[row], expected), centers[row]  # bit for bit


def test_sleap_crops_use_one_buffer_between_frames() -> None:
    image = np.zeros((1, 1, 256, 256), np.uint8)
    cutter = CropCutter((64, 64))
    first = cutter.cut(image, np.array([0, 0]), np.array([[50, 50], [100, 100]], np.float32))
    second = cutter.cut(image, np.array([0]), np.array([[80, 80]], np.float32))
    assert np.shares_memory(first, second)  # no allocation per frame
    assert cutter.cut(image, np.array([], int), np.empty((0, 2), np.float32)).shape[0] == 0


def _deeplabcut_crop(
    image: np.ndarray, box: tuple[float, ...], crop: CropSettings
) -> tuple[np.ndarray, tuple[int, int], tuple[float, float]]:
    """DeepLabCut 3.0.2's ``top_down_crop`` as the code before the buffers wrote it."""
    image_h, image_w, channels = image.shape
    out_w, out_h = crop.width, crop.height
    x, y, w, h = (np.float32(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    w += 2 * crop.margin
    h += 2 * crop.margin
    if crop.with_context:
        if w / h > out_w / out_h:
            h = w / (out_w / out_h)
        elif w / h < out_w / out_h:
            w = h * (out_w / out_h)
    x1, y1, x2, y2 = round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2)
    left, right, top, bottom = max(0, -x1), max(0, x2 - image_w), max(0, -y1), max(0, y2 - image_h)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, image_w), min(y2, image_h)
    w_int, h_int = x2 - x1, y2 - y1
    if not crop.with_context:
        if w_int / h_int > out_w / out_h:
            extra = int(w_int - h_int * (out_w / out_h)) // 2
            top, bottom = top + extra, bottom + extra
        elif w_int / h_int < out_w / out_h:
            extra = int(h_int - w_int / (out_w / out_h)) // 2
            left, right = left + extra, right + extra
    canvas = np.zeros((h_int + top + bottom, w_int + left + right, channels), image.dtype)
    canvas[top : top + h_int, left : left + w_int] = image[y1:y2, x1:x2]
    resized = cv2.resize(canvas, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    scale = ((w_int + left + right) / out_w, (h_int + top + bottom) / out_h)
    return resized, (x1 - left, y1 - top), scale


@pytest.mark.parametrize(
    "crop",
    [CropSettings(256, 256), CropSettings(192, 256, margin=10), CropSettings(256, 256, 0, False)],
)
def test_deeplabcut_crops_in_buffers_are_deeplabcuts_inside_and_over_the_edge(
    crop: CropSettings,
) -> None:
    rng = np.random.default_rng(crop.width + crop.margin)
    frame = rng.integers(0, 256, (480, 640, 3), np.uint8)
    buffer = np.empty((crop.height, crop.width, 3), np.uint8)
    planes = np.empty((3, crop.height, crop.width), np.float32)
    for turn in range(200):
        w, h = rng.uniform(5, 300, 2)
        x, y = rng.uniform(-w + 1, 639), rng.uniform(-h + 1, 479)
        if turn % 4 == 0:  # touching the frame's left or right edge
            x = float(rng.choice([0.0, 640.0 - w]))
        expected, offset, scale = _deeplabcut_crop(frame, (x, y, w, h), crop)
        resized, own_offset, own_scale = top_down_crop(frame, (x, y, w, h), crop, buffer)
        assert resized is buffer
        assert np.array_equal(resized, expected) and (own_offset, own_scale) == (offset, scale)
        for bgr in (True, False):  # the planes the pose model gets, RGB
            reference = expected.transpose(2, 0, 1)[::-1] if bgr else expected.transpose(2, 0, 1)
            assert np.array_equal(pixels(resized, planes, bgr=bgr), reference)


# --- where the crops come from -----------------------------------------------------------------


def test_an_animal_left_its_crop_when_not_found_or_a_quarter_crop_away() -> None:
    center, reach = np.array([100.0, 100.0]), np.array([36.0, 36.0])
    assert not left_the_crop(np.array([[110.0, 90.0]]), center, reach)
    assert left_the_crop(np.array([[140.0, 100.0]]), center, reach)
    assert left_the_crop(np.full((3, 2), np.nan), center, reach)
    # the median of the keypoints found: one far off does not move it
    points = np.array([[130.0, 100.0], [np.nan, np.nan], [95.0, 100.0], [300.0, 300.0]])
    assert not left_the_crop(points, center, reach)


class _FakeNetworks:
    """A detector that finds one box and a pose model that finds the box's centre.

    ``box`` is the detector's box (corners) now; ``sleep_s`` makes one stage slow on purpose.
    """

    def __init__(self, box: tuple[float, float, float, float]) -> None:
        self.box = box
        self.detector_calls = 0
        self.sleep_s = {"detector": 0.0, "pose": 0.0}
        self.animal_at: tuple[float, float] | None = None  # frame pixels; None: the crop's centre

    def detector(self, batch: np.ndarray) -> list[np.ndarray]:
        self.detector_calls += 1
        time.sleep(self.sleep_s["detector"])
        n = len(batch)
        return [np.tile(np.array(self.box, np.float32), (n, 1)), np.full(n, 0.9, np.float32)]

    def pose(self, crops: np.ndarray) -> list[np.ndarray]:
        time.sleep(self.sleep_s["pose"])
        n, _, height, width = crops.shape
        points = np.zeros((n, 2, 3), np.float32)
        points[:, :, 0], points[:, :, 1], points[:, :, 2] = width / 2, height / 2, 1.0
        if self.animal_at is not None:  # seen far from the crop's centre: it moved
            points[:, :, 0] = 0.0
        return [points]


def _dlc_estimator(networks: _FakeNetworks, crop_from: Any = "same_frame") -> DlcTopDownEstimator:
    description = ModelDescription(
        name="fake top-down",
        framework="deeplabcut",
        model_file=Path("detector.onnx"),
        keypoints=("nose", "tail"),
        input_height=120,
        input_width=160,
        output_kind="coordinates",
        decoding=DlcTopDownDecoding(
            CropSettings(64, 64), Path("pose.onnx"), "rtmpose_s", "SSDLite"
        ),
    )
    return DlcTopDownEstimator(
        description, networks.detector, networks.pose, (120, 160, 3), crop_from
    )


def test_previous_frame_crops_fall_back_to_the_first_frames_own_box() -> None:
    networks = _FakeNetworks((40.0, 30.0, 80.0, 70.0))
    frame = np.zeros((120, 160, 3), np.uint8)
    same = _dlc_estimator(networks).estimate_animals([frame])
    estimator = _dlc_estimator(networks, "previous_frame")
    first = estimator.estimate_animals([frame], None, ["arena"])
    assert np.array_equal(first, same)  # its own box: as same_frame
    assert networks.detector_calls == 2 and estimator.last_stage_timings["detector"] > 0
    assert estimator.previous.counts == {"arena": [0, 1]} and not estimator.previous.pending
    # The next frame: the previous frame's box, no detector before its keypoints ...
    second = estimator.estimate_animals([frame], None, ["arena"])
    assert networks.detector_calls == 2 and estimator.last_stage_timings["detector"] == 0
    assert np.array_equal(second, same) and estimator.previous.counts["arena"] == [1, 1]
    # ... the detector runs on it after them (the worker's refresh), for the frame after.
    networks.box = (60.0, 30.0, 100.0, 70.0)
    estimator.refresh()
    assert networks.detector_calls == 3 and estimator.previous.refresh_s > 0
    estimator.estimate_animals([frame], None, ["arena"])
    assert estimator.last_stage_timings["refresh"] > 0
    assert estimator.last_boxes[0].tolist() == [60.0, 30.0, 40.0, 40.0]  # the refreshed box
    # Another camera has no previous frame yet: its own box.
    estimator.refresh()
    estimator.estimate_animals([frame], None, ["side"])
    assert estimator.previous.counts["side"] == [0, 1]


def test_previous_frame_crops_fall_back_when_the_animal_left_its_crop() -> None:
    networks = _FakeNetworks((40.0, 30.0, 80.0, 70.0))
    frame = np.zeros((120, 160, 3), np.uint8)
    estimator = _dlc_estimator(networks, "previous_frame")
    estimator.estimate_animals([frame], None, [0])
    estimator.refresh()
    networks.animal_at = (0.0, 0.0)  # the pose model now sees it at the crop's edge
    calls = networks.detector_calls
    estimator.estimate_animals([frame], None, [0])
    assert networks.detector_calls == calls + 1  # its own box after all, on the frame's path
    assert estimator.previous.counts[0] == [0, 2] and not estimator.previous.pending


# --- which part of the model a late frame is blamed on --------------------------------------------


@pytest.mark.parametrize("slow", ["detector", "pose"])
def test_a_miss_in_the_model_is_blamed_on_its_slow_part(slow: str) -> None:
    networks = _FakeNetworks((40.0, 30.0, 80.0, 70.0))
    networks.sleep_s[slow] = 0.05  # this part is slow on purpose
    estimator = _dlc_estimator(networks)
    estimator.estimate_animals([np.zeros((120, 160, 3), np.uint8)])
    model_ns = round(sum(estimator.last_timings.values()) * 1e9)
    account = DeadlineAccount(1 * MS, parts=model_parts(DLC_STAGES))
    # arrived at 0, picked at once, pose ready right after the model: the model took the time
    late = account.add(0, 0, 0, model_ns, model_ns + 10_000)
    assert late == INFERENCE and stage_name(late) == "inference"
    part = account.blame_part(inference_parts(estimator.last_timings, estimator.last_stage_timings))
    assert part == slow
    figures = account.figures()
    assert figures["misses_by_stage"]["inference"] == 1
    assert figures["inference_misses_by_part"] == {
        "preprocess": 0, "detector": int(slow == "detector"), "crop": 0,
        "pose": int(slow == "pose"), "other": 0,
    }  # fmt: skip


def test_previous_detections_count_each_camera() -> None:
    previous = PreviousDetections()
    assert not previous.ready(None) and not previous.ready([1])
    previous.detections[1] = "box"
    assert previous.ready([1]) and not previous.ready([1, 2])
    previous.count([1], previous=True)
    previous.count([1, 2], previous=False)
    assert previous.figures(1) == {"frames_crops_from_previous": 1, "frames_crops_from_same": 1}
    assert previous.figures(3) == {"frames_crops_from_previous": 0, "frames_crops_from_same": 0}


# --- where the second network runs -------------------------------------------------------------

SLEAP_TOPDOWN = Path(__file__).resolve().parents[2] / "fixtures" / "sleap_topdown_flies"


class _StandInBackend:
    """A mock: a first network's backend as it reports its provider (no GPU can run here)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider


def test_the_second_network_runs_where_an_onnx_runtime_first_one_runs_mock_backends() -> None:
    # A GPU model's crops go to the GPU too; beside PyTorch or OpenVINO, ONNX Runtime's CPU.
    assert second_graph_device(_StandInBackend("CUDAExecutionProvider")) == "cuda"
    assert second_graph_device(_StandInBackend("TensorrtExecutionProvider")) == "tensorrt"
    assert second_graph_device(_StandInBackend("DmlExecutionProvider")) == "directml"
    assert second_graph_device(_StandInBackend("CoreMLExecutionProvider")) == "coreml"
    assert second_graph_device(_StandInBackend("torch cuda:0")) == "cpu"
    assert second_graph_device(_StandInBackend("openvino 2025.1 CPU")) == "cpu"
    assert second_graph_threads(_StandInBackend("torch cuda:0")) == 1


def test_a_sleap_top_down_second_stage_opens_beside_its_first_stage() -> None:
    # Before, it always opened on the CPU whatever the first stage's device. A real CPU session
    # gives a CPU second stage with its threads; a first stage that reports CUDA (a stand-in:
    # no GPU here) makes the second ask for CUDA, which fails as the first stage's would.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("ONNX Runtime's CUDA provider is installed: CUDA would open")
    description = load_model(SLEAP_TOPDOWN / "export_topdown")
    backend = open_backend(description, "onnxruntime", "cpu", 2)
    shape = (1024, 1024, 3)
    on_cpu = NetworkEstimator(description, backend, shape)
    assert on_cpu.second_stage is not None
    assert on_cpu.second_stage.provider == "CPUExecutionProvider"
    assert second_graph_threads(on_cpu.second_stage) == 2
    with pytest.raises(ModelError, match=r"(?i)cuda"):
        open_second_stage(description, _StandInBackend("CUDAExecutionProvider"))  # type: ignore[arg-type]
