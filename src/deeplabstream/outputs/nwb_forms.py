"""NWB's forms for the subject and the experimenters, to check ``[Session]`` keys against."""

from __future__ import annotations

import re
from datetime import date, datetime

#: nwbinspector 0.7's forms (its ``duration_regex``, ``species_form_regex`` and DANDI's
#: experimenter pattern), so that what passes here passes there.
_DURATION = re.compile(
    r"P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?"
)
_SPECIES = re.compile(r"([A-Z][a-z]* [a-z]+)|(http://purl\.obolibrary\.org/obo/NCBITaxon_\d+)")
_PERSON = re.compile(r"([\w\s\-.']+),\s+([\w\s\-.']+)")


def check_species(value: str) -> None:
    """Refuse a species that is neither a Latin binomial nor an NCBI taxonomy link."""
    if value and not _SPECIES.fullmatch(value):
        raise ValueError(
            "expected a Latin binomial (e.g. 'Mus musculus', 'Drosophila melanogaster') or an "
            "NCBI taxonomy link (e.g. 'http://purl.obolibrary.org/obo/NCBITaxon_10090')"
        )


def check_age(value: str) -> None:
    """Refuse an age that is not an ISO 8601 duration (``P90D``) or a range (``P8W/P10W``)."""
    if not value:
        return
    bounds = value.split("/")
    if len(bounds) == 1 and _DURATION.fullmatch(value):
        return
    if len(bounds) == 2 and bounds[0] and all(not b or _DURATION.fullmatch(b) for b in bounds):
        return
    raise ValueError(
        "expected an ISO 8601 duration: 'P90D' (90 days), 'P12W' (12 weeks), 'P1Y2M'; or a "
        "range 'P8W/P10W' ('P90D/' for 90 days or older)"
    )


def check_date_of_birth(value: str) -> None:
    """Refuse a date of birth that is not an ISO 8601 date (``2026-08-01``), or in the future."""
    if not value:
        return
    born = parse_date_of_birth(value)
    if born.date() > date.today():
        raise ValueError("the date of birth is in the future")


def parse_date_of_birth(value: str) -> datetime:
    """Return an ISO 8601 date or date-time as an aware date-time (local zone if none)."""
    try:
        born = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "expected an ISO 8601 date, e.g. '2026-08-01' (or with a time: '2026-08-01T09:30')"
        ) from None
    return born if born.tzinfo is not None else born.astimezone()


def check_experimenters(value: str) -> None:
    """Refuse experimenters not written "Last, First" (several separated by ``;``)."""
    for person in experimenters(value):
        if not _PERSON.fullmatch(person):
            raise ValueError(
                f"{person!r}: expected 'Last, First' (e.g. 'Doe, Jane'; 'Doe, Jane A.'), several "
                "separated by ';', as NWB and DANDI ask"
            )


def experimenters(value: str) -> list[str]:
    """Return the experimenters of ``[Session] EXPERIMENTER`` (separated by ``;``)."""
    return [person.strip() for person in value.split(";") if person.strip()]


def check_one_line(value: str) -> None:
    """Refuse text with a line break."""
    if any(c in value for c in "\r\n"):
        raise ValueError("must be one line")
