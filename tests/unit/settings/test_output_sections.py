"""Which outputs a settings file chooses: the [Output] keys of the built-ins, [Output NAME]."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from deeplabstream.core.errors import SettingsError
from deeplabstream.outputs.interface import OUTPUTS, ChosenOutput, Output, with_required
from deeplabstream.outputs.lsl_output import LslOutputSettings
from deeplabstream.settings import load_settings
from deeplabstream.settings.outputs import chosen_outputs
from tests.support.files import write_settings

CAMERA = "[Camera a]\nSOURCE = synthetic\n"


def _chosen(tmp_path: Path, text: str) -> tuple[ChosenOutput, ...]:
    return chosen_outputs(load_settings(write_settings(tmp_path, CAMERA + text)))


def test_the_output_keys_choose_the_builtins_with_the_same_names_and_defaults(
    tmp_path: Path,
) -> None:
    assert _chosen(tmp_path, "") == (ChosenOutput("pose"),)
    chosen = _chosen(
        tmp_path, "[Output]\nNAMING = ibl\nLSL = on\nLSL_WAIT = 2.5\nNWB = on\nSLP = on\n"
    )
    assert [output.name for output in chosen] == ["pose", "ibl", "lsl", "nwb", "slp"]
    assert chosen[2].settings == LslOutputSettings(wait=2.5)
    assert chosen[2].plugin().start_up_s == 2.5  # the session waits that much longer for it


def test_a_section_chooses_an_output_with_its_own_keys_and_wins_over_the_output_keys(
    tmp_path: Path,
) -> None:
    chosen = _chosen(tmp_path, "[Output]\nLSL = on\nLSL_WAIT = 1\n[Output LSL]\nWAIT = 4\n")
    assert chosen == (ChosenOutput("pose"), ChosenOutput("lsl", LslOutputSettings(wait=4.0)))
    assert pickle.loads(pickle.dumps(chosen)) == chosen  # it crosses to the worker


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Output lsl]\nWAIT = 500\n", "[Output lsl] WAIT = '500': expected a number from 0"),
        ("[Output nwb]\nFILE = x\n", "[Output nwb] FILE: unknown key. Allowed in this section"),
        (
            "[Output csv2]\n",
            "[Output csv2]: unknown output 'csv2'; known: annotated_video, ibl, lsl, nwb, pose",
        ),
    ],
)  # fmt: skip
def test_a_bad_output_section_is_refused_naming_the_section_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(write_settings(tmp_path, CAMERA + text))
    assert expected in str(error.value)


def test_the_pose_files_are_always_chosen_first() -> None:
    assert with_required(()) == (ChosenOutput("pose"),)
    assert with_required((ChosenOutput("nwb"),)) == (ChosenOutput("pose"), ChosenOutput("nwb"))
    assert with_required((ChosenOutput("pose"),)) == (ChosenOutput("pose"),)


def test_every_builtin_is_an_output_class() -> None:
    for name in OUTPUTS.builtin_names():
        assert issubclass(OUTPUTS.get(name), Output)
