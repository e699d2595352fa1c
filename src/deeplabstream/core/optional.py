"""Optional libraries: which extra of the package installs each, and commands that say so.

The package installs what the embedded default needs (the simulated arena, the bundled model,
ONNX Runtime). What only some labs need (torch for DeepLabCut and Lightning Pose files and for
training, a camera's or a board's own library, NWB, LSL...) comes with an extra:
``pip install "deeplabstream[torch]"``. A command that reaches such a library without it stops
with that sentence and exit code 2, not with a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from deeplabstream.core.errors import DeepLabStreamError

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF_MODULE: dict[str, str] = {
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
}


class MissingExtraError(DeepLabStreamError, ImportError):
    """An optional library is not installed; the message names the extra that installs it."""


def missing_extra(error: ModuleNotFoundError) -> MissingExtraError | None:
    """Return the clear error for a missing optional library, or None for any other module.

    Parameters
    ----------
    error
        The error Python raised on the import.
    """
    module = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return MissingExtraError(
        f"This needs the optional library {module!r}, which is not installed. Install it with: "
        f'pip install "deeplabstream[{extra}]" (from a checkout: pip install ".[{extra}]"). '
        "The README (Install) lists the extras."
    )


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Run a command's ``main`` and exit with its code; a missing optional library exits 2.

    Every console script of the package ends in this, so a lab that installed only the base
    package reads which extra to install instead of a traceback.
    """
    try:
        code = main()
    except ModuleNotFoundError as error:
        clear = missing_extra(error)
        if clear is None:
            raise
        print(f"Error: {clear}", file=sys.stderr)
        code = 2
    sys.exit(code)
