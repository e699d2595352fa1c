"""Settings: settings.ini read once into typed, validated objects (see docs/settings.md)."""

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.schema import setting
from deeplabstream.settings.loader import load_settings, settings_as_dict
from deeplabstream.settings.sections import CameraSettings, Settings

__all__ = [
    "CameraSettings",
    "Settings",
    "SettingsError",
    "load_settings",
    "setting",
    "settings_as_dict",
]
