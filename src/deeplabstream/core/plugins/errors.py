"""What goes wrong with a plugin, in one family of errors whose messages say what to do."""

from __future__ import annotations

from deeplabstream.core.errors import DeepLabStreamError


class PluginError(DeepLabStreamError):
    """A plugin that cannot be found or loaded; the message names it and says what to do."""


class UnknownPluginError(PluginError, KeyError):
    """No plugin of that kind and name; the message lists the known ones.

    Also a ``KeyError``, which the registries of each kind raised before they were one.
    """

    def __str__(self) -> str:
        """Return the message as written (a ``KeyError`` would quote it)."""
        return str(self.args[0]) if self.args else ""


class PluginLoadError(PluginError, ImportError):
    """A plugin that is declared but cannot be imported, or is not what its kind expects."""


class PluginPathError(UnknownPluginError):
    """A name that is a path to Python code or a module's import path: settings never name code.

    An :class:`UnknownPluginError` (and so a ``KeyError``), so every caller that reports an
    unknown name reports this one the same way, with its file, section and key.
    """


class PluginClashError(PluginError):
    """A lab module named like a registered plugin: which one is meant cannot be told.

    ``cameras/synthetic.py`` beside a settings file naming ``SOURCE = synthetic``: the message
    names the file and says what to rename it to.
    """


def error_text(error: BaseException) -> str:
    """Return ``Type: message`` of an exception, for a message about a plugin."""
    return f"{type(error).__name__}: {error}"
