"""DeepLabCut 3.0 top-down exports (a detector + a pose model), run without DeepLabCut.

Design: docs/pose-internals.md, "pose.formats.dlc3_topdown".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.pose.decoding.two_stage import CropFrom, PreviousDetections, left_the_crop
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.formats.conversion import (
    ConversionSpec,
    Differences,
    Precision,
    convert,
    load_weights,
    max_abs_differences,
    synthetic_input,
)
from deeplabstream.pose.formats.dlc3_heads import head_spec
from deeplabstream.pose.formats.dlc3_topdown_boxes import detection_limits, individuals_of
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD, ModelDescription, ModelError

DETECTOR_OUTPUTS = ("boxes", "scores")
POSE_OUTPUTS = ("keypoints", "simcc_x", "simcc_y")  # RTMPose
HEATMAP_POSE_OUTPUTS = ("keypoints", "heatmaps", "locref")  # a HeatmapHead (with locref)
#: torchvision's SSD keeps boxes whose score is above this (``score_thresh``).
SSD_SCORE_THRESHOLD = 0.001
#: ``crop_from = previous_frame``: the animal left a crop cut around the previous frame's box
#: when its keypoints' median is farther than this fraction of the crop from the crop's centre
#: (within a tenth of the crop of its border). A box is not centred on the keypoints (the
#: detector frames the whole animal): a quarter, as for sleap-nn's crops centred on the anchor
#: part, would refuse most boxes.
LEFT_REACH = 0.4
#: The stages of :attr:`DlcTopDownEstimator.last_stage_timings`, in order.
STAGES = ("detector", "crop", "pose")
DETECTOR_TOLERANCES: Differences = {"boxes": 1e-2, "scores": 1e-4}
POSE_TOLERANCES: Differences = {"simcc_x": 1e-3, "simcc_y": 1e-3, "xy_px": 1e-2, "score": 1e-4}
HEATMAP_POSE_TOLERANCES: Differences = {
    "heatmaps": 1e-3,
    "locref": 1e-2,
    "xy_px": 1e-2,
    "score": 1e-3,
}
# The graphs take RGB pixels 0..255 (float32) and normalise them inside.
PIXEL_MEAN = (0.0, 0.0, 0.0)
PIXEL_STD = (1 / 255, 1 / 255, 1 / 255)
_HERE = Path(__file__).resolve().parent.parent / "networks"


@dataclass(frozen=True)
class CropSettings:
    """DeepLabCut's ``data.inference.top_down_crop``."""

    width: int
    height: int
    margin: int = 0
    with_context: bool = True


@dataclass(frozen=True)
class DlcTopDownDecoding:
    """What a top-down description carries besides the detector graph (its ``model_file``)."""

    crop: CropSettings
    pose_graph: Path
    net_type: str
    detector_type: str
    score_threshold: float = SSD_SCORE_THRESHOLD
    pose_outputs: tuple[str, ...] = POSE_OUTPUTS
    #: FasterRCNN only: the box-head graph (``model_file`` is its proposal graph) and
    #: torchvision's settings (:class:`pose.decoding.region_proposals.FasterRcnnSettings`).
    box_head_graph: Path | None = None
    detector_settings: Any = None
    #: Several individuals (either detector): the boxes kept per frame
    #: (:class:`pose.decoding.box_detections.DetectionLimits`); None: the best box.
    detection_limits: Any = None


def is_topdown(config: dict[str, Any], entries: Sequence[str]) -> bool:
    """Return True for an export of a top-down model (``method: td`` or a detector inside)."""
    return str(config.get("method", "bu")).lower() == "td" or "detector" in entries


def topdown_problems(export: Any) -> list[str]:
    """Return what keeps a top-down export from running here ([]: nothing)."""
    config = export.config
    reasons = []
    if "detector" not in export.other_entries:
        reasons.append("no detector weights (export it with the detector snapshot)")
    detector_model = (config.get("detector") or {}).get("model") or {}
    detector = detector_model.get("type")
    if detector == "FasterRCNN":
        from deeplabstream.pose.formats.dlc3_fasterrcnn import faster_rcnn_problem

        problem = faster_rcnn_problem(detector_model)
        if problem is not None:
            reasons.append(problem)
    elif detector != "SSDLite":
        reasons.append(
            f"a detector of type {detector} (only SSDLite and FasterRCNN are rebuilt here)"
        )
    if (config.get("metadata") or {}).get("unique_bodyparts"):
        reasons.append("unique bodyparts")
    model = config["model"]
    heads = {name: (head or {}).get("type") for name, head in (model.get("heads") or {}).items()}
    backbone = (model.get("backbone") or {}).get("type")
    if heads not in ({"bodypart": "RTMCCHead"}, {"bodypart": "HeatmapHead"}):
        reasons.append(f"pose heads {heads} (only RTMPose's RTMCCHead or one HeatmapHead)")
    elif heads["bodypart"] == "RTMCCHead" and backbone != "CSPNeXt":
        reasons.append(f"backbone {backbone} under RTMCCHead")
    if backbone not in ("CSPNeXt", "ResNet", "HRNet"):
        reasons.append(f"backbone {backbone}")
    if model.get("neck"):
        reasons.append("a neck")
    return reasons


def check_topdown(export: Any) -> None:
    """Raise a ModelError for head settings not rebuilt here (after :func:`topdown_problems`)."""
    model = export.config["model"]
    if not export.bodyparts:
        raise ModelError(f"{export.path}: its config names no bodyparts (metadata.bodyparts)")
    head = model["heads"]["bodypart"]
    if head.get("type") == "HeatmapHead":
        spec = head_spec(export)  # raises for an incomplete head
        if spec.locref is None:
            raise ModelError(
                f"{export.path}: a top-down HeatmapHead without location refinement is not "
                "supported here"
            )
        return
    predictor = head.get("predictor") or {}
    if predictor.get("normalize_outputs"):
        raise ModelError(f"{export.path}: SimCCPredictor normalize_outputs is not supported")
    if (head.get("gau_cfg") or {}).get("pos_enc"):
        raise ModelError(f"{export.path}: RTMCCHead gau_cfg.pos_enc is not supported")


def crop_settings(config: dict[str, Any]) -> CropSettings:
    """Read ``data.inference.top_down_crop`` as DeepLabCut's ``get_inference_runners`` does."""
    crop = (config.get("data", {}).get("inference") or {}).get("top_down_crop") or {}
    return CropSettings(
        width=int(crop.get("width", 256)),
        height=int(crop.get("height", 256)),
        margin=int(crop.get("margin", 0)),
        with_context=bool(crop.get("crop_with_context", True)),
    )


def rtmcc_layout(export: Any) -> Any:
    """Return the RTMCCHead settings of the export's config."""
    from deeplabstream.pose.networks.rtmpose import RtmccLayout

    head = export.config["model"]["heads"]["bodypart"]
    gau = head.get("gau_cfg") or {}
    predictor = head.get("predictor") or {}
    sigma = predictor.get("sigma", 6.0)
    sigma = (float(sigma), float(sigma)) if isinstance(sigma, int | float) else tuple(sigma)
    try:
        return RtmccLayout(
            input_size=(int(head["input_size"][0]), int(head["input_size"][1])),
            in_channels=int(head["in_channels"]),
            keypoints=len(export.bodyparts),
            featuremap_size=(
                int(head["in_featuremap_size"][0]),
                int(head["in_featuremap_size"][1]),
            ),
            split_ratio=float(head["simcc_split_ratio"]),
            final_kernel=int(head["final_layer_kernel_size"]),
            hidden_dims=int(gau["hidden_dims"]),
            s=int(gau["s"]),
            expansion_factor=float(gau["expansion_factor"]),
            use_rel_bias=bool(gau.get("use_rel_bias", True)),
            pos_enc=bool(gau.get("pos_enc", False)),
            activation=str(gau.get("act_fn", "SiLU")),
            sigma=(float(sigma[0]), float(sigma[1])),
            decode_beta=float(predictor.get("decode_beta", 150.0)),
            apply_softmax=bool(predictor.get("apply_softmax", False)),
            normalize_outputs=bool(predictor.get("normalize_outputs", False)),
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ModelError(f"{export.path}: model.heads.bodypart is incomplete: {error!r}") from None


def with_normalisation(module: Any) -> Any:
    """Wrap a network so that it takes RGB pixels 0..255 and normalises them itself."""
    import torch

    class Normalised(torch.nn.Module):
        def __init__(self, network: Any) -> None:
            super().__init__()
            self.network = network
            mean = np.array(IMAGENET_MEAN, np.float32) * np.float32(255.0)
            inverse = np.float32(1.0) / (np.array(IMAGENET_STD, np.float32) * np.float32(255.0))
            self.register_buffer("mean", torch.from_numpy(mean).reshape(1, 3, 1, 1), False)
            self.register_buffer("inverse", torch.from_numpy(inverse).reshape(1, 3, 1, 1), False)

        def forward(self, pixels: Any) -> Any:
            return self.network((pixels - self.mean) * self.inverse)

    return Normalised(module).eval()


def is_heatmap_pose(config: dict[str, Any]) -> bool:
    """Return True when the pose model has DeepLabCut's HeatmapHead (else RTMPose's head)."""
    return bool(config["model"]["heads"]["bodypart"].get("type") == "HeatmapHead")


def build_heatmap_pose_module(export: Any) -> Any:
    """Build a HeatmapHead pose network with DeepLabCut's decoding (pose.networks.dlc)."""
    from deeplabstream.pose.networks.dlc import (
        DlcKeypointModel,
        DlcPoseNetwork,
        build_backbone,
    )

    head = head_spec(export)
    backbone = build_backbone(export.config["model"]["backbone"], export.path)
    network = DlcPoseNetwork(backbone, head)
    load_weights(network, export.state_dict, export.path, f"a {export.net_type} pose network")
    stride = backbone.stride / head.heatmap.stride
    return with_normalisation(DlcKeypointModel(network, head, stride).eval())


def build_pose_module(export: Any) -> Any:
    """Build the pose network with its weights and decoding (eval mode, float32, CPU)."""
    if is_heatmap_pose(export.config):
        return build_heatmap_pose_module(export)
    from deeplabstream.pose.networks.dlc import build_backbone
    from deeplabstream.pose.networks.rtmpose import RtmPoseKeypoints, RtmPoseNetwork

    layout = rtmcc_layout(export)
    network = RtmPoseNetwork(
        build_backbone(export.config["model"]["backbone"], export.path), layout
    )
    load_weights(network, export.state_dict, export.path, f"an {export.net_type} pose network")
    return with_normalisation(RtmPoseKeypoints(network, layout).eval())


def read_detector_weights(export: Any) -> dict[str, Any]:
    """Return the export's ``detector`` state dict (read without running code)."""
    import torch

    data = torch.load(str(export.path), map_location="cpu", weights_only=True, mmap=True)
    weights = data.get("detector") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise ModelError(f"{export.path}: its 'detector' entry is not a state_dict of tensors")
    return dict(weights)


def is_faster_rcnn(config: dict[str, Any]) -> bool:
    """Return True when the export's detector is a FasterRCNN (else SSDLite)."""
    return bool(((config.get("detector") or {}).get("model") or {}).get("type") == "FasterRCNN")


def build_detector_module(export: Any) -> Any:
    """Build the detector module with its weights (eval mode, CPU)."""
    if is_faster_rcnn(export.config):
        from deeplabstream.pose.formats import dlc3_fasterrcnn

        detector = dlc3_fasterrcnn.build_detector(export, read_detector_weights(export))
        return dlc3_fasterrcnn.proposal_module(detector)
    from deeplabstream.pose.networks.ssdlite import AllBoxesDetector, DlcSsdLite, TopBoxDetector

    detector = DlcSsdLite()
    load_weights(detector, read_detector_weights(export), export.path, "an SSDLite detector")
    if individuals_of(export.config) > 1:  # several boxes: kept on the host (box_detections)
        return with_normalisation(AllBoxesDetector(detector.eval()).eval())
    return with_normalisation(TopBoxDetector(detector.eval()).eval())


def compare_detector(  # noqa: D103  (a Comparison of pose.formats.conversion)
    reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]
) -> Differences:
    return max_abs_differences(DETECTOR_OUTPUTS, reference, converted)


def compare_pose(reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]) -> Differences:
    """Differences of the pose graph's outputs and of its keypoints (crop pixels) and scores."""
    names = POSE_OUTPUTS if len(reference[1].shape) == 3 else HEATMAP_POSE_OUTPUTS
    differences = max_abs_differences(names, reference, converted)
    differences.pop("keypoints")
    delta = np.abs(np.asarray(reference[0]) - np.asarray(converted[0]))
    return differences | {"xy_px": float(delta[..., :2].max()), "score": float(delta[..., 2].max())}


def load_dlc_topdown(
    export: Any, frame_size: tuple[int, int], precision: Precision = "fp32"
) -> ModelDescription:
    """Describe a top-down export, converting its two networks to ONNX on first use."""
    if precision != "fp32":
        raise ModelError(
            f"{export.path}: DeepLabCut top-down models run at fp32 only here; set PRECISION = fp32"
        )
    problems = topdown_problems(export)
    if problems:
        raise ModelError(f"{export.path}: cannot run this top-down export: {', '.join(problems)}")
    check_topdown(export)
    crop = crop_settings(export.config)
    height, width = frame_size
    detector_decoding: dict[str, Any] = {}
    detector_outputs: tuple[str, ...] = DETECTOR_OUTPUTS
    if is_faster_rcnn(export.config):
        from deeplabstream.pose.formats import dlc3_fasterrcnn

        networks = dlc3_fasterrcnn.build_detector(export, read_detector_weights(export))
        detector_graph, head_graph = dlc3_fasterrcnn.convert_detector(
            export, networks, frame_size, (Path(__file__),)
        )
        settings = dlc3_fasterrcnn.settings_of(export.config)
        detector_outputs = dlc3_fasterrcnn.proposal_outputs(export.config)
        detector_decoding = {
            "box_head_graph": head_graph,
            "detector_settings": settings,
            # The runner marks a frame without a box with score -1; any box scores above it.
            "score_threshold": dlc3_fasterrcnn.NO_DETECTION,
        }
        if individuals_of(export.config) > 1:  # several boxes: pose.formats.dlc3_topdown_animals
            limits = detection_limits(export.config, individuals_of(export.config))
            detector_decoding["detection_limits"] = limits
    else:
        detector = build_detector_module(export)
        if individuals_of(export.config) > 1:  # pose.formats.dlc3_topdown_animals
            detector_decoding["detection_limits"] = detection_limits(
                export.config, individuals_of(export.config)
            )
        # Each graph's cache key also covers the files that rebuild it: a change of the
        # rebuild converts again (and the two graphs of one export get different names).
        detector_spec = ConversionSpec(
            sources=(export.path, _HERE / "ssdlite.py", Path(__file__)),
            input_name="images",
            output_names=DETECTOR_OUTPUTS,
            example_shape=(1, 3, height, width),
            dynamic_size=True,
            compare=compare_detector,
            tolerances=DETECTOR_TOLERANCES,
        )
        check = synthetic_input(height, width, PIXEL_MEAN, PIXEL_STD)  # RGB pixels 0..255
        detector_graph = convert(detector, detector_spec, check).onnx_file
    pose = build_pose_module(export)
    heatmap = is_heatmap_pose(export.config)
    pose_outputs = HEATMAP_POSE_OUTPUTS if heatmap else POSE_OUTPUTS
    pose_spec = ConversionSpec(
        sources=(export.path, _HERE / "rtmpose.py", Path(__file__)),
        input_name="crops",
        output_names=pose_outputs,
        example_shape=(1, 3, crop.height, crop.width),
        dynamic_size=False,
        compare=compare_pose,
        tolerances=HEATMAP_POSE_TOLERANCES if heatmap else POSE_TOLERANCES,
    )
    crop_check = synthetic_input(crop.height, crop.width, PIXEL_MEAN, PIXEL_STD)
    pose_graph = convert(pose, pose_spec, crop_check).onnx_file
    detector_type = str(export.config["detector"]["model"]["type"])
    return ModelDescription(
        name=export.path.stem,
        framework="deeplabcut",
        model_file=detector_graph,
        keypoints=export.bodyparts,
        input_height=height,
        input_width=width,
        color_order="rgb",
        mean=PIXEL_MEAN,
        std=PIXEL_STD,
        normalization="in-graph",
        output_kind="coordinates",
        stride=float(pose.network.stride)
        if heatmap
        else 1.0 / float(export.config["model"]["heads"]["bodypart"]["simcc_split_ratio"]),
        input_name="images",
        output_names=detector_outputs,
        batch_size=None,
        precision=precision,
        source_file=export.path,
        any_input_size=True,
        max_animals=individuals_of(export.config),
        decoding=DlcTopDownDecoding(
            crop,
            pose_graph,
            export.net_type,
            detector_type,
            pose_outputs=pose_outputs,
            **detector_decoding,
        ),
    )


def topdown_decoding_of(description: ModelDescription) -> DlcTopDownDecoding | None:
    """Return the top-down settings of a description, or None for any other model."""
    decoding = getattr(description, "decoding", None)
    return decoding if isinstance(decoding, DlcTopDownDecoding) else None


def topdown_stages(description: ModelDescription) -> tuple[str, ...]:
    """Return the stages a top-down model's timing files show apart (:data:`STAGES`), else ()."""
    return STAGES if topdown_decoding_of(description) is not None else ()


def pose_stage_description(description: ModelDescription) -> ModelDescription:
    """Return the pose stage of a top-down description, as a model of its own (crops in)."""
    decoding = topdown_decoding_of(description)
    if decoding is None:
        raise ModelError(f"{description.model_file}: not a DeepLabCut top-down model")
    return dataclasses.replace(
        description,
        name=f"{description.name} (pose stage)",
        model_file=decoding.pose_graph,
        input_height=decoding.crop.height,
        input_width=decoding.crop.width,
        input_name="crops",
        output_names=decoding.pose_outputs,
        any_input_size=False,
        decoding=None,
    )


# --- DeepLabCut's steps between the networks ---------------------------------------------------


def pixels(image: np.ndarray, out: np.ndarray | None = None, *, bgr: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 RGB pixels 0..255 (the graphs normalise them)."""
    planes = image.transpose(2, 0, 1)
    if bgr:
        planes = planes[::-1]
    if out is None:
        return planes.astype(np.float32)
    np.copyto(out, planes, casting="unsafe")
    return out


def top_down_crop(
    image: np.ndarray,
    box: Sequence[float],
    crop: CropSettings,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int], tuple[float, float]]:
    """DeepLabCut's ``top_down_crop``: the crop (uint8), its offset and its scale.

    ``box`` is (x, y, w, h) in frame pixels; returns the (height, width, C) crop, its corner's frame
    position (x, y) and frame pixels per crop pixel (x, y). ``out``: the crop's buffer, kept between
    frames; the crop is a view unless the region crosses the frame's edge.
    """
    import cv2

    image_h, image_w, channels = image.shape
    out_w, out_h = crop.width, crop.height
    # float32 scalars, as DeepLabCut's box array: its rounding of the corners is float32's.
    x, y, w, h = (np.float32(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    w += 2 * crop.margin
    h += 2 * crop.margin
    if crop.with_context:
        input_ratio, output_ratio = w / h, out_w / out_h
        if input_ratio > output_ratio:
            h = w / output_ratio
        elif input_ratio < output_ratio:
            w = h * output_ratio
    # round() of a numpy float32 gives a Python int (half to even, as DeepLabCut's).
    x1, y1 = round(cx - w / 2), round(cy - h / 2)
    x2, y2 = round(cx + w / 2), round(cy + h / 2)
    pad_left, pad_right, pad_top, pad_bottom = max(0, -x1), max(0, x2 - image_w), 0, 0
    pad_top, pad_bottom = max(0, -y1), max(0, y2 - image_h)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, image_w), min(y2, image_h)
    w_int, h_int = x2 - x1, y2 - y1
    if not crop.with_context:
        input_ratio, output_ratio = w_int / h_int, out_w / out_h
        if input_ratio > output_ratio:
            extra = int(w_int - h_int * output_ratio) // 2
            pad_top, pad_bottom = pad_top + extra, pad_bottom + extra
        elif input_ratio < output_ratio:
            extra = int(h_int - w_int / output_ratio) // 2
            pad_left, pad_right = pad_left + extra, pad_right + extra
    pad_x, pad_y = pad_left + pad_right, pad_top + pad_bottom
    if pad_x or pad_y:
        canvas = np.zeros((h_int + pad_y, w_int + pad_x, channels), image.dtype)
        canvas[pad_top : pad_top + h_int, pad_left : pad_left + w_int] = image[y1:y2, x1:x2]
    else:
        canvas = image[y1:y2, x1:x2]
    resized = cv2.resize(canvas, (out_w, out_h), dst=out, interpolation=cv2.INTER_LINEAR)
    offset = (x1 - pad_left, y1 - pad_top)
    scale = ((w_int + pad_x) / out_w, (h_int + pad_y) / out_h)
    return resized, offset, scale


Runner = Callable[[np.ndarray], list[np.ndarray]]


class DlcTopDownEstimator(PoseEstimator):
    """Frames in, keypoints in frame pixels out, for a DeepLabCut top-down model."""

    def __init__(
        self,
        description: ModelDescription,
        run_detector: Runner,
        run_pose: Runner,
        frame_shape: tuple[int, ...] | None = None,
        crop_from: CropFrom = "same_frame",
    ) -> None:
        decoding = topdown_decoding_of(description)
        if decoding is None:
            raise ModelError(f"{description.model_file}: not a DeepLabCut top-down model")
        super().__init__(description)
        self.decoding = decoding
        self.frame_shape = frame_shape
        self.run_detector = run_detector
        self.run_pose = run_pose
        #: The last frames' boxes (N, 4) x, y, w, h (NaN: none) and scores, for checks.
        self._frames_buffer: np.ndarray | None = None
        self.last_boxes = np.empty((0, 4))
        self.last_box_scores = np.empty(0)
        # The crops' buffers, kept between frames: the resized crop, the pose model's input.
        crop = decoding.crop
        self._resized = np.empty((crop.height, crop.width, 3), np.uint8)
        self._crops = np.empty((1, 3, crop.height, crop.width), np.float32)
        #: Where the crops come from (pose.decoding.two_stage), and each camera's last box.
        self.two_stage = True
        self.crop_from: CropFrom = crop_from
        self.previous: PreviousDetections = PreviousDetections()

    #: The boxes of a frame: its best one ((N, 4) ``last_boxes``), or one per animal (N, A, 4).
    _one_box_per_frame = True

    def estimate_animals(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
        *,
        rgb: bool = False,
    ) -> np.ndarray:
        """(N, A, K, 3) float64: x, y in frame pixels and the score; NaN rows: no detection.

        ``keys``: each frame's camera, for ``crop_from = previous_frame``; None: each frame's own
        box.
        """
        self.refresh()  # not called since the last frames (a caller that never does)
        t0 = time.perf_counter()
        bgr = not rgb
        images = [frame[:, ::-1] if flips and flips[i] else frame for i, frame in enumerate(frames)]
        count = len(images)
        keypoints = np.full((count, self.animals, len(self.description.keypoints), 3), np.nan)
        rows = (count,) if self._one_box_per_frame else (count, self.animals)
        self.last_boxes = np.full((*rows, 4), np.nan)
        self.last_box_scores = np.full(rows, np.nan)
        stages = dict.fromkeys(STAGES, 0.0)
        if self.crop_from == "previous_frame":
            stages["refresh"], self.previous.refresh_s = self.previous.refresh_s, 0.0
        self.last_stage_timings = stages
        if not images:
            return keypoints
        cameras = None if keys is None else tuple(keys)
        previous = self.crop_from == "previous_frame" and self.previous.ready(cameras)
        preprocess_s = 0.0
        if previous:  # each camera's previous box: no detector on this frame's path
            assert cameras is not None
            boxes = np.stack([self.previous.detections[c][0] for c in cameras])
            scores = np.array([self.previous.detections[c][1] for c in cameras])
        else:
            boxes, scores, preprocess_s = self._detect(images, bgr, stages)
        left = self._crops_and_pose(images, boxes, scores, flips, bgr, keypoints, stages, previous)
        if left:  # the animal left its crop: this frame's own box after all
            keypoints[:] = np.nan
            self.last_boxes[:], self.last_box_scores[:] = np.nan, np.nan
            boxes, scores, again_s = self._detect(images, bgr, stages)
            preprocess_s += again_s
            self._crops_and_pose(images, boxes, scores, flips, bgr, keypoints, stages, False)
            previous = False
        if self.crop_from == "previous_frame" and cameras is not None:
            self.previous.count(cameras, previous)
            if previous:  # the detector on these frames once their keypoints are out
                self.previous.pending.append((images, cameras, bgr))
            else:  # their own boxes are the next frames'
                self._keep_boxes(cameras, boxes, scores)
        total = time.perf_counter() - t0
        model_s = stages["detector"] + stages["crop"] + stages["pose"]
        self.last_timings = {
            "preprocess": preprocess_s + max(0.0, total - preprocess_s - model_s),
            "inference": model_s,
            "decode": 0.0,
        }
        return keypoints

    def refresh(self) -> None:
        """Run the detector on the last frames for the next crops (``previous_frame`` only)."""
        self.previous.run_pending(self._detect_and_keep)

    def _detect_and_keep(
        self, images: list[np.ndarray], cameras: Sequence[Hashable], bgr: bool
    ) -> None:
        """Run the detector on frames; keep each camera's box for its next frame's crop."""
        boxes, scores, _ = self._detect(images, bgr, {})
        self._keep_boxes(cameras, boxes, scores)

    def _keep_boxes(self, cameras: Sequence[Hashable], boxes: np.ndarray, scores: Any) -> None:
        for row, camera in enumerate(cameras):
            self.previous.detections[camera] = (np.array(boxes[row]), float(scores[row]))

    def _detect(
        self, images: list[np.ndarray], bgr: bool, stages: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Return the detector's best box (corners) and score per frame, and its input's time."""
        t0 = time.perf_counter()
        detector_in = self._detector_input(images, bgr)
        t1 = time.perf_counter()
        boxes, scores = (np.asarray(o) for o in self.run_detector(detector_in)[:2])
        stages["detector"] = stages.get("detector", 0.0) + time.perf_counter() - t1
        return boxes, scores, t1 - t0

    def _crops_and_pose(
        self,
        images: list[np.ndarray],
        boxes: np.ndarray,
        scores: np.ndarray,
        flips: Sequence[bool] | None,
        bgr: bool,
        keypoints: np.ndarray,
        stages: dict[str, float],
        check: bool,
    ) -> bool:
        """Cut each box's crop ((N, 4) or (N, A, 4)), run the pose model once, fill keypoints."""
        # True when ``check`` and an animal may have left its crop (two_stage.left_the_crop).
        t0 = time.perf_counter()
        crop = self.decoding.crop
        count = len(images)
        boxes, scores = boxes.reshape(count, -1, 4), scores.reshape(count, -1)
        last_boxes = self.last_boxes.reshape(count, -1, 4)  # views: written through
        last_scores = self.last_box_scores.reshape(count, -1)
        found = [
            (i, a)
            for i in range(count)
            for a in range(min(self.animals, scores.shape[1]))
            if float(scores[i, a]) > self.decoding.score_threshold
        ]
        if check and len(found) < count:
            return True
        if self._crops.shape[0] < len(found):
            self._crops = np.empty((len(found), 3, crop.height, crop.width), np.float32)
        crop_in = self._crops[: len(found)]
        offsets, scales = [], []
        for row, (i, a) in enumerate(found):
            # DeepLabCut's BboxToCoco, on its float32 array.
            corners = np.asarray(boxes[i, a], np.float32)
            box = (corners[0], corners[1], corners[2] - corners[0], corners[3] - corners[1])
            last_boxes[i, a], last_scores[i, a] = box, float(scores[i, a])
            resized, offset, scale = top_down_crop(images[i], box, crop, self._resized)
            pixels(resized, crop_in[row], bgr=bgr)
            offsets.append(offset)
            scales.append(scale)
        t1 = time.perf_counter()
        stages["crop"] += t1 - t0  # all the crops of the frames
        if not found:
            return False
        points = np.asarray(self.run_pose(crop_in)[0], np.float32).copy()
        left = False
        for row, (i, a) in enumerate(found):
            # RescaleAndOffset (KEYPOINT_TD): float32 keypoints times each crop's own float64
            # scale plus its int offset.
            xy = points[row, :, :2] * np.asarray(scales[row]) + np.asarray(offsets[row])
            if check:  # every keypoint is placed (DeepLabCut has no "not found")
                size = np.array([crop.width, crop.height]) * np.asarray(scales[row])
                reach = size * LEFT_REACH
                left = left or left_the_crop(xy, np.asarray(offsets[row]) + size / 2, reach)
            keypoints[i, a, :, :2] = xy
            keypoints[i, a, :, 2] = points[row, :, 2]
            if flips and flips[i]:
                keypoints[i, a, :, 0] = images[i].shape[1] - 1 - keypoints[i, a, :, 0]
        stages["pose"] += time.perf_counter() - t1
        return left

    def _detector_input(self, images: list[np.ndarray], bgr: bool) -> np.ndarray:
        """Return the frames as one (N, 3, H, W) float32 batch, in a buffer kept between calls."""
        shape = (len(images), 3, *images[0].shape[:2])
        if self._frames_buffer is None or self._frames_buffer.shape != shape:
            self._frames_buffer = np.empty(shape, np.float32)
        for row, image in enumerate(images):
            pixels(image, self._frames_buffer[row], bgr=bgr)
        return self._frames_buffer


def read_for_rebuild(description: ModelDescription) -> Any:
    """Return the export behind a description, with what the builders read (``weights_only``)."""
    from types import SimpleNamespace

    import torch

    path = description.source_file or description.model_file
    data = torch.load(str(path), map_location="cpu", weights_only=True)
    config = data["config"]
    return SimpleNamespace(
        path=Path(path),
        config=config,
        state_dict=data["pose"],
        bodyparts=tuple(str(b) for b in config["metadata"]["bodyparts"]),
        net_type=str(config.get("net_type", "?")),
        other_entries=tuple(k for k in data if k not in ("config", "pose")),
    )
