"""``[Pose] DEVICE`` for ONNX Runtime: which execution provider, with which options, and why not.

Design: docs/gpu.md, "Options".
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import importlib.util
import io
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deeplabstream.pose.model import ModelDescription

DeviceName = Literal["cpu", "cuda", "tensorrt", "directml", "coreml"]

#: The execution provider each ``[Pose] DEVICE`` of the onnxruntime backend asks for.
DEVICE_PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}

#: How a lab gets each provider (docs/install.md says the same).
GPU_INSTALL = "python scripts/setup.py --gpu"
_GPU_BUILD = (
    "it installs onnxruntime-gpu, the ONNX Runtime build with CUDA and TensorRT, in place of "
    "onnxruntime"
)
INSTALL_COMMANDS: dict[str, str] = {
    "CUDAExecutionProvider": f"`{GPU_INSTALL}` ({_GPU_BUILD})",
    "TensorrtExecutionProvider": (
        f"`{GPU_INSTALL}` ({_GPU_BUILD}), plus the TensorRT 10 libraries it was built for "
        "(NVIDIA's `tensorrt-cu12` or `tensorrt-cu13` pip package at version 10, or its "
        "installer, on the library path)"
    ),
    "DmlExecutionProvider": (
        "on Windows: `pip uninstall -y onnxruntime` then `pip install onnxruntime-directml` "
        "(DirectML is a Windows-only build of ONNX Runtime)"
    ),
    "CoreMLExecutionProvider": (
        "on macOS: the ordinary `onnxruntime` wheel has it (`pip install onnxruntime`); CoreML "
        "does not exist on other systems"
    ),
}

#: The operating system each provider exists on (None: any).
PROVIDER_SYSTEMS: dict[str, str] = {
    "DmlExecutionProvider": "Windows",
    "CoreMLExecutionProvider": "Darwin",
}

TRT_WORKSPACE_BYTES = 2 << 30
#: The largest batch a TensorRT engine is built for ([Pose] MAX_BATCH's default).
TRT_MAX_BATCH = 8


@dataclass
class ProviderPlan:
    """The providers for one model (``[(name, options), ...]``, preferred first), with notes."""

    device: str
    providers: list[tuple[str, dict[str, str]]]
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> str:
        """The provider that must run the graph."""
        return self.providers[0][0]

    def names(self) -> list[str]:
        """Return the provider names only."""
        return [name for name, _ in self.providers]

    def options(self) -> list[dict[str, str]]:
        """Return the provider options only, in :meth:`names` order."""
        return [dict(options) for _, options in self.providers]

    def without(self, option: str) -> ProviderPlan:
        """Return the same plan with ``option`` left out of every provider (a retry)."""
        providers = [
            (name, {k: v for k, v in options.items() if k != option})
            for name, options in self.providers
        ]
        return ProviderPlan(self.device, providers, list(self.notes))


def fixed_shapes(description: ModelDescription) -> bool:
    """Return True when the graph always sees one input size (a CUDA graph then pays)."""
    return not description.any_input_size


def cuda_options(
    description: ModelDescription, device_id: int = 0, *, cuda_graph: bool = False
) -> dict[str, str]:
    """Return the CUDA provider's options; a CUDA graph only for a graph of fixed input size."""
    fixed = fixed_shapes(description)
    options = {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": "EXHAUSTIVE" if fixed else "HEURISTIC",
        "arena_extend_strategy": "kSameAsRequested",
        "do_copy_in_default_stream": "1",
        # ONNX Runtime's CUDA provider multiplies in TensorFloat-32 unless told not to: fp32 is
        # fp32 (its convolutions and matrix products round their inputs to 10 bits otherwise).
        "use_tf32": "1" if description.precision == "tf32" else "0",
    }
    if fixed and cuda_graph:
        options["enable_cuda_graph"] = "1"
    return options


def cuda_notes(description: ModelDescription, cuda_graph: bool) -> list[str]:
    """Why the CUDA provider's TF32 and CUDA-graph options are as they are (``session.json``)."""
    notes = [
        "use_tf32 = 1: PRECISION = tf32 (TensorFloat-32 convolutions and matrix products)"
        if description.precision == "tf32"
        else "use_tf32 = 0: fp32 math (PRECISION = tf32 allows TensorFloat-32)"
    ]
    if not cuda_graph:
        notes.append("enable_cuda_graph off: [Pose] CUDA_GRAPH = off (the default)")
    elif not fixed_shapes(description):
        notes.append("enable_cuda_graph off: the graph runs at any input size")
    return notes


def tensorrt_options(
    description: ModelDescription, cache_folder: str | None, device_id: int = 0
) -> dict[str, str]:
    """Return the TensorRT provider's options; no caches when ``cache_folder`` is None."""
    options = {
        "device_id": str(device_id),
        "trt_fp16_enable": "1" if description.precision == "fp16" else "0",
        "trt_int8_enable": "1" if description.precision == "int8" else "0",
        "trt_max_workspace_size": str(TRT_WORKSPACE_BYTES),
    }
    if description.batch_size is None:
        # One engine for every batch from 1 camera to MAX_BATCH's default: without a profile
        # TensorRT builds again, mid-session, the first time a larger batch comes.
        def shape(batch: int) -> str:
            dims = "x".join(str(d) for d in description.input_shape(batch))
            return f"{description.input_name}:{dims}"

        options |= {
            "trt_profile_min_shapes": shape(1),
            "trt_profile_opt_shapes": shape(1),
            "trt_profile_max_shapes": shape(TRT_MAX_BATCH),
        }
    if cache_folder is not None:
        options |= {
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": cache_folder,
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": cache_folder,
        }
    return options


def provider_plan(
    description: ModelDescription,
    device: str,
    *,
    trt_cache_folder: str | None = None,
    cache_note: str | None = None,
    device_id: int = 0,
    cuda_graph: bool = False,
) -> ProviderPlan:
    """Return the providers and options that run ``description`` on ``device``."""
    if device not in DEVICE_PROVIDERS:
        raise ValueError(f"device {device!r}: one of {', '.join(DEVICE_PROVIDERS)}")
    cpu: tuple[str, dict[str, str]] = ("CPUExecutionProvider", {})
    notes: list[str] = []
    if device == "cpu":
        return ProviderPlan(device, [cpu])
    if device == "cuda":
        options = cuda_options(description, device_id, cuda_graph=cuda_graph)
        notes = cuda_notes(description, cuda_graph)
        return ProviderPlan(device, [("CUDAExecutionProvider", options), cpu], notes)
    if device == "tensorrt":
        trt = tensorrt_options(description, trt_cache_folder, device_id)
        if trt_cache_folder is None:
            notes.append(f"TensorRT engine and timing caches off: {cache_note or 'no folder'}")
        if description.precision == "fp32":
            notes.append(f"{TF32_OVERRIDE} = 0: TensorRT builds an fp32 engine without TF32")
        # The CUDA provider runs what TensorRT does not take; no CUDA graph under TensorRT.
        cuda = cuda_options(description, device_id)
        if description.precision == "int8":
            notes.append("int8: the QDQ graph's scales are its calibration (no table applies)")
        return ProviderPlan(
            device,
            [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", cuda), cpu],
            notes,
        )
    # DirectML and CoreML: their defaults; DirectML wants no memory pattern (its documentation).
    return ProviderPlan(device, [(DEVICE_PROVIDERS[device], {}), cpu], notes)


#: NVIDIA's switch of TensorFloat-32 in cuBLAS, cuDNN and TensorRT's builder: ``0`` turns it off
#: whatever a library's default (TensorRT has no option of ONNX Runtime's for it).
TF32_OVERRIDE = "NVIDIA_TF32_OVERRIDE"


def missing_provider_message(provider: str, available: list[str]) -> str:
    """Why ``provider`` cannot be used here, what is available, and what installs it."""
    system = PROVIDER_SYSTEMS.get(provider)
    where = ""
    if system is not None and platform.system() != system:
        where = f"; it exists on {'macOS' if system == 'Darwin' else system} only"
    install = INSTALL_COMMANDS.get(provider, "a build of onnxruntime that includes it")
    return (
        f"ONNX Runtime has no {provider} here (available: {', '.join(available)}){where}. "
        f"To get it: {install}"
    )


def cuda_library_problems(provider: str) -> list[str]:
    """Return the CUDA and cuDNN libraries ``provider`` needs that do not load (empty: all do).

    Read back from what ``onnxruntime.preload_dlls()`` prints (it does not raise); empty where it is
    missing (ONNX Runtime before 1.21, a CPU build, not Linux or Windows).
    """
    if provider not in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return []
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None or provider not in ort.get_available_providers():
        return []  # no preload (older than 1.21), or a build without CUDA: nothing to load
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            preload()
    except (OSError, RuntimeError) as error:  # a bad directory, a library that crashes loading
        return [f"{type(error).__name__}: {error}"]
    missing = failed_libraries(printed.getvalue())
    # preload_dlls passes over a missing cuDNN in silence; the CUDA provider cannot run without.
    cudnn = CUDNN_LIBRARY.get(platform.system())
    if cudnn is not None and not loads(cudnn):
        missing.append(cudnn)
    return missing


#: cuDNN 9's main library (ONNX Runtime's GPU builds since 1.19 use cuDNN 9).
CUDNN_LIBRARY = {"Linux": "libcudnn.so.9", "Windows": "cudnn64_9.dll"}


def loads(library: str) -> bool:
    """Return True when ``library`` loads by name (or was loaded already, e.g. by preload)."""
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


_FAILED = re.compile(r"Failed to load (\S+?):? (.*)")


def failed_libraries(printed: str) -> list[str]:
    """Return the library names of ``preload_dlls``'s ``Failed to load NAME: why`` lines."""
    names: list[str] = []
    for line in printed.splitlines():
        match = _FAILED.search(line)
        if match:
            name = match.group(1).rstrip(":").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
            if name not in names:
                names.append(name)
    return names


#: The TensorRT major version ONNX Runtime's TensorRT provider links (onnxruntime-gpu 1.31:
#: ``libnvinfer.so.10``). NVIDIA's pip packages ``tensorrt-cu12`` / ``tensorrt-cu13`` install
#: the newest major (11) unless pinned.
TENSORRT_MAJOR = 10

#: The libraries ONNX Runtime's TensorRT provider loads, by system.
TENSORRT_LIBRARIES: dict[str, tuple[str, ...]] = {
    "Linux": tuple(
        f"lib{name}.so.{TENSORRT_MAJOR}" for name in ("nvinfer", "nvinfer_plugin", "nvonnxparser")
    ),
    "Windows": tuple(
        f"{name}_{TENSORRT_MAJOR}.dll" for name in ("nvinfer", "nvinfer_plugin", "nvonnxparser")
    ),
}


def tensorrt_library_problems() -> list[str]:
    """Return TensorRT's libraries that do not load (empty: all do, or a system without them)."""
    folders = _pip_library_folders("tensorrt_libs")
    return [
        name
        for name in TENSORRT_LIBRARIES.get(platform.system(), ())
        if not loads(name) and not any(loads(str(folder / name)) for folder in folders)
    ]


def _pip_library_folders(package: str) -> list[Path]:
    """Return the folders of an installed package of libraries, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(folder) for folder in spec.submodule_search_locations]


def tensorrt_install_advice(ort_version: str) -> str:
    """Say how to get TensorRT's libraries: the major version this ONNX Runtime links."""
    cuda = ort_cuda_major()
    pin = f">={TENSORRT_MAJOR},<{TENSORRT_MAJOR + 1}"
    package = (
        f'`pip install "tensorrt-cu{cuda}{pin}"`'
        if cuda
        else f'`pip install "tensorrt-cu12{pin}"` or `pip install "tensorrt-cu13{pin}"` (the CUDA '
        "major version onnxruntime-gpu was built for)"
    )
    return (
        f"{package} (NVIDIA's TensorRT {TENSORRT_MAJOR}, which onnxruntime-gpu {ort_version} "
        f"links; an unpinned install takes TensorRT {TENSORRT_MAJOR + 1}, which it cannot load), "
        "or NVIDIA's TensorRT installer with its lib folder on the library path "
        "(LD_LIBRARY_PATH, PATH on Windows); or set DEVICE = cuda"
    )


def ort_cuda_major() -> str | None:
    """Return the CUDA major version this ONNX Runtime was built for, where it says (else None)."""
    import onnxruntime as ort

    info = str(getattr(ort, "get_build_info", lambda: "")())
    match = re.search(r"cuda_version=(\d+)", info)
    if match:
        return match.group(1)
    try:
        package_info = importlib.import_module("onnxruntime.capi.build_and_package_info")
    except ImportError:
        return None
    version = str(getattr(package_info, "cuda_version", "") or "")
    match = re.match(r"\s*(?:CUDA\s*)?(\d+)(?:\.\d+)*\s*$", version)
    return match.group(1) if match else None


#: NVIDIA's driver library, by system: the CUDA provider needs it, and a GPU it sees.
CUDA_DRIVER_LIBRARY = {"Linux": "libcuda.so.1", "Windows": "nvcuda.dll"}
#: How long the driver may take to answer (a first cuInit on a big machine takes seconds).
DRIVER_PROBE_TIMEOUT_S = 30.0

# Run in a child process: the driver is never initialised in the process that later starts
# the session's processes, and a driver that crashes or hangs takes only the child with it.
_DRIVER_PROBE = """
import ctypes, sys
try:
    driver = ctypes.CDLL(sys.argv[1])
except OSError as error:
    print("missing", str(error).replace(chr(10), " "))
    raise SystemExit(0)
def name(status):
    text = ctypes.c_char_p()
    try:
        driver.cuGetErrorName(status, ctypes.byref(text))
    except AttributeError:
        return "?"
    return (text.value or b"?").decode(errors="replace")
status = driver.cuInit(0)
if status != 0:
    print("init", status, name(status))
    raise SystemExit(0)
count = ctypes.c_int(0)
status = driver.cuDeviceGetCount(ctypes.byref(count))
print("count", status, count.value, name(status))
"""


def cuda_driver_problem() -> str | None:
    """Why NVIDIA's driver gives no GPU here (None: it sees one), asked in a child process."""
    library = CUDA_DRIVER_LIBRARY.get(platform.system())
    if library is None:
        return None
    looked_up = os.environ.get("LD_LIBRARY_PATH", ""), os.environ.get("CUDA_VISIBLE_DEVICES")
    return _driver_answer(library, *looked_up)


@functools.lru_cache(maxsize=8)
def _driver_answer(library: str, library_path: str, visible: str | None) -> str | None:
    """:func:`cuda_driver_problem` for one library and environment (asked once each)."""
    del library_path, visible  # the keys of the cache: the child's look-up and its devices
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _DRIVER_PROBE, library],
            capture_output=True,
            text=True,
            timeout=DRIVER_PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (
            f"NVIDIA's driver ({library}) did not answer within {DRIVER_PROBE_TIMEOUT_S:.0f} s; "
            "check the GPU with `nvidia-smi`, or set DEVICE = cpu"
        )
    except OSError as error:
        return f"NVIDIA's driver ({library}) could not be asked: {error}"
    words = done.stdout.split()
    if not words:  # the child crashed loading or starting the driver
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"NVIDIA's driver ({library}) failed when asked for its GPUs: {why}"
    return _driver_verdict(library, words)


def _driver_verdict(library: str, words: list[str]) -> str | None:
    """Read the driver probe's answer (``missing why`` / ``init N NAME`` / ``count N K NAME``)."""
    fix = "install NVIDIA's driver for your GPU (`nvidia-smi` must list it), or set DEVICE = cpu"
    if words[0] == "missing":
        return (
            f"NVIDIA's driver is not installed here: {library} cannot be loaded "
            f"({' '.join(words[1:])}); the CUDA and cuDNN libraries alone cannot run on a GPU. "
            f"To fix: {fix}"
        )
    if words[0] == "init":
        return (
            f"NVIDIA's driver ({library}) did not start: cuInit returned {words[1]} "
            f"({words[2] if len(words) > 2 else '?'}). To fix: {fix}"
        )
    status, count = int(words[1]), int(words[2])
    if status != 0 or count < 1:
        return (
            f"NVIDIA's driver ({library}) sees no GPU (device count {count}"
            f"{'' if status == 0 else f', cuDeviceGetCount returned {status}'}). To fix: {fix}; "
            "check CUDA_VISIBLE_DEVICES"
        )
    return None


def device_problem(device: str) -> str | None:
    """Why the onnxruntime backend cannot run on ``device`` here; None when it can (cheap)."""
    provider = DEVICE_PROVIDERS.get(device)
    if provider is None:
        return f"DEVICE = {device!r}: one of {', '.join(DEVICE_PROVIDERS)}"
    if provider == "CPUExecutionProvider":
        return None  # every build has it; onnxruntime is not even imported
    import onnxruntime as ort

    available = list(ort.get_available_providers())
    if provider not in available:
        return missing_provider_message(provider, available)
    driver = cuda_driver_problem()
    if driver is not None:
        return f"{provider} is in ONNX Runtime {ort.__version__} but {driver}"
    missing = cuda_library_problems(provider)
    if missing:
        return (
            f"{provider} is in ONNX Runtime {ort.__version__} but these CUDA/cuDNN libraries "
            f"cannot be loaded: {', '.join(missing)}. To get them: {GPU_INSTALL} (NVIDIA's "
            "CUDA and cuDNN pip packages), or install CUDA and cuDNN for "
            f"onnxruntime-gpu {ort.__version__} and put them on the library path"
        )
    missing_trt = tensorrt_library_problems() if device == "tensorrt" else []
    if missing_trt:
        return (
            f"{provider} is in ONNX Runtime {ort.__version__} but TensorRT's libraries "
            f"cannot be loaded: {', '.join(missing_trt)}. To get them: "
            f"{tensorrt_install_advice(ort.__version__)}"
        )
    return None


def applied_options(session: Any) -> dict[str, dict[str, str]]:
    """Return the options each provider of a session runs with (ONNX Runtime's answer)."""
    try:
        applied = session.get_provider_options()
    except (AttributeError, RuntimeError):
        return {}
    return {str(name): {str(k): str(v) for k, v in opts.items()} for name, opts in applied.items()}


def providers_record(
    plan: ProviderPlan, session: Any, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return what ``session.json`` says of the providers: asked, applied, and why."""
    applied = applied_options(session)
    running = list(session.get_providers()) if session is not None else []
    asked = [{"name": name, "options": dict(options)} for name, options in plan.providers]
    return {
        "device": plan.device,
        "asked": asked,
        "applied": [{"name": name, "options": applied.get(name, {})} for name in running],
        "notes": list(plan.notes),
        **(extra or {}),
    }
