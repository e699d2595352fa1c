"""3D triggers on synthetic paired observations that carry triangulated keypoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deeplabstream.experiments.observation import Observation, Observations, Points3D
from deeplabstream.experiments.triggers import make_trigger
from deeplabstream.experiments.triggers.space import (
    Distance3DAbove,
    Distance3DBelow,
    HeightAbove,
    InsideBox3D,
    InsideSphere3D,
    reads_points3d,
)

NAMES = ("nose", "body_center")


def _update(t: float, nose: tuple[float, float, float] | None) -> Observations:
    """Paired observations of two cameras at time ``t`` with the nose at ``nose`` (mm)."""
    xyz = np.array([nose if nose is not None else (math.nan,) * 3, (200.0, 150.0, 20.0)])
    ncams = np.array([0 if nose is None else 3, 3])
    points = Points3D(NAMES, xyz, np.array([0.4, 0.3]), ncams, t, 0.002)
    cameras = {
        name: Observation(t, name, int(t * 100), np.zeros((2, 3)), NAMES) for name in ("a", "b")
    }
    return Observations(t, cameras, points)


def _no_set(t: float) -> Observations:
    return Observations(t, {"a": Observation(t, "a", 0, np.zeros((2, 3)), NAMES)})


def test_height_above_with_hysteresis() -> None:
    trigger = HeightAbove(30.0, hysteresis_mm=5.0)
    heights = [10, 31, 28, 26, 24, 29, 31]
    states = [trigger.update(_update(i * 0.01, (100, 100, z))) for i, z in enumerate(heights)]
    assert states == [False, True, True, True, False, False, True]
    assert trigger.measurement() == "nose at (100.0, 100.0, 31.0) mm"


def test_no_new_set_keeps_the_state_and_a_missing_keypoint_is_false() -> None:
    trigger = HeightAbove(30.0)
    assert trigger.update(_update(0.0, (0, 0, 40)))
    assert trigger.update(_no_set(0.01))  # no 3D set in this update: no news
    assert trigger.update(Observation(0.02, "a", 2, np.zeros((2, 3)), NAMES))  # one camera alone
    # The nose not triangulated: for HOLD_S (0.5 s) after its last set the state holds...
    assert trigger.update(_update(0.03, None)) and trigger.holding
    assert not trigger.update(_update(0.6, None))  # ...then it is unknown: false
    at_once = HeightAbove(30.0, hold_s=0)
    assert at_once.update(_update(0.0, (0, 0, 40)))
    assert not at_once.update(_update(0.03, None))
    assert at_once.describe()["hold_s"] == 0.0


def test_distance_to_a_point() -> None:
    below = Distance3DBelow("100, 100, 50", 20.0)
    above = Distance3DAbove((100, 100, 50), 20.0)
    near, far = _update(0.0, (110, 100, 45)), _update(0.1, (150, 100, 50))
    assert below.update(near) and not above.update(near)
    assert not below.update(far) and above.update(far)
    assert below.last_distance_mm == pytest.approx(50.0)


def test_inside_box_and_sphere() -> None:
    box = InsideBox3D("0 0 20 100 100 60", keypoint="nose")
    sphere = InsideSphere3D("50 50 40", 15.0)
    inside, outside = _update(0.0, (50, 50, 40)), _update(0.1, (50, 50, 10))
    assert box.update(inside) and sphere.update(inside)
    assert not box.update(outside) and not sphere.update(outside)
    assert box.update(_update(0.2, (100, 100, 60)))  # edges included


def test_body_part_other_than_the_nose() -> None:
    trigger = HeightAbove(15.0, keypoint="body_center")
    assert trigger.update(_update(0.0, None))  # body_center at z = 20


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("height_above", {"threshold_mm": "30", "hysteresis_mm": "5", "keypoint": "nose"}),
        ("distance3d_below", {"point": "1, 2, 3", "threshold_mm": "10"}),
        ("distance3d_above", {"point": "1 2 3", "threshold_mm": "10"}),
        ("inside_box3d", {"box": "0 0 0 10 10 10"}),
        ("inside_sphere3d", {"center": "1, 2, 3", "radius_mm": "4"}),
    ],
)
def test_configs_build_them_and_describe_rebuilds_them(kind: str, params: dict[str, str]) -> None:
    trigger = make_trigger(kind, params)
    assert reads_points3d(trigger)
    described = trigger.describe()
    rebuilt = make_trigger(kind, {k: str(v) for k, v in described.items() if k != "kind"})
    assert rebuilt.describe() == described


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("inside_box3d", {"box": "0 0 0 10 10"}, "parameter .box."),
        ("inside_box3d", {"box": "10 0 0 0 10 10"}, "parameter .box."),
        ("distance3d_below", {"point": "1, 2", "threshold_mm": "3"}, "parameter .point."),
        ("inside_sphere3d", {"center": "1 2 3", "radius_mm": "0"}, "radius_mm"),
        ("height_above", {}, "threshold_mm"),
    ],
)
def test_bad_parameters_are_named(kind: str, params: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_trigger(kind, params)


def test_a_2d_trigger_does_not_read_3d() -> None:
    assert not reads_points3d(make_trigger("speed_above", {"threshold": "10"}))
