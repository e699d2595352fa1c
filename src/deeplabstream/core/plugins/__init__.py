"""Plugins of every kind, one module per concern; every public name is importable from here."""

from deeplabstream.core.plugins.errors import *  # noqa: F403
from deeplabstream.core.plugins.lab_files import *  # noqa: F403
from deeplabstream.core.plugins.notices import *  # noqa: F403
from deeplabstream.core.plugins.permissions import *  # noqa: F403
from deeplabstream.core.plugins.registry import *  # noqa: F403
from deeplabstream.core.plugins.watchdog import *  # noqa: F403
