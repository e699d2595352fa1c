"""Lightning Pose checkpoints (``tb_logs/.../checkpoints/*.ckpt``), run without Lightning Pose.

Design: docs/pose-internals.md, "pose.formats.lightning_ckpt".
"""

from __future__ import annotations

import collections
import dataclasses
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.pose.decoding.lightning import decode_lightning_pose
from deeplabstream.pose.formats.conversion import (
    Comparison,
    ConversionSpec,
    Differences,
    Precision,
    convert,
    load_weights,
    max_abs_differences,
    run_module,
    synthetic_input,
)
from deeplabstream.pose.formats.lightning import (
    CONFIG_FILE,
    LightningPoseExport,
    describe_model,
    lightning_decoding_text,
    lightning_description,
    read_config,
    read_graph,
)
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD, ModelDescription, ModelError
from deeplabstream.pose.model_format import (
    ModelFormat,
    check_torch_file,
    source_file,
    unreadable,
    unreadable_reason,
)

CHECKPOINT_FOLDER = "tb_logs"
INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"
# The ResNet depths pose.networks.resnet builds (not imported here: it needs torch).
RESNET_DEPTHS = (18, 34, 50, 101, 152)
# The other backbones pose.networks.lightning_backbones rebuilds (single-frame and context).
OTHER_BACKBONES = (
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "vits_dino",
    "vitb_dino",
)
LIGHTNING_CHECKPOINT_ADVICE = (
    "not a readable Lightning checkpoint",
    "This program reads only checkpoints it can load safely (weights and settings, no code): "
    "point MODEL_PATH (or --model) at the .ckpt file Lightning Pose wrote under tb_logs/, or "
    "at its model folder.",
)
SUPPORTED = (
    "supported: single-frame `heatmap` and context `heatmap_mhcrnn` models with a ResNet "
    "backbone (resnet18, resnet34, resnet50 and its variants, resnet101, resnet152), "
    "efficientnet_b0/b1/b2, vits_dino or vitb_dino"
)
# Why Lightning Pose's other ViTs (SAM, SAM2, DINOv2, MAE ...) are not rebuilt: no reference model
# could be made to check a rebuild against, Lightning Pose failing offline as quoted.
UNMADE_VIT = (
    ". Lightning Pose's other ViTs are not rebuilt: Lightning Pose 2.4.3 itself could not build "
    "them without downloading their weights (\"OSError: We couldn't connect to "
    "'https://huggingface.co' to load the files\"), so no model could be made to check one against"
)
MODEL_TYPES = ("heatmap", "heatmap_mhcrnn")
CONTEXT_MODEL_TYPE = "heatmap_mhcrnn"
# Harmless classes a Lightning checkpoint pickles besides its tensors.
_SAFE_BUILTINS: dict[str, Any] = {
    "builtins.list": list,
    "builtins.dict": dict,
    "builtins.int": int,
    "builtins.float": float,
    "builtins.str": str,
    "builtins.tuple": tuple,
    "builtins.set": set,
    "builtins.bool": bool,
    "collections.defaultdict": collections.defaultdict,
    "collections.Counter": collections.Counter,
    "collections.OrderedDict": collections.OrderedDict,
    "typing.Any": Any,
}
# fp32: ONNX Runtime differs from PyTorch by about 1e-7 on the soft-maxed maps and 1e-4 model
# pixels. fp16: about 1e-4 on the maps, which moves keypoints of flat maps by pixels (Lightning
# Pose's own fp16 export too): its limit catches gross errors only.
TOLERANCES: Differences = {"heatmaps": 1e-4, "xy_px": 0.01, "likelihood": 1e-3}
FP16_TOLERANCES: Differences = {"heatmaps": 0.01}


class _Opaque:
    """Stand-in for a class the checkpoint pickles but this program does not need."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


@dataclasses.dataclass(frozen=True)
class LightningCheckpoint:
    """A checkpoint file, its model folder's config, and the network's weights."""

    checkpoint_file: Path
    config_file: Path
    config: dict[str, Any]
    state_dict: dict[str, Any]  # name -> torch.Tensor
    lightning_version: str | None

    @property
    def keypoints(self) -> tuple[str, ...]:
        """Keypoint names, in the order of the heatmaps."""
        return tuple(str(k) for k in self.config["data"].get("keypoint_names") or ())

    @property
    def backbone(self) -> str:
        """``model.backbone`` of the config."""
        return str(self.config.get("model", {}).get("backbone", "?"))

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the network takes."""
        dims = self.config["data"]["image_resize_dims"]
        return int(dims["height"]), int(dims["width"])

    @property
    def downsample_factor(self) -> int:
        """``data.downsample_factor``: heatmaps are 2**d times smaller than the input."""
        return int(self.config["data"].get("downsample_factor", 2))

    @property
    def model_type(self) -> str:
        """``model.model_type`` of the config (``heatmap`` when absent)."""
        return str(self.config.get("model", {}).get("model_type", "heatmap"))

    @property
    def is_context(self) -> bool:
        """True for a context model (``heatmap_mhcrnn``: frames t-2 .. t+2 per prediction)."""
        return self.model_type == CONTEXT_MODEL_TYPE


# --- finding and reading the files -----------------------------------------------------------


def locate(path: Path) -> tuple[Path, Path]:
    """Find the checkpoint and the config that ``path`` (a ``.ckpt`` or a model folder) names."""
    if not path.exists():
        raise ModelError(f"{path}: no such Lightning Pose checkpoint or model folder")
    if path.is_file():
        for folder in list(path.parents)[:6]:  # <model>/tb_logs/<name>/version_N/checkpoints
            if (folder / CONFIG_FILE).is_file():
                return path, folder / CONFIG_FILE
        raise ModelError(
            f"{path}: no {CONFIG_FILE} in the folders above it; keep the checkpoint inside its "
            f"Lightning Pose model folder"
        )
    if not (path / CONFIG_FILE).is_file():
        raise ModelError(f"{path}: no {CONFIG_FILE}; is this a Lightning Pose model folder?")
    found = sorted((path / CHECKPOINT_FOLDER).rglob("*.ckpt"))
    if not found:
        raise ModelError(f"{path}: no .ckpt file under {CHECKPOINT_FOLDER}/")
    best = [f for f in found if "best" in f.stem]
    chosen = found if len(found) == 1 else best
    if len(chosen) != 1:
        names = ", ".join(str(f.relative_to(path)) for f in found)
        raise ModelError(f"{path}: several checkpoints ({names}); name the .ckpt file to use")
    return chosen[0], path / CONFIG_FILE


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> LightningCheckpoint:
    """Read a checkpoint and its config without Lightning, OmegaConf or running their code."""
    checkpoint_file, config_file = locate(Path(path))
    config = read_config(config_file)
    data = _load_pickle(checkpoint_file, mmap=mmap)
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ModelError(
            f"{checkpoint_file}: expected a Lightning checkpoint with a 'state_dict', found {found}"
        )
    import torch  # optional and heavy (already imported to read the file)

    weights = {k: v for k, v in data["state_dict"].items() if isinstance(v, torch.Tensor)}
    version = data.get("pytorch-lightning_version")
    return LightningCheckpoint(
        checkpoint_file, config_file, config, weights, None if version is None else str(version)
    )


def check_checkpoint(path: str | Path) -> None:
    """Check before a start that ``path`` is a checkpoint this program runs, without its weights.

    ModelError as :func:`read_checkpoint` and :func:`check_supported`.
    """
    check_supported(read_checkpoint(path, mmap=True))


def _load_pickle(path: Path, mmap: bool = False) -> Any:
    """``torch.load`` with ``weights_only``, the checkpoint's foreign classes made inert."""
    import torch  # optional and heavy: only to read a checkpoint

    check_torch_file(path, LIGHTNING_CHECKPOINT_ADVICE)  # missing, empty, not of torch.save
    mmap = mmap and zipfile.is_zipfile(path)  # torch maps only its zip format
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        allowed: list[Any] = []
        for name in unsafe:
            if name in _SAFE_BUILTINS:
                allowed.append(_SAFE_BUILTINS[name])
            else:
                stand_in = type(name.rsplit(".", 1)[-1], (_Opaque,), {"__module__": __name__})
                allowed.append((stand_in, name))
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # damaged zip, not a torch file, a construct the unpickler refuses
        raise unreadable(path, LIGHTNING_CHECKPOINT_ADVICE, unreadable_reason(error)) from error


def check_supported(checkpoint: LightningCheckpoint) -> None:
    """Raise a ModelError naming what the model is when it is not supported."""
    config, path = checkpoint.config, checkpoint.checkpoint_file
    model_type = str(config.get("model", {}).get("model_type", "heatmap"))
    backbone = checkpoint.backbone
    version = config.get("model", {}).get("lightning_pose_version", "unknown")
    holding = f"a Lightning Pose {version} `{model_type}` model with backbone {backbone}"
    if model_type not in MODEL_TYPES:
        raise ModelError(f"{path}: {holding}, which this program cannot run yet; {SUPPORTED}")
    if _resnet_depth(backbone) is None and backbone not in OTHER_BACKBONES:
        why = UNMADE_VIT if backbone.startswith("vit") else ""
        raise ModelError(f"{path}: {holding}, which this program cannot run; {SUPPORTED}{why}")
    height, width = checkpoint.input_size
    is_vit = backbone in OTHER_BACKBONES and backbone.startswith("vit")
    if is_vit and height != width:
        raise ModelError(
            f"{path}: {holding} and image_resize_dims {height} x {width}; Lightning Pose "
            "reshapes a ViT's tokens to a square map, so its ViT models take square images"
        )
    if is_vit and checkpoint.downsample_factor > 2:
        raise ModelError(  # stride 16: PixelShuffle(2) and at least one transposed convolution
            f"{path}: {holding} and downsample_factor {checkpoint.downsample_factor}; a ViT's "
            "heatmap head has no upsampling layer left above downsample_factor 2"
        )
    if model_type == CONTEXT_MODEL_TYPE and checkpoint.downsample_factor != 2:
        raise ModelError(
            f"{path}: {holding} and downsample_factor {checkpoint.downsample_factor}; Lightning "
            "Pose builds context models with downsample_factor 2 only"
        )
    if not checkpoint.keypoints:
        raise ModelError(f"{checkpoint.config_file}: no data.keypoint_names")


def _resnet_depth(backbone: str) -> int | None:
    """Return the depth of a ResNet backbone name (``resnet50_animal_ap10k`` -> 50), else None."""
    match = re.fullmatch(r"resnet(\d+)(_\w+)?", backbone)
    if not match or int(match.group(1)) not in RESNET_DEPTHS:
        return None
    return int(match.group(1))


# --- the network --------------------------------------------------------------------------------


def build_module(checkpoint: LightningCheckpoint) -> Any:
    """Build the checkpoint's network with its weights, in eval mode (float32, CPU)."""
    # torch: an optional, heavy dependency, imported only to rebuild a network.
    from deeplabstream.pose.networks.lightning import HeatmapTracker, HeatmapTrackerMHCRNN

    check_supported(checkpoint)
    depth = _resnet_depth(checkpoint.backbone)
    keypoints, downsample = len(checkpoint.keypoints), checkpoint.downsample_factor
    module: Any
    if depth is None:  # EfficientNet or ViT (check_supported let only those through)
        from deeplabstream.pose.networks.lightning_backbones import (
            BackboneHeatmapTracker,
            context_tracker,
        )

        kind = context_tracker if checkpoint.is_context else BackboneHeatmapTracker
        module = kind(checkpoint.backbone, keypoints, downsample, checkpoint.input_size)
    elif checkpoint.is_context:
        module = HeatmapTrackerMHCRNN.with_resnet(depth, keypoints, downsample)
    else:
        module = HeatmapTracker(depth, keypoints, downsample)
    tracker = "context (heatmap_mhcrnn)" if checkpoint.is_context else "heatmap"
    what = (
        f"a {checkpoint.backbone} {tracker} tracker with {len(checkpoint.keypoints)} keypoints and "
        f"downsample_factor {checkpoint.downsample_factor}, as {checkpoint.config_file.name} says"
    )
    network_keys = {
        k: v for k, v in checkpoint.state_dict.items() if k.startswith(("backbone.", "head."))
    }
    load_weights(module, network_keys, checkpoint.checkpoint_file, what)
    return module.eval()


# --- conversion and description -----------------------------------------------------------------


def compare_outputs(downsample_factor: int) -> Comparison:
    """Differences of heatmaps and of the keypoints decoded from them (model pixels)."""

    def compare(reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]) -> Differences:
        differences = max_abs_differences((OUTPUT_NAME,), reference, converted)
        if not np.isfinite(differences[OUTPUT_NAME]):
            return differences | {"xy_px": float("inf"), "likelihood": float("inf")}
        ours = decode_lightning_pose(reference[0], downsample_factor)
        theirs = decode_lightning_pose(converted[0].astype(np.float32), downsample_factor)
        delta = np.abs(ours - theirs)
        return differences | {
            "xy_px": float(delta[..., :2].max()),
            "likelihood": float(delta[..., 2].max()),
        }

    return compare


def conversion_spec(checkpoint: LightningCheckpoint) -> ConversionSpec:
    """How to export the tracker: dynamic batch, the config's fixed input size."""
    return ConversionSpec(
        sources=(checkpoint.checkpoint_file, checkpoint.config_file),
        input_name=INPUT_NAME,
        output_names=(OUTPUT_NAME,),
        example_shape=(1, 3, *checkpoint.input_size),
        dynamic_size=False,
        compare=compare_outputs(checkpoint.downsample_factor),
        tolerances=TOLERANCES,
        fp16_tolerances=FP16_TOLERANCES,
    )


def load_lightning_checkpoint(path: str | Path, precision: Precision = "fp32") -> ModelDescription:
    """Describe a Lightning Pose checkpoint, converting it to ONNX on first use.

    ``path``: the ``.ckpt``, or a model folder with one (or one named ``best``). Raises ModelError
    for missing or unreadable files, an unsupported model, weights that do not fit, or a wrong
    conversion.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.is_context:  # two graphs: backbone, heads (pose.formats.lightning_context)
        check_supported(checkpoint)
        return load_context_checkpoint(checkpoint, precision)
    module = build_module(checkpoint)
    height, width = checkpoint.input_size
    check = synthetic_input(height, width, IMAGENET_MEAN, IMAGENET_STD)
    conversion = convert(module, conversion_spec(checkpoint), check, precision)
    graph = read_graph(conversion.onnx_file)
    description = describe_model(
        conversion.onnx_file, checkpoint.config_file, checkpoint.config, graph
    )
    return dataclasses.replace(description, source_file=checkpoint.checkpoint_file)


# --- the format ---------------------------------------------------------------------------------


class LightningPoseCheckpoint(ModelFormat):
    """A Lightning Pose ``.ckpt``, or a model folder with one under ``tb_logs/`` and no export."""

    name = "Lightning Pose checkpoint"
    converted = True

    def recognises(self, path: Path) -> bool:
        """Return True for a .ckpt file, or a model folder with a checkpoint and no export."""
        if path.is_file():
            return path.suffix == ".ckpt"
        if LightningPoseExport().recognises(path):
            return False  # a folder with an export runs Lightning Pose's own graph
        return (
            (path / CONFIG_FILE).is_file()
            and (path / CHECKPOINT_FOLDER).is_dir()
            and any((path / CHECKPOINT_FOLDER).rglob("*.ckpt"))
        )

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Rebuild the network from the checkpoint and convert it (or reuse the cached graph)."""
        return load_lightning_checkpoint(path, precision)

    def check(self, path: Path) -> None:
        """Open the checkpoint and its config (the tensors mapped, not read); check its kind."""
        if path.is_file():
            check_torch_file(path, LIGHTNING_CHECKPOINT_ADVICE)  # without importing torch
        check_checkpoint(path)

    def keypoints(self, path: Path) -> tuple[str, ...]:
        """Return ``data.keypoint_names`` of the model's config.yaml (the weights are not read)."""
        _, config_file = locate(path)
        names = (read_config(config_file).get("data") or {}).get("keypoint_names") or ()
        return tuple(str(name) for name in names)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a Lightning Pose model converted here."""
        return description.framework == "lightning-pose" and description.source_file is not None

    def framework_text(self, description: ModelDescription) -> str:
        """Return the Lightning Pose and Lightning versions the checkpoint names."""
        checkpoint = read_checkpoint(source_file(description))
        version = checkpoint.config.get("model", {}).get("lightning_pose_version", "?")
        return f"Lightning Pose {version} checkpoint (Lightning {checkpoint.lightning_version})"

    def network_text(self, description: ModelDescription) -> str:
        """Return the tracker's backbone and downsample factor (and a context model's stages)."""
        from deeplabstream.pose.formats.lightning_context import context_text

        checkpoint = read_checkpoint(source_file(description))
        if checkpoint.is_context:
            return context_text(description, checkpoint.backbone)
        return (
            f"heatmap tracker, backbone {checkpoint.backbone}, downsample_factor "
            f"{checkpoint.downsample_factor}"
        )

    def decoding_text(self, description: ModelDescription) -> str:
        """Return Lightning Pose's decoding and its downsample factor."""
        return lightning_decoding_text(description)

    def build_module(self, source: Path) -> Any:
        """Return the heatmap tracker rebuilt from the checkpoint (a context model's backbone)."""
        checkpoint = read_checkpoint(source)
        module = build_module(checkpoint)
        if checkpoint.is_context:
            from deeplabstream.pose.networks.lightning import ContextBackbone

            return ContextBackbone(module).eval()
        return module

    def comparison(self, description: ModelDescription) -> tuple[Any, dict[str, float]]:
        """Return Lightning Pose's comparison and the limits at the model's precision."""
        from deeplabstream.pose.formats import lightning_context as context

        if context.context_of(description) is not None:  # the backbone graph: its features
            fp32 = description.precision == "fp32"
            limits = context.FEATURE_TOLERANCES if fp32 else context.FEATURE_FP16_TOLERANCES
            return context.features_comparison, limits
        limits = TOLERANCES if description.precision == "fp32" else FP16_TOLERANCES
        return compare_outputs(description.downsample_factor), limits

    def pytorch_problem(self, path: Path) -> str | None:
        """Refuse a context model: it runs on ONNX Runtime only (two graphs, features kept)."""
        try:
            checkpoint = read_checkpoint(path, mmap=True)
        except ModelError:
            return None  # the load says what is wrong with the file
        if checkpoint.is_context:
            return (
                f"{path}: a Lightning Pose context model (heatmap_mhcrnn) runs on "
                "[Pose] BACKEND = onnxruntime only (its backbone and heads are two graphs, each "
                "frame's features kept for the next frames); set BACKEND = onnxruntime"
            )
        return super().pytorch_problem(path)


# -- context models (heatmap_mhcrnn): two graphs, see pose.formats.lightning_context -----


def load_context_checkpoint(checkpoint: Any, precision: Precision = "fp32") -> ModelDescription:
    """Convert a context checkpoint (``LightningCheckpoint``) to its two graphs and describe it."""
    from deeplabstream.pose.formats.lightning_context import (
        CONTEXT_FRAMES,
        FEATURE_FP16_TOLERANCES,
        FEATURE_TOLERANCES,
        FEATURES,
        HEADS_FP16_TOLERANCES,
        HEADS_OUTPUTS,
        HEADS_TOLERANCES,
        ContextStages,
        features_comparison,
        heads_comparison,
    )
    from deeplabstream.pose.networks.lightning import ContextBackbone, ContextHeads

    tracker = build_module(checkpoint)
    height, width = checkpoint.input_size
    images = _check_images(height, width)
    backbone = ContextBackbone(tracker).eval()
    spec = ConversionSpec(
        sources=(checkpoint.checkpoint_file, checkpoint.config_file),
        input_name="images",
        output_names=(FEATURES,),
        # An example batch of 2: the exporter fixes a batch of 1 in a ViT's graph (several
        # frames and cameras go through the backbone at once).
        example_shape=(2, 3, height, width),
        dynamic_size=False,
        compare=features_comparison,
        tolerances=FEATURE_TOLERANCES,
        fp16_tolerances=FEATURE_FP16_TOLERANCES,
    )
    backbone_graph = convert(backbone, spec, images[:1], precision).onnx_file
    features = run_module(backbone, images)[0]  # (5, C, h, w)
    channels, h, w = features.shape[1:]
    stacked = features.reshape(1, CONTEXT_FRAMES * channels, h, w)
    heads_spec = ConversionSpec(
        # The config first: the heads graph is named after it (the backbone's after the
        # checkpoint); both digests cover both files.
        sources=(checkpoint.config_file, checkpoint.checkpoint_file),
        input_name=FEATURES,
        output_names=HEADS_OUTPUTS,
        example_shape=(2, CONTEXT_FRAMES * channels, h, w),
        dynamic_size=False,
        compare=heads_comparison(checkpoint.downsample_factor),
        tolerances=HEADS_TOLERANCES,
        fp16_tolerances=HEADS_FP16_TOLERANCES,
    )
    heads_graph = convert(ContextHeads(tracker).eval(), heads_spec, stacked, precision).onnx_file
    downsample = checkpoint.downsample_factor
    return lightning_description(
        checkpoint.config,
        checkpoint.config_file,
        backbone_graph,
        checkpoint.keypoints,
        (height, width),
        downsample,
        stride=float(2**downsample),
        input_name="images",
        output_names=(FEATURES,),
        precision=precision,
        source_file=checkpoint.checkpoint_file,
        decoding=ContextStages(heads_graph, (int(channels), int(h), int(w))),
    )


def _check_images(height: int, width: int) -> np.ndarray:
    """Five different image-like inputs (5, 3, H, W): the synthetic image, shifted."""
    from deeplabstream.pose.formats.lightning_context import CONTEXT_FRAMES

    image = synthetic_input(height, width, IMAGENET_MEAN, IMAGENET_STD)[0]
    return np.stack([np.roll(image, (3 * i, 5 * i), axis=(1, 2)) for i in range(CONTEXT_FRAMES)])
