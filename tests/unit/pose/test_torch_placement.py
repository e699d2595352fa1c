"""The pytorch backend's device, precision and memory format, chosen and checked on the CPU.

The CUDA placement itself (channels-last and half weights on a GPU) is in tests/gpu/; here the
choice is made, a cuda request without CUDA is refused with its message, and the channels-last
layout is run on the CPU against the plain one.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from deeplabstream.pose.model import ModelError  # noqa: E402
from deeplabstream.pose.runtime.backends import device_check  # noqa: E402
from deeplabstream.pose.runtime.providers import GPU_INSTALL  # noqa: E402
from deeplabstream.pose.runtime.torch_device import (  # noqa: E402
    TorchPlacement,
    place_input,
    place_module,
    set_tf32,
    torch_placement,
)


def test_cpu_placements() -> None:
    assert torch_placement("cpu", "fp32") == TorchPlacement("cpu", False, False)
    assert torch_placement("cpu", "fp16") == TorchPlacement("cpu", True, False)
    with pytest.raises(ModelError, match="cpu or cuda, not 'tensorrt'"):
        torch_placement("tensorrt", "fp32")


def test_cuda_placement_is_channels_last_and_half_for_fp16() -> None:
    # The choice alone, as on a machine whose torch sees a GPU.
    placement = torch_placement("cuda", "fp16", cuda_available=lambda: True)
    assert placement == TorchPlacement("cuda:0", half=True, channels_last=True)
    assert placement.record()["memory_format"] == "channels_last"
    assert torch_placement("cuda", "fp32", cuda_available=lambda: True).half is False


def test_fp32_on_a_gpu_is_ieee_fp32_and_tf32_is_named() -> None:
    # PyTorch's cuDNN convolutions use TF32 by default: fp32 must turn it off, tf32 on.
    fp32 = torch_placement("cuda", "fp32", cuda_available=lambda: True)
    tf32 = torch_placement("cuda", "tf32", cuda_available=lambda: True)
    assert not fp32.tf32 and tf32.tf32 and not tf32.half
    assert fp32.record()["precision"] == "fp32 (TF32 off)"
    assert tf32.record()["precision"] == "fp32 with TensorFloat-32 math"
    assert torch_placement("cpu", "fp32").record()["precision"] == "fp32"


def test_the_tf32_switches_are_set_both_ways() -> None:
    conv = torch.backends.cudnn.conv
    before = (conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    try:
        set_tf32(torch, False)
        assert conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        set_tf32(torch, True)
        assert conv.fp32_precision == "tf32"
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = before


def test_a_cuda_request_without_cuda_stops_with_the_torch_build_and_the_command() -> None:
    with pytest.raises(ModelError) as raised:
        torch_placement(
            "cuda", "fp32", cuda_available=lambda: False, torch_build=lambda: "torch 2.9.0+cpu"
        )
    message = str(raised.value)
    assert "no CUDA device (torch 2.9.0+cpu)" in message and GPU_INSTALL in message
    if not torch.cuda.is_available():  # the real torch of this machine
        problem = device_check("pytorch", "cuda") or ""
        assert "PyTorch sees no CUDA device" in problem and torch.__version__ in problem


def test_channels_last_gives_the_same_outputs_on_the_cpu() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
    ).eval()
    batch = torch.rand(2, 3, 32, 48)
    plain_placement = TorchPlacement("cpu", False, False)
    last_placement = TorchPlacement("cpu", False, True)
    with torch.inference_mode():
        plain = place_module(net, plain_placement)(place_input(batch, plain_placement))
        moved = place_input(batch, last_placement)
        assert moved.is_contiguous(memory_format=torch.channels_last)
        last = place_module(net, last_placement)(moved)
    torch.testing.assert_close(last.contiguous(), plain, atol=1e-5, rtol=1e-5)
