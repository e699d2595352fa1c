"""What a lab's plugins give it to read: said once each, in the console and ``session.json``."""

from __future__ import annotations

import logging
import warnings

log = logging.getLogger(__name__)

_NOTICES: list[str] = []


def plugin_notices() -> list[str]:
    """Return what this process's plugins gave a lab to read, once each, in order."""
    return list(_NOTICES)


def notice(text: str) -> None:
    """Keep ``text`` about a plugin, once, for whoever says it (:func:`plugin_notices`)."""
    if text not in _NOTICES:
        _NOTICES.append(text)
        log.debug("plugin notice: %s", text)


def deprecated(text: str, *, removed_in: str, stacklevel: int = 2) -> None:
    """Say that a plugin uses an interface that changed: once, in the console and the session.

    ``removed_in`` (the release that removes the old form) is added to ``text``. Also a
    :func:`notice`, since Python hides a ``DeprecationWarning`` outside ``__main__``.
    """
    text = f"{text}. It works until release {removed_in}, which removes it (CHANGELOG.md)"
    notice(text)
    warnings.warn(text, DeprecationWarning, stacklevel=stacklevel + 1)
