"""Triggers: small composable conditions on the stream of pose observations.

Every trigger has one interface (:class:`Trigger`): ``update(obs) -> bool`` with the condition's
state after that observation (the trigger keeps its own state across frames), ``reset()``,
``describe() -> dict`` for the event log, and ``shapes()`` for drawing. All durations are in
seconds of frame time (:attr:`Observation.time_s`), never the host's clock at evaluation.

========================  ==========================================================
module                    triggers
========================  ==========================================================
``regions``               :class:`Region` (circle, rect, ellipse, polygon; inside, outside,
                          entered, left; dwell; hysteresis)
``direction``             :class:`HeadDirection`, :class:`TargetSide` (egocentric left/right)
``motion``                :class:`SpeedAbove`, :class:`SpeedBelow`, :class:`Freezing`,
                          :class:`DistanceAbove`, :class:`DistanceBelow`
``timing``                :class:`After`, :class:`Every`
``features``              :class:`MotionEnergyAbove`/``Below``, :class:`PupilDiameterAbove`/
                          ``Below``; :func:`motion_energy`, :func:`pupil_diameter`
``depth``                 :class:`Height` (a keypoint's height above the floor, from a depth
                          camera's image)
``combinators``           :class:`All`/``And``, :class:`AnyOf`/``Or``, :class:`Not`,
                          :class:`Debounce`, :class:`Rising`
``social``                :class:`~social.ForAnimal` (one chosen animal), the two-animal kinds
``animals``               :class:`AnyAnimal`, :class:`EachAnimal` (``ANIMAL = any`` / ``each``:
                          one state for all animals, or a state and edges per animal)
``kinds``                 the registry :data:`TRIGGERS`: each module above declares its KINDS
``factory``               :func:`make_trigger` from config strings
========================  ==========================================================

A new trigger is one module in this package (or one class in a module here): its class, and a
:class:`~experiments.triggers.kinds.TriggerKind` in the module's ``KINDS`` with its parameters
and documentation, registered by name in :data:`~experiments.triggers.kinds.TRIGGERS`. A lab's
own trigger needs no fork: its package declares the kind under the entry point group
``deeplabstream.triggers`` (docs/experiments.md, "A lab's own trigger").
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
