"""Whether a window can be shown here; imports no Qt, so command lines can ask cheaply."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path


def has_display() -> bool:
    """Return True when a window can be shown (a desktop session, or an explicit Qt platform)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


#: Debian packages of the libraries Qt's ``xcb`` platform plugin loads (a minimal Debian lacks
#: some); scripts/setup.sh installs them all.
XCB_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def uses_xcb() -> bool:
    """Return True when Qt will show windows through X11 (Linux, not offscreen or Wayland)."""
    if not sys.platform.startswith("linux"):
        return False
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    return platform.startswith("xcb") or (not platform and bool(os.environ.get("DISPLAY")))


def missing_xcb_libraries() -> list[str]:
    """Return the shared libraries Qt's ``xcb`` plugin needs that this system lacks (by ``ldd``).

    Empty when nothing is missing, or when the plugin or ``ldd`` cannot be found.
    """
    plugin = _xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return []
    try:
        listing = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(
        {line.split("=>")[0].strip() for line in listing.splitlines() if "not found" in line}
    )


def missing_library_message(libraries: list[str]) -> str:
    """Return what to tell the user: the missing files and the Debian packages that hold them."""
    packages = sorted({XCB_PACKAGES.get(library, "?") for library in libraries} - {"?"})
    unknown = [library for library in libraries if library not in XCB_PACKAGES]
    lines = [
        "The window cannot open: Qt's X11 (xcb) platform plugin needs libraries this system "
        f"lacks: {', '.join(libraries)}."
    ]
    if packages:
        lines.append(
            f"  Install them (Debian, Ubuntu): sudo apt-get install {' '.join(packages)}"
        )
        lines.append("  or run `bash scripts/setup.sh` as root, which installs them all.")
    if unknown:
        lines.append(f"  Find the package of {', '.join(unknown)} with `apt-file search NAME`.")
    lines.append("  Without a screen: QT_QPA_PLATFORM=offscreen python app.py")
    return "\n".join(lines)


def _xcb_plugin() -> Path | None:
    """Return PyQt5's ``libqxcb.so``, found without importing Qt."""
    spec = importlib.util.find_spec("PyQt5")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        plugin = Path(folder) / "Qt5" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None
