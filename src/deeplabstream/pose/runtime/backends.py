"""Inference backends: run a model's network on a prepared batch.

Design: docs/pose-internals.md, "pose.runtime.backends".
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Protocol, Self

import numpy as np

from deeplabstream.core.plugins import PluginError, Registry
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import build_torch_module, format_of_description
from deeplabstream.pose.runtime.iobinding import CudaGraphBinding, HostBinding, pinned_empty
from deeplabstream.pose.runtime.providers import (
    TF32_OVERRIDE,
    DeviceName,
    ProviderPlan,
    device_problem,
    provider_plan,
    providers_record,
)
from deeplabstream.pose.runtime.torch_device import (
    CudaGraphRunner,
    TorchPlacement,
    place_input,
    place_module,
    torch_placement,
)
from deeplabstream.pose.runtime.trt_cache import (
    BuildProgress,
    PreparedCache,
    cache_root,
    gpu_info,
    make_key,
    prepare_cache,
    tensorrt_version,
)

WARM_UP_RUNS = 3

#: Whether the pool threads of ONNX Runtime sessions opened from now on in this process spin
#: when idle (:func:`set_idle_threads_spin`); they sleep unless the process says otherwise.
_IDLE_THREADS_SPIN = {"spin": False}


#: Whether the GPU sessions opened from now on in this process run through a CUDA graph
#: (:func:`set_cuda_graph`); off unless the process says otherwise.
_CUDA_GRAPH = {"on": False}


def set_cuda_graph(on: bool) -> None:
    """Run the CUDA sessions and PyTorch modules this process opens next through a CUDA graph."""
    _CUDA_GRAPH["on"] = on


def set_idle_threads_spin(spin: bool) -> None:
    """Let the idle pool threads of the ONNX Runtime sessions this process opens next spin."""
    _IDLE_THREADS_SPIN["spin"] = spin


class InferenceBackend(Protocol):
    """A network ready to run.

    ``provider`` says what runs it (``CPUExecutionProvider``, ``torch cuda:0``).
    """

    provider: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the network on (N, C, H, W) input; outputs in ``description.output_names`` order.

        The outputs may be buffers reused by the next run: a caller that keeps them copies them.
        """
        ...

    def warm_up(self, batch_size: int | None = None) -> None:
        """Run a few dummy batches so that the first real frame is not slow."""
        ...

    def close(self) -> None:
        """Release the session or module (and its device memory)."""
        ...


def open_backend(
    description: ModelDescription,
    backend: str = "onnxruntime",
    device: DeviceName = "cpu",
    threads: int = 1,
) -> InferenceBackend:
    """Open the network of ``description`` on a backend and device.

    ``backend``: ``onnxruntime``, ``pytorch``, ``openvino`` (CPU only) or an installed package's
    (:data:`BACKENDS`); ``threads``: CPU threads of one inference. Raises ModelError for a missing
    or wrong file or an unavailable device, saying what is needed.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    path = Path(description.model_file)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        kind = BACKENDS.get(backend)
    except PluginError as error:  # unknown, or an installed backend that does not import
        raise ModelError(str(error)) from None
    if device not in kind.devices:
        advice = "" if backend == "onnxruntime" else "; onnxruntime runs on cuda and tensorrt too"
        raise ModelError(
            f"the {backend} backend runs on {' or '.join(kind.devices)}, not {device!r}{advice}"
        )
    return kind.open(description, device, threads)


#: ONNX Runtime's execution providers by the ``[Pose] DEVICE`` that asks for them.
_PROVIDER_DEVICES: tuple[tuple[str, DeviceName], ...] = (
    ("CUDAExecutionProvider", "cuda"),
    ("TensorrtExecutionProvider", "tensorrt"),
    ("DmlExecutionProvider", "directml"),
    ("CoreMLExecutionProvider", "coreml"),
)


def second_graph_device(backend: Any) -> DeviceName:
    """Return where a model's second ONNX graph runs, beside the first one's opened ``backend``.

    On the first network's provider when that is ONNX Runtime; beside another backend, on ONNX
    Runtime's CPU provider (always installed, where the CUDA one may not be).
    """
    provider = str(getattr(backend, "provider", ""))
    return next((device for name, device in _PROVIDER_DEVICES if provider == name), "cpu")


def second_graph_threads(backend: Any) -> int:
    """Return the CPU threads of a second graph: the first one's ONNX Runtime session's, else 1."""
    session = getattr(backend, "_session", None)
    if session is not None and hasattr(session, "get_session_options"):
        return max(1, int(session.get_session_options().intra_op_num_threads))
    return 1


def providers_of(backend: Any) -> dict[str, Any] | None:
    """Return what ``session.json`` records of a backend's providers and options (or None)."""
    inner = getattr(backend, "backend", None)
    record = getattr(backend, "providers", None)
    if record is None and inner is not None:
        return providers_of(inner)
    return record if isinstance(record, dict) else None


def _dummy_batch(description: ModelDescription, batch_size: int | None) -> np.ndarray:
    n = description.batch_size or batch_size or 1
    return np.zeros(description.input_shape(n), description.input_dtype)


class OnnxRuntimeBackend:
    """An ONNX Runtime session, built once, run through IO binding.

    ``device``: ``cpu``, ``cuda``, ``tensorrt``, ``directml`` or ``coreml``
    (:func:`pose.runtime.providers.provider_plan`). ``allow_spinning`` and ``cuda_graph`` None
    follow the process settings; ``io_binding=False`` runs ``session.run`` (for comparison).
    ``providers`` is what ``session.json`` records.
    """

    name: ClassVar[str] = "onnxruntime"
    devices: ClassVar[tuple[DeviceName, ...]] = ("cpu", "cuda", "tensorrt", "directml", "coreml")

    @classmethod
    def open(cls, description: ModelDescription, device: DeviceName, threads: int) -> Self:
        """Open the model's session on ``device`` (the registry's way in)."""
        return cls(description, device, threads)

    def __init__(
        self,
        description: ModelDescription,
        device: DeviceName,
        threads: int,
        *,
        allow_spinning: bool | None = None,
        io_binding: bool = True,
        progress: Callable[[str], None] | None = None,
        cuda_graph: bool | None = None,
    ) -> None:
        import onnxruntime as ort  # heavy: imported when this backend opens

        path = Path(description.model_file)
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: the onnxruntime backend needs an .onnx file")
        # A provider missing from this build, or CUDA/cuDNN libraries missing: refused, named.
        problem = device_problem(device)
        if problem is not None:
            raise ModelError(f"{path}: {problem}")
        self._description = description
        self._progress = progress
        self._cache: PreparedCache | None = None
        self._build_s: float | None = None
        self._input_memory = "host memory (numpy)"
        self._cuda_graph = _CUDA_GRAPH["on"] if cuda_graph is None else cuda_graph
        plan = self._plan(description, device, ort.__version__)
        _fp32_engines_without_tf32(plan, description)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if device == "directml":  # DirectML needs these (ONNX Runtime's documentation)
            options.enable_mem_pattern = False
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads sleep unless the worker has cores of its own. Spinning keeps a
        # core busy between the network's layers and between frames; on a small machine shared
        # with capture and recording it takes the CPU from them and from the pool's other
        # threads. Sleeping costs a wake-up per layer, which on a virtual machine can take the
        # second thread's gain (core.priority.inference_pool_may_spin; the outputs are the same).
        if allow_spinning is None:
            allow_spinning = _IDLE_THREADS_SPIN["spin"]
        self.idle_threads_spin = allow_spinning
        spinning = "1" if allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        self._session, self._plan_used = self._open_session(ort, path, options, plan)
        # ONNX Runtime drops a provider whose libraries fail to load, with only a warning.
        running = self._session.get_providers()
        if not running or running[0] != plan.main:
            self._session = None
            raise ModelError(
                f"{path}: {plan.main} is installed but did not start (running {running}); "
                f"{device_problem(device) or 'its libraries did not load'}"
            )
        self.provider: str = running[0]
        self._input_name = description.input_name
        self._output_names = list(description.output_names)
        self._check_names(path)
        device_id = int(self._plan_used.providers[0][1].get("device_id", 0))
        self._binding: HostBinding | CudaGraphBinding | None = None
        self._reference: Any = None  # a CUDA graph's plain session, its check and fall-back
        if self.provider == "CUDAExecutionProvider" and _asks_cuda_graph(self._plan_used):
            plain = self._plan_used.without("enable_cuda_graph")
            self._reference, _ = self._open_session(ort, path, options, plain)
            self._binding = CudaGraphBinding(
                self._session,
                self._host_binding(self._reference),
                self._input_name,
                self._output_names,
                device_id,
            )
        elif io_binding:
            self._binding = self._host_binding(self._session)

    def _host_binding(self, session: Any) -> HostBinding:
        """Bind ``session``'s input where the pre-processing writes it, outputs in host buffers."""
        return HostBinding(
            session,
            self._input_name,
            self._output_names,
            self.host_buffer,
            synchronize=self.provider != "CPUExecutionProvider",
        )

    def _plan(self, description: ModelDescription, device: str, ort_version: str) -> ProviderPlan:
        """Return the providers and options; for TensorRT, make its cache folder ready first."""
        if device != "tensorrt":
            return provider_plan(description, device, cuda_graph=self._cuda_graph)
        key = make_key(description, gpu_info(), tensorrt_version(), ort_version)
        model_file = Path(description.model_file)
        self._cache = prepare_cache(cache_root(model_file), model_file, key)
        folder = str(self._cache.folder) if self._cache.folder is not None else None
        return provider_plan(
            description, device, trt_cache_folder=folder, cache_note=self._cache.reason
        )

    def _open_session(
        self, ort: Any, path: Path, options: Any, plan: ProviderPlan
    ) -> tuple[Any, ProviderPlan]:
        """Open the session; a CUDA graph the graph cannot take is left off (and noted)."""
        try:
            with self._build_progress(path):
                session = ort.InferenceSession(
                    str(path), options, providers=plan.names(), provider_options=plan.options()
                )
        except Exception as error:  # ORT raises its own Fail, InvalidGraph, ... types
            if _asks_cuda_graph(plan):
                # Some nodes run on the CPU, or the graph has data-dependent shapes.
                retry = plan.without("enable_cuda_graph")
                retry.notes.append(f"enable_cuda_graph off: ONNX Runtime refused it ({error})")
                return self._open_session(ort, path, options, retry)
            raise ModelError(f"{path}: ONNX Runtime cannot open it: {error}") from error
        if _asks_cuda_graph(plan) and len(session.get_inputs()) > 1:
            retry = plan.without("enable_cuda_graph")
            retry.notes.append("enable_cuda_graph off: the graph takes more than the image")
            return self._open_session(ort, path, options, retry)
        return session, plan

    def _build_progress(self, path: Path) -> contextlib.AbstractContextManager[Any]:
        """Return a TensorRT build's progress lines around a block; nothing for the others."""
        if self._cache is None:
            return contextlib.nullcontext()
        return BuildProgress(path.name, self._cache.state, callback=self._progress)

    def host_buffer(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Return a host array for the network's input: pinned memory on a GPU where it can be."""
        if self.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            pinned = pinned_empty(shape, dtype)
            if pinned is not None:
                self._input_memory = "pinned host memory (torch's allocator)"
                return pinned
            self._input_memory = "pageable host memory (no CUDA build of torch for pinned)"
        return np.empty(shape, dtype)

    @property
    def providers(self) -> dict[str, Any]:
        """What ``session.json`` records about the providers (see the class's attributes)."""
        if self._session is None:
            return {}
        extra: dict[str, Any] = {}
        if isinstance(self._binding, CudaGraphBinding):
            path = "cuda-graph"
            binding = (
                "device buffers, each frame copied into the input by update_inplace; CUDA graph "
                "per input shape and thread, each checked against a plain run"
            )
            extra["cuda_graph"] = {
                "checked_shapes": self._binding.checked_shapes,
                "refused": self._binding.refusals,
                "replays": self._binding.replays,
                "fallback_runs": self._binding.reference.record(),
            }
        elif self._binding is not None:
            path = "bound-per-run"
            binding = "input bound at every run; host output buffers allocated once per shape"
            unbound = [list(key[0]) for key, slot in self._binding.slots.items() if slot.unbound]
            if unbound:  # outputs whose shape changes with the data (pose.runtime.iobinding)
                binding += f"; off for inputs of shape {unbound} (outputs change shape)"
            extra["runs"] = self._binding.record()
        else:
            path, binding = "session-run", "off (session.run)"
        extra |= {
            "input_path": path,
            "io_binding": binding,
            "input_memory": self._input_memory,
            "idle_threads": "spin" if self.idle_threads_spin else "sleep",
        }
        if self._cache is not None:
            extra["tensorrt_cache"] = self._cache.record() | {"build_s": self._build_s}
        return providers_record(self._plan_used, self._session, extra)

    def _check_names(self, path: Path) -> None:
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if self._input_name not in inputs:
            raise ModelError(f"{path}: no input named {self._input_name!r} (has {inputs})")
        unknown = [n for n in self._output_names if n not in outputs]
        if unknown:
            raise ModelError(f"{path}: no outputs named {unknown} (has {outputs})")

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the session; through IO binding the outputs are buffers valid until the next run."""
        if self._binding is not None:
            return self._binding.run(batch)
        return self._session.run(self._output_names, {self._input_name: batch})

    def run_with(self, batch: np.ndarray, extra: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run a graph with more inputs than the image (a crop graph's channel gates)."""
        if isinstance(self._binding, HostBinding):
            return self._binding.run(batch, extra)
        return self._session.run(self._output_names, {self._input_name: batch, **extra})

    def warm_up_with(self, extra: Mapping[str, np.ndarray]) -> None:
        """:meth:`warm_up` for a graph that takes ``extra`` inputs too."""
        dummy = _dummy_batch(self._description, 1)
        with self._build_progress(Path(self._description.model_file)) as progress:
            for _ in range(WARM_UP_RUNS):
                self.run_with(dummy, extra)
        self._warmed(progress)

    def warm_up(self, batch_size: int | None = None) -> None:
        """Run a few batches of zeros; under TensorRT the first builds (or loads) the engine."""
        dummy = _dummy_batch(self._description, batch_size)
        with self._build_progress(Path(self._description.model_file)) as progress:
            for _ in range(WARM_UP_RUNS):
                self.run(dummy)
        self._warmed(progress)

    def _warmed(self, progress: Any) -> None:
        """After a warm-up: a TensorRT cache's build is finished and may be reused."""
        if self._cache is not None:
            self._build_s = getattr(progress, "elapsed_s", None)
            self._cache.mark_complete(self._build_s or 0.0)

    def close(self) -> None:
        """Drop the session and its buffers."""
        self._binding = None
        self._session = None
        self._reference = None


def _fp32_engines_without_tf32(plan: ProviderPlan, description: ModelDescription) -> None:
    """Keep TensorRT from building fp32 engines with TF32 (its default), unless the user set it."""
    # TensorRT has no ONNX Runtime option for it; NVIDIA_TF32_OVERRIDE=0 turns TF32 off in its
    # builder (and in cuBLAS and cuDNN) for the whole process.
    if plan.main == "TensorrtExecutionProvider" and description.precision == "fp32":
        os.environ.setdefault(TF32_OVERRIDE, "0")


def _asks_cuda_graph(plan: ProviderPlan) -> bool:
    """Return True when the plan's first provider is CUDA with a CUDA graph."""
    name, options = plan.providers[0]
    return name == "CUDAExecutionProvider" and options.get("enable_cuda_graph") == "1"


def device_check(backend: str, device: str) -> str | None:
    """Why ``[Pose] BACKEND`` cannot run on ``[Pose] DEVICE`` here; None when it can (cheap)."""
    try:
        kind = BACKENDS.get(backend)
    except PluginError as error:
        return str(error)
    if device not in kind.devices:
        advice = "" if backend == "onnxruntime" else "; onnxruntime runs on cuda and tensorrt too"
        return f"the {backend} backend runs on {' or '.join(kind.devices)}, not {device!r}{advice}"
    if backend == "onnxruntime":
        return device_problem(device)
    if backend == "pytorch" and device == "cuda":
        try:
            torch_placement("cuda", "fp32")
        except ModelError as error:
            return str(error)
    return None


OPENVINO_INSTALL = "pip install -r requirements-openvino.txt"


class OpenVinoBackend:
    """The ONNX graph compiled by OpenVINO for the CPU, once, with dynamic input sizes.

    Precision is pinned to f32: on CPUs with bf16 or AMX units OpenVINO would run bf16.
    """

    name: ClassVar[str] = "openvino"
    devices: ClassVar[tuple[DeviceName, ...]] = ("cpu",)

    @classmethod
    def open(cls, description: ModelDescription, device: DeviceName, threads: int) -> Self:
        """Compile the model for the CPU (the registry's way in; ``device`` is ``cpu``)."""
        return cls(description, threads)

    def __init__(self, description: ModelDescription, threads: int) -> None:
        try:
            import openvino  # optional (requirements-openvino.txt)
        except ImportError:
            raise ModelError(
                f"[Pose] BACKEND = openvino needs the optional `openvino` package, which is not "
                f"installed: `{OPENVINO_INSTALL}` (or choose BACKEND = onnxruntime)"
            ) from None
        path = Path(description.model_file)
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: the openvino backend needs an .onnx file")
        core = openvino.Core()
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,  # one frame at a time, as fast as it can: the latency mode
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        try:
            self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as error:  # OpenVINO raises RuntimeError and its own types
            raise ModelError(f"{path}: OpenVINO cannot compile it: {error}") from error
        self._request = self._compiled.create_infer_request()
        self._description = description
        self.provider = f"openvino {openvino.__version__.split('-')[0]} CPU"
        self._input = self._port(self._compiled.inputs, description.input_name, path)
        self._outputs = [
            self._port(self._compiled.outputs, name, path) for name in description.output_names
        ]
        self._extra_ports: dict[str, Any] = {}

    @staticmethod
    def _port(ports: Any, name: str, path: Path) -> Any:
        for port in ports:
            if name in port.get_names():
                return port
        found = sorted(n for port in ports for n in port.get_names())
        raise ModelError(f"{path}: no input or output named {name!r} (has {found})")

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the compiled model; outputs in ``description.output_names`` order (copies)."""
        return self.run_with(batch, {})

    def run_with(self, batch: np.ndarray, extra: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run a graph with more inputs than the image (a crop graph's channel gates)."""
        inputs = {self._input: np.ascontiguousarray(batch)}
        inputs |= {self._extra_port(name): value for name, value in extra.items()}
        results = self._request.infer(inputs)
        return [results[port] for port in self._outputs]

    def _extra_port(self, name: str) -> Any:
        port = self._extra_ports.get(name)
        if port is None:
            port = self._extra_ports[name] = self._port(
                self._compiled.inputs, name, Path(self._description.model_file)
            )
        return port

    def warm_up_with(self, extra: Mapping[str, np.ndarray]) -> None:
        """:meth:`warm_up` for a graph that takes ``extra`` inputs too."""
        dummy = _dummy_batch(self._description, 1)
        for _ in range(WARM_UP_RUNS):
            self.run_with(dummy, extra)

    def warm_up(self, batch_size: int | None = None) -> None:
        """Run a few batches of zeros (OpenVINO prepares its kernels for a shape on first use)."""
        dummy = _dummy_batch(self._description, batch_size)
        for _ in range(WARM_UP_RUNS):
            self.run(dummy)

    def close(self) -> None:
        """Drop the request and the compiled model."""
        self._request = None
        self._compiled = None


class TorchBackend:
    """A PyTorch module: a TorchScript file, or a network rebuilt from its framework's file.

    ``threads`` sets ``torch.set_num_threads`` for the whole process. A module pickled whole with
    ``torch.save`` is refused, never unpickled (loading it runs code).
    """

    name: ClassVar[str] = "pytorch"
    devices: ClassVar[tuple[DeviceName, ...]] = ("cpu", "cuda")

    @classmethod
    def open(cls, description: ModelDescription, device: DeviceName, threads: int) -> Self:
        """Load the module onto ``device`` (the registry's way in)."""
        return cls(description, device, threads)

    def __init__(self, description: ModelDescription, device: DeviceName, threads: int) -> None:
        import torch  # optional, heavy: only for this backend

        path = Path(description.model_file)
        try:
            # cuda: the first GPU, channels-last, half weights for an fp16 model; refused
            # (never the CPU instead) when PyTorch sees no CUDA device.
            self._placement = torch_placement(device, description.precision)
        except ModelError as error:
            raise ModelError(f"{path}: {error}") from None
        torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device(self._placement.device)
        if description.source_file is not None:  # rebuilt from another framework's file
            self._module = _rebuilt_module(description, self._placement)
        else:
            module = _load_torch_module(_torchscript_of(description), self._device)
            # A TorchScript file keeps its own weights' precision; only the layout changes.
            self._module = place_module(module, dataclasses.replace(self._placement, half=False))
        self._description = description
        self.provider = f"torch {self._device}"
        # [Pose] CUDA_GRAPH = on (set_cuda_graph): kernels replayed per input shape, checked.
        self._graphs = (
            CudaGraphRunner(self._module)
            if self._device.type == "cuda" and _CUDA_GRAPH["on"]
            else None
        )

    @property
    def providers(self) -> dict[str, Any]:
        """What ``session.json`` records: the device, precision, memory format, CUDA graph."""
        record: dict[str, Any] = {
            "device": self._placement.device,
            "torch": self._placement.record(),
        }
        if self._device.type == "cuda":
            record["cuda_graph"] = (
                {"checked_shapes": self._graphs.checked_shapes, "refused": self._graphs.refusals}
                if self._graphs is not None
                else "off: [Pose] CUDA_GRAPH = off (the default)"
            )
        return record

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the module; outputs in ``description.output_names`` order."""
        torch = self._torch
        with torch.inference_mode():
            tensor = place_input(torch.from_numpy(np.ascontiguousarray(batch)), self._placement)
            result = self._module(tensor) if self._graphs is None else self._graphs(tensor)
            # Copied to the host at once: a graph's outputs are overwritten by its next replay.
            return [t.detach().float().cpu().numpy() for t in self._ordered(result)]

    def _ordered(self, result: Any) -> list[Any]:
        """Return the module's outputs as a list in ``output_names`` order."""
        names = self._description.output_names
        if isinstance(result, dict):
            missing = [n for n in names if n not in result]
            if missing:
                raise ModelError(f"the module returned no outputs named {missing}")
            return [result[n] for n in names]
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(outputs) < len(names):
            raise ModelError(f"the module returned {len(outputs)} outputs, expected {len(names)}")
        return outputs[: len(names)]

    def warm_up(self, batch_size: int | None = None) -> None:
        """Run a few batches of zeros (the first runs allocate and, under TorchScript, tune)."""
        dummy = _dummy_batch(self._description, batch_size)
        for _ in range(WARM_UP_RUNS):
            self.run(dummy)

    def close(self) -> None:
        """Drop the module (and free cached device memory)."""
        self._module = None
        self._graphs = None
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()


def _rebuilt_module(description: ModelDescription, placement: TorchPlacement) -> Any:
    """Rebuild a converted model's network from its framework's file, placed by ``placement``."""
    return place_module(build_torch_module(description), placement)


def _torchscript_of(description: ModelDescription) -> Path:
    """Return ``description``'s TorchScript file; a ModelError says what to set if none."""
    model_format = format_of_description(description)
    script = model_format.torchscript_file(description) if model_format is not None else None
    if script is not None:
        return script
    path = Path(description.model_file)
    if path.suffix != ".onnx":
        return path  # a TorchScript file named directly
    if model_format is not None and model_format.recognises(path):
        problem = model_format.pytorch_problem(path)
        if problem is not None:
            raise ModelError(problem)
    raise ModelError(
        f"{path}: an ONNX graph, which the pytorch backend cannot run (it runs TorchScript "
        "files and networks rebuilt from DeepLabCut or Lightning Pose files): set [Pose] "
        "BACKEND = onnxruntime (or openvino)"
    )


def _load_torch_module(path: Path, device: Any) -> Any:
    """Load a TorchScript module in eval mode; anything else is refused, never unpickled."""
    import torch  # optional, heavy: only for this backend

    try:
        with warnings.catch_warnings():
            # torch 2.9+ deprecates TorchScript in favour of torch.export, yet still loads it.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as error:  # not a TorchScript archive
        raise ModelError(
            f"{path}: not a TorchScript file ({type(error).__name__}); the pytorch backend "
            "loads TorchScript (torch.jit.save) only: a module pickled with torch.save would "
            "run code from the file, and is never loaded"
        ) from None
    return module.eval()


class BackendKind(Protocol):
    """What the registry needs of a backend class: its name, its devices, how to open it.

    ``open`` gets the model's :class:`~pose.model.ModelDescription`. A backend reads of it
    ``model_file``, ``input_name``, ``output_names`` (the order :meth:`run` returns),
    ``input_shape(n)``, ``input_dtype``, ``batch_size`` (None: any), ``precision`` and
    ``source_file`` (a converted model's framework file, else None).
    """

    name: str
    devices: tuple[DeviceName, ...]

    def open(
        self, description: ModelDescription, device: DeviceName, threads: int
    ) -> InferenceBackend:
        """Open ``description`` on ``device`` with ``threads`` threads."""
        ...


class Backend:
    """A base for a lab's own backend: write ``__init__`` (load the model) and :meth:`run`.

    It supplies ``open``, :meth:`warm_up` (batches of zeros), :meth:`close` (nothing to release) and
    :attr:`provider`. It runs in the inference worker, one batch at a time, and must raise
    :class:`~pose.model.ModelError` saying what to install or set when it cannot open the model
    (docs/plugins.md, "Backends"). ``device`` is one of :attr:`devices`, checked before ``open``.
    """

    #: ``[Pose] BACKEND`` names it by this (a lab folder's backend: the file's name).
    name: ClassVar[str] = ""
    #: The ``[Pose] DEVICE`` values it runs on.
    devices: ClassVar[tuple[DeviceName, ...]] = ("cpu",)

    def __init__(self, description: ModelDescription, device: DeviceName, threads: int) -> None:
        self.description = description
        self.device = device
        self.threads = threads
        #: What runs the network, in words (``session.json``'s model ``provider``).
        self.provider = f"{self.name or type(self).__name__} {device}"

    @classmethod
    def open(cls, description: ModelDescription, device: DeviceName, threads: int) -> Self:
        """Return the backend made with ``description``, ``device`` and ``threads``."""
        return cls(description, device, threads)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the network on ``batch``; outputs in ``description.output_names`` order."""
        raise NotImplementedError(f"{type(self).__name__} does not define run(batch)")

    def warm_up(self, batch_size: int | None = None) -> None:
        """Run a few batches of zeros, so that the first real frame is not slow."""
        dummy = _dummy_batch(self.description, batch_size)
        for _ in range(WARM_UP_RUNS):
            self.run(dummy)

    def close(self) -> None:
        """Release what it holds (nothing by default)."""


def _check_backend(obj: Any) -> None:
    """Accept a backend class: ``name``, ``devices`` and a callable ``open`` (a BackendKind)."""
    missing = [attr for attr in ("name", "devices", "open") if not hasattr(obj, attr)]
    if missing or not callable(obj.open):
        raise TypeError(
            f"expected a backend class with name, devices and open(description, device, "
            f"threads), not {obj!r} (missing: {', '.join(missing) or 'a callable open'})"
        )


def _backends_in(module: ModuleType) -> dict[str, type]:
    """Return the backend classes (``name``, ``devices``, ``open``) a lab's module defines."""
    return {
        name: cls
        for name, cls in vars(module).items()
        if inspect.isclass(cls)
        and cls.__module__ == module.__name__
        and not name.startswith("_")
        and all(hasattr(cls, attr) for attr in ("name", "devices", "open"))
    }


#: The backends ``[Pose] BACKEND`` names: the three shipped here, then those of installed
#: packages (entry point group ``deeplabstream.backends``). A new backend is a class with
#: ``name``, ``devices`` and ``open`` (:class:`BackendKind`), registered here or by its package.
BACKENDS: Registry[BackendKind] = Registry(
    "inference backend",
    "deeplabstream.backends",
    {
        "onnxruntime": "deeplabstream.pose.runtime.backends:OnnxRuntimeBackend",
        "pytorch": "deeplabstream.pose.runtime.backends:TorchBackend",
        "openvino": "deeplabstream.pose.runtime.backends:OpenVinoBackend",
    },
    advice="Set [Pose] BACKEND to one of them; for the lab's own backend, put its module in "
    "the backends/ folder beside the settings file (BACKEND = module), or install the package "
    "that provides it (its entry point in the group deeplabstream.backends; docs/plugins.md).",
    check=_check_backend,
    lab_folder="backends",
    normalise=lambda name: name.strip().lower(),
    find_in_module=lambda module: _backends_in(module),
)
