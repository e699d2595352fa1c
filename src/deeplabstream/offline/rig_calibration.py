"""The true calibration of a simulated 3D rig, written from its settings file.

``python -m deeplabstream.offline.rig_calibration SETTINGS TOML`` writes Anipose's
``calibration.toml`` of its synthetic cameras with a VIEW_POSITION (docs/rig-3d.ini).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deeplabstream.core.pinhole import PinholeCamera
from deeplabstream.hardware.cameras.synthetic import rig_cameras
from deeplabstream.hardware.simulator.rig3d import write_rig_calibration
from deeplabstream.settings import load_settings


def settings_rig_cameras(settings_path: Path) -> list[PinholeCamera]:
    """Return the true calibration of the 3D views of the settings file at ``settings_path``.

    Raises ValueError with the loader's problems, or when the file has no 3D view.
    """
    settings = load_settings(settings_path)
    cameras = rig_cameras((camera.name, camera.options) for camera in settings.cameras)
    if not cameras:
        raise ValueError(
            f"{settings_path}: no [Camera NAME] section with SOURCE = synthetic and a "
            "VIEW_POSITION: there is no simulated 3D view to calibrate"
        )
    return cameras


def main(argv: list[str] | None = None) -> int:
    """Write the true calibration of the 3D views of SETTINGS (Anipose's calibration.toml)."""
    parser = argparse.ArgumentParser(
        prog="python -m deeplabstream.offline.rig_calibration", description=main.__doc__
    )
    parser.add_argument("settings", type=Path, help="settings file with the rig's cameras")
    parser.add_argument("toml", type=Path, help="calibration file to write")
    arguments = parser.parse_args(argv)
    try:
        cameras = settings_rig_cameras(arguments.settings)
    except ValueError as error:
        print(f"error: {error}")
        return 2
    write_rig_calibration(arguments.toml, cameras)
    print(f"wrote {arguments.toml}: {', '.join(camera.name for camera in cameras)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
