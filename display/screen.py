"""Whether a window can be shown here; imports no Qt, so command lines can ask cheaply."""

from __future__ import annotations

import os
import sys


def has_display() -> bool:
    """Return True when a window can be shown (a desktop session, or an explicit Qt platform)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
