"""``xvfb-run`` for the tests that need a real X display (Xvfb with Qt's xcb plugin).

``xvfb-run -a`` takes the first free display number from 99 up, and two servers started at
the same moment can both find the same one free: each pytest-xdist worker therefore starts
its search at a number of its own.
"""

from __future__ import annotations

import os

FIRST_DISPLAY = 99
DISPLAYS_PER_WORKER = 20


def first_display_number() -> int:
    """This worker's first display number (99 outside pytest-xdist, 99 + 20 x n in worker n)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw0", "gw1" ...
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return FIRST_DISPLAY + DISPLAYS_PER_WORKER * index


def xvfb_run(screen: str | None = None) -> list[str]:
    """The ``xvfb-run`` words before the command: a free display, and the screen's size if given
    (``"1600x1000"``; 24-bit colour)."""
    words = ["xvfb-run", "-a", "-n", str(first_display_number())]
    if screen is not None:
        words += ["-s", f"-screen 0 {screen}x24"]
    return words
