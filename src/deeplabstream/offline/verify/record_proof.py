"""``session.json`` itself proven: its signature first, then its fields against each other.

Design: docs/verify.md, "offline.verify.record_proof".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeplabstream.core.digest import text_sha256
from deeplabstream.core.plugins import LAB_ORIGIN
from deeplabstream.offline.verify.session_files import inside
from deeplabstream.outputs.signature import (
    SignatureCheck,
    TrustedSigner,
    check_signature,
    own_fingerprint,
    trusted_signers,
    user_signers_file,
)

#: The record's values no other check holds: only the signature vouches for them, so whoever
#: holds the key may have written them. Said in the verdict (``signature_alone``).
SIGNATURE_ALONE = {
    "metadata": "the animal, experimenter, notes and subject",
    "started": "the start date (and ended, clock: the session's times)",
    "machine": "the rig's computer and the software versions (machine, versions)",
    "errors": "the errors and warnings the session wrote",
    "cameras": "each camera's own counts (frames captured, lost, its rates)",
    "settings": "the settings verify does not run again (devices, outputs, [Session])",
}
MOST_FIELDS_NAMED = 12  # a rewritten record: the first changed values named (all in the report)


@dataclass
class RecordProof:
    """What ``session.json`` proves of itself, and what it does not."""

    signature: SignatureCheck
    problems: list[str] = field(default_factory=list)  # each a reason the verdict is "differs"
    not_checked: list[str] = field(default_factory=list)  # accepted, never "agrees"
    notes: list[str] = field(default_factory=list)
    signer: dict[str, Any] = field(default_factory=dict)  # for the provenance
    trusted_signer: TrustedSigner | None = None  # the list that trusts a valid signature's key

    @property
    def trusted(self) -> bool:
        """Whether the record itself is proven (no problem), so what it names can be relied on."""
        return not self.problems


def prove_record(
    folder: Path,
    record: dict[str, Any],
    trusted: tuple[str, ...] = (),
    unsigned: bool = False,
    signers: dict[str, TrustedSigner] | None = None,
) -> RecordProof:
    """Check the record's signature (against ``trusted`` fingerprints, if any) and its fields.

    ``unsigned``: an unsigned or wrongly signed record is accepted, said in ``not_checked``.
    ``signers``: every key trusted here by fingerprint (:func:`trusted_signers`; by default
    the user's list and this installation's key). A valid signature by a key in none of them,
    without ``--trust``, is named in ``not_checked``: the verdict is never a bare "agrees".
    """
    check = check_signature(record)
    known = dict(trusted_signers(None, own=not trusted) if signers is None else signers)
    for given in trusted:
        known.setdefault(given, TrustedSigner(given, "given with --trust", "--trust"))
    proof = RecordProof(check, signer=_signer(check))
    problem = _signature_problem(check, record, trusted, known)
    if problem is not None:
        (proof.not_checked if unsigned else proof.problems).append(
            problem + (" (accepted: --unsigned)" if unsigned else "")
        )
    elif check.valid:
        proof.trusted_signer = known.get(str(check.fingerprint))
        proof.notes.append(_signed_note(check, trusted))
        if proof.trusted_signer is None:
            proof.not_checked.append(untrusted_signer(check))
    proof.signer.update(_trust(proof.trusted_signer, check))
    proof.problems += fields_against_each_other(record) + code_inside(folder, record)
    return proof


def signature_alone(record: dict[str, Any], lossy: bool) -> list[str]:
    """Return what of ``record`` rests on its signature alone, each field with its meaning.

    ``lossy``: a camera recorded in H.264, whose keypoints are held to a bound, not proven.
    """
    found = [f"{key}: {what}" for key, what in SIGNATURE_ALONE.items() if key in record]
    if lossy:
        found.append(
            "keypoints of an H.264 recording: moved within the bound on a few frames, the "
            "recording cannot tell (record FFV1 to prove them)"
        )
    return found


def untrusted_signer(check: SignatureCheck) -> str:
    """Say that a valid signature's key is in no list of trusted signers, and what to do."""
    return (
        f"who signed: session.json is signed by {check.signer()}, a key in no list of trusted "
        f"signers (the lab's allowed_signers beside its settings file, yours {user_signers_file()}"
        ", or --trust): anyone can make a key and sign, so the record is proven unchanged only "
        f"since that key signed it. If you trust it, add the line `NAME {check.fingerprint}` to "
        "a list"
    )


def _trust(signer: TrustedSigner | None, check: SignatureCheck) -> dict[str, Any]:
    """Return what the summary says of the signer's trust (``signature.trusted``...)."""
    if not check.valid:
        return {"trusted": False, "name": None, "trusted_by": None}
    if signer is None:
        return {"trusted": False, "name": check.rig, "trusted_by": None}
    return {"trusted": True, "name": signer.name, "trusted_by": signer.source}


def signer_words(signature: dict[str, Any]) -> str:
    """Return who signed and whether that key is trusted, for the verdict line ("" unsigned)."""
    if signature.get("status") != "valid" or "trusted" not in signature:
        return ""
    who = f"signed by {signature.get('fingerprint')} ({signature.get('name')})"
    if signature["trusted"]:
        return f"{who}, trusted: {signature.get('trusted_by')}"
    return f"{who}, NOT a trusted signer"


def _signature_problem(
    check: SignatureCheck,
    record: dict[str, Any],
    trusted: tuple[str, ...],
    known: dict[str, TrustedSigner],
) -> str | None:
    """Return why the signature does not vouch for the record, or None when it does."""
    yours = "unsigned by your key: " if trusted else ""
    if check.status == "unsigned":
        return (
            f"{yours}session.json is not signed, so nothing vouches that it is what the session "
            f"wrote: {_why_unsigned(record)}"
        )
    if check.status == "damaged":
        return f"{yours}session.json's signature cannot be read ({check.problem})"
    if check.status == "invalid":
        return f"session.json does not match its signature ({check.signer()}): " + _what_changed(
            check
        )
    if trusted and check.fingerprint not in known:
        return (
            f"unsigned by your key: session.json was signed by {check.signer()}, which is not "
            f"a key you trust ({', '.join(trusted)})"
        )
    return None


def _why_unsigned(record: dict[str, Any]) -> str:
    status = record.get("status")
    if status in ("running", "interrupted"):
        return incomplete_why(record)
    if record.get("files") is None:
        return "it was written before sessions were signed (it records no digests either)"
    return (
        "it was written before sessions were signed, on an installation that could not sign "
        "(its warnings say why), or rewritten since without a signature"
    )


def incomplete_why(record: dict[str, Any]) -> str:
    """Say why a session that never closed holds less than a finished one."""
    status = record.get("status")
    if status == "interrupted":
        how = "it was killed and never closed (a later start marked it interrupted)"
    else:
        how = "it never closed: its record is the last one written while it ran (killed?)"
    return (
        f"{how}, so its record was never finished: no digests of its files, no signature, and "
        "what its experiment and analysis report at their end was never written"
    )


def _what_changed(check: SignatureCheck) -> str:
    if check.problem:
        return check.problem
    if not check.changed and not check.gone:
        return (
            "it was changed after the close, its values' digests too, so which values changed "
            "cannot be told"
        )
    named = ", ".join(check.changed[:MOST_FIELDS_NAMED])
    more = len(check.changed) - MOST_FIELDS_NAMED
    text = f"changed after the close: {named}" if named else "changed after the close"
    if more > 0:
        text += f" and {more} more"
    if check.gone:
        text += f"; {check.gone} signed value(s) removed"
    return text


def _signed_note(check: SignatureCheck, trusted: tuple[str, ...]) -> str:
    if trusted:
        return f"session.json is signed by your key {check.signer().removeprefix('key ')}"
    whose = "this installation's key" if check.fingerprint == own_fingerprint() else "the key"
    return (
        f"session.json is signed by {whose} {check.signer().removeprefix('key ')}; a "
        "signature proves the record unchanged since that key signed it: compare the "
        "fingerprint with the lab's, or give its key with --trust"
    )


def _signer(check: SignatureCheck) -> dict[str, Any]:
    return {
        "status": check.status,
        "fingerprint": check.fingerprint,
        "rig": check.rig,
        "signed_at": check.signed_at,
        "changed": check.changed,
    }


# -- the fields against each other -------------------------------------------------------------


def fields_against_each_other(record: dict[str, Any]) -> list[str]:
    """Return each field that disagrees with another field it must agree with, named."""
    problems: list[str] = []
    runs = [run for run in record.get("experiment_runs") or [] if isinstance(run, dict)]
    for index, run in enumerate(runs):
        where = f"experiment_runs[{index}]"
        plan = run.get("plan") or {}
        if not plan:
            continue
        text = plan.get("config_text")
        config = plan.get("kind") == "config" and isinstance(text, str)
        if config and text_sha256(str(text)) != plan.get("sha256"):
            problems.append(
                f"{where}.plan.sha256 is not the SHA-256 of {where}.plan.config_text: the "
                "recorded text of the experiment was changed after the close"
            )
        problems += _plugin_files_agree(run, where)
    last = record.get("experiment")
    if isinstance(last, dict) and runs:
        for key in ("name", "events_file"):
            if last.get(key) != runs[-1].get(key):
                problems.append(
                    f"experiment.{key} is {last.get(key)!r}, but the last of experiment_runs "
                    f"says {runs[-1].get(key)!r}: session.json was changed"
                )
    problems += _named_as_planned(record, runs)
    problems += _plugin_files_agree(record, "")
    return problems


def _named_as_planned(record: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """Hold the settings' ``[Experiment] NAME`` to the last run's plan (no settings re-read)."""
    if not runs or record.get("settings_reloads"):
        return []
    plan = runs[-1].get("plan") or {}
    named = ((record.get("settings") or {}).get("Experiment") or {}).get("NAME")
    if plan.get("name") and named and named != plan["name"]:
        return [
            f"settings.Experiment.NAME is {named!r}, but the experiment that ran (its recorded "
            f"plan) is {plan['name']!r}: session.json was changed"
        ]
    return []


def _plugin_files_agree(part: dict[str, Any], where: str) -> list[str]:
    """``plugin_files`` must list exactly the lab files ``plugins`` names, by kind and name."""
    prefix = f"{where}." if where else ""
    named: set[tuple[Any, Any, Any]] = {
        (kind, name, origin.removeprefix(LAB_ORIGIN))
        for kind, names in (part.get("plugins") or {}).items()
        if isinstance(names, dict)
        for name, origin in names.items()
        if isinstance(origin, str) and origin.startswith(LAB_ORIGIN)
    }
    listed: set[tuple[Any, Any, Any]] = {
        (entry.get("kind"), entry.get("name"), entry.get("file"))
        for entry in part.get("plugin_files") or []
        if isinstance(entry, dict)
    }
    if part.get("plugins") is None or named == listed:
        return []
    only = sorted(str(item[2]) for item in listed - named)
    missing = sorted(str(item[2]) for item in named - listed)
    words = []
    if only:
        words.append(
            f"{prefix}plugin_files lists {', '.join(only)}, which {prefix}plugins does not"
        )
    if missing:
        words.append(
            f"{prefix}plugins names {', '.join(missing)}, which {prefix}plugin_files does not"
        )
    return [f"{'; '.join(words)}: session.json was changed"]


# -- the code it recorded ------------------------------------------------------------------------


def recorded_entries(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every ``plugin_files`` entry of the record: the session's and each run's."""
    entries = [e for e in record.get("plugin_files") or [] if isinstance(e, dict)]
    for run in record.get("experiment_runs") or []:
        if isinstance(run, dict):
            entries += [e for e in run.get("plugin_files") or [] if isinstance(e, dict)]
    return entries


def recorded_code_of(folder: Path, record: dict[str, Any]) -> dict[Path, str]:
    """Return the lab's Python files the session ran (path -> SHA-256): all verify may run.

    A file recorded inside the session folder checked is left out (:func:`code_inside`).
    """
    code: dict[Path, str] = {}
    for entry in recorded_entries(record):
        file, digest = entry.get("file"), entry.get("sha256")
        if not file or not digest or Path(str(file)).suffix.lower() != ".py":
            continue
        if not inside(Path(str(file)), folder):
            code[Path(str(file))] = str(digest)
    return code


def code_inside(folder: Path, record: dict[str, Any]) -> list[str]:
    """Name each lab file the record says ran from inside the session folder: never run."""
    return [
        f"plugin_files names {entry.get('file')} (the lab's {entry.get('kind')} "
        f"{entry.get('name')!r}) inside the session folder checked: verify never runs code from "
        "the folder it checks"
        for entry in recorded_entries(record)
        if entry.get("file") and inside(Path(str(entry["file"])), folder)
    ]
