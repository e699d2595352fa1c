"""The inference worker's end: close every camera's sinks, write its tables, count its figures.

Sinks close in order, the pose files first: later outputs read their finished tables.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from deeplabstream.live.processes.analysis.job import PoseJob
from deeplabstream.live.processes.analysis.pipeline import CameraPipeline
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
    files = pipeline.files.close(last_index)  # the pose files, their table, the identities
    others: dict[str, Any] = {}
    for sink in pipeline.sinks:
        if sink is not pipeline.files:
            others.update(sink.close(last_index))
    header = pipeline.ring.header
    analysed = pipeline.files.csv.analysed
    span_s = (pipeline.last_ready_ns - pipeline.first_ready_ns) / 1e9
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
        # Frames in which the model found no animal at all: the session warns when that is
        # (nearly) every frame (an empty arena, a model that does not fit the camera).
        "frames_no_animal": pipeline.frames_no_animal,
        "dynamic_crop": _crop_figures(pipeline),
        # pose_file, pose_rows (one per frame index), pose_times_file, pose_table
        **files,
        # Files that stopped early (a full disk): the session reports them as errors.
        "file_errors": pipeline.files.errors,
        "identities": _identity_figures(pipeline, pipeline.files.looks),
        # The loop's deadline: misses per stage (core/deadline.py); the session judges.
        "deadline": pipeline.deadline.figures(),
        # A two-stage model: where its crops came from ([Pose] CROP_FROM), frames each way.
        "two_stage": _two_stage_figures(pipeline),
        "frames_not_analysed_worker_gone": 0,  # it ended normally (live/session/analysis.py)
    }
    figures.update(others)  # the other outputs' (ibl_files, a lab's own)
    pipeline.ring.close()
    return figures


def _identity_figures(
    pipeline: CameraPipeline, looks: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Return the tracker's and keeper's figures, or an identity model's classes; None for one."""
    if pipeline.tracker is None:
        if looks is None or looks.get("source") != "model classes":
            return None
        return {"max_animals": pipeline.model.description.max_animals, "model": looks}
    figures = {
        "max_animals": pipeline.model.description.max_animals,
        # Whole animals as the framework assembled them, unless the lab turned the repair on.
        "merged_instance_repair": "on" if pipeline.tracker.regroup else "off",
        **dataclasses.asdict(pipeline.tracker.counts),
    }
    if looks is not None:
        figures["appearance"] = looks  # pose.tracking.identities, analysis.identities
    return figures


def _two_stage_figures(pipeline: CameraPipeline) -> dict[str, Any] | None:
    """Return where a two-stage model's crops came from, and how often; None for other models."""
    estimators = [e for e in pipeline.model.estimators.values() if e.two_stage]
    if not estimators:
        return None
    crop_from = estimators[0].crop_from
    figures: dict[str, Any] = {"crop_from": crop_from}
    if crop_from == "previous_frame":  # pose.decoding.two_stage: the first frame, or moved
        for estimator in estimators:
            assert estimator.previous is not None  # every two-stage model keeps its detections
            counts = estimator.previous.figures(pipeline.camera.camera_id)
            for name, count in counts.items():
                figures[name] = figures.get(name, 0) + count
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
