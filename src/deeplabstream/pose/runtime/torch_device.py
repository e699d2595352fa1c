"""Where and how the pytorch backend runs a network: device, precision, memory layout.

:func:`torch_placement` turns ``[Pose] DEVICE`` and the model's precision into a
:class:`TorchPlacement`:

- ``cpu``: float32 (or half weights for an fp16 model, as asked), NCHW;
- ``cuda``: the first GPU, **channels-last** memory (NHWC: cuDNN's tensor-core convolutions
  take it without transposing), half weights and input for an fp16 model (the rebuilt networks
  of DeepLabCut 3.0 exports and Lightning Pose checkpoints; outputs are returned as float32).

A cuda request PyTorch cannot meet (a CPU build of torch, no driver, no GPU) stops with a
message naming the torch build and what installs a CUDA one; it never falls back to the CPU.
The CUDA path has not run on a GPU yet (docs/gpu.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deeplabstream.pose.model import ModelError
from deeplabstream.pose.runtime.providers import GPU_INSTALL


@dataclass(frozen=True)
class TorchPlacement:
    """How a module runs.

    Attributes
    ----------
    device
        ``cpu`` or ``cuda:0``.
    half
        Weights and input in float16.
    channels_last
        Module and input in channels-last (NHWC) memory.
    """

    device: str
    half: bool
    channels_last: bool

    def record(self) -> dict[str, Any]:
        """Return what ``session.json`` says about it."""
        return {
            "device": self.device,
            "precision": "fp16 (half weights and input)" if self.half else "fp32",
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

    Raises
    ------
    ModelError
        For ``cuda`` when PyTorch sees no CUDA device (the message names the torch build and
        the command that installs a CUDA one), and for devices PyTorch does not run here.
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
    return TorchPlacement("cuda:0", half, channels_last=True)


def place_module(module: Any, placement: TorchPlacement) -> Any:
    """Move ``module`` to the placement's device, precision and memory format, in eval mode."""
    import torch

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
