"""A session's ensemble predictions smoothed by the ``ensemble-kalman-smoother`` package itself.

docs/ensembles.md, "EKS offline: the package itself".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.outputs.pose.files import (
    EKS_SUFFIX,
    ENSEMBLE_SUFFIX,
    POSE_EXACT_SUFFIX,
    EnsembleExact,
    read_ensemble_exact,
)
from deeplabstream.outputs.session_record import read_session_record
from deeplabstream.pose.ensemble.statistics import VarMode, ensemble_frame

log = logging.getLogger(__name__)

PACKAGE = "ensemble-kalman-smoother"
EKS_RECORD_SUFFIX = ".eks.json"


@dataclass(frozen=True)
class SmoothedCamera:
    """What the smoother did for one camera's files."""

    stem: str
    table: Path
    record: Path
    frames: int  # analysed frames smoothed
    left_out: int  # analysed frames the package cannot take (no keypoint placed)
    smooth_param: tuple[float, ...]  # per keypoint, fitted or given
    cut_line: int = 0  # the file ended inside this line (a copy cut short): left out


def smoothable(exact: EnsembleExact) -> np.ndarray:
    """Return which analysed frames the package can smooth: the ensemble placed every keypoint."""
    medians = [ensemble_frame(members).keypoints[:, :2] for members in exact.members]
    return np.array([bool(np.isfinite(m).all()) for m in medians], dtype=bool)


def eks_smooth(
    members: np.ndarray,
    keypoints: Sequence[str],
    smooth_param: float | Sequence[float] | None = None,
    var_mode: VarMode = "confidence_weighted_var",
) -> tuple[Any, np.ndarray]:
    """Return the package's smoother output (its DataFrame) and smoothing parameters.

    ``members``: (T, M, K, 3), each model's x, y, likelihood of each frame.
    """
    from eks.marker_array import MarkerArray
    from eks.singlecam_smoother import ensemble_kalman_smoother_singlecam

    array = np.ascontiguousarray(np.transpose(members, (1, 0, 2, 3))[:, None])
    marker_array = MarkerArray(array, data_fields=["x", "y", "likelihood"])
    table, parameters = ensemble_kalman_smoother_singlecam(
        marker_array,
        list(keypoints),
        smooth_param=None if smooth_param is None else _as_list(smooth_param),
        var_mode=var_mode,
    )
    return table, np.asarray(parameters, dtype=np.float64)


def _as_list(value: float | Sequence[float]) -> float | list[float]:
    return float(value) if isinstance(value, int | float) else [float(v) for v in value]


def smooth_camera(
    exact_path: Path,
    smooth_param: float | Sequence[float] | None = None,
    var_mode: VarMode = "confidence_weighted_var",
) -> SmoothedCamera | None:
    """Smooth one camera's ensemble (None: one model); ValueError: damaged file, < 2 frames."""
    exact = read_ensemble_exact(exact_path)
    if exact is None:
        return None
    usable = smoothable(exact)
    if usable.sum() < 2:
        raise ValueError(
            f"{exact_path}: {int(usable.sum())} analysed frame(s) with every keypoint placed; "
            "the smoother needs at least two"
        )
    table, parameters = eks_smooth(exact.members[usable], exact.keypoints, smooth_param, var_mode)
    frames = exact.frames[usable]
    table.index = frames
    every = np.arange(int(exact.frames.min()), int(exact.frames.max()) + 1)
    table = table[~table.index.duplicated(keep="last")].reindex(every)
    table.index.name = None  # as the package writes it: an unnamed first column
    stem = exact_path.name.removesuffix(POSE_EXACT_SUFFIX)
    target = exact_path.with_name(stem + EKS_SUFFIX)
    _write_whole(target, table.to_csv())
    record = exact_path.with_name(stem + EKS_RECORD_SUFFIX)
    smoothed = SmoothedCamera(
        stem,
        target,
        record,
        int(usable.sum()),
        int((~usable).sum()),
        tuple(parameters.tolist()),
        exact.cut_line,
    )
    _write_whole(record, json.dumps(_record(smoothed, exact, var_mode, smooth_param), indent=1))
    return smoothed


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a stop while writing leaves the file before)."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _record(
    smoothed: SmoothedCamera,
    exact: EnsembleExact,
    var_mode: VarMode,
    given: float | Sequence[float] | None,
) -> dict[str, Any]:
    """Return what ``<camera>.eks.json`` says: the package, its parameters, the frames."""
    values = ", ".join(f"{value:.6g}" for value in smoothed.smooth_param)
    return {
        "package": PACKAGE,
        "version": metadata.version(PACKAGE),
        "call": "eks.singlecam_smoother.ensemble_kalman_smoother_singlecam",
        "models": int(exact.members.shape[1]),
        "keypoints": list(exact.keypoints),
        "smooth_param": list(smoothed.smooth_param),
        "smooth_param_fitted": given is None,
        "var_mode": var_mode,
        "frames_smoothed": smoothed.frames,
        "frames_left_out": smoothed.left_out,
        "table": smoothed.table.name,
        # the live causal filter with the same parameters (docs/ensembles.md)
        "settings": [
            "ENSEMBLE_SMOOTHING = causal",
            f"EKS_SMOOTH_PARAM = {values}",
            f"EKS_VAR_MODE = {var_mode}",
        ],
    }


def ensemble_files(folder: Path) -> list[Path]:
    """Return the ``pose_exact.csv`` files of ``folder`` (one per camera and analysis)."""
    return sorted(folder.glob(f"*{POSE_EXACT_SUFFIX}"))


def missing_ensemble_files(folder: Path, found: Sequence[Path]) -> list[Path]:
    """Return the ensembles' ``pose_exact.csv`` files the session wrote that are gone."""
    stems = {path.name.removesuffix(ENSEMBLE_SUFFIX) for path in folder.glob(f"*{ENSEMBLE_SUFFIX}")}
    try:
        record = read_session_record(folder)
    except (OSError, ValueError):
        record = None  # no record (a folder of files), or a damaged one: the files say it
    model = record.pose.model if record is not None and record.pose is not None else None
    if record is not None and record.files and model is not None and model.ensemble:
        stems |= {
            name.removesuffix(POSE_EXACT_SUFFIX)
            for name in record.files
            if name.endswith(POSE_EXACT_SUFFIX)
        }
    have = {path.name for path in found}
    return [
        folder / (stem + POSE_EXACT_SUFFIX)
        for stem in sorted(stems)
        if stem + POSE_EXACT_SUFFIX not in have
    ]
