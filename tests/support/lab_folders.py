"""Put a test's plugin class in the lab's folder beside a settings file, to be named there.

Settings never name a Python file (core/plugins/): a test whose camera (or device...) class
lives in a test module writes a one-line lab module that subclasses it, and names that module.
Every process imports it from the folder, as it does a lab's own plugin.
"""

from __future__ import annotations

from pathlib import Path


def lab_plugin(settings_folder: Path, kind_folder: str, cls: type, name: str = "") -> str:
    """Write ``<kind_folder>/<name>.py`` subclassing ``cls``; return the name to write.

    ``cls`` must be importable by its module's name (a test module's top-level class).
    """
    name = name or f"lab_{cls.__name__.lower()}"
    folder = settings_folder / kind_folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(
        f"from {cls.__module__} import {cls.__qualname__} as _Base\n\n\n"
        f"class {cls.__name__}(_Base):\n"
        f'    """{cls.__qualname__} of {cls.__module__}, as the lab\'s {name}."""\n',
        encoding="utf-8",
    )
    return name
