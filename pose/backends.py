"""Inference backends: run a model's network on a prepared batch.

:func:`open_backend` opens one of:

- ONNX Runtime (``.onnx``) on the CPU, CUDA or TensorRT execution provider;
- PyTorch (a TorchScript file, or a whole module saved with ``torch.save``, or, for a model
  converted from DeepLabCut or Lightning Pose, the network rebuilt from its file) on the CPU or
  CUDA.

A device that was asked for and is not available is an error that says what to install, never
a silent fall-back to the CPU: a closed-loop experiment planned around a GPU's latency must not
run at a CPU's.

``torch`` and ``onnxruntime`` are imported only when a backend of theirs is opened, so importing
this module is cheap (the GUI and the settings check import it without running a network).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from pose.model import ModelDescription, ModelError

BackendName = Literal["onnxruntime", "pytorch"]
DeviceName = Literal["cpu", "cuda", "tensorrt"]

WARM_UP_RUNS = 3

_ORT_PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    # CPU stays in the list for the few nodes a GPU provider leaves to it (shape arithmetic);
    # the check after opening makes sure the requested provider runs the graph.
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}

_ORT_NEEDS = {
    "CUDAExecutionProvider": (
        "the `onnxruntime-gpu` package (instead of `onnxruntime`), an NVIDIA driver and the "
        "CUDA and cuDNN libraries it was built for"
    ),
    "TensorrtExecutionProvider": (
        "the `onnxruntime-gpu` package (instead of `onnxruntime`), an NVIDIA driver, CUDA, "
        "cuDNN and the TensorRT libraries it was built for"
    ),
}


class InferenceBackend(Protocol):
    """A network ready to run.

    Attributes
    ----------
    provider
        What actually runs the network, e.g. ``CPUExecutionProvider`` or ``torch cuda:0``.
    """

    provider: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the network on (N, C, H, W) input; outputs in ``description.output_names`` order."""
        ...

    def warm_up(self, batch_size: int | None = None) -> None:
        """Run a few dummy batches so that the first real frame is not slow."""
        ...

    def close(self) -> None:
        """Release the session or module (and its device memory)."""
        ...


def open_backend(
    description: ModelDescription,
    backend: BackendName = "onnxruntime",
    device: DeviceName = "cpu",
    threads: int = 1,
) -> InferenceBackend:
    """Open the network of ``description`` on a backend and device.

    Parameters
    ----------
    description
        The model; ``model_file`` is the file the backend loads.
    backend
        ``onnxruntime`` (for ``.onnx`` files) or ``pytorch`` (TorchScript or a saved module).
    device
        ``cpu``, ``cuda`` or ``tensorrt`` (ONNX Runtime only).
    threads
        Threads for the CPU work of one inference (ONNX Runtime's ``intra_op_num_threads``,
        ``torch.set_num_threads``).

    Returns
    -------
    InferenceBackend

    Raises
    ------
    ModelError
        When the file is missing or of the wrong kind for the backend, or the device is not
        available (the message says what is needed).
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    path = Path(description.model_file)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if backend == "onnxruntime":
        if device not in _ORT_PROVIDERS:
            raise ModelError(f"unknown device {device!r}; use cpu, cuda or tensorrt")
        return OnnxRuntimeBackend(description, device, threads)
    if backend == "pytorch":
        if device not in ("cpu", "cuda"):
            raise ModelError(
                f"the pytorch backend runs on cpu or cuda, not {device!r}; use the onnxruntime "
                f"backend for tensorrt"
            )
        return TorchBackend(description, device, threads)
    raise ModelError(f"unknown backend {backend!r}; use onnxruntime or pytorch")


def _dummy_batch(description: ModelDescription, batch_size: int | None) -> np.ndarray:
    """Zeros shaped and typed like a real input batch."""
    n = description.batch_size or batch_size or 1
    dtype = np.float16 if description.precision == "fp16" else np.float32
    shape = (n, description.channels, description.input_height, description.input_width)
    return np.zeros(shape, dtype)


class OnnxRuntimeBackend:
    """An ONNX Runtime session, built once.

    Parameters
    ----------
    description
        The model; ``model_file`` must be an ``.onnx`` file.
    device
        ``cpu``, ``cuda`` or ``tensorrt``.
    threads
        ``intra_op_num_threads`` of the session.
    """

    def __init__(self, description: ModelDescription, device: DeviceName, threads: int) -> None:
        import onnxruntime as ort

        path = Path(description.model_file)
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: the onnxruntime backend needs an .onnx file")
        wanted = _ORT_PROVIDERS[device]
        available = ort.get_available_providers()
        if wanted[0] not in available:
            raise ModelError(_missing_provider_message(wanted[0], available))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), options, providers=wanted)
        except Exception as error:  # ORT raises its own Fail, InvalidGraph, ... types
            raise ModelError(f"{path}: ONNX Runtime cannot open it: {error}") from error
        # ONNX Runtime drops a provider whose libraries fail to load, with only a warning.
        running = self._session.get_providers()
        if not running or running[0] != wanted[0]:
            self._session = None
            raise ModelError(
                f"{path}: {wanted[0]} is installed but did not start (running {running}); "
                f"it needs {_ORT_NEEDS.get(wanted[0], 'its libraries')}"
            )
        self.provider: str = running[0]
        self._description = description
        self._input_name = description.input_name
        self._output_names = list(description.output_names)
        self._check_names(path)

    def _check_names(self, path: Path) -> None:
        """The description's input and output names must be the graph's."""
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if self._input_name not in inputs:
            raise ModelError(f"{path}: no input named {self._input_name!r} (has {inputs})")
        unknown = [n for n in self._output_names if n not in outputs]
        if unknown:
            raise ModelError(f"{path}: no outputs named {unknown} (has {outputs})")

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the session; outputs in ``description.output_names`` order."""
        return self._session.run(self._output_names, {self._input_name: batch})

    def warm_up(self, batch_size: int | None = None) -> None:
        """Run a few batches of zeros (ONNX Runtime allocates and tunes on the first runs)."""
        dummy = _dummy_batch(self._description, batch_size)
        for _ in range(WARM_UP_RUNS):
            self.run(dummy)

    def close(self) -> None:
        """Drop the session."""
        self._session = None


def _missing_provider_message(provider: str, available: list[str]) -> str:
    """Why ``provider`` cannot be used and what to install."""
    return (
        f"ONNX Runtime has no {provider} here (available: {', '.join(available)}); it needs "
        f"{_ORT_NEEDS.get(provider, 'a build of onnxruntime that includes it')}"
    )


class TorchBackend:
    """A PyTorch module loaded from a TorchScript file or a whole saved module.

    Parameters
    ----------
    description
        The model; ``model_file`` is the TorchScript (``torch.jit.save``) or ``torch.save``
        file.
    device
        ``cpu`` or ``cuda``.
    threads
        ``torch.set_num_threads``: for the whole process, which is the inference worker's own.

    Notes
    -----
    A file saved with ``torch.save(module)`` is a pickle, and loading it runs code from it:
    load only model files you trust (TorchScript files do not have this problem).
    """

    def __init__(self, description: ModelDescription, device: DeviceName, threads: int) -> None:
        import torch

        path = Path(description.model_file)
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelError(
                f"{path}: PyTorch sees no CUDA device (torch {torch.__version__}); it needs a "
                f"CUDA build of torch and an NVIDIA driver"
            )
        torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device("cuda" if device == "cuda" else "cpu")
        if description.source_file is not None:  # rebuilt from another framework's file
            self._module = _rebuilt_module(description, self._device)
        else:
            self._module = _load_torch_module(path, self._device)
        self._dtype = torch.float16 if description.precision == "fp16" else torch.float32
        self._description = description
        self.provider = f"torch {self._device}"

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the module; outputs in ``description.output_names`` order."""
        torch = self._torch
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self._device, self._dtype)
            result = self._module(tensor)
        return [t.detach().cpu().numpy() for t in self._ordered(result)]

    def _ordered(self, result: Any) -> list[Any]:
        """The module's outputs as a list in ``output_names`` order."""
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
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()


def _rebuilt_module(description: ModelDescription, device: Any) -> Any:
    """The network of a converted model (DeepLabCut export, Lightning Pose checkpoint).

    Rebuilt from its framework's file rather than loaded from the ONNX graph, so that the
    pytorch backend runs the original network; half precision for an fp16 description (its
    outputs stay float32).
    """
    from pose.loading import build_torch_module

    module = build_torch_module(description).to(device)
    return (module.half() if description.precision == "fp16" else module).eval()


def _load_torch_module(path: Path, device: Any) -> Any:
    """A TorchScript module, or else a whole module saved with ``torch.save``, in eval mode."""
    import torch

    if path.suffix == ".onnx":
        raise ModelError(f"{path}: the pytorch backend needs a TorchScript or .pt file")
    try:
        with warnings.catch_warnings():
            # torch 2.9+ deprecates TorchScript in favour of torch.export, yet still loads it.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device)
    except RuntimeError:  # not a TorchScript archive: try a pickled module
        try:
            module = torch.load(str(path), map_location=device, weights_only=False)
        except Exception as error:  # unpickling raises anything
            raise ModelError(f"{path}: neither TorchScript nor a saved module: {error}") from error
    if not isinstance(module, torch.nn.Module):
        raise ModelError(
            f"{path}: holds a {type(module).__name__}, not a module (a state_dict needs the "
            f"network's code to load)"
        )
    return module.eval()
