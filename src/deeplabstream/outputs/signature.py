"""Every session signed at its close: who vouches for ``session.json``, and what that proves.

Ed25519 over the whole record and each value's digest, with the installation's key; what it
proves and does not: docs/verify.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.regular_files import SpecialFileError, open_regular
from deeplabstream.core.user_folders import user_config_folder
from deeplabstream.outputs.folder import SESSION_JSON, write_session_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

log = logging.getLogger(__name__)

#: The key of ``session.json`` that holds the signature (left out of what is signed).
SIGNATURE_KEY = "signature"
ALGORITHM = "Ed25519"
#: An environment variable naming the private key file to sign with (made there if missing).
KEY_VARIABLE = "DEEPLABSTREAM_SIGNING_KEY"
KEY_FOLDER = "signing"
KEY_FILE_NAME = "session-signing-key.pem"
#: Bytes of each value's digest in :func:`field_digests`: enough to tell which value changed
#: (the signature itself is what proves the record).
FIELD_DIGEST_BYTES = 4
#: How the verdict line names this installation's own key as trusted (no apostrophe: the
#: report escapes one, and the line is the same text everywhere).
OWN_KEY = "this installation (its own key)"
#: The file of trusted signers: beside a lab's settings file, and in the user's config folder.
ALLOWED_SIGNERS = "allowed_signers"
#: An environment variable naming the user's file of trusted signers instead of the config one.
SIGNERS_VARIABLE = "DEEPLABSTREAM_ALLOWED_SIGNERS"
#: How long a reader waits for a key another process is writing this moment.
KEY_WAIT_S = 2.0
#: The most a key file is read of: a PEM Ed25519 key is 119 bytes; anything far larger is
#: not one, and is not read to its end (a device that never ends).
MAX_KEY_BYTES = 64 * 1024
#: How long the key's reading may take: a network share that stopped answering holds the read
#: in the system call, so it is read in a thread left behind after this long.
KEY_READ_TIMEOUT_S = 5.0
#: What to do about a key that cannot be used, said with every such error.
KEY_ADVICE = (
    f"move it away (a new key is made there at the next close) or name another file with "
    f"{KEY_VARIABLE}"
)


class SigningError(DeepLabStreamError, OSError):
    """The installation's key cannot be read or made; the message names the file."""


# -- the installation's key -----------------------------------------------------------------------


def key_file() -> Path:
    """Return the installation's private key file (:data:`KEY_VARIABLE`, else the config one)."""
    named = os.environ.get(KEY_VARIABLE)
    if named:
        return Path(named).expanduser()
    return user_config_folder() / KEY_FOLDER / KEY_FILE_NAME


def installation_key(create: bool = True) -> Ed25519PrivateKey | None:
    """Return this installation's signing key; made (once) when ``create`` and missing.

    None when there is none and ``create`` is False. Raises :class:`SigningError` when the file
    cannot be read or made, is not a key, or does not answer within :data:`KEY_READ_TIMEOUT_S`.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = key_file()
    deadline = time.monotonic() + KEY_WAIT_S
    while True:
        try:
            data, age_s = _read_key_file(path)
        except FileNotFoundError:
            if not create:
                return None
            made = _make_key(path)
            if made is not None:
                return made
            continue  # another process made it meanwhile: read it
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError as error:
            # Only a file made a moment ago may be another process's key half written.
            if age_s < KEY_WAIT_S and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise SigningError(
                f"{path}: the signing key is not a PEM private key ({error}); {KEY_ADVICE}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"{path}: the signing key is not an Ed25519 key; {KEY_ADVICE}")
        return key


def key_problem() -> str | None:
    """Say why the installation's key could not sign a session; None when it can (or is missing)."""
    try:
        installation_key(create=False)
    except SigningError as error:
        return f"session.json could not be signed: {error}"
    except ImportError as error:  # a required package missing: an install that went wrong
        missing = (error.name or "cryptography").split(".")[0]
        return (
            f"session.json could not be signed: the {missing} package "
            "that signs it is not installed; install the requirements again (python "
            "scripts/setup.py, or pip install -r requirements.txt)"
        )
    return None


def _read_key_file(path: Path) -> tuple[bytes, float]:
    """Return the key file's bytes and age (s) without blocking long (SigningError)."""
    outcome: dict[str, Any] = {}

    def read() -> None:
        try:
            with open_regular(path, "rb") as file:  # a FIFO opens at once and is refused
                age_s = time.time() - os.fstat(file.fileno()).st_mtime
                outcome["read"] = (file.read(MAX_KEY_BYTES + 1), age_s)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    # A daemon thread: one stuck in a read of a share that never answers does not hold the
    # process at its exit.
    reader = threading.Thread(target=read, name="signing key read", daemon=True)
    reader.start()
    reader.join(KEY_READ_TIMEOUT_S)
    if reader.is_alive():
        raise SigningError(
            f"{path}: the signing key did not answer within {KEY_READ_TIMEOUT_S:.0f} s "
            f"(a network share that stopped answering?); {KEY_ADVICE}"
        )
    error = outcome.get("error")
    if isinstance(error, FileNotFoundError):
        raise error
    if isinstance(error, SpecialFileError):
        raise SigningError(
            f"{path}: the signing key is {error.kind}, not a file; it was not read; {KEY_ADVICE}"
        ) from None
    if isinstance(error, OSError):
        raise SigningError(
            f"{path}: the signing key cannot be read: {error.strerror or error}; {KEY_ADVICE}"
        ) from None
    if error is not None:
        raise error
    data, age_s = outcome["read"]
    if len(data) > MAX_KEY_BYTES:
        raise SigningError(
            f"{path}: the signing key is larger than {MAX_KEY_BYTES // 1024} KiB, so not a "
            f"key; {KEY_ADVICE}"
        )
    return data, age_s


def _make_key(path: Path) -> Ed25519PrivateKey | None:
    """Make the key file (readable by its user only); None when another process made it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        return None
    except OSError as error:
        raise SigningError(f"{path}: the signing key cannot be made: {error}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    log.info(
        "made this installation's key for signing sessions: %s (fingerprint %s)",
        path,
        fingerprint(public_bytes(key.public_key())),
    )
    return key


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """Return a public key's 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(key: Ed25519PrivateKey) -> str:
    """Return the public half of ``key`` as PEM text (what a lab gives its reviewer)."""
    from cryptography.hazmat.primitives import serialization

    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def fingerprint(raw_public_key: bytes) -> str:
    """Return a public key's fingerprint: ``SHA256:`` and the base64 of its digest."""
    digest = base64.b64encode(hashlib.sha256(raw_public_key).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def rig_name() -> str:
    """Return the rig's name a signature records: the computer's name."""
    return platform.node() or "unnamed computer"


def trusted_fingerprint(given: str) -> str:
    """Return the fingerprint of a key a reviewer gives (``--trust``).

    A PEM public key file, a file holding a fingerprint, or ``SHA256:...``; else ValueError.
    """
    text = given.strip()
    path = Path(text).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    if text.startswith("SHA256:"):
        return text.split()[0]
    if "BEGIN PUBLIC KEY" in text:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = serialization.load_pem_public_key(text.encode("ascii", errors="replace"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{given}: not an Ed25519 public key")
        return fingerprint(public_bytes(key))
    raise ValueError(
        f"{given}: not a key: give a public key file (PEM, as `deeplabstream-verify --show-key` "
        "prints it) or a key's fingerprint (SHA256:...)"
    )


# -- whom a reviewer trusts ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedSigner:
    """A key a list trusts: its fingerprint, the name the list gives it, and which list."""

    fingerprint: str
    name: str
    source: str  # "the lab list /lab/allowed_signers", "--trust", "this installation (its key)"


def user_signers_file() -> Path:
    """Return the user's file of trusted signers (:data:`SIGNERS_VARIABLE`, else the config one)."""
    named = os.environ.get(SIGNERS_VARIABLE)
    if named:
        return Path(named).expanduser()
    return user_config_folder() / ALLOWED_SIGNERS


def lab_signers_file(settings_file: Path) -> Path:
    """Return a lab's file of trusted signers: ``allowed_signers`` beside its settings file."""
    return settings_file.expanduser().parent / ALLOWED_SIGNERS


def read_signers(path: Path, source: str) -> list[TrustedSigner]:
    """Read a file of trusted signers; none when there is no such file.

    Each line: a name, then a fingerprint (``SHA256:...``) or base64 raw public key; ``#``
    comments. Raises :class:`SigningError` naming the file and line of a bad key.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise SigningError(f"{path}: the list of trusted signers cannot be read: {error}") from None
    signers = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise SigningError(
                f"{path}, line {number}: give a name and a key (its fingerprint SHA256:... or "
                f"its base64 public key), as `deeplabstream-verify --show-key` prints them"
            )
        name, key = words
        signers.append(TrustedSigner(_key_fingerprint(key, path, number), name, source))
    return signers


def _key_fingerprint(key: str, path: Path, number: int) -> str:
    if key.startswith("SHA256:"):
        return key
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SigningError(
            f"{path}, line {number}: {key!r} is not a key: give its fingerprint (SHA256:...) "
            "or its 32-byte public key in base64"
        )
    return fingerprint(raw)


def trusted_signers(
    settings_file: Path | None, given: tuple[str, ...] = (), own: bool = True
) -> dict[str, TrustedSigner]:
    """Return every key trusted here, by fingerprint.

    ``given`` (``--trust``), the lab's list beside ``settings_file``, the user's list and, with
    ``own``, this installation's key. Raises :class:`SigningError` naming an unreadable list.
    """
    trusted: dict[str, TrustedSigner] = {}
    own_print = own_fingerprint() if own else None
    if own_print is not None:
        trusted[own_print] = TrustedSigner(own_print, rig_name(), OWN_KEY)
    user = user_signers_file()
    for signer in read_signers(user, f"your list {user}"):
        trusted[signer.fingerprint] = signer
    if settings_file is not None:
        lab = lab_signers_file(settings_file)
        for signer in read_signers(lab, f"the lab list {lab}"):
            trusted[signer.fingerprint] = signer
    for key in given:
        given_print = trusted_fingerprint(key)
        name = trusted[given_print].name if given_print in trusted else "given with --trust"
        trusted[given_print] = TrustedSigner(given_print, name, "--trust")
    return trusted


def own_fingerprint() -> str | None:
    """Return the fingerprint of this installation's key; None where it has none readable."""
    try:
        key = installation_key(create=False)
    except SigningError:
        return None
    return None if key is None else fingerprint(public_bytes(key.public_key()))


# -- what is signed -----------------------------------------------------------------------------


def canonical(data: Any) -> bytes:
    """Return the one byte form of JSON data that is signed: sorted keys, no spaces, UTF-8."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _leaves(value: Any, path: str) -> list[tuple[str, Any]]:
    """Return ``(path, value)`` of every value: objects by key, lists of objects by index."""
    if isinstance(value, dict):
        if not value:
            return [(path, value)]
        found = []
        for key in sorted(value):
            found += _leaves(value[key], f"{path}.{key}" if path else str(key))
        return found
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        found = []
        for index, item in enumerate(value):
            found += _leaves(item, f"{path}[{index}]")
        return found
    return [(path, value)]


def _leaf_digest(path: str, value: Any) -> bytes:
    return hashlib.sha256(path.encode("utf-8") + b"=" + canonical(value)).digest()[
        :FIELD_DIGEST_BYTES
    ]


def field_digests(record: dict[str, Any]) -> str:
    """Return the short digest of every value of ``record`` (its signature left out), as base64."""
    content = {key: value for key, value in record.items() if key != SIGNATURE_KEY}
    joined = b"".join(_leaf_digest(path, value) for path, value in _leaves(content, ""))
    return base64.b64encode(joined).decode("ascii")


def sign_record(record: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return ``record`` with its ``signature`` (made by ``key`` over everything else)."""
    content = {name: value for name, value in record.items() if name != SIGNATURE_KEY}
    raw = public_bytes(key.public_key())
    block: dict[str, Any] = {
        "algorithm": ALGORITHM,
        "public_key": base64.b64encode(raw).decode("ascii"),
        "fingerprint": fingerprint(raw),
        "rig": rig_name(),
        "signed_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "covers": "every key of session.json but signature, files (each file's SHA-256) "
        "included; fields: a short digest of each value, to name what changed",
        "fields": field_digests(content),
    }
    message = canonical({**content, SIGNATURE_KEY: block})
    block["value"] = base64.b64encode(key.sign(message)).decode("ascii")
    return {**content, SIGNATURE_KEY: block}


def seal_session_json(folder: Path, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign the folder's ``session.json`` as it is on disk; return the signature written."""
    path = folder / SESSION_JSON
    data = json.loads(path.read_text(encoding="utf-8"))
    signed = sign_record(data, key)
    write_session_json(folder, signed)
    return dict(signed[SIGNATURE_KEY])


def signing_key(warnings: list[str]) -> Ed25519PrivateKey | None:
    """Return the key a session signs with; None, said in ``warnings``, when there is none."""
    try:
        return installation_key()
    except SigningError as error:
        warnings.append(f"session.json is not signed: {error}")
        log.warning("session.json will not be signed: %s", error)
        return None


def seal(folder: Path, key: Ed25519PrivateKey) -> bool:
    """Sign the folder's ``session.json`` (:func:`seal_session_json`); False, logged, if not."""
    try:
        seal_session_json(folder, key)
    except (OSError, ValueError) as error:  # the unsigned record stays, as it was written
        log.error("%s could not be signed: %s", folder / SESSION_JSON, error)
        return False
    return True


# -- checking a signature -----------------------------------------------------------------------


@dataclass
class SignatureCheck:
    """What a record's signature says.

    ``status``: ``unsigned``, ``valid``, ``invalid`` (not what was signed) or ``damaged``.
    """

    status: str
    fingerprint: str | None = None
    rig: str | None = None
    signed_at: str | None = None
    changed: list[str] = field(default_factory=list)  # values not among the signed ones
    gone: int = 0  # signed values no longer in the record (beyond those changed)
    problem: str = ""

    @property
    def valid(self) -> bool:
        """True when the record is exactly what its key signed."""
        return self.status == "valid"

    def signer(self) -> str:
        """Return who signed, in words: the key's fingerprint and the rig's name."""
        return f"key {self.fingerprint} (rig {self.rig!r}, {self.signed_at})"


def check_signature(record: dict[str, Any]) -> SignatureCheck:
    """Check ``record``'s signature against its own content."""
    block = record.get(SIGNATURE_KEY)
    if block is None:
        return SignatureCheck("unsigned")
    if not isinstance(block, dict):
        return SignatureCheck("damaged", problem="its signature is not an object")
    check = SignatureCheck(
        "invalid",
        fingerprint=_text(block.get("fingerprint")),
        rig=_text(block.get("rig")),
        signed_at=_text(block.get("signed_at")),
    )
    try:
        raw = base64.b64decode(str(block.get("public_key", "")), validate=True)
        value = base64.b64decode(str(block.get("value", "")), validate=True)
    except ValueError:
        check.status, check.problem = "damaged", "its key or value is not base64"
        return check
    if block.get("algorithm") != ALGORITHM or len(raw) != 32:
        check.status, check.problem = "damaged", f"not an {ALGORITHM} signature"
        return check
    if fingerprint(raw) != check.fingerprint:
        check.problem = "its fingerprint is not its key's"
        check.fingerprint = fingerprint(raw)
        return check
    content = {name: item for name, item in record.items() if name != SIGNATURE_KEY}
    unsigned = {name: item for name, item in block.items() if name != "value"}
    if _verified(raw, value, canonical({**content, SIGNATURE_KEY: unsigned})):
        check.status = "valid"
        return check
    check.changed, check.gone = _changed_values(content, str(block.get("fields") or ""))
    return check


def _verified(raw: bytes, value: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(value, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _changed_values(content: dict[str, Any], signed_fields: str) -> tuple[list[str], int]:
    """Return the paths of the values whose digest was not signed, and how many signed are gone."""
    try:
        joined = base64.b64decode(signed_fields, validate=True)
    except ValueError:
        return [], 0
    size = FIELD_DIGEST_BYTES
    signed: dict[bytes, int] = {}
    for start in range(0, len(joined) - size + 1, size):
        digest = joined[start : start + size]
        signed[digest] = signed.get(digest, 0) + 1
    changed = []
    for path, value in _leaves(content, ""):
        digest = _leaf_digest(path, value)
        if signed.get(digest, 0) > 0:
            signed[digest] -= 1
        else:
            changed.append(path)
    # A changed value leaves its signed digest unmatched too: only the signed digests beyond
    # the values changed (or added) are values removed.
    return changed, max(0, sum(signed.values()) - len(changed))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
