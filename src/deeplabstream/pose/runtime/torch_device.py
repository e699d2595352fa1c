"""Where and how the pytorch backend runs a network: device, precision, memory layout.

Design: docs/gpu.md, "PyTorch on CUDA".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplabstream.pose.model import ModelError
from deeplabstream.pose.runtime.graph_check import (
    GRAPH_AGREEMENT,
    distinguishing_input,
    relative_deviation,
)
from deeplabstream.pose.runtime.providers import GPU_INSTALL


@dataclass(frozen=True)
class TorchPlacement:
    """How a module runs: device (``cpu``, ``cuda:0``), float16, channels-last, TF32 on a GPU."""

    device: str
    half: bool
    channels_last: bool
    tf32: bool = False

    def record(self) -> dict[str, Any]:
        """Return what ``session.json`` says about it."""
        precision = "fp16 (half weights and input)" if self.half else "fp32"
        if self.device != "cpu" and not self.half:
            precision += " with TensorFloat-32 math" if self.tf32 else " (TF32 off)"
        return {
            "device": self.device,
            "precision": precision,
            "memory_format": "channels_last" if self.channels_last else "contiguous (NCHW)",
        }


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _torch_build() -> str:
    import torch

    cuda = torch.version.cuda
    return f"torch {torch.__version__} ({f'built for CUDA {cuda}' if cuda else 'a CPU-only build'})"


def torch_placement(
    device: str,
    precision: str,
    *,
    cuda_available: Callable[[], bool] = _cuda_available,
    torch_build: Callable[[], str] = _torch_build,
) -> TorchPlacement:
    """Return the placement of a network on ``device`` at ``precision`` (fp32 or fp16).

    Raises ModelError for ``cuda`` without a CUDA device (naming the install command) and for
    devices PyTorch does not run here.
    """
    half = precision == "fp16"
    if device == "cpu":
        return TorchPlacement("cpu", half, channels_last=False)
    if device != "cuda":
        raise ModelError(f"the pytorch backend runs on cpu or cuda, not {device!r}")
    if not cuda_available():
        raise ModelError(
            f"[Pose] DEVICE = cuda with BACKEND = pytorch: PyTorch sees no CUDA device "
            f"({torch_build()}). It needs a CUDA build of torch and an NVIDIA driver: "
            f"`{GPU_INSTALL}`; or set DEVICE = cpu"
        )
    return TorchPlacement("cuda:0", half, channels_last=True, tf32=precision == "tf32")


def place_module(module: Any, placement: TorchPlacement) -> Any:
    """Move ``module`` to the placement, eval mode; on a GPU set the process's TF32 too."""
    import torch

    if placement.device != "cpu":
        set_tf32(torch, placement.tf32)
    module = module.to(torch.device(placement.device))
    if placement.half:
        module = module.half()
    if placement.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module.eval()


def place_input(tensor: Any, placement: TorchPlacement) -> Any:
    """Move a host batch (N, C, H, W) to the placement's device, type and memory format."""
    import torch

    dtype = torch.float16 if placement.half else torch.float32
    moved = tensor.to(torch.device(placement.device), dtype, non_blocking=True)
    if placement.channels_last and moved.dim() == 4:
        moved = moved.contiguous(memory_format=torch.channels_last)
    return moved


def set_tf32(torch: Any, allowed: bool) -> None:
    """Allow or forbid TensorFloat-32 in PyTorch's fp32 convolutions and matrix products."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "tf32" if allowed else "ieee"
        torch.backends.cuda.matmul.fp32_precision = "tf32" if allowed else "ieee"
        return
    torch.backends.cudnn.allow_tf32 = allowed
    torch.backends.cuda.matmul.allow_tf32 = allowed


@dataclass
class _CapturedGraph:
    """One input shape's graph: its input and outputs on the device, or why it is not used."""

    graph: Any = None
    static_input: Any = None
    static_outputs: Any = None
    refused: str | None = None


class CudaGraphRunner:
    """Run a module through a CUDA graph per input shape, each checked against the eager run.

    A shape whose capture raises or differs runs eagerly from then on (:attr:`refusals`). Outputs
    are the graph's device tensors, overwritten by the next replay: copy them before it.
    """

    WARM_UP_RUNS = 3

    def __init__(self, module: Any) -> None:
        import torch

        self._torch = torch
        self.module = module
        self.graphs: dict[tuple[tuple[int, ...], Any], _CapturedGraph] = {}

    @property
    def refusals(self) -> dict[str, str]:
        """Why input shapes run eagerly: ``{"1x3x480x640 torch.float32": why}``."""
        return {
            f"{'x'.join(map(str, key[0]))} {key[1]}": graph.refused
            for key, graph in self.graphs.items()
            if graph.refused is not None
        }

    @property
    def checked_shapes(self) -> list[list[int]]:
        """The input shapes whose graph was checked and runs."""
        return [list(key[0]) for key, graph in self.graphs.items() if graph.refused is None]

    def __call__(self, tensor: Any) -> Any:
        """Run the module on ``tensor`` (already placed): replayed, or eager for a refused shape."""
        key = (tuple(tensor.shape), tensor.dtype)
        captured = self.graphs.get(key)
        if captured is None:
            captured = self.graphs[key] = self._capture(tensor)
            return self.module(tensor)
        if captured.refused is not None:
            return self.module(tensor)
        captured.static_input.copy_(tensor)
        captured.graph.replay()
        return captured.static_outputs

    def _capture(self, tensor: Any) -> _CapturedGraph:
        """Capture a graph on a static copy of ``tensor`` and check it (see the class)."""
        torch = self._torch
        captured = _CapturedGraph(static_input=torch.empty_like(tensor))
        captured.static_input.copy_(tensor)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(self.WARM_UP_RUNS):
                    self.module(captured.static_input)
            torch.cuda.current_stream().wait_stream(side)
            captured.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(captured.graph):
                captured.static_outputs = self.module(captured.static_input)
            captured.refused = self._check(captured, tensor)
        except RuntimeError as error:  # a module that cannot be captured (a host sync in it)
            captured.refused = f"the CUDA graph could not be captured: {error}"
        if captured.refused is not None:
            captured.graph = captured.static_outputs = None  # its memory back to the pool
        return captured

    def _check(self, captured: _CapturedGraph, tensor: Any) -> str | None:
        """Replay on ``tensor`` and on another input; why the graph is wrong (None: right)."""
        torch = self._torch

        def on_device(host: np.ndarray) -> Any:
            placed = torch.from_numpy(host).to(tensor.device, tensor.dtype)
            return placed.contiguous(memory_format=_memory_format(torch, tensor))

        first = tensor.float().cpu().numpy()
        second = distinguishing_input(
            first,
            _host_arrays(self.module(tensor)),
            lambda host: _host_arrays(self.module(on_device(host.astype(np.float32)))),
        )
        if second is None:
            return "no second input changed the eager run's outputs: the graph was not checked"
        other = on_device(second[0].astype(np.float32))
        for label, data in (("the first", tensor), ("a second", other)):
            captured.static_input.copy_(data)
            captured.graph.replay()
            replayed = _host_arrays(captured.static_outputs)
            eager = _host_arrays(self.module(data))
            for index, (ours, theirs) in enumerate(zip(replayed, eager, strict=True)):
                deviation = relative_deviation(ours, theirs)
                if deviation > GRAPH_AGREEMENT:
                    return (
                        f"on {label} input its output {index} differed from the eager run by "
                        f"{deviation:.3g} of the largest value (at most {GRAPH_AGREEMENT} passes)"
                    )
        return None


def _memory_format(torch: Any, tensor: Any) -> Any:
    """Return ``tensor``'s memory format (channels-last for a 4-D NHWC tensor)."""
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _host_arrays(result: Any) -> list[Any]:
    """Return a module's outputs (a tensor, a sequence or a dict of them) as host arrays."""
    if isinstance(result, dict):
        result = list(result.values())
    tensors = list(result) if isinstance(result, (tuple, list)) else [result]
    return [t.detach().float().cpu().numpy() for t in tensors]
