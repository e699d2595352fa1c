"""A double of ONNX Runtime's CUDA (and TensorRT) provider, for every CPU test run.

No GPU is here, and ONNX Runtime's CPU provider makes no copy of a bound input: it reads the
host buffer when the session runs, so code that binds a host input once looks right on the CPU
and analyses one old frame for ever on a GPU (issue 69). This double runs a real CPU session
behind the CUDA provider's semantics where they decide correctness:

* **A bound host input is copied to the device when it is bound** (``IOBinding::BindInput`` ->
  ``CopyOneInputAcrossDevices``; onnxruntime issues #5857, #15438): ``bind_input`` with a
  ``cpu`` address, ``bind_cpu_input`` and ``bind_ortvalue_input`` of a host value copy the
  bytes into new device memory at that moment; writing the host buffer later changes nothing.
* **Device memory is not host memory.** ``OrtValue``s on ``cuda`` live in this module's device
  memory, at addresses of their own; ``update_inplace`` copies host -> device when called and
  ``numpy()`` returns a copy (device outputs are read only through a copy).
* **Outputs bound to host addresses are written during the run** (the device -> host copy at
  the end of ``run_with_iobinding``); outputs bound without a buffer are allocated per run.
* **A CUDA graph** (``enable_cuda_graph = 1``): the first ``run_with_iobinding`` of a
  ``gpu_graph_id`` runs and captures the device addresses bound then; every later run of that
  id replays them, reading the captured input and writing the captured outputs **whatever is
  bound now**. A host input bound to a graph session gets new device memory at each bind, so
  the graph keeps reading the first. Graphs are **per thread** (ONNX Runtime keeps them in the
  CUDA provider's per-thread context): another thread captures its own. Capture is in CUDA's
  global mode: any other thread's run while a capture is under way fails. ``session.run`` on a
  graph session is refused (ONNX Runtime needs IO binding for graphs).
* The provider's list and options: the session answers ``get_providers()`` with the provider
  asked for and ``get_provider_options()`` with its options, as a GPU session does.

What is not modelled: timing, streams, arena memory, TensorRT's engine files, numerical
differences of GPU kernels (the double's outputs are the CPU's, bit for bit, so a test through
it can require equality where a GPU gives only closeness).

:func:`install` patches the ``onnxruntime`` module of this process (a test does it in-process;
``sitecustomize.py`` beside this file does it in every process a session spawns when
``DEEPLABSTREAM_CUDA_DOUBLE`` is set). Knobs, as environment variables or :class:`Knobs`:
``refuse_graph_at_open`` (ONNX Runtime refuses ``enable_cuda_graph`` when nodes fall to the
CPU), ``fail_capture`` (a capture that raises), ``stale_graph`` (a graph captured on a copy of
its input: it never reads a new frame).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ENV = "DEEPLABSTREAM_CUDA_DOUBLE"
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass
class Knobs:
    """How the double misbehaves, as a device can (all off: a healthy GPU)."""

    refuse_graph_at_open: bool = False
    fail_capture: bool = False
    stale_graph: bool = False

    @classmethod
    def from_env(cls, text: str) -> Knobs:
        words = {w.strip() for w in text.replace(",", " ").split()}
        return cls(
            refuse_graph_at_open="refuse-graph" in words,
            fail_capture="fail-capture" in words,
            stale_graph="stale-graph" in words,
        )


@dataclass
class Counters:
    """What the double saw, for tests to assert (per process)."""

    host_copies_at_bind: int = 0
    graph_captures: int = 0
    graph_replays: int = 0
    runs: int = 0
    sessions: list[str] = field(default_factory=list)  # the provider each GPU session ran on


KNOBS = Knobs()
COUNTERS = Counters()


# --- device memory -------------------------------------------------------------------------


class DeviceMemory:
    """The device's allocations: address -> array; addresses never overlap host memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = itertools.count(0x7D00_0000_0000, 0x10_0000)
        self.blocks: dict[int, np.ndarray] = {}

    def allocate(self, shape: tuple[int, ...], dtype: Any) -> int:
        with self._lock:
            address = next(self._next)
            self.blocks[address] = np.zeros(shape, dtype)  # fresh device memory: zeros here
            return address

    def block(self, address: int) -> np.ndarray:
        try:
            return self.blocks[address]
        except KeyError:
            raise RuntimeError(
                f"CUDA error: an illegal memory access (no device allocation at {address:#x})"
            ) from None


DEVICE = DeviceMemory()


def _host_bytes(address: int, shape: list[int] | tuple[int, ...], dtype: Any) -> np.ndarray:
    """A copy of the host memory at ``address`` (what a copy to the device reads)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape)) if len(shape) else 1
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape).copy()


def _write_host(address: int, array: np.ndarray) -> None:
    """Copy ``array`` into host memory at ``address`` (a device -> host copy)."""
    data = np.ascontiguousarray(array)
    ctypes.memmove(address, data.ctypes.data, data.nbytes)


def _numpy_type(element_type: Any) -> np.dtype[Any]:
    """ONNX Runtime's element type argument (a numpy type or dtype) as a numpy dtype."""
    return np.dtype(element_type)


# --- OrtValue ------------------------------------------------------------------------------


class DoubleOrtValue:
    """An ``OrtValue`` on the double's device (``cuda``), or a wrapped host one (``cpu``)."""

    def __init__(self, device: str, address: int = 0, host: Any = None) -> None:
        self._device = device
        self._address = address
        self._host = host  # a real onnxruntime OrtValue on the CPU

    # constructors, as onnxruntime.OrtValue's
    @classmethod
    def ortvalue_from_shape_and_type(
        cls, shape: Any, element_type: Any, device_type: str = "cpu", device_id: int = 0
    ) -> Any:
        if device_type == "cpu":
            return cls("cpu", host=_real_ortvalue().ortvalue_from_shape_and_type(
                shape, element_type, "cpu", device_id))  # fmt: skip
        _check_device(device_type, device_id)
        return cls("cuda", DEVICE.allocate(tuple(shape), _numpy_type(element_type)))

    @classmethod
    def ortvalue_from_numpy(cls, array: Any, device_type: str = "cpu", device_id: int = 0) -> Any:
        if device_type == "cpu":
            return cls("cpu", host=_real_ortvalue().ortvalue_from_numpy(array, "cpu", device_id))
        _check_device(device_type, device_id)
        value = cls("cuda", DEVICE.allocate(np.shape(array), np.asarray(array).dtype))
        value.update_inplace(np.asarray(array))
        return value

    @property
    def on_device(self) -> bool:
        return self._device == "cuda"

    def device_name(self) -> str:
        return self._device

    def data_ptr(self) -> int:
        return self._address if self.on_device else int(self._host.data_ptr())

    def shape(self) -> list[int]:
        return list(DEVICE.block(self._address).shape) if self.on_device else self._host.shape()

    def update_inplace(self, array: np.ndarray) -> None:
        """Copy host -> device now (ONNX Runtime's ``update_inplace``: a synchronous copy)."""
        if not self.on_device:
            self._host.update_inplace(array)
            return
        block = DEVICE.block(self._address)
        source = np.asarray(array)
        if source.shape != block.shape or source.dtype != block.dtype:
            raise RuntimeError(
                f"update_inplace: {source.shape} {source.dtype} into {block.shape} {block.dtype}"
            )
        np.copyto(block, source)

    def numpy(self) -> np.ndarray:
        """A host copy of the value (device memory is never handed out as a host array)."""
        if not self.on_device:
            return np.asarray(self._host.numpy())
        return DEVICE.block(self._address).copy()

    def device_array(self) -> np.ndarray:
        """The device block itself (the double's kernels read and write it)."""
        return DEVICE.block(self._address)


def _check_device(device_type: str, device_id: int) -> None:
    if device_type != "cuda":
        raise RuntimeError(f"the CUDA double has no {device_type!r} device")
    if device_id != 0:
        raise RuntimeError(f"CUDA error: invalid device ordinal {device_id} (one GPU)")


# --- IO binding ----------------------------------------------------------------------------


@dataclass
class _Output:
    """Where an output goes: a host address, a device value, or allocated at each run."""

    device: str  # "cpu" or "cuda"
    address: int | None = None
    value: DoubleOrtValue | None = None


class DoubleIOBinding:
    """``onnxruntime.IOBinding`` with the CUDA provider's copy semantics."""

    def __init__(self, session: DoubleSession) -> None:
        self._session = session
        self.inputs: dict[str, DoubleOrtValue] = {}  # each on the device
        self.outputs: dict[str, _Output] = {}
        self.produced: list[DoubleOrtValue] = []

    # inputs: a host source is copied to new device memory *now*
    def bind_input(
        self,
        name: str,
        device_type: str,
        device_id: int,
        element_type: Any,
        shape: Any,
        buffer_ptr: int,
    ) -> None:
        if device_type == "cpu":
            self._copy_to_device(name, _host_bytes(buffer_ptr, list(shape), element_type))
            return
        _check_device(device_type, device_id)
        block = DEVICE.block(buffer_ptr)
        if list(block.shape) != list(shape):
            raise RuntimeError(f"bind_input {name!r}: shape {shape} at a {block.shape} block")
        self.inputs[name] = DoubleOrtValue("cuda", buffer_ptr)

    def bind_cpu_input(self, name: str, array: np.ndarray) -> None:
        self._copy_to_device(name, np.array(array, copy=True))

    def bind_ortvalue_input(self, name: str, value: Any) -> None:
        if isinstance(value, DoubleOrtValue) and value.on_device:
            self.inputs[name] = value
        else:
            self._copy_to_device(name, np.array(value.numpy(), copy=True))

    def _copy_to_device(self, name: str, data: np.ndarray) -> None:
        value = DoubleOrtValue("cuda", DEVICE.allocate(data.shape, data.dtype))
        np.copyto(value.device_array(), data)
        self.inputs[name] = value
        COUNTERS.host_copies_at_bind += 1

    # outputs
    def bind_output(
        self,
        name: str,
        device_type: str = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: Any = None,
        buffer_ptr: int | None = None,
    ) -> None:
        if device_type != "cpu":
            _check_device(device_type, device_id)
            if buffer_ptr is not None:
                self.outputs[name] = _Output("cuda", value=DoubleOrtValue("cuda", buffer_ptr))
                return
        self.outputs[name] = _Output(device_type, address=buffer_ptr)

    def bind_ortvalue_output(self, name: str, value: Any) -> None:
        if not (isinstance(value, DoubleOrtValue) and value.on_device):
            raise RuntimeError("the CUDA double binds device OrtValues as outputs")
        self.outputs[name] = _Output("cuda", value=value)

    def synchronize_inputs(self) -> None:
        """Nothing to wait for: the double's copies are done when made."""

    def synchronize_outputs(self) -> None:
        """Nothing to wait for: the double's copies are done when made."""

    def get_outputs(self) -> list[DoubleOrtValue]:
        return list(self.produced)

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [value.numpy() for value in self.produced]

    def clear_binding_inputs(self) -> None:
        self.inputs.clear()

    def clear_binding_outputs(self) -> None:
        self.outputs.clear()


# --- the session ---------------------------------------------------------------------------


@dataclass
class _Graph:
    """A captured CUDA graph: the device blocks it reads and writes, for ever."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


_CAPTURE = threading.Lock()  # held while any thread captures (CUDA's global capture mode)
_CAPTURING: dict[str, int | None] = {"thread": None}


class DoubleSession:
    """An ``InferenceSession`` on the double's CUDA or TensorRT provider (a real CPU session)."""

    def __init__(
        self,
        path_or_bytes: Any,
        sess_options: Any = None,
        providers: Any = None,
        provider_options: Any = None,
        **kwargs: Any,
    ) -> None:
        names = [p if isinstance(p, str) else p[0] for p in providers or []]
        options = list(provider_options or [{} for _ in names])
        self._provider = next(n for n in names if n in GPU_PROVIDERS)
        self._options = {
            n: {str(k): str(v) for k, v in o.items()}
            for n, o in zip(names, options, strict=False)
            if n in GPU_PROVIDERS
        }
        cuda = self._options.get("CUDAExecutionProvider", {})
        self.graph_mode = cuda.get("enable_cuda_graph") == "1" and self._provider == names[0]
        if self.graph_mode and KNOBS.refuse_graph_at_open:
            raise REAL.capi.onnxruntime_pybind11_state.Fail(
                "[ONNXRuntimeError] : 1 : FAIL : This session cannot use the graph capture "
                "feature as requested by the user as the model has control flow nodes or "
                "nodes assigned to the CPU (the CUDA double's refuse-graph knob)"
            )
        self._real = REAL.InferenceSession(
            path_or_bytes, sess_options, providers=["CPUExecutionProvider"], **kwargs
        )
        self._graphs: dict[tuple[int, str], _Graph] = {}
        COUNTERS.sessions.append(self._provider)

    # what a GPU session answers
    def get_providers(self) -> list[str]:
        return [self._provider, *(
            ["CUDAExecutionProvider"] if self._provider == "TensorrtExecutionProvider" else []
        ), "CPUExecutionProvider"]  # fmt: skip

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {**self._options, "CPUExecutionProvider": {}}

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def get_outputs(self) -> Any:
        return self._real.get_outputs()

    def get_modelmeta(self) -> Any:
        return self._real.get_modelmeta()

    def get_session_options(self) -> Any:
        return self._real.get_session_options()

    def io_binding(self) -> DoubleIOBinding:
        return DoubleIOBinding(self)

    def run(self, output_names: Any, input_feed: dict[str, Any], run_options: Any = None) -> Any:
        """A plain run: the feeds are copied to the device now, the outputs back to the host."""
        if self.graph_mode:
            raise RuntimeError(
                "the CUDA double: a session with enable_cuda_graph runs through IO binding"
            )
        _refuse_while_another_thread_captures()
        feeds = {name: np.array(value, copy=True) for name, value in input_feed.items()}
        COUNTERS.runs += 1
        return self._real.run(output_names, feeds, run_options)

    def run_with_iobinding(self, binding: DoubleIOBinding, run_options: Any = None) -> None:
        _refuse_while_another_thread_captures()
        COUNTERS.runs += 1
        if not self.graph_mode:
            self._run_bound(binding, {n: v.device_array() for n, v in binding.inputs.items()})
            return
        graph_id = run_options.get_run_config_entry("gpu_graph_id") if run_options else "0"
        key = (threading.get_ident(), graph_id or "0")
        graph = self._graphs.get(key)
        if graph is None:
            self._capture(key, binding)
            return
        COUNTERS.graph_replays += 1
        results = self._compute(graph.inputs)
        for name, block in graph.outputs.items():  # the captured blocks, not what is bound now
            np.copyto(block, results[name], casting="unsafe")
        binding.produced = [DoubleOrtValue("cuda", _address_of(b)) for b in graph.outputs.values()]

    def _capture(self, key: tuple[int, str], binding: DoubleIOBinding) -> None:
        """The first run of a graph id on this thread: run, and capture the bound addresses."""
        with _CAPTURE:
            _CAPTURING["thread"] = threading.get_ident()
            try:
                if KNOBS.fail_capture:
                    raise REAL.capi.onnxruntime_pybind11_state.Fail(
                        "CUDA failure 900: operation not permitted when stream is capturing "
                        "(the CUDA double's fail-capture knob)"
                    )
                missing = [n for n, o in binding.outputs.items() if o.value is None]
                if missing:
                    raise REAL.capi.onnxruntime_pybind11_state.Fail(
                        f"graph capture needs device outputs bound before it; {missing} are not"
                    )
                inputs = {n: v.device_array() for n, v in binding.inputs.items()}
                if KNOBS.stale_graph:
                    inputs = {n: a.copy() for n, a in inputs.items()}
                outputs = {
                    n: o.value.device_array() for n, o in binding.outputs.items() if o.value
                }
                self._run_bound(binding, inputs)
                self._graphs[key] = _Graph(inputs, outputs)
                COUNTERS.graph_captures += 1
            finally:
                _CAPTURING["thread"] = None

    def _compute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._real.get_outputs()]
        results = self._real.run(names, {n: a.copy() for n, a in inputs.items()})
        return dict(zip(names, results, strict=True))

    def _run_bound(self, binding: DoubleIOBinding, inputs: dict[str, np.ndarray]) -> None:
        """Run on the device inputs; write every bound output where it was bound."""
        missing = [i.name for i in self._real.get_inputs() if i.name not in inputs]
        if missing:
            raise RuntimeError(f"the CUDA double: inputs {missing} are not bound")
        results = self._compute(inputs)
        produced = []
        for name in binding.outputs or dict.fromkeys(results):
            result = np.asarray(results[name])
            target = binding.outputs.get(name, _Output("cpu"))
            if target.value is not None:  # a device output bound before the run
                np.copyto(target.value.device_array(), result, casting="unsafe")
                produced.append(target.value)
            elif target.device == "cpu" and target.address is not None:
                _write_host(target.address, result)  # the device -> host copy of the run
                produced.append(DoubleOrtValue("cpu", host=_real_ortvalue().ortvalue_from_numpy(
                    result.copy())))  # fmt: skip
            else:  # allocated by the run, where it was asked for
                value = DoubleOrtValue.ortvalue_from_numpy(result, target.device)
                produced.append(value)
        binding.produced = produced


def _real_ortvalue() -> Any:
    """ONNX Runtime's own ``OrtValue`` (the module's attribute is the double's once installed)."""
    return _SAVED.get("OrtValue") or REAL.OrtValue


def _address_of(block: np.ndarray) -> int:
    for address, candidate in DEVICE.blocks.items():
        if candidate is block:
            return address
    raise RuntimeError("the CUDA double lost a captured block")


def _refuse_while_another_thread_captures() -> None:
    capturing = _CAPTURING["thread"]
    if capturing is not None and capturing != threading.get_ident():
        raise REAL.capi.onnxruntime_pybind11_state.Fail(
            "CUDA failure 900: operation not permitted when stream is capturing "
            "(another thread is capturing a CUDA graph; global capture mode)"
        )


# --- installing it -------------------------------------------------------------------------

REAL: Any = None  # the real onnxruntime module, once installed
_SAVED: dict[str, Any] = {}


def _session_factory(path_or_bytes: Any, sess_options: Any = None, providers: Any = None,
                     provider_options: Any = None, **kwargs: Any) -> Any:  # fmt: skip
    """``onnxruntime.InferenceSession``: the double for a GPU provider, the real one otherwise."""
    names = [p if isinstance(p, str) else p[0] for p in providers or []]
    if any(name in GPU_PROVIDERS for name in names):
        return DoubleSession(path_or_bytes, sess_options, providers, provider_options, **kwargs)
    return _SAVED["InferenceSession"](
        path_or_bytes, sess_options, providers=providers, provider_options=provider_options,
        **kwargs,
    )  # fmt: skip


def install(knobs: Knobs | None = None) -> None:
    """Make this process's ``onnxruntime`` answer as onnxruntime-gpu on a GPU (see above)."""
    global REAL
    import onnxruntime

    REAL = onnxruntime
    KNOBS.__dict__.update((knobs or Knobs()).__dict__)
    if _SAVED:
        return
    available = list(onnxruntime.get_available_providers())
    for name in ("InferenceSession", "OrtValue", "get_available_providers", "get_device"):
        _SAVED[name] = getattr(onnxruntime, name)
    _SAVED["preload_dlls"] = getattr(onnxruntime, "preload_dlls", None)
    onnxruntime.InferenceSession = _session_factory  # type: ignore[assignment]
    onnxruntime.OrtValue = DoubleOrtValue  # type: ignore[assignment,misc]
    onnxruntime.get_available_providers = lambda: [*GPU_PROVIDERS, *available]
    onnxruntime.get_device = lambda: "GPU"
    onnxruntime.preload_dlls = lambda *args, **kwargs: None  # the libraries "load"


def uninstall() -> None:
    """Give this process its real ``onnxruntime`` back."""
    if not _SAVED or REAL is None:
        return
    for name, value in _SAVED.items():
        if value is not None:
            setattr(REAL, name, value)
    _SAVED.clear()
    KNOBS.__dict__.update(Knobs().__dict__)


def install_from_env() -> bool:
    """Install when ``DEEPLABSTREAM_CUDA_DOUBLE`` is set (its words are the knobs)."""
    text = os.environ.get(ENV)
    if text is None:
        return False
    install(Knobs.from_env(text))
    return True
