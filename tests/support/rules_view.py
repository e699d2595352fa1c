"""What a multi-animal session's experiments saw, from its files.

The pose CSV holds the model's animals whole (issue 54); ``<camera>.identity.csv``'s ``unnamed``
column lists, per frame, the identities whose animal the experiments did not see (unsure after
a merge), and as ``animal:keypoint`` the single keypoints withheld from them (maybe another
animal's). Together they give the rules' view. What was withheld is unknown to the rules, not
absent: a trigger keeps its state through it (:func:`withheld` says where).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def withheld(
    frames: np.ndarray,
    individuals: tuple[str, ...] | None,
    identity_csv: Path,
    keypoints: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Return (N, A, K) bool: the keypoints of ``frames`` the identity step withheld.

    A token ``animal2`` is a whole animal unnamed; ``animal2:nose`` one keypoint withheld (it
    may be another animal's). ``keypoints`` names the K keypoints (required for such tokens;
    without them K is 1 and only whole animals can be listed).
    """
    assert individuals is not None, "a multi-animal pose table names its individuals"
    table = pd.read_csv(identity_csv, keep_default_na=False, dtype=str)
    unnamed = dict(zip(table["frame_index"].astype(int), table["unnamed"], strict=True))
    frames = np.asarray(frames)
    mask = np.zeros((len(frames), len(individuals), len(keypoints or ()) or 1), bool)
    for row, frame in enumerate(frames.tolist()):
        for token in unnamed.get(int(frame), "").split():
            name, _, keypoint = token.partition(":")
            if not keypoint:
                mask[row, individuals.index(name)] = True
                continue
            assert keypoints is not None, f"{identity_csv}: {token} needs the keypoints' names"
            mask[row, individuals.index(name), keypoints.index(keypoint)] = True
    return mask


def rules_view(
    points: np.ndarray,
    frames: np.ndarray,
    individuals: tuple[str, ...] | None,
    identity_csv: Path,
    keypoints: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Return ``points`` (N, A, K, 3) of ``frames`` with what the rules did not read NaN.

    The tokens and ``keypoints`` as :func:`withheld` reads them.
    """
    hidden = withheld(frames, individuals, identity_csv, keypoints)
    shown = np.array(points, dtype=np.float64, copy=True)
    if hidden.shape[2] == 1:  # whole animals only
        shown[hidden[:, :, 0]] = np.nan
    else:
        shown[hidden] = np.nan
    return shown
