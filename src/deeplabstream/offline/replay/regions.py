"""The experiment's regions in a replay: bound to its camera (checked), drawn on its video."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from deeplabstream.app.display.overlay import draw_triggers
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.experiments.triggers.geometry import Circle, Ellipse, Polygon, Rectangle
from deeplabstream.live.processes.messages import TriggerView
from deeplabstream.outputs.annotated_video import FrameOverlay
from deeplabstream.outputs.session_record import ExperimentRun
from deeplabstream.settings.effective import CameraPlan
from deeplabstream.settings.experiment_plan import ExperimentPlan

log = logging.getLogger(__name__)


def region_camera_problems(plan: CameraPlan, camera: str, video: Path) -> list[str]:
    """Return why the plan's experiment's triggers would see no pose of the replay's ``camera``.

    A trigger naming another camera is a problem; an experiment that cannot be loaded gives none.
    """
    try:
        experiment = plan.experiment_plan().experiment()
    except (DeepLabStreamError, ValueError, ImportError):
        return []
    others: dict[str, list[str]] = {}
    for name, trigger in experiment.triggers.items():
        for read in trigger.cameras_read() or ():
            if read != camera:
                others.setdefault(read, []).append(name)
    if not others:
        return []
    triggers = "; ".join(f"camera {c!r}: {', '.join(names)}" for c, names in others.items())
    if len(others) == 1:
        (only,) = others
        fix = (
            f"Replay it as that camera with --camera {only} (every video of the batch then "
            f"plays as camera {only!r}), or name the video {only}{video.suffix}"
        )
    else:
        fix = (
            "A replay plays one video as one camera: replay each camera's video with --camera "
            "NAME and an experiment whose triggers read that camera"
        )
    return [
        f"{video}: the experiment's triggers read camera(s) {', '.join(map(repr, others))} "
        f"({triggers}), but this replay's camera is {camera!r}: they would see no pose of it, "
        f"so nothing would be evaluated or drawn. {fix}"
    ]


REGION_SHAPES = (Circle, Rectangle, Ellipse, Polygon)


def region_overlay(run: ExperimentRun | None, camera: str) -> FrameOverlay | None:
    """Draw the regions of the experiment the replay ran on ``camera``'s frames; None: none.

    Built from the plan ``session.json`` recorded for ``run``; one that cannot be built: None.
    """
    if run is None or not run.plan:
        return None
    try:
        experiment = ExperimentPlan.from_record(run.plan).build()
    except (DeepLabStreamError, ValueError, ImportError) as error:
        log.warning("the annotated video shows no regions: %s", error)
        return None
    views = []
    for name, trigger in experiment.triggers.items():
        watched = getattr(trigger, "camera", None)  # None: every camera, as the live view
        regions = tuple(s for s in trigger.shapes() if isinstance(s, REGION_SHAPES))
        if regions and watched in (None, camera):
            views.append(TriggerView(name, False, regions, watched))
    if not views:
        return None

    def draw(image: np.ndarray) -> None:
        draw_triggers(image, views)

    return draw
