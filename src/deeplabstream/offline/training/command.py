"""``deeplabstream-train``: the training command, started so that a missing torch is explained.

``--help`` works without torch, from :mod:`.train`'s docstring read as text.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabstream.core.optional import exit_with

TRAIN_MODULE = "deeplabstream.offline.training.train"
HELP_FLAGS = ("-h", "--help")
INSTALL_TORCH = 'pip install "deeplabstream[torch]"'


def _train() -> int:
    # imported here: the module imports torch, which the base install does not have
    from deeplabstream.offline.training.train import run

    run()
    return 0


def has_torch() -> bool:
    """Whether torch can be imported (without importing it)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None  # None: import blocked (a test's fresh env)
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def help_without_torch() -> str:
    """Return what the command does, from :mod:`.train`'s description, and how to train."""
    spec = importlib.util.find_spec(TRAIN_MODULE)
    origin = spec.origin if spec is not None else None
    description = ""
    if origin is not None:
        description = ast.get_docstring(ast.parse(Path(origin).read_text(encoding="utf-8"))) or ""
    description = description.replace(f"python -m {TRAIN_MODULE}", "deeplabstream-train")
    return (
        "usage: deeplabstream-train [options]\n\n"
        f"{description}\n\n"
        f"Training needs torch, which this installation does not have: {INSTALL_TORCH}\n"
        "then `deeplabstream-train --help` lists every option with its default.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the help without torch, else train; return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if any(flag in arguments for flag in HELP_FLAGS) and not has_torch():
        print(help_without_torch())
        return 0
    return _train()


def run() -> None:
    """Run as the console script ``deeplabstream-train``."""
    exit_with(main)
