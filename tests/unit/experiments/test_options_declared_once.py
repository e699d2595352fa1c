"""A config file's ``[Experiment]`` keys and the options they set: one table (issue 73, item 2).

``ExperimentSection`` declares each key (its documentation, limits and default, the option's
default); ``OPTION_OF_KEY`` says which option each sets; the rest is derived from them.
"""

from __future__ import annotations

import dataclasses

from deeplabstream.experiments.config.parse import (
    EXPERIMENT_KEYS,
    OPTION_OF_KEY,
    ExperimentSection,
)
from deeplabstream.experiments.options import ExperimentOptions


def test_every_option_is_set_by_its_keys_and_every_key_sets_one() -> None:
    options = {field.name for field in dataclasses.fields(ExperimentOptions)}
    assert set(EXPERIMENT_KEYS) == options
    keys = {field.name for field in dataclasses.fields(ExperimentSection)}
    predict = {key for key in keys if key.startswith("predict")}
    # MAX_ENSEMBLE_STD is the keypoint triggers' default of their own key, not an option
    assert keys == {"description", "max_ensemble_std", *OPTION_OF_KEY, *predict}
    assert EXPERIMENT_KEYS["hold_s"] == ("HOLD",)  # the file's key, the option's own name


def test_an_empty_section_gives_the_options_defaults() -> None:
    assert ExperimentOptions(**ExperimentSection().options()) == ExperimentOptions()
