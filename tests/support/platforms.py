"""Run the project's commands under the emulated rules of Windows or macOS (on Linux).

``tests/support/platform_emulation/sitecustomize.py`` says what is emulated and how; this module
gives the environment that switches it on for a command and every process the command spawns.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

EMULATION_FOLDER = PROJECT_ROOT / "tests" / "support" / "platform_emulation"
EMULATED_PLATFORMS = ("windows", "macos")


def emulated_env(platform: str, lock_file: Path) -> dict[str, str]:
    """The environment of a command run as on ``platform``, with its own device locks."""
    path = os.pathsep.join(p for p in (str(EMULATION_FOLDER), os.environ.get("PYTHONPATH")) if p)
    return {
        "DEEPLABSTREAM_EMULATE_PLATFORM": platform,
        "PYTHONPATH": path,
        "DEEPLABSTREAM_LOCK_FILE": str(lock_file),
        # The platform chooses, whatever the shell running the tests forces.
        "DEEPLABSTREAM_DOORBELL": "auto",
    }
