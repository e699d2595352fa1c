"""The device double's libraries: NVIDIA's driver, cuDNN and TensorRT as the loader sees them.

The project asks for a GPU the way a lab's PC answers: it loads NVIDIA's driver by name
(``libcuda.so.1``) in a child process and asks ``cuInit`` and ``cuDeviceGetCount``; it loads
cuDNN (``libcudnn.so.9``) and, for TensorRT, ``libnvinfer.so.10`` and its companions by name.
Here they are small shared libraries built with the machine's C compiler, each with the real
library's file name and SONAME, so those real look-ups find them on ``LD_LIBRARY_PATH`` (a child
process) or already loaded (this process: :func:`preload`). The fake driver sees one GPU, none
when ``CUDA_VISIBLE_DEVICES`` is empty or ``-1`` (as the real one), and its ``cuInit`` returns
``DEEPLABSTREAM_FAKE_CUDA_INIT`` (0 by default; 100 is ``CUDA_ERROR_NO_DEVICE``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.cuda_double.ort_cuda_double import ENV

FOLDER = Path(__file__).resolve().parent

DRIVER_SOURCE = r"""
#include <stdlib.h>
static const char *names(int status) {
    switch (status) {
    case 0: return "CUDA_SUCCESS";
    case 100: return "CUDA_ERROR_NO_DEVICE";
    case 999: return "CUDA_ERROR_UNKNOWN";
    default: return "CUDA_ERROR_NOT_INITIALIZED";
    }
}
int cuInit(unsigned int flags) {
    const char *text = getenv("DEEPLABSTREAM_FAKE_CUDA_INIT");
    (void)flags;
    return text ? atoi(text) : 0;
}
int cuDeviceGetCount(int *count) {
    /* As NVIDIA's driver: CUDA_VISIBLE_DEVICES set to nothing (or -1) hides every GPU. */
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    *count = (visible && (visible[0] == 0 || visible[0] == '-')) ? 0 : 1;
    return 0;
}
int cuGetErrorName(int status, const char **name) { *name = names(status); return 0; }
"""

EMPTY_SOURCE = "int deeplabstream_fake_library(void) { return 0; }\n"

#: Each fake library: its file name (also its SONAME) and its source.
LIBRARIES = {
    "libcuda.so.1": DRIVER_SOURCE,
    "libcudnn.so.9": EMPTY_SOURCE,
    "libnvinfer.so.10": EMPTY_SOURCE,
    "libnvinfer_plugin.so.10": EMPTY_SOURCE,
    "libnvonnxparser.so.10": EMPTY_SOURCE,
}


def compiler_problem() -> str | None:
    """Why the fake libraries cannot be built here (None: they can)."""
    if os.name != "posix" or shutil.which("cc") is None:
        return "the CUDA double's fake driver needs a C compiler (cc) on Linux"
    return None


def build(folder: Path, only: tuple[str, ...] | None = None) -> Path:
    """Build the fake libraries (``only`` these names) into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in LIBRARIES.items():
        if only is not None and name not in only:
            continue
        target = folder / name
        if target.exists():
            continue
        source_file = folder / f"{name}.c"
        source_file.write_text(source)
        subprocess.run(
            ["cc", "-shared", "-fPIC", f"-Wl,-soname,{name}", "-o", str(target), str(source_file)],
            check=True,
            capture_output=True,
        )
    return folder


def preload(folder: Path) -> None:
    """Load the libraries of ``folder`` into this process: a look-up by name then finds them.

    Not the driver: the project asks it in a child process (which finds it on
    ``LD_LIBRARY_PATH``), and this process must still be able to see a machine's own.
    """
    for name in LIBRARIES:
        if name != "libcuda.so.1" and (folder / name).exists():
            ctypes.CDLL(str(folder / name), mode=ctypes.RTLD_GLOBAL)


def environment(folder: Path, knobs: str = "on") -> dict[str, str]:
    """The environment of a command (and every process it spawns) run on the double's GPU."""
    library_path = os.pathsep.join(p for p in (str(folder), os.environ.get("LD_LIBRARY_PATH")) if p)
    python_path = os.pathsep.join(p for p in (str(FOLDER), os.environ.get("PYTHONPATH")) if p)
    return {ENV: knobs, "LD_LIBRARY_PATH": library_path, "PYTHONPATH": python_path}
