"""The experiment's regions on a replay's annotated video, drawn as the live view draws them.

The live view draws every trigger's shapes on its tiles (``app.display.overlay``); a replay's
annotated video is written after the session from the files it left, where the experiment's
state is no longer at hand. So the regions are drawn in the colour of a trigger that is not
true, with the live view's own drawing code, under the keypoints: where the animal was judged
to be in or out is visible in the video. Only regions (circles, rectangles, ellipses,
polygons): a line or marker follows the pose and would be wrong drawn still.
"""

from __future__ import annotations

import logging

import numpy as np

from deeplabstream.app.display.overlay import draw_triggers
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.experiments.triggers.geometry import Circle, Ellipse, Polygon, Rectangle
from deeplabstream.live.processes.messages import TriggerView
from deeplabstream.outputs.annotated_video import FrameOverlay
from deeplabstream.settings.sections import Settings

log = logging.getLogger(__name__)

REGION_SHAPES = (Circle, Rectangle, Ellipse, Polygon)


def region_overlay(settings: Settings, camera: str) -> FrameOverlay | None:
    """Draw the regions of ``settings``' experiment on ``camera``'s frames; None: there are none.

    An experiment that cannot be loaded here gives none (the replay itself said why).
    """
    try:
        experiment = load_experiment(settings.experiment.name, settings.source_file.parent)
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
