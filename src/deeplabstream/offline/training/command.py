"""``deeplabstream-train``: the training command, started so that a missing torch is explained.

Training needs torch (``pip install "deeplabstream[torch]"``); :mod:`.train` imports it at the
top, so the console script imports that module only inside :func:`~deeplabstream.core.optional.
exit_with`, which turns the missing library into one sentence and exit code 2.
"""

from __future__ import annotations

from deeplabstream.core.optional import exit_with


def _train() -> int:
    # imported here: the module imports torch, which the base install does not have
    from deeplabstream.offline.training.train import run

    run()
    return 0


def run() -> None:
    """Run as the console script ``deeplabstream-train``."""
    exit_with(_train)
