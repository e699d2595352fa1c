"""What goes wrong with a plugin, in one family of errors whose messages say what to do."""

from __future__ import annotations

from deeplabstream.core.errors import DeepLabStreamError


class PluginError(DeepLabStreamError):
    """A plugin that cannot be found or loaded; the message names it and says what to do."""


class UnknownPluginError(PluginError, KeyError):
    """No plugin of that kind and name; the message lists the known ones. Also a ``KeyError``."""

    def __str__(self) -> str:
        """Return the message as written (a ``KeyError`` would quote it)."""
        return str(self.args[0]) if self.args else ""


class PluginLoadError(PluginError, ImportError):
    """A plugin that is declared but cannot be imported, or is not what its kind expects."""


class PluginPathError(UnknownPluginError):
    """A name that is a path to Python code or a module's import path: settings never name code.

    An :class:`UnknownPluginError` (so a ``KeyError``), reported as an unknown name is.
    """


class PluginClashError(PluginError):
    """A lab module named like a registered plugin; the message says what to rename it to."""


def error_text(error: BaseException) -> str:
    """Return ``Type: message`` of an exception, for a message about a plugin."""
    return f"{type(error).__name__}: {error}"
