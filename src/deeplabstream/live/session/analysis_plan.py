"""What a Start Analysis or Start Experiment hands the inference worker.

Each streaming camera as a :class:`WorkerCamera` (its ring, channel and effective settings: model,
flip, crop), the experiment as an :class:`ExperimentSpec`, and the name of the experiment's
events file; ``LiveSession`` starts the worker with them (live.session.analysis).
"""

from __future__ import annotations

from deeplabstream.hardware.stimulation.latency import LatencyTestSpec
from deeplabstream.live.processes.analysis.depth import depth_source
from deeplabstream.live.processes.analysis.job import WorkerCamera
from deeplabstream.live.processes.messages import ExperimentSpec
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.report.health import SessionHealth
from deeplabstream.outputs.folder import run_label
from deeplabstream.settings.effective import CameraPlan
from deeplabstream.settings.experiment_plan import ExperimentPlan, resolve_experiment
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.ring import Channel


def worker_cameras(
    branches: list[CameraBranch], plan: CameraPlan, health: SessionHealth
) -> list[WorkerCamera]:
    """Return the cameras still streaming, as the inference worker analyses them.

    Each carries its effective settings from ``plan`` (settings/effective.py): its model, FLIP,
    dynamic crop and PIXELS_PER_MM, resolved once for the session.
    """
    cameras = []
    for branch in branches:
        if branch.ended or branch.ring is None:
            continue
        description = branch.opened.description if branch.opened else {}
        geometry = branch.ring.spec.geometry
        cameras.append(
            WorkerCamera(
                branch.camera_id,
                branch.ring.spec,
                branch.channel_ends[Channel.ANALYSE],
                plan.camera(branch.name),
                # A RealSense's aligned depth image: experiments read it (Observation.depth_m).
                depth_source(branch.name, description, (geometry.height, geometry.width)),
                deadline_ns=health.deadline_ns(
                    branch.opened.nominal_fps if branch.opened else None
                ),
            )
        )
    return cameras


def experiment_spec(
    settings: Settings,
    name: str | None,
    latency_test: LatencyTestSpec | None,
    plan: ExperimentPlan | None = None,
) -> ExperimentSpec:
    """Return experiment ``name`` (None: ``[Experiment] NAME``) with the settings' devices.

    The experiment is read now (its plan: the config's text, the module's hash), unless the
    caller resolved it already (``plan``: the checks before a headless start did).
    """
    if plan is None:
        chosen = name or settings.experiment.name
        named_by = f"[Experiment] NAME in {settings.source_file}" if name is None else chosen
        plan = resolve_experiment(chosen, settings.source_file.parent, named_by)
    return ExperimentSpec(plan, dict(settings.devices), latency_test)


def events_file_name(run: int) -> str:
    """``events.csv`` for the session's first experiment, ``events.run2.csv`` and on after."""
    return f"events{run_label(run)}.csv"
