"""Whether a window can open: the xcb libraries Qt needs, named with their Debian packages."""

from __future__ import annotations

import sys

import pytest

from deeplabstream.app.display.screen import (
    XCB_PACKAGES,
    missing_library_message,
    missing_xcb_libraries,
    uses_xcb,
)
from tests.support.paths import PROJECT_ROOT


def test_a_missing_library_is_named_with_its_package_and_the_set_up_command() -> None:
    message = missing_library_message(["libxcb-icccm.so.4", "libxcb-xinerama.so.0", "libodd.so.1"])
    assert "libxcb-icccm.so.4, libxcb-xinerama.so.0, libodd.so.1" in message
    assert "sudo apt-get install libxcb-icccm4 libxcb-xinerama0" in message
    assert "bash scripts/setup.sh" in message
    assert "apt-file search" in message and "libodd.so.1" in message
    assert "QT_QPA_PLATFORM=offscreen" in message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is the Linux platform")
def test_the_set_up_installs_every_library_of_the_xcb_plugin() -> None:
    missing = missing_xcb_libraries()
    assert missing == [], missing_library_message(missing)


def test_every_package_named_is_installed_by_the_set_up() -> None:
    setup = (PROJECT_ROOT / "scripts" / "setup.py").read_text()
    for package in XCB_PACKAGES.values():  # the set-up's Debian packages (setup.sh runs it)
        assert package in setup, package


def test_xcb_is_used_only_for_x11_windows(monkeypatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not uses_xcb()
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert uses_xcb()
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("DISPLAY", ":3")
    assert uses_xcb()
