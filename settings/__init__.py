"""Settings: settings.ini read once into typed, validated objects (see docs/settings.md)."""

from core.schema import SettingsError, setting
from settings.loader import load_settings, settings_as_dict
from settings.sections import CameraSettings, Settings

__all__ = [
    "CameraSettings",
    "Settings",
    "SettingsError",
    "load_settings",
    "setting",
    "settings_as_dict",
]
