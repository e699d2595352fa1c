"""DeepLabCut 3.0's FasterRCNN detector of a top-down export, run without torchvision.

Design: docs/pose-internals.md, "pose.formats.dlc3_fasterrcnn".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.pose.decoding import region_proposals as rp
from deeplabstream.pose.formats.conversion import (
    ConversionSpec,
    Differences,
    convert,
    load_weights,
    max_abs_differences,
)
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD, ModelDescription, ModelError
from deeplabstream.pose.networks.fasterrcnn_variants import (
    MOBILENET,
    POOLED_SIZE,
    RESNET50_V2,
    ROI_MAPS,
    VARIANTS,
)

PROPOSAL_OUTPUTS = ("features", "objectness", "deltas")
BOX_HEAD_OUTPUTS = ("class_logits", "box_deltas")
#: ``features_1`` ... ``features_3``: the other FPN maps of ``fasterrcnn_resnet50_fpn_v2``.
PROPOSAL_TOLERANCES: Differences = {
    "features": 1e-3,
    "features_1": 1e-3,
    "features_2": 1e-3,
    "features_3": 1e-3,
    "objectness": 1e-3,
    "deltas": 1e-3,
}
BOX_HEAD_TOLERANCES: Differences = {"class_logits": 1e-3, "box_deltas": 1e-3}
#: DeepLabCut's ``FasterRCNN(box_score_thresh=0.01)`` default.
DLC_BOX_SCORE_THRESHOLD = 0.01
NO_DETECTION = -1.0
#: The box head runs on the proposals padded to a multiple of this many rows: a few input
#: shapes (ONNX Runtime's IO binding keeps buffers per shape) for a few percent more work.
BOX_HEAD_ROWS = 50
_NETWORKS = Path(__file__).resolve().parent.parent / "networks"

Runner = Callable[[np.ndarray], list[np.ndarray]]


def faster_rcnn_problem(detector_model: dict[str, Any]) -> str | None:
    """Return why a FasterRCNN detector cannot run here, or None."""
    variant = str(detector_model.get("variant", MOBILENET))
    if variant not in VARIANTS:
        return (
            f"a FasterRCNN detector of variant {variant}: only "
            f"{' and '.join(VARIANTS)} are rebuilt here (make a shuffle with "
            f'detector_type="{MOBILENET}", "{RESNET50_V2}" or "ssdlite")'
        )
    return None


def variant_of(config: dict[str, Any]) -> str:
    """Return the export's FasterRCNN variant (DeepLabCut's default when unnamed)."""
    model = (config.get("detector") or {}).get("model") or {}
    return str(model.get("variant", MOBILENET))


def settings_of(config: dict[str, Any]) -> rp.FasterRcnnSettings:
    """Return torchvision's settings of the detector (DeepLabCut gives ``box_score_thresh``)."""
    model = (config.get("detector") or {}).get("model") or {}
    threshold = float(model.get("box_score_thresh", DLC_BOX_SCORE_THRESHOLD))
    if variant_of(config) == RESNET50_V2:
        return dataclasses.replace(rp.RESNET50_V2_SETTINGS, box_score_threshold=threshold)
    return rp.FasterRcnnSettings(box_score_threshold=threshold)


def proposal_outputs(config: dict[str, Any]) -> tuple[str, ...]:
    """Return the proposal graph's outputs: the maps RoIAlign reads, objectness, deltas."""
    maps = ROI_MAPS[variant_of(config)]
    extra = tuple(f"features_{index}" for index in range(1, maps))
    return (PROPOSAL_OUTPUTS[0], *extra, *PROPOSAL_OUTPUTS[1:])


def build_detector(export: Any, weights: dict[str, Any]) -> Any:
    """Return the rebuilt ``DlcFasterRcnn`` with the export's detector weights (eval mode)."""
    from deeplabstream.pose.networks.fasterrcnn import DlcFasterRcnn, fill_frozen_batchnorm

    detector = DlcFasterRcnn(variant_of(export.config))
    load_weights(detector, fill_frozen_batchnorm(weights), export.path, "a FasterRCNN detector")
    return detector.eval()


def proposal_module(detector: Any) -> Any:
    """Return the proposal network (prepared images in), eval mode."""
    from deeplabstream.pose.networks.fasterrcnn import ProposalNetwork

    return ProposalNetwork(detector).eval()


def box_head_module(detector: Any) -> Any:
    """Return the box head (RoI-aligned proposals in), eval mode."""
    from deeplabstream.pose.networks.fasterrcnn import BoxHead

    return BoxHead(detector).eval()


def _compare(names: tuple[str, ...]) -> Callable[..., Differences]:
    def compare(reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]) -> Differences:
        return max_abs_differences(names, reference, converted)

    return compare


def compare_proposals(
    reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]
) -> Differences:
    """Compare the proposal graph with its module (maps, objectness, deltas, by position)."""
    extra = tuple(f"features_{index}" for index in range(1, len(reference) - 2))
    names = (PROPOSAL_OUTPUTS[0], *extra, *PROPOSAL_OUTPUTS[1:])
    return max_abs_differences(names, reference, converted)


def convert_detector(
    export: Any, detector: Any, frame_size: tuple[int, int], sources: tuple[Path, ...]
) -> tuple[Path, Path]:
    """Convert the two networks (cached beside the export): the proposal and box-head graphs."""
    plan = rp.resize_plan(*frame_size, settings_of(export.config))
    common = (export.path, _NETWORKS / "fasterrcnn.py", *sources, Path(__file__))
    rng = np.random.default_rng(0)
    outputs = proposal_outputs(export.config)
    proposal_spec = ConversionSpec(
        # The backbones' blocks are ssdlite.py's and resnet.py's (also a different cache name
        # from the head's).
        sources=(*common, _NETWORKS / "ssdlite.py", _NETWORKS / "resnet.py"),
        input_name="images",
        output_names=outputs,
        example_shape=(1, 3, *plan.padded),
        dynamic_size=True,
        compare=_compare(outputs),
        tolerances={name: PROPOSAL_TOLERANCES[name] for name in outputs},
    )
    check = rng.standard_normal((1, 3, *plan.padded)).astype(np.float32)
    proposals = convert(proposal_module(detector), proposal_spec, check).onnx_file
    head_spec = ConversionSpec(
        sources=common,
        input_name="pooled",
        output_names=BOX_HEAD_OUTPUTS,
        example_shape=(8, 256, POOLED_SIZE, POOLED_SIZE),
        dynamic_size=False,
        compare=_compare(BOX_HEAD_OUTPUTS),
        tolerances=BOX_HEAD_TOLERANCES,
    )
    pooled = rng.standard_normal((8, 256, POOLED_SIZE, POOLED_SIZE)).astype(np.float32)
    head = convert(box_head_module(detector), head_spec, pooled).onnx_file
    return proposals, head


def roi_align_graph(spatial_scale: float) -> bytes:
    """Return an ONNX graph of one ``RoiAlign`` node: torchvision's ``roi_align(aligned=False)``."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(
        "RoiAlign",
        ["features", "rois", "batch_indices"],
        ["pooled"],
        mode="avg",
        output_height=POOLED_SIZE,
        output_width=POOLED_SIZE,
        sampling_ratio=2,
        spatial_scale=float(spatial_scale),
        coordinate_transformation_mode="output_half_pixel",
    )
    graph = helper.make_graph(
        [node],
        "roi_align",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, None, None, None]),
            helper.make_tensor_value_info("rois", TensorProto.FLOAT, [None, 4]),
            helper.make_tensor_value_info("batch_indices", TensorProto.INT64, [None]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [None, None, None, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


class RoiAligner:
    """ONNX Runtime sessions of :func:`roi_align_graph`, one per spatial scale."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._sessions: dict[float, Any] = {}

    def __call__(self, features: np.ndarray, boxes: np.ndarray, scale: float) -> np.ndarray:
        """(R, C, 7, 7) of one image's (1, C, h, w) map at (R, 4) boxes in image pixels."""
        session = self._sessions.get(scale)
        if session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            session = ort.InferenceSession(
                roi_align_graph(scale), options, providers=["CPUExecutionProvider"]
            )
            self._sessions[scale] = session
        inputs = {
            "features": np.ascontiguousarray(features, np.float32),
            "rois": np.ascontiguousarray(boxes, np.float32),
            "batch_indices": np.zeros(len(boxes), np.int64),
        }
        return np.asarray(session.run(None, inputs)[0])


def infer_scale(feature_size: int, image_size: int) -> float:
    """``MultiScaleRoIAlign``'s ``_infer_scale``: the nearest power of two of the ratio."""
    return float(2.0 ** round(math.log2(feature_size / image_size)))


class FasterRcnnRunner:
    """Frames (RGB 0..255, (N, 3, H, W) float32) -> best boxes (N, 4) and scores (N,)."""

    def __init__(
        self,
        run_proposals: Runner,
        run_box_head: Runner,
        settings: rp.FasterRcnnSettings,
        threads: int = 1,
    ) -> None:
        self.run_proposals = run_proposals
        self.run_box_head = run_box_head
        self.settings = settings
        self.roi_align = RoiAligner(threads)
        self._mean = (np.array(IMAGENET_MEAN, np.float32) * np.float32(255.0))[:, None, None]
        self._inverse = (
            np.float32(1.0) / (np.array(IMAGENET_STD, np.float32) * np.float32(255.0))
        )[:, None, None]
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self._prepared: np.ndarray | None = None
        #: The last frame's proposals (resized-image pixels), for checks.
        self.last_proposals = np.empty((0, 4), np.float32)

    def __call__(self, frames: np.ndarray) -> list[np.ndarray]:
        """``boxes`` (N, 4) x1, y1, x2, y2 in frame pixels and ``scores`` (N,); -1: none."""
        count, _, height, width = frames.shape
        boxes = np.full((count, 4), np.nan, np.float32)
        scores = np.full(count, NO_DETECTION, np.float32)
        plan = rp.resize_plan(height, width, self.settings)
        for row in range(count):
            found = self.detect(frames[row], plan)
            if found is not None:
                boxes[row], scores[row] = rp.to_frame(found[0], plan, (height, width)), found[1]
        return [boxes, scores]

    def detect(self, frame: np.ndarray, plan: rp.ResizePlan) -> tuple[np.ndarray, float] | None:
        """One frame's best box in resized pixels and its score (None: no box)."""
        shape = (1, 3, *plan.padded)
        if self._prepared is None or self._prepared.shape != shape:
            self._prepared = np.empty(shape, np.float32)
        normalised = (frame - self._mean) * self._inverse  # DeepLabCut's, float32
        rp.prepare_image(normalised, plan, self._prepared[0])
        *maps, objectness, deltas = self.run_proposals(self._prepared)
        anchors = self._anchors.get(plan.padded)
        if anchors is None:
            anchors = self._anchors.setdefault(plan.padded, rp.anchors(plan.padded, self.settings))
        sizes = rp.level_sizes(plan.padded, self.settings)
        proposals = rp.proposals(
            np.asarray(objectness)[0],
            np.asarray(deltas)[0],
            anchors,
            sizes,
            plan.resized,
            self.settings,
        )
        self.last_proposals = proposals
        if len(proposals) == 0:
            return None
        rows = len(proposals)
        padded_rows = -(-rows // BOX_HEAD_ROWS) * BOX_HEAD_ROWS
        pooled = np.empty(
            (padded_rows, np.asarray(maps[0]).shape[1], POOLED_SIZE, POOLED_SIZE), np.float32
        )
        pooled[:rows] = self.pool(maps, proposals, plan.resized[0])
        pooled[rows:] = pooled[:1]  # padding rows: copies of the first (their outputs unused)
        class_logits, box_deltas = self.run_box_head(pooled)[:2]
        return self.boxes_of(
            np.asarray(class_logits)[:rows], np.asarray(box_deltas)[:rows], proposals, plan
        )

    def boxes_of(
        self,
        class_logits: np.ndarray,
        box_deltas: np.ndarray,
        proposals: np.ndarray,
        plan: rp.ResizePlan,
    ) -> Any:
        """Return the best box of the box head's outputs and its score (None: none)."""
        return rp.best_detection(class_logits, box_deltas, proposals, plan.resized, self.settings)

    def pool(self, maps: list[np.ndarray], boxes: np.ndarray, image_height: int) -> np.ndarray:
        """``MultiScaleRoIAlign``: each box on the map the level mapper picks (R, C, 7, 7)."""
        scales = [infer_scale(np.asarray(m).shape[-2], image_height) for m in maps]
        if len(maps) == 1:
            return self.roi_align(np.asarray(maps[0])[:1], boxes, scales[0])
        k_min, k_max = round(-math.log2(scales[0])), round(-math.log2(scales[-1]))
        levels = rp.roi_levels(boxes, k_min, k_max)
        pooled = np.empty(
            (len(boxes), np.asarray(maps[0]).shape[1], POOLED_SIZE, POOLED_SIZE), np.float32
        )
        for level, (features, scale) in enumerate(zip(maps, scales, strict=True)):
            members = np.flatnonzero(levels == level)
            if len(members):
                pooled[members] = self.roi_align(np.asarray(features)[:1], boxes[members], scale)
        return pooled


def box_head_description(description: ModelDescription) -> ModelDescription:
    """Return the box-head graph of a FasterRCNN top-down description, as a model of its own.

    Its input is (R, 256, 7, 7): only :class:`FasterRcnnRunner` feeds it, never a warm-up.
    """
    decoding = getattr(description, "decoding", None)
    head_graph = getattr(decoding, "box_head_graph", None)
    if head_graph is None:
        raise ModelError(f"{description.model_file}: not a FasterRCNN top-down model")
    return dataclasses.replace(
        description,
        name=f"{description.name} (FasterRCNN box head)",
        model_file=head_graph,
        input_name="pooled",
        output_names=BOX_HEAD_OUTPUTS,
        any_input_size=False,
        decoding=None,
    )
