"""Dynamic cropping: analyse a region around the last confident pose, the whole frame otherwise.

Design: docs/pose-internals.md, "pose.runtime.cropping".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import format_of_description


@dataclass(frozen=True)
class CropSettings:
    """How one camera crops (``[Pose]`` values, overridden by its ``[Camera NAME]`` section).

    ``min_keypoints`` None: every keypoint; ``refresh`` 0: a whole frame only when tracking is lost.
    """

    enabled: bool = False
    margin: int = 128
    likelihood: float = 0.5
    min_keypoints: int | None = None
    size_step: int = 64
    refresh: int = 30

    def __post_init__(self) -> None:
        """Reject values no crop can be made with."""
        if self.margin < 0:
            raise ValueError(f"the crop margin must be at least 0, got {self.margin}")
        if self.size_step < 1:
            raise ValueError(f"the crop size step must be at least 1, got {self.size_step}")
        if self.min_keypoints is not None and self.min_keypoints < 1:
            raise ValueError(f"min_keypoints must be at least 1, got {self.min_keypoints}")
        if self.refresh < 0:
            raise ValueError(f"the refresh interval must be at least 0, got {self.refresh}")


def input_multiple(description: ModelDescription) -> int:
    """Return the network's down-sampling; ModelError when the model runs at one input size only."""
    if not description.any_input_size:
        raise ModelError(
            f"{description.model_file}: the network takes {description.input_width}x"
            f"{description.input_height} input only; dynamic cropping needs a model that runs "
            f"at any size (a DeepLabCut 3.0 export)"
        )
    model_format = format_of_description(description)
    multiple = model_format.input_multiple(description) if model_format is not None else None
    if multiple is not None:  # read from the model's own file (a DeepLabCut export's backbone)
        return multiple
    # Another fully convolutional network: its heatmap stride is the least its grid needs.
    return max(1, math.ceil(description.stride))


@dataclass(frozen=True)
class Crop:
    """A region of a frame: origin (x, y) and size, in frame pixels."""

    x: int
    y: int
    width: int
    height: int
    full: bool  # the whole frame

    @property
    def size(self) -> tuple[int, int]:
        """(height, width), numpy's order."""
        return (self.height, self.width)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x, y, width, height)."""
        return (self.x, self.y, self.width, self.height)

    def view(self, frame: np.ndarray) -> np.ndarray:
        """Return the crop of ``frame`` as a view (no copy)."""
        if self.full:
            return frame
        return frame[self.y : self.y + self.height, self.x : self.x + self.width]

    def to_frame(self, pose: np.ndarray) -> np.ndarray:
        """Keypoints (..., 3) in crop pixels to frame pixels, in place; returns ``pose``."""
        if not self.full:
            pose[..., 0] += self.x
            pose[..., 1] += self.y
        return pose


def full_crop(frame_size: tuple[int, int]) -> Crop:
    """Return a crop of the whole frame of (height, width)."""
    height, width = frame_size
    return Crop(0, 0, int(width), int(height), True)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def place_span(low: float, high: float, extent: int, multiple: int, step: int) -> tuple[int, int]:
    """One axis of a crop: (start, length) covering [low, high] within ``0 .. extent``.

    ``start`` is a multiple of ``multiple``; ``length`` of ``step`` except at an off-grid frame end.
    """
    start = max(0, math.floor(max(low, 0.0)) // multiple * multiple)
    end = min(extent, math.floor(min(high, extent - 1)) + 1)  # one past the last pixel
    length = _round_up(max(end - start, 1), step)
    if start + length > extent:  # too far right: move it back on the grid, to the frame's end
        start = max(0, (extent - length) // multiple * multiple)
        length = extent - start  # the length, or a little more where the frame is off the grid
    return start, length


class DynamicCrop:
    """The crop of one camera's next frame (:attr:`current`), from its last pose."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        settings: CropSettings,
        keypoints: int,
        multiple: int = 1,
        flip: bool = False,
    ) -> None:
        if multiple < 1:
            raise ValueError(f"the input multiple must be at least 1, got {multiple}")
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.settings = settings
        self.multiple = int(multiple)
        self.step = _round_up(settings.size_step, self.multiple)
        self.flip = bool(flip)
        wanted = settings.min_keypoints if settings.min_keypoints is not None else keypoints
        self.min_keypoints = max(1, min(int(wanted), keypoints))
        self.current = full_crop(self.frame_size)
        self.cropped_in_row = 0  # crops chosen since the last full frame

    def reset(self) -> Crop:
        """Tracking is lost (or a refresh is due): the next frame is analysed whole."""
        self.current = full_crop(self.frame_size)
        self.cropped_in_row = 0
        return self.current

    def update(self, pose: np.ndarray) -> Crop:
        """Choose the next frame's crop from this frame's keypoints (K, 3), in frame pixels."""
        points = np.asarray(pose, np.float64)
        confident = np.isfinite(points).all(axis=1) & (points[:, 2] >= self.settings.likelihood)
        if int(confident.sum()) < self.min_keypoints:
            return self.reset()
        refresh = self.settings.refresh
        if refresh and self.cropped_in_row >= refresh:
            return self.reset()
        self.current = self.crop_around(points[confident, :2])
        self.cropped_in_row = 0 if self.current.full else self.cropped_in_row + 1
        return self.current

    def crop_around(self, xy: np.ndarray) -> Crop:
        """Return the crop holding points (N, 2) plus the margin, placed on the network's grid."""
        height, width = self.frame_size
        margin = self.settings.margin
        x = xy[:, 0]
        if self.flip:  # place it on the mirrored frame's grid (pixel centres: x -> W - 1 - x)
            x = (width - 1) - x
        x0, crop_width = place_span(
            x.min() - margin, x.max() + margin, width, self.multiple, self.step
        )
        y0, crop_height = place_span(
            xy[:, 1].min() - margin, xy[:, 1].max() + margin, height, self.multiple, self.step
        )
        if self.flip:  # back to the camera's own pixels
            x0 = width - (x0 + crop_width)
        if crop_width >= width and crop_height >= height:
            return full_crop(self.frame_size)
        return Crop(x0, y0, crop_width, crop_height, False)


# --- the full frame's channel statistics, for crops ---------------------------------------------
#
# CSPNeXt (DeepLabCut's cspnext_* networks) scales the channels of each stage by a gate computed
# from the channel means over the whole image (channel attention: ReduceMean -> 1x1 Conv ->
# HardSigmoid -> Mul). A crop has other means than the frame (mostly animal instead of mostly
# arena), so every feature of a crop changes: on the open-field model, keypoints moved by 1 to
# 3 px even with a 128 px margin. Fed the gates of the last full frame instead, the crop's
# features are the frame's wherever the margin gives enough context (0.004 px with a 128 px
# margin on the same frames). So the graph is split in two: the *full* graph also outputs the
# gates, the *crop* graph takes them as inputs (its pooling branches are removed).

GATE_PATTERN = ("ReduceMean", "Conv", "HardSigmoid")  # channel means -> 1x1 conv -> gate


@dataclass(frozen=True)
class ContextGraphs:
    """A graph split for crops that see the full frame's channel gates (N x C x 1 x 1 each)."""

    full: Path
    crop: Path
    gates: tuple[str, ...]
    channels: tuple[int, ...]


def _gate_nodes(graph: Any) -> list[tuple[Any, int]]:
    """Find the gate nodes of a graph (HardSigmoid of a Conv of a ReduceMean) and their channels."""
    producers = {name: node for node in graph.node for name in node.output}
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    gates = []
    for node in graph.node:
        if node.op_type != GATE_PATTERN[2]:
            continue
        conv = producers.get(node.input[0])
        if conv is None or conv.op_type != GATE_PATTERN[1] or conv.input[1] not in weights:
            continue
        mean = producers.get(conv.input[0])
        if mean is not None and mean.op_type == GATE_PATTERN[0]:
            gates.append((node, int(weights[conv.input[1]][0])))
    return gates


def _prune(graph: Any) -> None:
    """Remove the nodes and initializers no graph output depends on."""
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [init for init in graph.initializer if init.name not in needed]
    for init in unused:
        graph.initializer.remove(init)


def split_context_graphs(graph_file: Path) -> ContextGraphs | None:
    """Write the full and crop graphs beside ``graph_file`` once; None without gates."""
    import onnx

    model = onnx.load(str(graph_file))
    gates = _gate_nodes(model.graph)
    if not gates:
        return None
    names = tuple(node.output[0] for node, _ in gates)
    channels = tuple(c for _, c in gates)
    elem_type = model.graph.input[0].type.tensor_type.elem_type  # the gates' precision
    stem = graph_file.with_suffix("")
    full_file = stem.with_name(stem.name + ".context-full.onnx")
    crop_file = stem.with_name(stem.name + ".context-crop.onnx")
    if not full_file.is_file():
        full = onnx.ModelProto()
        full.CopyFrom(model)
        for name in names:
            full.graph.output.append(onnx.helper.make_tensor_value_info(name, elem_type, None))
        _save_atomically(full, full_file)
    if not crop_file.is_file():
        crop = onnx.ModelProto()
        crop.CopyFrom(model)
        drop = set(names)
        kept = [node for node in crop.graph.node if node.output[0] not in drop]
        del crop.graph.node[:]
        crop.graph.node.extend(kept)
        for name, count in zip(names, channels, strict=True):
            shape = ["batch", count, 1, 1]
            crop.graph.input.append(onnx.helper.make_tensor_value_info(name, elem_type, shape))
        _prune(crop.graph)
        _save_atomically(crop, crop_file)
    return ContextGraphs(full_file, crop_file, names, channels)


def _save_atomically(model: Any, path: Path) -> None:
    import onnx

    partial = path.with_name(path.name + ".partial")
    onnx.save(model, str(partial))
    partial.replace(path)


class ContextRecorder:
    """A backend running the full graph; keeps its last run's gates for the crops."""

    def __init__(self, backend: Any, graphs: ContextGraphs, outputs: int) -> None:
        self.backend = backend
        self.graphs = graphs
        self.provider: str = backend.provider
        self._outputs = outputs  # the model's own outputs, before the gates
        self.context: dict[str, np.ndarray] | None = None

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the full graph; keep the gates."""
        results = self.backend.run(batch)
        # Copied: the backend's outputs are buffers it reuses on its next run (IO binding).
        gates = [np.array(gate) for gate in results[self._outputs :]]
        self.context = dict(zip(self.graphs.gates, gates, strict=True))
        return results[: self._outputs]

    def warm_up(self, batch_size: int | None = None) -> None:
        """Warm the full graph."""
        self.backend.warm_up(batch_size)

    def close(self) -> None:
        """Close the full graph's backend."""
        self.backend.close()


class ContextFeeder:
    """A backend running the crop graph; set :attr:`context` before each run."""

    def __init__(self, backend: Any, graphs: ContextGraphs, dtype: Any) -> None:
        self.backend = backend
        self.graphs = graphs
        self.provider: str = backend.provider
        self._dtype = dtype
        self.context: dict[str, np.ndarray] | None = None

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the crop graph on ``batch`` with :attr:`context`."""
        if self.context is None:
            raise RuntimeError("a crop was analysed before any full frame gave its context")
        return self.backend.run_with(batch, self.context)

    def neutral_context(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Gates of 0.5 (for warming up only)."""
        return {
            name: np.full((batch, count, 1, 1), 0.5, self._dtype)
            for name, count in zip(self.graphs.gates, self.graphs.channels, strict=True)
        }

    def warm_up(self, batch_size: int | None = None) -> None:
        """Warm the crop graph (with neutral gates)."""
        kept, self.context = self.context, self.neutral_context()
        try:
            self.backend.warm_up_with(self.context)
        finally:
            self.context = kept

    def close(self) -> None:
        """Close the crop graph's backend."""
        self.backend.close()
