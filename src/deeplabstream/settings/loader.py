"""Read settings.ini into :class:`settings.sections.Settings`: the one place settings are parsed.

Values are data, never evaluated (no interpolation); all of a file's problems are raised together as
one :class:`SettingsError`.
"""

from __future__ import annotations

import configparser
import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.plugins import PluginError, use_settings_folder, using_settings_folder
from deeplabstream.core.schema import (
    Where,
    key_of,
    keys_written_twice,
    parse_section,
    settings_fields,
)
from deeplabstream.hardware.cameras import CAMERAS, camera_class
from deeplabstream.hardware.stimulation import DEVICES, device_class
from deeplabstream.outputs.interface import ChosenOutput
from deeplabstream.outputs.nwb_forms import check_experimenters
from deeplabstream.pose.model_format import use_lab_formats
from deeplabstream.settings.outputs import OUTPUT_PREFIX, parse_output_section
from deeplabstream.settings.sections import (
    CameraCommonSettings,
    CameraSettings,
    DeviceSettings,
    ExperimentSettings,
    LatencyTestSettings,
    OutputSettings,
    PoseSettings,
    RecordingSettings,
    SessionSettings,
    Settings,
    StreamingSettings,
    TriangulationSettings,
)

SETTINGS_FILE_NAME = "settings.ini"
PACKAGED_SETTINGS_FILE = Path(__file__).resolve().parent / "default_settings.ini"
"""The embedded default, shipped in the package: the simulated arena, the bundled model, the
example experiment on a log-only device (the repository's ``settings.ini`` is a copy of it)."""
# A source checkout's settings.ini, beside app.py (src/deeplabstream/settings/loader.py -> root).
CHECKOUT_SETTINGS_FILE = Path(__file__).resolve().parents[3] / SETTINGS_FILE_NAME

SECTION_CLASSES: dict[str, type] = {
    "Streaming": StreamingSettings,
    "Recording": RecordingSettings,
    "Output": OutputSettings,
    "Pose": PoseSettings,
    "Experiment": ExperimentSettings,
    "LatencyTest": LatencyTestSettings,
    "Session": SessionSettings,
    "Triangulation": TriangulationSettings,
}
CAMERA_PREFIX = "Camera "
DEVICE_PREFIX = "Device "
DEVICE_TYPE_KEY = "TYPE"
CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def default_settings_file(announce: Callable[[str], None] = print) -> Path:
    """Return the settings file used when none is named: ``settings.ini`` of the current folder.

    Where there is none, the embedded default is copied there first (``announce`` says so), so
    relative paths are where the user works, never inside the package or a checkout.
    """
    here = Path.cwd() / SETTINGS_FILE_NAME
    if here.is_file():
        return here
    try:
        shutil.copyfile(PACKAGED_SETTINGS_FILE, here)
    except OSError as error:
        raise SettingsError(
            [
                f"{here.parent}: no {SETTINGS_FILE_NAME} here, and the default one cannot be "
                f"written ({error.strerror or error}). Run from a folder you can write to, or "
                "name a settings file (--settings PATH)."
            ]
        ) from None
    announce(
        f"No {SETTINGS_FILE_NAME} in {here.parent}: wrote the embedded default there (the "
        "simulated arena, the bundled model, the example experiment). Edit it, or set up the "
        "rig in the app's Rig tab."
    )
    return here


def load_settings(path: Path | str | None = None, *, cameras_required: bool = True) -> Settings:
    """Read and validate a settings file (:func:`default_settings_file` when ``path`` is None).

    A UTF-8 BOM is accepted; ``cameras_required`` False accepts a file without cameras (replay). Its
    folder becomes this process's settings folder (the lab's plugin folders).
    """
    file = Path(path) if path is not None else default_settings_file()
    file = file.expanduser().resolve()
    if not file.is_file():
        raise SettingsError(
            [
                f"{file}: settings file not found. Choose an existing settings file (the "
                "Settings field of the window; --settings PATH on the command line)."
            ]
        )
    try:
        text = file.read_text(encoding="utf-8-sig")  # "-sig": a byte-order mark is dropped
    except UnicodeDecodeError as error:
        raise SettingsError(
            [
                f"{file}: cannot be read as an ini file: {error}. Save it as UTF-8 (with or "
                "without a byte-order mark)."
            ]
        ) from None
    settings = parse_settings_text(text, file, cameras_required=cameras_required)
    # This process now works with these settings: its plugins come from their lab folders,
    # and only the lab's model formats they name are tried.
    use_settings_folder(file.parent)
    use_lab_formats(settings.pose.model_formats)
    return settings


def parse_settings_text(text: str, file: Path, *, cameras_required: bool = True) -> Settings:
    """Validate ``text`` as the settings file ``file`` (paths relative to its folder)."""
    text = text.removeprefix("\ufeff")
    parser = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep the user's case
    try:
        parser.read_string(text, source=str(file))
    except configparser.Error as error:
        raise SettingsError([f"{file}: cannot be read as an ini file: {error}"]) from None
    with using_settings_folder(file.parent):  # its lab's plugins are checked by name, as data
        return _settings_from_parser(file, parser, cameras_required)


#: The longest value a settings key may hold (bytes of UTF-8). The longest real one (a path, a
#: list of models, an NWB description) is a few hundred bytes; a 10 MB value was copied into
#: session.json at every update and cost the recording a third of its frames.
MAX_VALUE_BYTES = 64 * 1024


def oversized_values(file: Path, parser: configparser.ConfigParser) -> list[str]:
    """Return each key whose value is longer than :data:`MAX_VALUE_BYTES`, by section and key."""
    problems = []
    for section in parser.sections():
        for key, value in parser.items(section):
            size = len(value.encode("utf-8", errors="surrogatepass"))
            if size > MAX_VALUE_BYTES:
                problems.append(
                    f"{file}: [{section}] {key}: its value is {size:,} bytes, more than the "
                    f"{MAX_VALUE_BYTES // 1024} KiB a settings value may hold: no setting needs "
                    "that much (a file pasted in by mistake?). Shorten it, or name a file instead"
                )
    return problems


def _settings_from_parser(
    file: Path, parser: configparser.ConfigParser, cameras_required: bool = True
) -> Settings:
    oversized = oversized_values(file, parser)
    if oversized:  # refused first: such a value is not parsed (nor copied into session.json)
        raise SettingsError(oversized)
    problems: list[str] = []
    sections: dict[str, Any] = {}
    cameras: list[CameraSettings] = []
    devices: dict[str, DeviceSettings] = {}
    outputs: list[ChosenOutput] = []
    for section in parser.sections():
        items = dict(parser.items(section))
        problems += keys_written_twice(items, Where(file, section))
        if section.startswith(CAMERA_PREFIX):
            camera = _parse_camera(file, section, items, problems)
            if camera is not None:
                cameras.append(camera)
        elif section.startswith(DEVICE_PREFIX):
            device = _parse_device(file, section, items, problems)
            if device is not None:
                devices[section[len(DEVICE_PREFIX) :].strip()] = device
        elif section.startswith(OUTPUT_PREFIX):
            chosen = parse_output_section(file, section, items, problems)
            if chosen is not None:
                outputs.append(chosen)
        elif section in SECTION_CLASSES:
            sections[section] = parse_section(
                SECTION_CLASSES[section], items, Where(file, section), problems
            )
        else:
            allowed = ", ".join([*SECTION_CLASSES, "Camera NAME", "Device NAME", "Output NAME"])
            problems.append(f"{file}: [{section}]: unknown section. Allowed sections: {allowed}")
    for name, cls in SECTION_CLASSES.items():
        if name not in parser.sections():  # every key has a default (paths: beside the file)
            sections[name] = parse_section(cls, {}, Where(file, name), problems)
    if cameras_required and not any(s.startswith(CAMERA_PREFIX) for s in parser.sections()):
        problems.append(
            f"{file}: no camera. Declare at least one section [Camera NAME] with a SOURCE key "
            f"(one of: {', '.join(sorted(CAMERAS))})."
        )
    problems += _nwb_form_problems(file, sections, outputs)
    if problems:
        raise SettingsError(problems)
    return Settings(
        source_file=file,
        streaming=sections["Streaming"],
        cameras=tuple(cameras),
        recording=sections["Recording"],
        output=sections["Output"],
        pose=sections["Pose"],
        experiment=sections["Experiment"],
        latency_test=sections["LatencyTest"],
        session=sections["Session"],
        triangulation=sections["Triangulation"],
        devices=devices,
        outputs=tuple(outputs),
        # Only a NAME chooses the experiment: a section with the deadline's keys alone does not.
        experiment_named="Experiment" in parser
        and any(key.upper() == "NAME" for key in parser["Experiment"]),
    )


def _nwb_form_problems(
    file: Path, sections: dict[str, Any], outputs: list[ChosenOutput]
) -> list[str]:
    """Refuse an experimenter not in NWB's form "Last, First", when ``session.nwb`` is written."""
    # Without an NWB output the key is only session.json's text: a session must not be refused for a
    # form it does not need (EXPERIMENTER = nu once blocked saving).
    session, output = sections.get("Session"), sections.get("Output")
    if session is None or output is None:
        return []
    if output.nwb != "on" and not any(chosen.name == "nwb" for chosen in outputs):
        return []
    try:
        check_experimenters(session.experimenter)
    except ValueError as error:
        where = Where(file, "Session").key("EXPERIMENTER")
        return [f"{where} = {session.experimenter!r}: {error} (session.nwb is written)"]
    return []


def _parse_camera(
    file: Path, section: str, items: dict[str, str], problems: list[str]
) -> CameraSettings | None:
    name = section[len(CAMERA_PREFIX) :].strip()
    where = Where(file, section)
    if not CAMERA_NAME.match(name):
        problems.append(
            f"{file}: [{section}]: camera name {name!r} is not allowed; use 1-64 letters, digits, "
            "'_' or '-' (it names the camera's files)"
        )
        return None
    source = next((v.strip() for k, v in items.items() if k.upper() == "SOURCE"), None)
    if source is None:
        problems.append(
            f"{where.key('SOURCE')}: missing; expected one of {', '.join(sorted(CAMERAS))}"
        )
        return None
    # A registered name in any case (SOURCE = Basler); a lab's module or file as written.
    source = CAMERAS.settings_name(source)
    try:
        options_class = camera_class(source, file.parent).settings_class
    except PluginError as error:
        problems.append(f"{where.key('SOURCE')} = {source!r}: {error}")
        return None
    common_keys = {key_of(f) for f in settings_fields(CameraCommonSettings)}
    common_items = {k: v for k, v in items.items() if k.upper() in common_keys}
    rest = {k: v for k, v in items.items() if k.upper() != "SOURCE" and k not in common_items}
    common = parse_section(CameraCommonSettings, common_items, where, problems)
    options = parse_section(
        options_class, rest, where, problems, extra_allowed=common_keys | {"SOURCE"}
    )
    if options is None or common is None:
        return None
    return CameraSettings(
        name=name, source=source, options=options, common=common, settings_folder=file.parent
    )


def _parse_device(
    file: Path, section: str, items: dict[str, str], problems: list[str]
) -> DeviceSettings | None:
    """Parse a ``[Device NAME]`` section: its TYPE (default log), then that type's own keys."""
    where = Where(file, section)
    kind = next((v.strip() for k, v in items.items() if k.upper() == DEVICE_TYPE_KEY), "log")
    try:
        options_class = device_class(kind, file.parent).settings_class
    except PluginError as error:
        problems.append(f"{where.key(DEVICE_TYPE_KEY)} = {kind!r}: {error}")
        return None
    rest = {k: v for k, v in items.items() if k.upper() != DEVICE_TYPE_KEY}
    options = parse_section(options_class, rest, where, problems, extra_allowed={DEVICE_TYPE_KEY})
    if options is None:
        return None
    kind = DEVICES.settings_name(kind)  # a lab's: as written
    return DeviceSettings(type=kind, options=options, settings_folder=file.parent)


def section_attribute(section: str) -> str:
    """Return the :class:`Settings` attribute of a section: ``LatencyTest`` -> ``latency_test``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", section).lower()


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """Return the effective settings as plain JSON-able data (for ``session.json``)."""
    data: dict[str, Any] = {"file": str(settings.source_file)}
    for name in SECTION_CLASSES:
        data[name] = _plain(dataclasses.asdict(getattr(settings, section_attribute(name))))
    data["cameras"] = {
        camera.name: {
            "SOURCE": camera.source,
            **_plain(dataclasses.asdict(camera.common)),
            **_plain(dataclasses.asdict(camera.options)),
        }
        for camera in settings.cameras
    }
    data["devices"] = {
        name: {DEVICE_TYPE_KEY: device.type, **_plain(dataclasses.asdict(device.options))}
        for name, device in settings.devices.items()
    }
    if settings.outputs:  # [Output NAME] sections (absent otherwise: session.json as before)
        data["outputs"] = {
            chosen.name: _plain(dataclasses.asdict(chosen.plugin().settings))
            for chosen in settings.outputs
        }
    return data


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return {key.upper(): convert(value) for key, value in values.items()}
