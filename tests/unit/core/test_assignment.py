"""The assignment solver: SciPy's answers, and SciPy loaded only when a process assigns."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipy_assignment

from deeplabstream.core.assignment import linear_sum_assignment


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2), (1, 1), (0, 0)])
@pytest.mark.parametrize("maximize", [False, True])
def test_the_solver_answers_as_scipy(shape: tuple[int, int], maximize: bool) -> None:
    cost = np.random.default_rng(sum(shape)).random(shape)
    rows, columns = linear_sum_assignment(cost, maximize=maximize)
    expected_rows, expected_columns = scipy_assignment(cost, maximize=maximize)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(columns, expected_columns)


def _imported_after(statement: str) -> set[str]:
    """The modules of ``scipy.optimize`` and ``pandas`` a fresh Python holds after ``statement``."""
    code = (
        f"import sys; {statement}; "
        "print(' '.join(m for m in ('scipy.optimize', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "deeplabstream.app.headless_run",  # the headless command's main process
        "deeplabstream.live.processes.analysis.inference",  # the spawned inference worker
    ],
)
def test_a_session_process_starts_without_scipy_optimize_or_pandas(module: str) -> None:
    # Each costs about half a second of CPU at every process's start; a single-animal session
    # never assigns, and only the benchmark mode writes tables.
    assert _imported_after(f"import {module}") == set()


def test_loading_the_solver_imports_scipy_optimize() -> None:
    statement = "from deeplabstream.core.assignment import load_assignment_solver as load; load()"
    assert _imported_after(statement) == {"scipy.optimize"}
