"""Trigger parameters are declared and parsed with the settings schema of cameras and devices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deeplabstream.core.schema import SettingSpec, Where, parse_section, setting, spec_of
from deeplabstream.experiments.triggers import TRIGGER_KINDS, make_trigger, parameters_of
from deeplabstream.experiments.triggers.factory import parameter_specs


@dataclasses.dataclass(frozen=True)
class _Section:
    count: int = setting(doc="a count", minimum=1, maximum=16)
    label: str = setting("x", doc="a label")


def test_every_trigger_parameter_is_a_setting_spec() -> None:
    for kind in TRIGGER_KINDS:
        specs = parameter_specs(kind)
        assert specs.keys() == parameters_of(kind).keys()
        for name, spec in specs.items():
            assert isinstance(spec, SettingSpec), (kind, name)
            assert spec.allowed, (kind, name)  # what it accepts, for messages and the reference


def test_required_means_no_default_for_fields_and_triggers() -> None:
    count, label = dataclasses.fields(_Section)
    assert spec_of(count).required and not spec_of(label).required
    assert parameter_specs("region")["shape"].required
    assert not parameter_specs("region")["mode"].required
    assert parameter_specs("classifier")["model"].is_file
    assert parameter_specs("region")["keypoint"].names_keypoints


def test_a_settings_key_and_a_trigger_parameter_fail_alike() -> None:
    """One parse path: the same spec gives the same 'expected ...' in both places."""
    problems: list[str] = []
    parse_section(_Section, {"COUNT": "0"}, Where(Path("rig.ini"), "Thing"), problems)
    assert problems == ["rig.ini: [Thing] COUNT = '0': expected a whole number from 1 to 16"]

    with pytest.raises(ValueError) as raised:
        make_trigger("region", {"shape": "circle 1 1 5", "animal": "0"})
    assert str(raised.value).startswith(
        "trigger 'region': parameter 'animal' = '0' is not valid: expected a whole number from "
        "1 to 16"
    )
