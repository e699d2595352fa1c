"""The inference worker's end: close every camera's sinks, write its tables, count its figures.

After the loop stops, each camera's sinks close (its files complete), its identity learner
stops, ``<camera>.pose.pqt`` (and with ``[Output] NAMING = ibl`` the IBL-named files) is
written from the finished CSVs, and its figures for ``session.json`` are gathered.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from deeplabstream.live.processes.pose_job import PoseJob
from deeplabstream.live.processes.pose_pipeline import CameraPipeline
from deeplabstream.outputs.pose_files import (
    POSE_PARQUET_SUFFIX,
    POSE_TIMING_SUFFIX,
    ibl_stem,
    write_ibl_pose_files,
    write_pose_parquet,
)
from deeplabstream.transport.ring import Channel

log = logging.getLogger(__name__)


def finish(job: PoseJob, pipelines: list[CameraPipeline]) -> dict[str, dict[str, Any]]:
    """Close every camera's reader and sinks; return each camera's figures, by name."""
    return {pipeline.camera.name: _finish_camera(job, pipeline) for pipeline in pipelines}


def _finish_camera(job: PoseJob, pipeline: CameraPipeline) -> dict[str, Any]:
    pipeline.reader.close()
    if pipeline.depth is not None:
        pipeline.depth.close()
    last_index = pipeline.last_index()
    files = pipeline.files.close(last_index)
    others: dict[str, Any] = {}
    for sink in pipeline.sinks:
        if sink is not pipeline.files:
            others.update(sink.close(last_index))
    # The learner stopped and the confidence file closed before the table reads it.
    looks = pipeline.identities.close() if pipeline.identities is not None else None
    header = pipeline.ring.header
    analysed = pipeline.files.csv.analysed
    span_s = (pipeline.last_ready_ns - pipeline.first_ready_ns) / 1e9
    file_errors = pipeline.files.errors
    figures = {
        "frames_analysed": analysed,
        "frames_skipped": int(header["skipped"][Channel.ANALYSE]),
        "frames_lost": int(header["lost"][Channel.ANALYSE]),
        "analysed_fps": round((analysed - 1) / span_s, 3) if analysed > 1 and span_s else None,
        "latency_ms": pipeline.latency.figures(),
        # Dynamic cropping: frames analysed whole (tracking lost, or cropping off) and
        # cropped; the crop of every frame is in <camera>.pose_timing.csv.
        "frames_full_frame": analysed - pipeline.frames_cropped,
        "frames_cropped": pipeline.frames_cropped,
        "dynamic_crop": _crop_figures(pipeline),
        **files,  # pose_file, pose_rows (one per frame index), pose_times_file
        "pose_table": _parquet(
            pipeline.files.csv.path,
            job.session_dir / job.stem(pipeline.camera),
            file_errors,
            pipeline.files.times.path,
            pipeline.identities.file.path if pipeline.identities is not None else None,
        ),
        # Files that stopped early (a full disk): the session reports them as errors.
        "file_errors": file_errors,
        "identities": _identity_figures(pipeline, looks),
        # The loop's deadline: misses per stage (core/deadline.py); the session judges.
        "deadline": pipeline.deadline.figures(),
        "frames_not_analysed_worker_gone": 0,  # it ended normally (live/session/analysis.py)
    }
    if job.ibl_naming and figures["pose_table"]:
        figures["ibl_files"] = _ibl_files(job, pipeline)
    figures.update(others)
    pipeline.ring.close()
    return figures


def _identity_figures(
    pipeline: CameraPipeline, looks: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Return what the tracker counted and the keeper did (multi-animal); None for one animal.

    For an identity model (no tracker: its classes are the identities), the classes and how
    often each was found (:mod:`live.processes.class_identities`).
    """
    if pipeline.tracker is None:
        if looks is None or looks.get("source") != "model classes":
            return None
        return {"max_animals": pipeline.model.description.max_animals, "model": looks}
    figures = {
        "max_animals": pipeline.model.description.max_animals,
        **dataclasses.asdict(pipeline.tracker.counts),
    }
    if looks is not None:
        figures["appearance"] = looks  # pose.tracking.identities, live.processes.identities
    return figures


def _crop_figures(pipeline: CameraPipeline) -> dict[str, Any] | None:
    """Return the camera's dynamic-crop settings and the crop sizes it used; None when it is off."""
    cropper = pipeline.cropper
    if cropper is None:
        return None
    settings = cropper.settings
    return {
        "margin_px": settings.margin,
        "likelihood": settings.likelihood,
        "min_keypoints": cropper.min_keypoints,
        "size_step_px": cropper.step,
        "input_multiple": cropper.multiple,
        "refresh_frames": settings.refresh,
        # crops of a network with channel gates get the whole frame's (pose.runtime.cropping)
        "whole_frame_gates": pipeline.model.crop_graphs is not None,
        "sizes": [list(size) for size in sorted(pipeline.crop_sizes)],  # [width, height]
    }


def _ibl_files(job: PoseJob, pipeline: CameraPipeline) -> list[str] | None:
    """Write ``_ibl_<camera>Camera.dlc.pqt`` and ``.times.npy``; None (logged) on failure."""
    name = pipeline.camera.name
    stem = job.session_dir / f"{ibl_stem(name)}{job.file_label}"
    parquet = job.session_dir / f"{job.stem(pipeline.camera)}{POSE_PARQUET_SUFFIX}"
    timing = job.session_dir / f"{job.stem(pipeline.camera)}{POSE_TIMING_SUFFIX}"
    try:
        return list(write_ibl_pose_files(parquet, timing, stem))
    except (OSError, ValueError, KeyError) as error:
        log.error("could not write the IBL-named files of %s: %s", name, error)
        return None


def _parquet(
    csv_path: Path,
    stem: Path,
    errors: list[str],
    times_path: Path,
    identity_path: Path | None = None,
) -> str | None:
    """Write ``<stem>.pose.pqt`` from the finished CSVs; None (and an error kept) on failure."""
    target = stem.with_name(stem.name + POSE_PARQUET_SUFFIX)
    try:
        write_pose_parquet(csv_path, target, times_path, identity_path)
    except (OSError, ValueError) as error:
        message = f"could not write {target.name}: {error}"
        log.error("%s", message)
        errors.append(message)
        target.unlink(missing_ok=True)  # never leave a cut (unreadable) table behind
        return None
    return target.name
