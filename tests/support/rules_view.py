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
    keypoints: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Return ``points`` (N, A, K, 3) of ``frames`` with what the rules did not read NaN.

    A token ``animal2`` is a whole animal unnamed; ``animal2:nose`` one keypoint withheld (it
    may be another animal's). ``keypoints`` names the K keypoints (required for such tokens).
    """
    assert individuals is not None, "a multi-animal pose table names its individuals"
    table = pd.read_csv(identity_csv, keep_default_na=False, dtype=str)
    unnamed = dict(zip(table["frame_index"].astype(int), table["unnamed"], strict=True))
    shown = np.array(points, dtype=np.float64, copy=True)
    for row, frame in enumerate(np.asarray(frames).tolist()):
        for token in unnamed.get(int(frame), "").split():
            name, _, keypoint = token.partition(":")
            if not keypoint:
                shown[row, individuals.index(name)] = np.nan
                continue
            assert keypoints is not None, f"{identity_csv}: {token} needs the keypoints' names"
            shown[row, individuals.index(name), keypoints.index(keypoint)] = np.nan
    return shown
