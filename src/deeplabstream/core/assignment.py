"""The optimal one-to-one assignment of rows to columns (SciPy's), with SciPy loaded on first use.

Importing ``scipy.optimize`` costs about half a second of CPU; every process of a session and
every command would pay it at start although only multi-animal decoding and tracking assign.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_solver: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None


def load_assignment_solver() -> None:
    """Import the solver now: a live process that will assign calls this while it sets up."""
    global _solver
    if _solver is None:
        from scipy.optimize import linear_sum_assignment as solver

        _solver = solver


def linear_sum_assignment(cost: Any, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(rows, columns)`` of the least-cost (``maximize``: greatest) full assignment."""
    if _solver is None:
        load_assignment_solver()
    assert _solver is not None
    return _solver(cost, maximize=maximize)
