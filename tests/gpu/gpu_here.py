"""Whether this machine can run the GPU tier, and why not (the skip reason).

A test of the tier is marked ``gpu`` and skips, with the reason, unless ONNX Runtime has the
CUDA provider (onnxruntime-gpu), its CUDA and cuDNN libraries load, and a session actually
starts on it (a GPU and its driver). TensorRT tests need the TensorRT provider as well; the
pytorch tests a CUDA build of torch that sees the GPU.
"""

from __future__ import annotations

import functools
import importlib.util

import pytest


@functools.cache
def cuda_reason() -> str | None:
    """Why the CUDA provider cannot run here (None: it can)."""
    import onnxruntime

    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.model import ModelError
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.pose.runtime.providers import device_problem

    problem = device_problem("cuda")
    if problem is not None:
        return f"no GPU tier here: {problem}"
    try:  # the provider is installed: does a session start on a GPU?
        open_backend(load_model(None), "onnxruntime", "cuda").close()
    except ModelError as error:
        return f"no GPU tier here: onnxruntime {onnxruntime.__version__}: {error}"
    return None


@functools.cache
def tensorrt_reason() -> str | None:
    """Why the TensorRT provider cannot run here (None: it can)."""
    from deeplabstream.pose.runtime.providers import device_problem

    return cuda_reason() or device_problem("tensorrt")


@functools.cache
def torch_cuda_reason() -> str | None:
    """Why PyTorch cannot run on the GPU here (None: it can)."""
    if importlib.util.find_spec("torch") is None:
        return "no GPU tier for pytorch here: torch is not installed"
    import torch

    if not torch.cuda.is_available():
        return f"no GPU tier for pytorch here: torch {torch.__version__} sees no CUDA device"
    return None


def skip_unless(reason: str | None) -> None:
    """Skip the calling test with ``reason`` when there is one."""
    if reason is not None:
        pytest.skip(reason)


def device_reason(device: str) -> str | None:
    """The skip reason of an ONNX Runtime ``device`` of the tier."""
    return tensorrt_reason() if device == "tensorrt" else cuda_reason()
