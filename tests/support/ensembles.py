"""Ensembles made by the tests: copies of the bundled model with perturbed weights, a clip.

A lab's ensemble is several networks trained with other seeds or data splits: they agree where
the image is clear and disagree where it is not. The tests make members the same way, without
training: the bundled model's ONNX graph with every weight multiplied by ``1 + scale * noise``
(seeded). A small ``scale`` gives a member that agrees with the bundled model to a pixel or so;
a large one a member that places keypoints elsewhere (disagrees).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np

from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.pose.loading import BUNDLED_MODEL

_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization")


def perturbed_member(folder: Path, seed: int, scale: float, name: str | None = None) -> Path:
    """Return a copy of the bundled model in ``folder`` whose weights are perturbed.

    ``name``: the model's name in ``model.json`` (default the folder's name).
    """
    import onnx
    from onnx import numpy_helper

    shutil.copytree(BUNDLED_MODEL, folder)
    graph_file = folder / "model.onnx"
    model = onnx.load(str(graph_file))
    rng = np.random.default_rng(seed)
    weights = {
        name
        for node in model.graph.node
        if node.op_type in _WEIGHTED
        for name in node.input[1:]
    }  # the layers' weights and biases, not a resize's scales or a shape
    for initializer in model.graph.initializer:
        values = numpy_helper.to_array(initializer)
        if initializer.name not in weights or values.dtype.kind != "f":
            continue
        noisy = values * (1.0 + scale * rng.standard_normal(values.shape))
        initializer.CopyFrom(numpy_helper.from_array(noisy.astype(values.dtype), initializer.name))
    onnx.save(model, str(graph_file))
    data = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    data["name"] = name or folder.name
    (folder / "model.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return folder


def renamed_member(folder: Path, renames: dict[str, str]) -> Path:
    """Rename keypoints in a model folder's ``model.json`` (a framework that names them so)."""
    path = folder / "model.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["keypoints"] = [renames.get(k, k) for k in data["keypoints"]]
    data["skeleton"] = [[renames.get(a, a), renames.get(b, b)] for a, b in data["skeleton"]]
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return folder


def arena_clip(path: Path, frames: int, seed: int = 3) -> list[np.ndarray]:
    """Write a lossless clip of the simulated arena (640x480, 30 fps); return its frames.

    The mouse walks from the right into the left half and back, so a region rule fires.
    """
    waypoints = ((0, 480.0, 240.0), (frames // 2, 160.0, 240.0), (frames - 1, 480.0, 240.0))
    arena = SimulatedArena(ArenaParams(seed=seed, motion="waypoints", waypoints=waypoints))
    written = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "bgr0"
        for index in range(frames):
            pixels = np.empty((480, 640, 3), np.uint8)
            arena.render_next(pixels)
            written.append(pixels)
            frame = av.VideoFrame.from_ndarray(pixels, format="bgr24").reformat(format="bgr0")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return written
