"""``[Session]``'s subject and lab keys: NWB's forms, checked when the settings are read."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeplabstream.settings import SettingsError, load_settings
from tests.support.files import write_settings

CAMERA = "[Camera arena]\nSOURCE = synthetic\n"


def _session(tmp_path: Path, keys: str):
    return load_settings(write_settings(tmp_path, CAMERA + "[Session]\n" + keys)).session


def test_keys_in_nwbs_forms_are_taken(tmp_path: Path) -> None:
    session = _session(
        tmp_path,
        "EXPERIMENTER = Doe, Jane; O'Neil, Mary-Ann B.\nSPECIES = Mus musculus\n"
        "AGE = P8W/P10W\nDATE_OF_BIRTH = 2026-01-31\nSEX = F\nSTRAIN = C57BL/6J\n"
        "INSTITUTION = University of Bonn\nLAB = Schwarz lab\n"
        "EXPERIMENT_DESCRIPTION = optogenetic place preference\n",
    )
    assert session.experimenter == "Doe, Jane; O'Neil, Mary-Ann B."
    assert (session.species, session.age, session.date_of_birth) == (
        "Mus musculus",
        "P8W/P10W",
        "2026-01-31",
    )
    assert (session.sex, session.strain, session.lab) == ("F", "C57BL/6J", "Schwarz lab")
    taxon = _session(tmp_path, "SPECIES = http://purl.obolibrary.org/obo/NCBITaxon_10090\n")
    assert taxon.species.endswith("NCBITaxon_10090")
    assert _session(tmp_path, "AGE = P90D/\n").age == "P90D/"  # 90 days or older
    assert _session(tmp_path, "").sex == "U"  # unknown unless set


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (  # NWB's form is asked for when session.nwb is written (issue 44)
            "EXPERIMENTER = Jane Doe\n[Output]\nNWB = on",
            "[Session] EXPERIMENTER = 'Jane Doe': 'Jane Doe': expected 'Last, First'",
        ),
        (
            "EXPERIMENTER = Doe, Jane; R. Roe\n[Output]\nNWB = on",
            "'R. Roe': expected 'Last, First'",
        ),
        ("SPECIES = mouse", "[Session] SPECIES = 'mouse': expected a Latin binomial"),
        ("AGE = 12 weeks", "[Session] AGE = '12 weeks': expected an ISO 8601 duration"),
        ("AGE = /P10W", "[Session] AGE = '/P10W': expected an ISO 8601 duration"),
        ("DATE_OF_BIRTH = 31.01.2026", "[Session] DATE_OF_BIRTH = '31.01.2026': expected an ISO"),
        ("DATE_OF_BIRTH = 2999-01-01", "the date of birth is in the future"),
        ("SEX = female", "[Session] SEX = 'female': expected one of U, M, F, O, XX, XO"),
    ],
)
def test_a_value_in_another_form_is_refused_naming_the_key_and_the_form(
    tmp_path: Path, line: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        _session(tmp_path, line + "\n")
    assert expected in str(refused.value)
    assert "settings.ini" in str(refused.value)


def test_an_experimenter_in_another_form_is_taken_without_an_nwb_output(tmp_path: Path) -> None:
    """Issue 44: ``EXPERIMENTER = nu`` was refused though no NWB output was chosen."""
    assert _session(tmp_path, "EXPERIMENTER = nu\n").experimenter == "nu"
    with pytest.raises(SettingsError, match="must be one line"):
        _session(tmp_path, "EXPERIMENTER = a\n  b\n")
