"""Lightning Pose crop-zoom pairs (a detector model + a pose model on crops), run live.

Design: docs/pose-models.md, "Lightning Pose crop-zoom pairs".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabstream.pose.decoding.cropzoom import BoxRule
from deeplabstream.pose.formats.conversion import Precision
from deeplabstream.pose.formats.lightning import CONFIG_FILE, read_config
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import ModelFormat, format_of

CROPZOOM_FILE = "cropzoom.yaml"
#: The timed stages (``pose_timing.csv``: ``detector_ms``, ``crop_ms``, ``pose_ms``).
STAGES = ("detector", "crop", "pose")
LIVE_MODE = "same_frame_box"
LIVE_TEXT = (
    "causal: each frame's box from the detector's keypoints on that frame (with CROP_FROM = "
    "previous_frame, on the camera's previous frame), never smoothed; Lightning Pose's "
    "optional smooth_bbox (a centred median) looks ahead and is offline only"
)
KEYS = ("detector", "pose", "anchor_keypoints", "crop_ratio", "crop_size")
STAGE_FORMATS = ("Lightning Pose export", "Lightning Pose checkpoint")


@dataclass(frozen=True)
class CropZoomStages:
    """What a crop-zoom description carries beyond the detector's graph (its ``decoding``)."""

    file: Path
    detector: ModelDescription
    pose: ModelDescription
    rule: BoxRule
    anchor_names: tuple[str, ...]
    live: str = LIVE_MODE

    def summary(self) -> dict[str, Any]:
        """Return what ``session.json`` says about the pair (the model entry's ``cropzoom``)."""
        rule = self.rule
        return {
            "file": str(self.file),
            "detector": _stage_summary(self.detector),
            "pose": _stage_summary(self.pose),
            "anchor_keypoints": list(self.anchor_names),
            "crop_ratio": rule.crop_ratio,
            "crop_size": rule.crop_size,
            "live_mode": self.live,
            "live": LIVE_TEXT,
            "delay_frames": 0,
        }


def _stage_summary(stage: ModelDescription) -> dict[str, Any]:
    return {
        "name": stage.name,
        "file": str(stage.source_file or stage.model_file),
        "graph": str(stage.model_file),
        "input": [stage.input_width, stage.input_height],
        "keypoints": len(stage.keypoints),
    }


def cropzoom_of(description: ModelDescription) -> CropZoomStages | None:
    """Return a crop-zoom pair's stages, None for other models."""
    return description.decoding if isinstance(description.decoding, CropZoomStages) else None


def cropzoom_stages(description: ModelDescription) -> tuple[str, ...]:
    """Return the stages a crop-zoom pair's timing files show apart, () for other models."""
    return STAGES if cropzoom_of(description) is not None else ()


def cropzoom_summary(description: ModelDescription) -> dict[str, Any]:
    """``{"cropzoom": ...}`` for a crop-zoom pair's ``session.json`` entry, {} for the others."""
    stages = cropzoom_of(description)
    return {} if stages is None else {"cropzoom": stages.summary()}


# --- the file ----------------------------------------------------------------------------------


def cropzoom_file(path: Path) -> Path | None:
    """Return the ``cropzoom.yaml`` that ``path`` names (the file or its folder), else None."""
    if path.is_file():
        return path if path.name == CROPZOOM_FILE else None
    candidate = path / CROPZOOM_FILE
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class CropZoomFile:
    """``cropzoom.yaml`` read: the two models' paths and the box rule (anchors by name)."""

    file: Path
    detector: Path
    pose: Path
    anchor_names: tuple[str, ...]
    crop_ratio: float | None
    crop_size: int | None


def read_cropzoom_file(file: Path) -> CropZoomFile:
    """Read and check ``cropzoom.yaml``; ModelError naming what is wrong."""
    import yaml  # imported on use, as for Lightning Pose's own configs

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ModelError(f"{file}: cannot read it: {error}") from error
    if not isinstance(data, dict):
        raise ModelError(f"{file}: expected keys detector, pose, and crop_ratio or crop_size")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ModelError(f"{file}: unknown keys {unknown}")
    paths = []
    for key in ("detector", "pose"):
        if not data.get(key):
            raise ModelError(f"{file}: no `{key}` (the {key} model's folder, relative to it)")
        target = (file.parent / str(data[key])).resolve()
        if not target.exists():
            raise ModelError(f"{file}: its {key} model {target} does not exist")
        paths.append(target)
    anchors = data.get("anchor_keypoints") or []
    if isinstance(anchors, str):  # as on create_bbox's command line: comma-separated
        anchors = [a for a in anchors.split(",") if a]
    ratio, size = data.get("crop_ratio"), data.get("crop_size")
    if ratio is None and size is None:
        ratio = 2.0  # create_bbox's default
    try:
        ratio = None if ratio is None else float(ratio)
        size = None if size is None else int(size)
        BoxRule((), ratio, size)  # checks the pair as create_bbox does
    except (TypeError, ValueError) as error:
        raise ModelError(f"{file}: {error}") from error
    return CropZoomFile(file, paths[0], paths[1], tuple(str(a) for a in anchors), ratio, size)


def _stage_format(file: Path, key: str, path: Path) -> ModelFormat:
    """Return the Lightning Pose format of one stage; ModelError for anything else."""
    stage_format = format_of(path)
    if stage_format is None or stage_format.name not in STAGE_FORMATS:
        what = "no model this program knows" if stage_format is None else stage_format.name
        raise ModelError(
            f"{file}: its {key} model {path} is {what}; a crop-zoom pair is two Lightning Pose "
            "models (each a model folder with config.yaml and tb_logs/ or exports_onnx/, or "
            "its .ckpt or exported .onnx)"
        )
    return stage_format


def _stage_config(path: Path) -> dict[str, Any]:
    """Return a stage's config.yaml (the folder's, or the one above its file)."""
    for folder in [path, *list(path.parents)[:6]]:
        if (folder / CONFIG_FILE).is_file():
            return read_config(folder / CONFIG_FILE)
    raise ModelError(f"{path}: no {CONFIG_FILE} in its folder or above")


def _check_single_frame(file: Path, key: str, path: Path) -> None:
    model_type = str((_stage_config(path).get("model") or {}).get("model_type", "heatmap"))
    if model_type != "heatmap":
        raise ModelError(
            f"{file}: its {key} model {path} is a `{model_type}` model; the crop-zoom stages "
            "run single-frame `heatmap` models only (a context model as a stage is not built)"
        )


def _rule(pair: CropZoomFile, detector_keypoints: tuple[str, ...]) -> BoxRule:
    missing = [a for a in pair.anchor_names if a not in detector_keypoints]
    if missing:
        raise ModelError(
            f"{pair.file}: anchor keypoints {missing} are not keypoints of the detector "
            f"({', '.join(detector_keypoints)})"
        )
    anchors = tuple(detector_keypoints.index(a) for a in pair.anchor_names)
    return BoxRule(anchors, pair.crop_ratio, pair.crop_size)


def load_cropzoom(
    path: Path, frame_size: tuple[int, int] | None, precision: Precision = "fp32"
) -> ModelDescription:
    """Load a crop-zoom pair: the detector's description with the pose model's keypoints."""
    file = cropzoom_file(path)
    if file is None:
        raise ModelError(f"{path}: no {CROPZOOM_FILE}")
    pair = read_cropzoom_file(file)
    if precision != "fp32":
        raise ModelError(f"{file}: a crop-zoom pair runs at fp32 only (asked: {precision})")
    stages = []
    for key, stage_path in (("detector", pair.detector), ("pose", pair.pose)):
        stage_format = _stage_format(file, key, stage_path)
        _check_single_frame(file, key, stage_path)
        stages.append(stage_format.load(stage_path, None, "fp32"))
    detector, pose = stages
    rule = _rule(pair, detector.keypoints)
    return dataclasses.replace(
        detector,
        name=f"{file.parent.name} (crop-zoom: {detector.name} + {pose.name})",
        keypoints=pose.keypoints,
        source_file=None,
        decoding=CropZoomStages(file, detector, pose, rule, pair.anchor_names),
    )


class LightningPoseCropZoom(ModelFormat):
    """``cropzoom.yaml`` naming a Lightning Pose detector and pose model, or its folder."""

    name = "Lightning Pose crop-zoom pair"
    # Its stages are checkpoints converted on first use: checks read the files, never convert
    # (the description itself has no source file: each stage's has).
    converted = True

    def recognises(self, path: Path) -> bool:
        """Return True for ``cropzoom.yaml`` or a folder holding one."""
        return cropzoom_file(path) is not None

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Load both stages (each converted on first use) and the box rule."""
        return load_cropzoom(path, frame_size, precision)

    def check(self, path: Path) -> None:
        """Read the file, check each stage cheaply (no conversion) and the anchors' names."""
        file = cropzoom_file(path)
        if file is None:
            raise ModelError(f"{path}: no {CROPZOOM_FILE}")
        pair = read_cropzoom_file(file)
        for key, stage_path in (("detector", pair.detector), ("pose", pair.pose)):
            _stage_format(file, key, stage_path).check(stage_path)
            _check_single_frame(file, key, stage_path)
        _rule(pair, self._stage_keypoints(file, "detector", pair.detector))

    def _stage_keypoints(self, file: Path, key: str, path: Path) -> tuple[str, ...]:
        return _stage_format(file, key, path).keypoints(path)

    def keypoints(self, path: Path) -> tuple[str, ...]:
        """Return the pose model's keypoint names (nothing converted)."""
        file = cropzoom_file(path)
        if file is None:
            raise ModelError(f"{path}: no {CROPZOOM_FILE}")
        pair = read_cropzoom_file(file)
        return self._stage_keypoints(file, "pose", pair.pose)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a pair's description."""
        return cropzoom_of(description) is not None

    def pytorch_problem(self, path: Path) -> str | None:
        """Refuse the pytorch backend: the pair's two graphs run on ONNX Runtime (or OpenVINO)."""
        return (
            f"{path}: a Lightning Pose crop-zoom pair runs its two graphs on [Pose] BACKEND = "
            "onnxruntime (or openvino) only; set BACKEND = onnxruntime"
        )

    def framework_text(self, description: ModelDescription) -> str:
        """Return the pair's framework, with each stage's."""
        stages = cropzoom_of(description)
        assert stages is not None
        kinds = [
            "checkpoint" if s.source_file is not None else "ONNX export"
            for s in (stages.detector, stages.pose)
        ]
        return f"Lightning Pose crop-zoom pair (detector: {kinds[0]}; pose model: {kinds[1]})"

    def network_text(self, description: ModelDescription) -> str:
        """Return both stages, their input sizes and the box rule."""
        stages = cropzoom_of(description)
        assert stages is not None
        d, p = stages.detector, stages.pose
        return (
            f"two stages: detector {d.name} ({len(d.keypoints)} keypoints, input "
            f"{d.input_width}x{d.input_height}, on the frame) -> box: "
            f"{stages.rule.text(d.keypoints)} -> pose model {p.name} "
            f"({len(p.keypoints)} keypoints, input {p.input_width}x{p.input_height}, on the "
            f"box's crop) -> keypoints + the box's corner; live: {LIVE_MODE}"
        )

    def decoding_text(self, description: ModelDescription) -> str:
        """Return Lightning Pose's decoding, per stage."""
        stages = cropzoom_of(description)
        assert stages is not None
        return (
            "Lightning Pose's (upsample, soft-argmax) on each stage, downsample_factor "
            f"{stages.detector.downsample_factor} and {stages.pose.downsample_factor}"
        )
