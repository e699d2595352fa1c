"""Optional libraries: which extra installs each, and commands that say so. docs/install.md."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from deeplabstream import __version__
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.import_path import keep_current_folder_off_path
from deeplabstream.core.plugins import PluginStopped

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF_MODULE: dict[str, str] = {
    "onnxruntime": "cpu",  # or gpu: ONNX_RUNTIME_CHOICE
    "torch": "torch",
    "onnxscript": "torch",
    "pypylon": "basler",
    "pyrealsense2": "realsense",
    "nidaqmx": "nidaq",
    "gpiozero": "gpio",
    "openvino": "openvino",
    "ray": "ray",
    "pynwb": "nwb",
    "ndx_pose": "nwb",
    "hdmf": "nwb",
    "pylsl": "lsl",
    "sleap_io": "sleap",
    "sklearn": "behaviour",
    "skl2onnx": "behaviour",
    "eks": "ensembles",
    "jax": "ensembles",
    "dynamax": "ensembles",
    "aniposelib": "ensembles",
}
ENSEMBLES_INSTALL = (
    "pip install --no-deps -r requirements-ensembles.txt (from a checkout; or pip install "
    '"deeplabstream[ensembles]" then pip install --no-deps ensemble-kalman-smoother==4.6.2 '
    "aniposelib==0.8.0): --no-deps keeps out aniposelib's second OpenCV build, which would "
    "break the window (docs/ensembles.md)"
)


# extra -> (platform as sys.platform names it, why the extra does not exist there); pyproject.toml
# and requirements.txt leave these out on that platform with a `sys_platform` marker.
UNAVAILABLE_ON: dict[str, tuple[str, str]] = {
    "realsense": ("darwin", "Intel publishes no macOS build of pyrealsense2"),
    "nidaq": ("darwin", "NI's NI-DAQmx driver exists for Windows and Linux only"),
}
PLATFORM_NAMES = {"darwin": "macOS", "win32": "Windows", "linux": "Linux"}
ONNX_RUNTIME_CHOICE = (
    'pip install "deeplabstream[cpu]" for the CPU build, or "deeplabstream[gpu]" for an NVIDIA '
    "GPU (from a checkout: python scripts/setup.py [--gpu]); install one of them, never both"
)


class MissingExtraError(DeepLabStreamError, ImportError):
    """An optional library is not installed; the message names the extra that installs it."""


def missing_extra(
    error: ModuleNotFoundError, platform: str = sys.platform
) -> MissingExtraError | None:
    """Return the clear error for a missing optional library, or None for any other module.

    ``platform``: ``sys.platform`` of the machine the message is for.
    """
    module = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    missing = f"This needs the optional library {module!r}, which is not installed."
    if module == "onnxruntime":
        return MissingExtraError(
            f"{missing} ONNX Runtime comes in two builds: {ONNX_RUNTIME_CHOICE}."
        )
    if extra == "ensembles":
        return MissingExtraError(f"{missing} The Ensemble Kalman Smoother: {ENSEMBLES_INSTALL}.")
    where, why = UNAVAILABLE_ON.get(extra, ("", ""))
    if where and platform.startswith(where):
        return MissingExtraError(
            f"{missing} The extra {extra!r} is not available on {PLATFORM_NAMES[where]}: {why}. "
            "docs/install.md lists what each platform supports."
        )
    not_on = f" (not available on {PLATFORM_NAMES[where]}: {why})" if where else ""
    return MissingExtraError(
        f"{missing} Install it with: "
        f'pip install "deeplabstream[{extra}]" (from a checkout: pip install ".[{extra}]")'
        f"{not_on}. The README (Install) lists the extras."
    )


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Run a command's ``main`` and exit with its code; a missing optional library exits 2.

    Also answers ``--version``; a stop in a plugin's code exits 128 + its signal, a Ctrl-C 130.
    """
    exit_if_version_asked(sys.argv[1:])
    keep_current_folder_off_path()  # before any child process starts (core/import_path.py)
    try:
        code = main()
    except PluginStopped as stop:  # Ctrl-C while a plugin's import or call held the start
        print(f"Stopped: {stop}", file=sys.stderr)
        code = 128 + stop.signum
    except KeyboardInterrupt:  # a command that leaves Ctrl-C to Python: said, no traceback
        print("Stopped: Ctrl-C received", file=sys.stderr)
        code = 128 + signal.SIGINT
    except ModuleNotFoundError as error:
        clear = missing_extra(error)
        if clear is None:
            raise
        print(f"Error: {clear}", file=sys.stderr)
        code = 2
    sys.exit(code)


def exit_if_version_asked(arguments: Sequence[str]) -> None:
    """Print the release and exit 0 when ``arguments`` ask ``--version`` (before any ``--``)."""
    asked = arguments[: arguments.index("--")] if "--" in arguments else arguments
    if "--version" in asked:
        print(f"DeepLabStream {__version__}")
        sys.exit(0)
