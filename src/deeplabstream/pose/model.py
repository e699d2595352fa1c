"""What a pose model is: its file and the description needed to feed it and read its output.

Every loader gives one :class:`ModelDescription`, all downstream reads only it; its ``decoder``
names a :class:`Decoder` of :data:`DECODERS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from deeplabstream.core.errors import ModelError
from deeplabstream.core.plugins import Registry

ColorOrder = Literal["rgb", "bgr", "gray"]
OutputKind = Literal["heatmaps", "heatmaps+locref", "coordinates"]
#: Where a model puts pixel (0, 0): its centre at whole numbers (this project, DeepLabCut,
#: SLEAP) or its corner (Lightning Pose's pure scale); see :mod:`pose.runtime.transforms`.
Convention = Literal["centres", "corners"]
ResizeMethod = Literal["bilinear-float", "bicubic-uint8", "area"]
InputType = Literal["float", "uint8"]
InputLayout = Literal["nchw", "nhwc"]
Normalization = Literal["outside", "in-graph"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelDescription:
    """Everything needed to run a model and turn its output into keypoints.

    Fields whose names do not say it all:

    resize
        ``bilinear-float`` (Lightning Pose's video path), ``bicubic-uint8`` or ``area``
        (:mod:`pose.runtime.preprocess`).
    output_kind
        ``heatmaps`` (N x K x h x w), ``heatmaps+locref`` (plus N x 2K x h x w offsets) or
        ``coordinates`` (N x K x 3 in input pixels).
    decoder
        The name of its :class:`Decoder` in :data:`DECODERS`.
    batch_size
        None when the batch dimension is dynamic.
    precision
        ``fp32``, ``fp16`` (weights and input), ``int8`` (float32 input) or ``tf32`` (the fp32
        graph with TensorFloat-32 math).
    source_file
        The framework's file a network was rebuilt from (``model_file`` is then its converted
        graph, and the ``pytorch`` backend rebuilds from it); None otherwise.
    any_input_size
        The graph takes any size; the input size is the one it was described for
        (:meth:`at_input_size` gives another).
    input_type
        ``float`` or ``uint8`` (needs ``normalization="in-graph"``).
    normalization
        ``outside`` (fed ``(pixel / 255 - mean) / std``) or ``in-graph`` (fed pixels 0..255;
        ``mean`` and ``std`` say what the graph does).
    max_animals
        1 for a single-animal model; a multi-animal decoder gives (A, K, 3), unused rows NaN.
    decoding
        A format's extra decoder parameters; not compared.
    letterbox
        Resized by one factor into the input's top-left corner, the rest black.
    trained_size
        (height, width) the model was exported for or trained on, when its files say; other
        sizes run unvalidated (:func:`frame_size_warning`).
    identity_classes
        A model that names the animals: its classes; row i is always class i.
    named_path, found_model
        The framework folder ``MODEL_PATH`` named and the model found in it; None when the path
        named the model itself.
    """

    name: str
    framework: str
    model_file: Path
    keypoints: tuple[str, ...]
    input_height: int
    input_width: int
    color_order: ColorOrder = "rgb"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: ResizeMethod = "bilinear-float"
    output_kind: OutputKind = "heatmaps"
    stride: float = 4.0
    decoder: str = "argmax"
    heatmaps_are_probabilities: bool = True
    locref_std: float = 7.2801
    downsample_factor: int = 2
    input_name: str = "images"
    output_names: tuple[str, ...] = ("heatmaps",)
    batch_size: int | None = None
    precision: Literal["fp32", "tf32", "fp16", "int8"] = "fp32"
    skeleton: tuple[tuple[str, str], ...] = field(default=())
    source_file: Path | None = None
    any_input_size: bool = False
    input_type: InputType = "float"
    input_layout: InputLayout = "nchw"
    normalization: Normalization = "outside"
    letterbox: bool = False
    max_animals: int = 1
    decoding: Any = field(default=None, compare=False)
    trained_size: tuple[int, int] | None = None
    identity_classes: tuple[str, ...] = ()
    named_path: Path | None = field(default=None, compare=False)
    found_model: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        """Check what can be checked without loading the network."""
        if not self.keypoints:
            raise ModelError(f"{self.model_file}: the model names no keypoints")
        if len(set(self.keypoints)) != len(self.keypoints):
            raise ModelError(f"{self.model_file}: keypoint names repeat: {self.keypoints}")
        if self.input_height < 8 or self.input_width < 8:
            raise ModelError(
                f"{self.model_file}: input size {self.input_width}x{self.input_height} is too small"
            )
        channels = 1 if self.color_order == "gray" else 3
        if len(self.mean) != channels or len(self.std) != channels:
            raise ModelError(
                f"{self.model_file}: normalisation needs {channels} mean and std values, got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        self._check_input_format()
        if self.decoder not in DECODERS:
            raise ModelError(
                f"{self.model_file}: unknown decoder {self.decoder!r}; known: "
                f"{', '.join(DECODERS.names())}"
            )
        if self.max_animals < 1:
            raise ModelError(f"{self.model_file}: max_animals must be >= 1, not {self.max_animals}")
        if self.identity_classes and len(self.identity_classes) != self.max_animals:
            raise ModelError(
                f"{self.model_file}: an identity model reports one animal per class: "
                f"{len(self.identity_classes)} classes, max_animals {self.max_animals}"
            )
        for a, b in self.skeleton:
            if a not in self.keypoints or b not in self.keypoints:
                raise ModelError(
                    f"{self.model_file}: skeleton pair ({a}, {b}) names unknown keypoints"
                )

    def _check_input_format(self) -> None:
        """Check that the input type, layout and normalisation go together."""
        if self.input_type not in ("float", "uint8"):
            raise ModelError(f"{self.model_file}: input type {self.input_type!r}: float or uint8")
        if self.input_layout not in ("nchw", "nhwc"):
            raise ModelError(f"{self.model_file}: input layout {self.input_layout!r}: nchw or nhwc")
        if self.normalization not in ("outside", "in-graph"):
            raise ModelError(
                f"{self.model_file}: normalization {self.normalization!r}: outside or in-graph"
            )
        if self.input_type == "uint8" and self.normalization != "in-graph":
            raise ModelError(f"{self.model_file}: uint8 input needs the normalisation in the graph")
        if self.input_type == "uint8" and self.resize == "bilinear-float":
            raise ModelError(
                f"{self.model_file}: uint8 input is resized as uint8 (area or bicubic-uint8), "
                "not bilinear-float"
            )

    @property
    def multi_animal(self) -> bool:
        """True for a model that can report several animals per frame."""
        return self.max_animals > 1 or decoder_of(self).multi_animal

    @property
    def animals(self) -> int:
        """Animals in each frame's result: ``max_animals``, 1 for a single-animal model."""
        return self.max_animals if self.multi_animal else 1

    @property
    def channels(self) -> int:
        """Input channels of the network."""
        return 1 if self.color_order == "gray" else 3

    @property
    def input_dtype(self) -> type[np.generic]:
        """The numpy type of the graph's input."""
        if self.input_type == "uint8":
            return np.uint8
        return np.float16 if self.precision == "fp16" else np.float32

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        """Return the graph's input shape for ``batch`` images, in its layout."""
        if self.input_layout == "nhwc":
            return (batch, self.input_height, self.input_width, self.channels)
        return (batch, self.channels, self.input_height, self.input_width)

    def at_input_size(self, height: int, width: int) -> ModelDescription:
        """Return the same model fed at ``height`` x ``width``.

        Raises ModelError when the graph's input size is fixed and differs.
        """
        if (height, width) == (self.input_height, self.input_width):
            return self
        if not self.any_input_size:
            raise ModelError(
                f"{self.model_file}: the network takes {self.input_width}x{self.input_height} "
                f"input only, not {width}x{height}"
            )
        return dataclasses.replace(self, input_height=int(height), input_width=int(width))


def frame_size_warning(
    description: ModelDescription, camera: str, height: int, width: int
) -> str | None:
    """Say that ``camera``'s frames are not the size the model was made for; None when they are.

    sleap-nn and Lightning Pose models run at other sizes but are not validated there.
    """
    if description.trained_size is None:
        return None
    trained_height, trained_width = description.trained_size
    if (height, width) == (trained_height, trained_width):
        return None
    made = (
        "exported (traced)" if description.framework == "sleap-nn" else "trained on labelled frames"
    )
    advice = (
        f"export it again at the camera's size (sleap-nn export ... --input-height {height} "
        f"--input-width {width})"
        if description.framework == "sleap-nn"
        else "check its keypoints on this camera's frames, or train it on frames of this size"
    )
    return (
        f"camera {camera!r}: the model {description.name} ({description.framework}) was {made} "
        f"at {trained_width}x{trained_height}, but the camera's frames are {width}x{height}: "
        f"its keypoints at this size are not validated; {advice}"
    )


# --- decoders ------------------------------------------------------------------------------------

#: What a decoder returns: the points, (n, K, 3) for a single-animal model or (n, A, K, 3), in
#: the pixels of the network's input, and an identity model's (n, A) identity confidences (None
#: for the other models).
Decoded = tuple[np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class Decoder:
    """How the outputs of one family of networks become keypoints (``ModelDescription.decoder``).

    ``decode(outputs, description) -> (points, identity confidences or None)`` takes a batch's
    outputs in ``description.output_names`` order; ``multi_animal``: points are (n, A, K, 3) even
    for one animal; ``convention``: where pixel (0, 0) is (:data:`Convention`).
    """

    decode: Callable[[list[np.ndarray], ModelDescription], Decoded]
    multi_animal: bool = False
    convention: Convention = "centres"

    @classmethod
    def of_points(
        cls,
        decode: Callable[[Any, ModelDescription], np.ndarray],
        multi_animal: bool = False,
        convention: Convention = "centres",
    ) -> Decoder:
        """Return the decoder of ``decode``, which gives the points only (no identities)."""

        def decode_points(outputs: list[np.ndarray], description: ModelDescription) -> Decoded:
            return decode(outputs, description), None

        return cls(decode_points, multi_animal, convention)


def _check_decoder(obj: Any) -> None:
    if not isinstance(obj, Decoder):
        raise TypeError(f"expected a deeplabstream.pose.model.Decoder, not {obj!r}")


#: The decoders by name: ``ModelDescription.decoder`` chooses one (:func:`decoder_of`). Each
#: module of :mod:`pose.decoding` declares its own, imported when a model names it.
DECODERS: Registry[Decoder] = Registry(
    "pose decoder",
    "deeplabstream.decoders",
    {
        "argmax": "deeplabstream.pose.decoding.peaks:ARGMAX",
        "lightning-pose": "deeplabstream.pose.decoding.lightning:LIGHTNING_POSE",
        "sleap-single": "deeplabstream.pose.decoding.sleap_single:SLEAP_SINGLE",
        "sleap-bottomup": "deeplabstream.pose.decoding.sleap:SLEAP_BOTTOMUP",
        "sleap-classes": "deeplabstream.pose.decoding.sleap_classes:SLEAP_CLASSES",
        "sleap-topdown": "deeplabstream.pose.decoding.sleap_topdown:SLEAP_TOPDOWN",
        "paf-bottomup": "deeplabstream.pose.decoding.bottomup:PAF_BOTTOMUP",
        "dlc-assembly": "deeplabstream.pose.decoding.dlc_assembly:DLC_ASSEMBLY",
        "dlc-dekr": "deeplabstream.pose.decoding.dlc_dekr:DLC_DEKR",
    },
    advice="A model format sets ModelDescription.decoder to one of them (docs/plugins.md, "
    '"Model formats").',
    check=_check_decoder,
)


def decoder_of(description: ModelDescription) -> Decoder:
    """Return the :class:`Decoder` that ``description.decoder`` names."""
    return DECODERS.get(description.decoder)


_Settings = TypeVar("_Settings")


def decoding_of(description: ModelDescription, kind: type[_Settings], what: str) -> _Settings:
    """Return the ``kind`` of decoding settings a description carries (ModelError: none)."""
    decoding = getattr(description, "decoding", None)
    if not isinstance(decoding, kind):
        raise ModelError(
            f"{description.model_file}: no {what} in the description; load the model with "
            "deeplabstream.pose.loading.load_model"
        )
    return decoding
