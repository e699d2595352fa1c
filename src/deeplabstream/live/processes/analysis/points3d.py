"""The inference worker's live 3D: its triangulation opened before the first frame, closed after."""

from __future__ import annotations

from typing import Any

from deeplabstream.core.errors import CalibrationError, raised_as
from deeplabstream.live.processes.analysis.job import PoseJob
from deeplabstream.live.processes.analysis.models import AnyModel, model_key
from deeplabstream.spatial.triangulation.live import LiveTriangulator


def open_triangulator(job: PoseJob, models: dict[str, AnyModel]) -> LiveTriangulator | None:
    """Return the live triangulation of ``job`` (None without a calibration).

    The calibrated cameras must share one model: checked here, before the first frame.
    """
    spec = job.triangulation
    if spec is None:
        return None
    by_name = {camera.name: camera for camera in job.cameras}
    missing = [name for name in spec.cameras if name not in by_name]
    if missing:
        raise CalibrationError(
            f"CAMERAS names {', '.join(missing)}, which pose estimation does not run"
        )
    keypoints = {models[model_key(by_name[name])].description.keypoints for name in spec.cameras}
    if len(keypoints) != 1:
        raise CalibrationError(
            f"the calibrated cameras {', '.join(spec.cameras)} use models with different "
            "keypoints; triangulation needs one model for all of them (MODEL_PATH)"
        )
    with raised_as(CalibrationError, OSError, ValueError):  # the calibration file, read now
        return LiveTriangulator(spec, keypoints.pop(), job.session_dir, job.file_label)


def finish_triangulation(
    triangulator: LiveTriangulator | None, figures: dict[str, dict[str, Any]]
) -> None:
    """Close ``points3d.csv``; add the triangulation's figures to each calibrated camera's."""
    if triangulator is None:
        return
    triangulator.close()
    summary = triangulator.figures()
    for camera in triangulator.cameras:
        if camera in figures:
            figures[camera]["triangulation"] = summary
