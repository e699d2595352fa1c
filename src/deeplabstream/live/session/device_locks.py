"""The devices a session will open, locked before anything starts (see :mod:`core.device_lock`)."""

from __future__ import annotations

from deeplabstream.core.device_lock import DeviceClaim, DeviceLocks
from deeplabstream.hardware.stimulation import device_class
from deeplabstream.settings.sections import Settings


def session_claims(settings: Settings, *, devices: bool) -> list[DeviceClaim]:
    """Return the claims of the settings' cameras and, when ``devices``, of their devices."""
    claims = [
        DeviceClaim(key, f"camera '{camera.name}'")
        for camera in settings.cameras
        for key in camera.camera_class().lock_keys(camera.options)
    ]
    if devices:
        claims += [
            DeviceClaim(key, f"device '{name}'")
            for name, device in settings.devices.items()
            for key in device_class(device.type).lock_keys(device.options)
        ]
    return claims


def lock_session_devices(settings: Settings, *, devices: bool) -> DeviceLocks:
    """Take the locks of the devices the session will open; DeviceBusyError when one is held.

    Hold the returned object while the session runs and release it after its stop.
    """
    locks = DeviceLocks(
        session_claims(settings, devices=devices), settings_file=settings.source_file
    )
    locks.acquire()
    return locks
