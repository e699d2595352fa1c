"""The user's own folders, in each platform's place (``platformdirs``): preferences and caches.

Device locks live in the temporary folder instead: every session of the machine must see them.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

#: The folder name of the window's preferences (as the app is called).
CONFIG_NAME = "DeepLabStream"
#: The folder name of the caches (as the package is called; Linux keeps the older caches).
CACHE_NAME = "deeplabstream"


def user_config_folder() -> Path:
    """Return the folder of the user's preferences for this app (not created here)."""
    return Path(platformdirs.user_config_dir(CONFIG_NAME, appauthor=False))


def user_cache_folder() -> Path:
    """Return the folder of the user's caches for this app (not created here)."""
    return Path(platformdirs.user_cache_dir(CACHE_NAME, appauthor=False))
