"""ONNX Runtime IO binding: the network's buffers allocated once per input shape, then reused.

Design: docs/gpu.md, "IO binding" and "CUDA graphs".
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplabstream.pose.runtime.graph_check import (
    GRAPH_AGREEMENT,
    distinguishing_input,
    relative_deviation,
)

log = logging.getLogger(__name__)

ShapeKey = tuple[tuple[int, ...], np.dtype[Any]]


def shape_key(batch: np.ndarray) -> ShapeKey:
    """Return the key of an input's buffers: its shape and type (cheap: no new objects)."""
    return (batch.shape, batch.dtype)


@dataclass
class _HostSlot:
    """The bound buffers of one input shape."""

    binding: Any  # onnxruntime.IOBinding
    outputs: list[np.ndarray]
    input: np.ndarray | None = None  # only for inputs that had to be copied
    runs: int = 0
    input_binds: int = 0  # one per run: the proof that every frame was handed over
    unbound: bool = False  # outputs whose shape changes from run to run: session.run instead


class HostBinding:
    """Run a session through IO binding with host buffers.

    ``allocate`` makes a host array (pinned on a GPU); ``synchronize`` waits for a GPU's outputs.
    Outputs are the bound buffers, valid until the next run of that shape.
    """

    def __init__(
        self,
        session: Any,
        input_name: str,
        output_names: list[str],
        allocate: Any = None,
        *,
        synchronize: bool = False,
    ) -> None:
        self.session = session
        # A GPU provider copies the outputs back on its stream: wait for them before reading.
        self.synchronize = synchronize
        self.input_name = input_name
        self.output_names = list(output_names)
        self.allocate = allocate or (lambda shape, dtype: np.empty(shape, dtype))
        self.slots: dict[ShapeKey, _HostSlot] = {}
        self.copied_inputs = 0  # inputs that were not bindable where they were

    def run(self, batch: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> list[Any]:
        """Run on ``batch`` (and ``extra`` inputs); the outputs are this shape's buffers."""
        key = shape_key(batch)
        slot = self.slots.get(key)
        if slot is None:
            return self._first_run(batch, extra, key)
        if slot.unbound:
            return self.session.run(self.output_names, {self.input_name: batch, **(extra or {})})
        source = batch
        if not batch.flags.c_contiguous:
            if slot.input is None:
                slot.input = self.allocate(batch.shape, batch.dtype)
            np.copyto(slot.input, batch)
            source = slot.input
            self.copied_inputs += 1
        binding = slot.binding
        # Bound at every run: a GPU provider copies a host input when it is bound, not at run.
        binding.bind_input(
            self.input_name, "cpu", 0, source.dtype, list(source.shape), source.ctypes.data
        )
        slot.input_binds += 1
        # Held until the run is over: ONNX Runtime reads the extra inputs where they are.
        extras = {name: np.ascontiguousarray(value) for name, value in (extra or {}).items()}
        for name, value in extras.items():
            binding.bind_cpu_input(name, value)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as error:  # ONNX Runtime's own types: an output of another shape
            # A graph whose output shapes depend on the data (not the input's shape) cannot
            # write into buffers of fixed shape: this shape runs unbound from now on.
            log.warning("IO binding left off for inputs of shape %s: %s", batch.shape, error)
            slot.unbound = True
            return self.run(batch, extra)
        if self.synchronize:
            binding.synchronize_outputs()
        slot.runs += 1
        return slot.outputs

    def _first_run(
        self, batch: np.ndarray, extra: Mapping[str, np.ndarray] | None, key: ShapeKey
    ) -> list[Any]:
        """Run once unbound to learn the outputs' shapes; allocate and bind them for later."""
        feeds = {self.input_name: batch, **(extra or {})}
        results = self.session.run(self.output_names, feeds)
        binding = self.session.io_binding()
        outputs = []
        for name, result in zip(self.output_names, results, strict=True):
            result = np.asarray(result)
            buffer = self.allocate(result.shape, result.dtype)
            np.copyto(buffer, result)
            binding.bind_output(
                name, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data
            )
            outputs.append(buffer)
        self.slots[key] = _HostSlot(binding, outputs)
        return outputs

    def record(self) -> dict[str, Any]:
        """Return what ``session.json`` says of this binding: runs and input binds per shape."""
        return {
            _shape_text(key): {"runs": slot.runs, "input_binds": slot.input_binds}
            if not slot.unbound
            else {"runs": "session.run (outputs change shape)"}
            for key, slot in self.slots.items()
        }

    def buffers(self, batch_shape: tuple[int, ...], dtype: Any) -> list[np.ndarray] | None:
        """Return the output buffers bound for ``batch_shape`` and ``dtype`` (None: none yet)."""
        slot = self.slots.get((tuple(batch_shape), np.dtype(dtype)))
        return None if slot is None else slot.outputs


@dataclass
class _DeviceSlot:
    """The device buffers of one input shape, its CUDA graph's id, and what its check found."""

    binding: Any
    input: Any  # OrtValue on the device, at a fixed address
    outputs: list[Any]  # OrtValues on the device, at fixed addresses
    run_options: Any
    runs: int = 0
    replays: int = 0  # runs of the graph after its check: the frames it analysed
    #: Why this shape runs on the plain session instead (None: the graph was checked and runs).
    refused: str | None = None


class CudaGraphBinding:
    """Run a CUDA-graph session with device buffers, one graph per input shape, checked.

    A shape whose graph disagrees with ``reference`` beyond :data:`GRAPH_AGREEMENT` runs on
    ``reference`` from then on (:attr:`refusals`). Outputs are new host arrays.
    """

    def __init__(
        self,
        session: Any,
        reference: HostBinding,
        input_name: str,
        output_names: list[str],
        device_id: int,
        *,
        device: str = "cuda",
    ) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.session = session
        self.reference = reference
        self.input_name = input_name
        self.output_names = list(output_names)
        self.device = device
        self.device_id = device_id
        self.slots: dict[tuple[int, ShapeKey], _DeviceSlot] = {}  # by thread and shape

    @property
    def refusals(self) -> dict[str, str]:
        """Why input shapes run without the graph: ``{"1x3x480x640 float32": why}``."""
        return {
            _shape_text(key[1]): slot.refused
            for key, slot in self.slots.items()
            if slot.refused is not None
        }

    @property
    def checked_shapes(self) -> list[list[int]]:
        """The input shapes whose graph was checked against the plain session and runs."""
        shapes = [list(key[1][0]) for key, slot in self.slots.items() if slot.refused is None]
        return [shape for i, shape in enumerate(shapes) if shape not in shapes[:i]]

    @property
    def replays(self) -> dict[str, int]:
        """How many frames each checked shape's graph analysed after its check."""
        counts: dict[str, int] = {}
        for (_, key), slot in self.slots.items():
            if slot.refused is None:
                counts[_shape_text(key)] = counts.get(_shape_text(key), 0) + slot.replays
        return counts

    def run(self, batch: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> list[Any]:
        """Copy ``batch`` to the device, replay this shape's graph, copy the outputs back."""
        if extra:
            raise ValueError("a CUDA graph session takes the image input only")
        key = (threading.get_ident(), shape_key(batch))
        slot = self.slots.get(key)
        if slot is None:
            return self._first_run(batch, key)
        if slot.refused is not None:
            return self.reference.run(batch)
        slot.input.update_inplace(np.ascontiguousarray(batch))  # copied now, into the graph's
        self.session.run_with_iobinding(slot.binding, slot.run_options)
        slot.runs += 1
        slot.replays += 1
        return [value.numpy() for value in slot.outputs]

    def _first_run(self, batch: np.ndarray, key: tuple[int, ShapeKey]) -> list[Any]:
        """Capture this shape's graph on fixed buffers and check it; the batch's outputs."""
        expected = [np.array(value, copy=True) for value in self.reference.run(batch)]
        slot = self._bound_slot(batch, expected, len(self.slots))
        self.slots[key] = slot
        try:
            slot.refused = self._check(slot, batch, expected)
        except Exception as error:  # ONNX Runtime's own types: the capture itself failed
            slot.refused = f"the CUDA graph could not be captured: {error}"
        if slot.refused is not None:
            log.warning("CUDA graph off for inputs of shape %s: %s", batch.shape, slot.refused)
        return expected

    def _bound_slot(self, batch: np.ndarray, expected: list[np.ndarray], graph_id: int) -> Any:
        """Device buffers for the input and every output, bound before any run of the graph."""
        ort = self._ort

        def device_buffer(shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
            return ort.OrtValue.ortvalue_from_shape_and_type(
                list(shape), dtype.type, self.device, self.device_id
            )

        value = device_buffer(batch.shape, batch.dtype)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, value)
        outputs = []
        for name, result in zip(self.output_names, expected, strict=True):
            output = device_buffer(result.shape, result.dtype)
            binding.bind_ortvalue_output(name, output)
            outputs.append(output)
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return _DeviceSlot(binding, value, outputs, options)

    def _check(
        self, slot: _DeviceSlot, batch: np.ndarray, expected: list[np.ndarray]
    ) -> str | None:
        """Run the graph on ``batch`` and on another input; why it is wrong (None: right)."""
        second = distinguishing_input(batch, expected, self.reference.run)
        if second is None:
            return (
                "no second input changed the plain session's outputs, so whether the graph "
                "reads its input could not be checked"
            )
        other, other_expected = second
        for label, data, wanted in (
            ("the first", batch, expected),
            ("a second", other, other_expected),
        ):
            slot.input.update_inplace(np.ascontiguousarray(data))
            self.session.run_with_iobinding(slot.binding, slot.run_options)
            slot.runs += 1
            got = [value.numpy() for value in slot.outputs]
            for name, ours, theirs in zip(self.output_names, got, wanted, strict=True):
                deviation = relative_deviation(ours, theirs)
                if deviation > GRAPH_AGREEMENT:
                    return (
                        f"on {label} input its output {name!r} differed from the plain "
                        f"session's by {deviation:.3g} of the largest value (at most "
                        f"{GRAPH_AGREEMENT} passes)"
                    )
        return None


def _shape_text(key: ShapeKey) -> str:
    """``1x3x480x640 float32``: an input shape as ``session.json`` names it."""
    return f"{'x'.join(map(str, key[0]))} {key[1]}"


def pinned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
    """Return a host array in pinned memory from PyTorch's CUDA allocator; None where it cannot."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    pinned_type = torch_dtype(torch, dtype)
    if pinned_type is None or not torch.cuda.is_available():
        return None  # ordinary memory: a type PyTorch has not (a graph's string output), no GPU
    tensor = torch.empty(tuple(shape), dtype=pinned_type, pin_memory=True)
    array: np.ndarray = tensor.numpy()  # shares the pinned memory; keeps the tensor alive
    return array


def torch_dtype(torch: Any, dtype: Any) -> Any | None:
    """Return PyTorch's type for a numpy type (None: PyTorch has none, e.g. strings)."""
    return {
        np.dtype(np.float32): torch.float32,
        np.dtype(np.float16): torch.float16,
        np.dtype(np.float64): torch.float64,
        np.dtype(np.uint8): torch.uint8,
        np.dtype(np.int8): torch.int8,
        np.dtype(np.int16): torch.int16,
        np.dtype(np.int32): torch.int32,
        np.dtype(np.int64): torch.int64,
        np.dtype(np.bool_): torch.bool,
    }.get(np.dtype(dtype))
