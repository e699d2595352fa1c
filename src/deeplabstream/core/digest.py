"""SHA-256 digests of the files a session wrote, its model and its experiment, for verification."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from deeplabstream.core.regular_files import open_regular

_CHUNK = 1 << 20  # read a file in 1 MiB pieces: any size, little memory


def files_digest(files: Sequence[Path]) -> str:
    """Return the SHA-256 (hex) over the bytes of ``files``, in order."""
    digest = hashlib.sha256()
    for path in files:
        with open_regular(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Return the SHA-256 (hex) of one file's bytes."""
    return files_digest([path])


def text_sha256(text: str) -> str:
    """Return the SHA-256 (hex) of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
