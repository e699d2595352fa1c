"""A config file's ``[Experiment]`` keys and the options they set: declared once.

``ExperimentOptions`` declares each option with its key's metadata (the key where it differs from
the field, documentation, limits, check); ``ExperimentSection`` gets those fields from it and
declares only the keys that set no option; ``EXPERIMENT_KEYS`` is derived from both.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

import deeplabstream
from deeplabstream.core.schema import key_of, setting, settings_fields, spec_of
from deeplabstream.experiments.config import parse
from deeplabstream.experiments.config.parse import (
    EXPERIMENT_KEYS,
    OPTION_FIELDS,
    ExperimentSection,
)
from deeplabstream.experiments.options import ExperimentOptions

SRC = Path(deeplabstream.__file__).parent
OWN_KEYS = {"description", "max_ensemble_std"}  # MAX_ENSEMBLE_STD: the triggers' own default


def test_every_option_is_set_by_its_keys_and_every_key_sets_one() -> None:
    options = {field.name for field in dataclasses.fields(ExperimentOptions)}
    assert set(EXPERIMENT_KEYS) == options
    assert {field.name for field in OPTION_FIELDS} == options - {"prediction"}
    names = {field.name for field in dataclasses.fields(ExperimentSection)}
    predict = {name for name in names if name.startswith("predict")}
    assert names == {*OWN_KEYS, *predict, *(field.name for field in OPTION_FIELDS)}
    assert EXPERIMENT_KEYS["hold_s"] == ("HOLD",)  # the file's key, the option's own name
    assert EXPERIMENT_KEYS["prediction"][0] == "PREDICT"  # the key a plan names as its origin
    assert set(EXPERIMENT_KEYS["prediction"]) == {name.upper() for name in predict}


def test_the_sections_option_keys_are_the_options_own_fields() -> None:
    """Same name, type, default and metadata object: nothing of an option is written twice."""
    section = {field.name: field for field in dataclasses.fields(ExperimentSection)}
    section_hints = typing.get_type_hints(ExperimentSection)
    option_hints = typing.get_type_hints(ExperimentOptions)
    for option in OPTION_FIELDS:
        key = section[option.name]
        assert spec_of(key) is spec_of(option), option.name
        assert key.default == option.default, option.name
        assert section_hints[option.name] == option_hints[option.name], option.name
        assert EXPERIMENT_KEYS[option.name] == (key_of(option),)
    keys = [key_of(field) for field in settings_fields(ExperimentSection)]
    assert len(keys) == len(set(keys)), "an [Experiment] key declared twice"


def test_no_option_is_declared_a_second_time() -> None:
    """The section's class body declares no option, and no option's text is written again."""
    source = ast.parse(inspect.getsource(parse))
    body = next(
        node
        for node in ast.walk(source)
        if isinstance(node, ast.ClassDef) and node.name == "ExperimentSection"
    ).body
    declared = {
        node.target.id
        for node in body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert declared & {field.name for field in OPTION_FIELDS} == set()
    assert {key.upper() for key in declared} & {key_of(field) for field in OPTION_FIELDS} == set()
    # each option's documentation is written once in src/ (a copy would be a second declaration)
    texts = [path.read_text(encoding="utf-8") for path in SRC.rglob("*.py")]
    for option in OPTION_FIELDS:
        start = spec_of(option).doc[:60]
        assert sum(text.count(start) for text in texts) == 1, option.name


def test_a_section_declaring_an_option_again_is_refused() -> None:
    with pytest.raises(TypeError, match="declares option\\(s\\) hold_s again"):

        @parse._with_option_keys
        class Twice:
            description: str = setting("", doc="d")
            max_ensemble_std: float | None = setting(None, doc="m")
            hold_s: float = setting(0.5, doc="again")


def test_an_empty_section_gives_the_options_defaults() -> None:
    assert ExperimentSection().options() == ExperimentOptions()
