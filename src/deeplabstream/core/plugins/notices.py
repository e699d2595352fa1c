"""What a lab's plugins give it to read: said once each, in the console and ``session.json``."""

from __future__ import annotations

import logging
import warnings

log = logging.getLogger(__name__)

_NOTICES: list[str] = []


def plugin_notices() -> list[str]:
    """Return what this process's plugins gave a lab to read, once each, in order.

    A lab file or folder others may write to (:func:`import_file`), a plugin written for an
    interface that changed (:func:`notice`): a session says them in the console and in
    ``session.json`` -> ``warnings``.
    """
    return list(_NOTICES)


def notice(text: str) -> None:
    """Keep ``text`` about a plugin, once, for whoever says it (:func:`plugin_notices`).

    A session says them once in the console and in ``session.json`` (its start warnings); a
    command without a session prints them itself. Logged here at debug level only, so that the
    console does not hear each twice.
    """
    if text not in _NOTICES:
        _NOTICES.append(text)
        log.debug("plugin notice: %s", text)


def deprecated(text: str, *, removed_in: str, stacklevel: int = 2) -> None:
    """Say that a plugin uses an interface that changed: once, in the console and the session.

    ``text`` says what the plugin does and what to write instead; the release that removes the
    old form (``removed_in``, as CHANGELOG.md lists it under "Deprecated") is added to it.
    Python's default filter hides a ``DeprecationWarning`` outside ``__main__``, so a lab would
    never read it: it is a :func:`notice` too (``session.json`` -> ``warnings``), and still a
    ``DeprecationWarning`` for tools that look for one (``stacklevel`` as for
    :func:`warnings.warn`, from the caller).
    """
    text = f"{text}. It works until release {removed_in}, which removes it (CHANGELOG.md)"
    notice(text)
    warnings.warn(text, DeprecationWarning, stacklevel=stacklevel + 1)
