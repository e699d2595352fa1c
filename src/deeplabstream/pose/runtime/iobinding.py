"""ONNX Runtime IO binding: the network's buffers allocated once per input shape, then reused.

``InferenceSession.run`` takes numpy inputs and returns new numpy outputs: each call allocates
every output (and, on a GPU, copies the input from wherever it is). Bound instead:

:class:`HostBinding` (the CPU provider; CUDA and TensorRT without a CUDA graph)
    The input is bound where the pre-processing wrote it (its buffer, allocated once by the
    :class:`~pose.runtime.preprocess.Preprocessor`; on a GPU in pinned host memory when it can
    be had, :func:`pinned_empty`), so writing the frame into that buffer is the only host copy;
    ONNX Runtime copies it to the GPU itself. The outputs are host arrays allocated on the
    first call of each input shape and bound by address: ONNX Runtime writes into them (on the
    CPU directly, from the GPU by one copy). An input that is not contiguous, or of another
    type, is first copied into a buffer of its shape (allocated once).
:class:`CudaGraphBinding` (CUDA with ``enable_cuda_graph``)
    Input and outputs live on the GPU at fixed addresses (a CUDA graph replays kernels on the
    addresses it captured): the host input is copied into the device input
    (``OrtValue.update_inplace``) and the outputs copied back after the run. Each input shape
    gets its own graph (``gpu_graph_id``). Never run on a GPU here (docs/gpu.md).

The outputs returned are the bound buffers themselves: **valid until the next run** of the same
shape (the estimator decodes them at once; a caller keeping them copies).

A new input shape (another batch size, another crop size) gets new buffers; the buffers of
earlier shapes are kept for when that shape comes back (a few: batch sizes and rounded crops).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    bound_address: int = 0  # the input's address last bound (rebound only when it changes)
    unbound: bool = False  # outputs whose shape changes from run to run: session.run instead


class HostBinding:
    """Run a session through IO binding with host buffers (see the module's notes).

    Parameters
    ----------
    session
        An open ``onnxruntime.InferenceSession``.
    input_name, output_names
        The image input, and the outputs returned, in order.
    allocate
        Makes a host array of a shape and type (pinned memory on a GPU); ``numpy.empty`` by
        default.
    synchronize
        Wait for the outputs after each run (a GPU provider; the CPU's are written when the
        run returns).
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
        address = source.ctypes.data
        if address != slot.bound_address:  # the pre-processing's buffer: bound once
            binding.bind_input(self.input_name, "cpu", 0, source.dtype, list(source.shape), address)
            slot.bound_address = address
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

    def buffers(self, batch_shape: tuple[int, ...], dtype: Any) -> list[np.ndarray] | None:
        """Return the output buffers bound for ``batch_shape`` and ``dtype`` (None: none yet)."""
        slot = self.slots.get((tuple(batch_shape), np.dtype(dtype)))
        return None if slot is None else slot.outputs


@dataclass
class _DeviceSlot:
    """The device buffers of one input shape, and its CUDA graph's id."""

    binding: Any
    input: Any  # OrtValue on the GPU
    outputs: list[Any]  # OrtValues on the GPU, after the first run
    run_options: Any
    runs: int = 0


class CudaGraphBinding:
    """Run a CUDA-graph session with device buffers, one graph per input shape.

    Never run on a GPU here: written to ONNX Runtime's documented use (device ``OrtValue`` objects
    bound once, ``update_inplace`` for each new input, ``gpu_graph_id`` per shape).
    """

    def __init__(self, session: Any, input_name: str, output_names: list[str], device_id: int):
        import onnxruntime as ort

        self._ort = ort
        self.session = session
        self.input_name = input_name
        self.output_names = list(output_names)
        self.device_id = device_id
        self.slots: dict[ShapeKey, _DeviceSlot] = {}

    def run(self, batch: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> list[Any]:
        """Copy ``batch`` to the GPU, replay this shape's graph, copy the outputs back."""
        if extra:
            raise ValueError("a CUDA graph session takes the image input only")
        key = shape_key(batch)
        slot = self.slots.get(key)
        if slot is None:
            slot = self._new_slot(batch, key)
        slot.input.update_inplace(np.ascontiguousarray(batch))
        self.session.run_with_iobinding(slot.binding, slot.run_options)
        slot.runs += 1
        if not slot.outputs:  # the first (regular) run: ONNX Runtime allocated the outputs
            results = [value.numpy() for value in slot.binding.get_outputs()]
            # Outputs of fixed address from now on: the graph is captured on a later run.
            slot.outputs = self._bind_fixed_outputs(slot, results)
            return results
        return [value.numpy() for value in slot.outputs]

    def _new_slot(self, batch: np.ndarray, key: ShapeKey) -> _DeviceSlot:
        ort = self._ort
        value = ort.OrtValue.ortvalue_from_shape_and_type(
            list(batch.shape), batch.dtype.type, "cuda", self.device_id
        )
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda", self.device_id)
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(len(self.slots)))
        slot = _DeviceSlot(binding, value, [], options)
        self.slots[key] = slot
        return slot

    def _bind_fixed_outputs(self, slot: _DeviceSlot, results: list[np.ndarray]) -> list[Any]:
        """Device outputs shaped as the first run's, bound at fixed addresses for the capture."""
        fixed = []
        for name, result in zip(self.output_names, results, strict=True):
            own = self._ort.OrtValue.ortvalue_from_shape_and_type(
                list(result.shape), result.dtype.type, "cuda", self.device_id
            )
            slot.binding.bind_ortvalue_output(name, own)
            fixed.append(own)
        return fixed


def pinned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
    """Return a host array in page-locked (pinned) memory, from PyTorch's CUDA allocator.

    None when PyTorch with CUDA is not installed or sees no GPU: the caller uses ordinary
    memory (copies to the GPU then go through a staging buffer of the driver). Never run on a
    GPU here.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    tensor = torch.empty(
        tuple(shape), dtype=_TORCH_TYPES[np.dtype(dtype).str](torch), pin_memory=True
    )
    array: np.ndarray = tensor.numpy()  # shares the pinned memory; keeps the tensor alive
    return array


_TORCH_TYPES = {
    np.dtype(np.float32).str: lambda torch: torch.float32,
    np.dtype(np.float16).str: lambda torch: torch.float16,
    np.dtype(np.uint8).str: lambda torch: torch.uint8,
}
