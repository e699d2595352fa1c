"""A graph's outputs by their names, checked against what a framework's export gives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deeplabstream.pose.model import ModelDescription, ModelError


def named_outputs(
    outputs: Sequence[np.ndarray],
    description: ModelDescription,
    expected: Sequence[str],
    export: str,
) -> dict[str, np.ndarray]:
    """Return ``outputs`` by ``description.output_names``; each of ``expected`` must be there."""
    names = tuple(description.output_names)
    if len(outputs) != len(names):
        raise ModelError(f"{description.model_file}: {len(outputs)} outputs for the names {names}")
    by_name = dict(zip(names, outputs, strict=True))
    missing = [name for name in expected if name not in by_name]
    if missing:
        raise ModelError(
            f"{description.model_file}: {export} outputs {', '.join(expected)}; "
            f"missing {', '.join(missing)} (has {', '.join(names)})"
        )
    return by_name
