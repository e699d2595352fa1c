"""What a multi-animal session's experiments saw, from its files.

The pose CSV holds the model's animals whole (issue 54); ``<camera>.identity.csv``'s ``unnamed``
column lists, per frame, the identities whose animal the experiments did not see (unsure after
a merge). Together they give the rules' view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def rules_view(
    points: np.ndarray,
    frames: np.ndarray,
    individuals: tuple[str, ...] | None,
    identity_csv: Path,
) -> np.ndarray:
    """Return ``points`` (N, A, K, 3) of ``frames`` with the unnamed animals NaN."""
    assert individuals is not None, "a multi-animal pose table names its individuals"
    table = pd.read_csv(identity_csv, keep_default_na=False, dtype=str)
    unnamed = dict(zip(table["frame_index"].astype(int), table["unnamed"], strict=True))
    shown = np.array(points, dtype=np.float64, copy=True)
    for row, frame in enumerate(np.asarray(frames).tolist()):
        names = unnamed.get(int(frame), "").split()
        for name in names:
            shown[row, individuals.index(name)] = np.nan
    return shown
