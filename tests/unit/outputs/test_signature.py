"""A session's signature: the installation's key, made once; what a check names when it fails."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from deeplabstream.outputs.signature import (
    KEY_VARIABLE,
    check_signature,
    fingerprint,
    installation_key,
    public_bytes,
    public_key_pem,
    seal_session_json,
    sign_record,
    trusted_fingerprint,
)

RECORD = {
    "status": "finished",
    "started": "2026-11-26T10:15:02.000000+00:00",
    "metadata": {"animal": "mouse12", "experimenter": "Doe, Jane"},
    "settings": {"Pose": {"LIKELIHOOD_THRESHOLD": 0.5}, "Experiment": {"NAME": "entries"}},
    "experiment_runs": [{"name": "entries", "plan": {"name": "entries", "sha256": "ab"}}],
    "files": {"events.csv": {"sha256": "12" * 32, "bytes": 100}},
}


@pytest.fixture
def key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "signing" / "key.pem"
    monkeypatch.setenv(KEY_VARIABLE, str(path))
    return path


def test_the_key_is_made_once_readable_by_its_user_only(key_path: Path) -> None:
    first = installation_key()
    assert first is not None and key_path.is_file()
    if os.name != "nt":
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    again = installation_key()
    assert again is not None
    assert public_bytes(again.public_key()) == public_bytes(first.public_key())


def test_no_key_is_made_when_only_read(key_path: Path) -> None:
    assert installation_key(create=False) is None
    assert not key_path.exists()


def test_a_signed_record_checks_and_names_its_signer(key_path: Path) -> None:
    key = installation_key()
    assert key is not None
    signed = sign_record(json.loads(json.dumps(RECORD)), key)
    check = check_signature(signed)
    assert check.valid
    assert check.fingerprint == fingerprint(public_bytes(key.public_key()))
    assert check.rig


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("metadata", "animal"), "mouse13"),
        (("settings", "Pose", "LIKELIHOOD_THRESHOLD"), 0.95),
        (("started",), "2026-11-25T10:15:02.000000+00:00"),
    ],
)
def test_a_changed_value_is_named(key_path: Path, path: tuple[str, ...], value: object) -> None:
    key = installation_key()
    assert key is not None
    signed = sign_record(json.loads(json.dumps(RECORD)), key)
    place = signed
    for name in path[:-1]:
        place = place[name]
    place[path[-1]] = value
    check = check_signature(signed)
    assert check.status == "invalid"
    assert check.changed == [".".join(path)]


def test_a_record_with_its_digests_rewritten_too_fails_without_names(key_path: Path) -> None:
    from deeplabstream.outputs.signature import field_digests

    key = installation_key()
    assert key is not None
    signed = sign_record(json.loads(json.dumps(RECORD)), key)
    signed["experiment_runs"][0]["name"] = "other"
    signed["signature"]["fields"] = field_digests(signed)
    check = check_signature(signed)
    assert check.status == "invalid" and check.changed == [] and check.gone == 0


def test_an_unsigned_and_a_damaged_record(key_path: Path) -> None:
    assert check_signature(RECORD).status == "unsigned"
    assert check_signature({**RECORD, "signature": {"value": "??"}}).status == "damaged"


def test_another_key_re_signing_is_valid_but_named_by_its_own_fingerprint(
    key_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = installation_key()
    monkeypatch.setenv(KEY_VARIABLE, str(tmp_path / "other.pem"))
    theirs = installation_key()
    assert ours is not None and theirs is not None
    check = check_signature(sign_record(json.loads(json.dumps(RECORD)), theirs))
    assert check.valid
    assert check.fingerprint != fingerprint(public_bytes(ours.public_key()))


def test_a_trusted_key_is_read_from_its_pem_file_or_its_fingerprint(
    key_path: Path, tmp_path: Path
) -> None:
    key = installation_key()
    assert key is not None
    expected = fingerprint(public_bytes(key.public_key()))
    pem = tmp_path / "lab.pub"
    pem.write_text(public_key_pem(key), encoding="utf-8")
    assert trusted_fingerprint(str(pem)) == expected
    assert trusted_fingerprint(expected) == expected
    with pytest.raises(ValueError, match="not a key"):
        trusted_fingerprint("hello")


def test_sealing_signs_the_file_as_it_is_on_disk(key_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "session"
    folder.mkdir()
    (folder / "session.json").write_text(json.dumps(RECORD, indent=2), encoding="utf-8")
    key = installation_key()
    assert key is not None
    seal_session_json(folder, key)
    data = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    assert check_signature(data).valid
    assert {k: v for k, v in data.items() if k != "signature"} == RECORD


def test_values_changed_are_not_counted_as_removed_and_removed_ones_are(key_path: Path) -> None:
    key = installation_key()
    assert key is not None
    signed = sign_record(json.loads(json.dumps(RECORD)), key)
    signed["metadata"]["animal"] = "mouse13"
    signed["metadata"]["experimenter"] = "Roe, Richard"
    check = check_signature(signed)
    assert sorted(check.changed) == ["metadata.animal", "metadata.experimenter"]
    assert check.gone == 0  # changed, not removed
    del signed["metadata"]["experimenter"]
    check = check_signature(signed)
    assert check.changed == ["metadata.animal"] and check.gone == 1
