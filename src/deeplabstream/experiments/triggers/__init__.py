"""Triggers: small composable conditions on the stream of pose observations.

Its design: docs/experiments-internals.md (`experiments.triggers`).
"""

from deeplabstream.experiments.triggers.animals import AnyAnimal, EachAnimal
from deeplabstream.experiments.triggers.base import Condition, KeypointTrigger, Trigger
from deeplabstream.experiments.triggers.combinators import (
    All,
    And,
    AnyOf,
    Debounce,
    Not,
    Or,
    Rising,
)
from deeplabstream.experiments.triggers.depth import Height
from deeplabstream.experiments.triggers.direction import HeadDirection, TargetSide, bearing_deg
from deeplabstream.experiments.triggers.factory import (
    COMBINATOR_KINDS,
    TRIGGER_KINDS,
    file_parameters_of,
    make_trigger,
    parameters_of,
    trigger_kind,
)
from deeplabstream.experiments.triggers.features import (
    PUPIL_KEYPOINTS,
    MotionEnergyAbove,
    MotionEnergyBelow,
    PupilDiameterAbove,
    PupilDiameterBelow,
    motion_energy,
    pupil_diameter,
)
from deeplabstream.experiments.triggers.geometry import (
    Circle,
    Ellipse,
    Label,
    Line,
    Marker,
    Polygon,
    Rectangle,
    Shape,
    parse_shape,
)
from deeplabstream.experiments.triggers.motion import (
    DistanceAbove,
    DistanceBelow,
    Freezing,
    SpeedAbove,
    SpeedBelow,
    WindowSpeed,
)
from deeplabstream.experiments.triggers.regions import Region
from deeplabstream.experiments.triggers.timing import After, Every

__all__ = [
    "COMBINATOR_KINDS",
    "PUPIL_KEYPOINTS",
    "TRIGGER_KINDS",
    "After",
    "All",
    "And",
    "AnyAnimal",
    "AnyOf",
    "Circle",
    "Condition",
    "Debounce",
    "DistanceAbove",
    "DistanceBelow",
    "EachAnimal",
    "Ellipse",
    "Every",
    "Freezing",
    "HeadDirection",
    "Height",
    "KeypointTrigger",
    "Label",
    "Line",
    "Marker",
    "MotionEnergyAbove",
    "MotionEnergyBelow",
    "Not",
    "Or",
    "Polygon",
    "PupilDiameterAbove",
    "PupilDiameterBelow",
    "Rectangle",
    "Region",
    "Rising",
    "Shape",
    "SpeedAbove",
    "SpeedBelow",
    "TargetSide",
    "Trigger",
    "WindowSpeed",
    "bearing_deg",
    "file_parameters_of",
    "make_trigger",
    "motion_energy",
    "parameters_of",
    "parse_shape",
    "pupil_diameter",
    "trigger_kind",
]
