"""What the Rig tab says of a settings text: its problems, and what Start would run.

The check is the one a start runs, so the panel and the Start buttons never disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplabstream.core.errors import SettingsError
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config.edit import ConfigText
from deeplabstream.experiments.registry import (
    CONFIG_FOLDER,
    EXPERIMENTS,
    config_file_of,
    lab_folder,
)
from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.settings.effective import resolve_cameras
from deeplabstream.settings.loader import parse_settings_text
from deeplabstream.settings.sections import Settings


def relative_to_settings(path: Path, settings_file: Path) -> str:
    """Return ``path`` relative to the settings file's folder when it lies under it."""
    try:
        return str(path.resolve().relative_to(settings_file.resolve().parent))
    except ValueError:
        return str(path.resolve())


def experiment_name_for(path: Path, settings_file: Path | None = None) -> str:
    """Return what ``[Experiment] NAME`` says for ``path``: its stem where that finds it."""
    resolved = path.resolve()
    if resolved.suffix == ".ini" and resolved.parent == CONFIG_FOLDER.resolve():
        return resolved.stem
    lab = lab_folder(settings_file.parent) if settings_file is not None else None
    if lab is not None and resolved.parent == lab.resolve() and resolved.suffix in (".ini", ".py"):
        return resolved.stem
    return str(resolved)


def editable_config(config: Path, settings_file: Path) -> Path:
    """Return the config file the window may edit for ``config``.

    A shipped config is first copied (once) into the lab's ``experiments/`` folder beside the
    settings file, its files made absolute; a different file of that name is never overwritten
    (``NAME_2.ini``...). Any other config is edited where it is.
    """
    config = config.resolve()
    if config.parent != CONFIG_FOLDER.resolve():
        return config
    text = ConfigText(config.read_text(encoding="utf-8"))
    text.make_files_absolute(config.parent)
    folder = lab_folder(settings_file.resolve().parent)
    assert folder is not None  # a settings folder always has its lab's folder
    folder.mkdir(parents=True, exist_ok=True)
    target, number = folder / config.name, 1
    while target.exists() and target.read_text(encoding="utf-8") != text.text:
        number += 1
        target = folder / f"{config.stem}_{number}{config.suffix}"
    if not target.exists():
        target.write_text(text.text, encoding="utf-8")
    return target


def lab_code_of(name: str, settings_folder: Path | None) -> str | None:
    """Return the lab's code that loading experiment ``name`` imports (and so runs), or None.

    Decided from names and files alone, without importing.
    """
    text = name.strip()
    if not text or config_file_of(text, settings_folder) is not None:
        return None
    lower = text.lower()
    if lower.endswith(".py") or ".py:" in lower:
        return text[: lower.index(".py") + 3]
    source = EXPERIMENTS.source_of(text, settings_folder)
    if source is None:
        return None  # an unknown name imports nothing: the check says what exists
    if source.file is not None:
        return str(source.file)
    module = source.target.partition(":")[0]
    return None if module.startswith("deeplabstream.") else f"the installed module {module}"


def check_text(
    text: str, settings_file: Path, allowed: frozenset[str] = frozenset()
) -> tuple[Settings | None, list[str]]:
    """Check a settings text as a start would; return the settings (None if unreadable).

    The lab's experiment code is checked (imported) only when its name is in ``allowed``.
    """
    try:
        settings = parse_settings_text(text, settings_file)
    except SettingsError as error:
        return None, list(error.problems)
    name = settings.experiment.name if settings.experiment_chosen else ""
    load = bool(name) and (name in allowed or lab_code_of(name, settings_file.parent) is None)
    try:
        problems = check_before_start(settings, pose=True, experiment=load)
    except Exception as error:  # a check that crashes is a problem to show, not a crash
        problems = [f"the check failed: {type(error).__name__}: {error}"]
    return settings, problems


def planned_experiment(settings: Settings) -> Experiment:
    """Return the experiment of the run ``settings`` plan (what a start checks and runs)."""
    return resolve_cameras(settings).experiment_plan().experiment()


def summary_lines(settings: Settings) -> list[str]:
    """Say in a few lines what Start would run with ``settings``."""
    lines = []
    plan = resolve_cameras(settings)
    for camera in settings.cameras:
        record = "recorded" if camera.common.record else "not recorded"
        detail = f"{camera.source} {_camera_detail(camera)}, {record}"
        if plan.camera(camera.name).own_model:  # a rig whose cameras see different views
            detail += f", its own model {plan.camera(camera.name).model}"
        lines.append(f"camera {camera.name}: {detail}")
    model = plan.shared_model
    shared = [c for c in settings.cameras if not plan.camera(c.name).own_model]
    ensemble = plan.camera(shared[0].name).ensemble if shared else ()
    if ensemble:  # several models, one estimate (docs/ensembles.md)
        names = ", ".join(str(path) for path in ensemble)
        lines.append(f"models: an ensemble of {len(ensemble)} ({names})")
    elif shared or not settings.cameras:
        lines.append(f"model: {model if model is not None else 'the bundled arena model'}")
    lines.append(f"experiment: {settings.experiment.name}")
    for name, device in settings.devices.items():
        lines.append(f"device {name}: {device.type}")
    session = settings.session
    folder = settings.output.directory / (
        "YYYY-mm-dd_HH-MM-SS" + (f"_{session.animal}" if session.animal else "")
    )
    lines.append(f"sessions go to: {folder}")
    if session.planned_duration:
        lines.append(f"planned duration: {session.planned_duration:g} s, then everything stops")
    return lines


def trigger_line(name: str, trigger: Any, cameras: list[str]) -> str:
    """Say what a trigger is and which camera it reads: ``nose_in_left (region, arena)``."""
    read = trigger.cameras_read()
    if read is None:
        where = "camera?" if len(cameras) > 1 else ""
    elif not read or (len(cameras) <= 1 and tuple(read) == tuple(cameras)):
        where = ""  # a combinator or clock reads no camera itself
    else:
        where = ", ".join(read)
    return f"{name} ({trigger.kind}{', ' + where if where else ''})"


def _camera_detail(camera: Any) -> str:
    options = camera.options
    parts = []
    for key in ("path", "serial", "index"):
        value = getattr(options, key, None)
        if value not in (None, ""):
            parts.append(str(value))
    width, height = getattr(options, "width", None), getattr(options, "height", None)
    if width and height:
        parts.append(f"{width}x{height}")
    rate = getattr(options, "framerate", None)
    if rate:
        parts.append(f"{rate:g} fps")
    return " ".join(parts)
