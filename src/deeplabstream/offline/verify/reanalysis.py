"""The offline reference: the session's recordings analysed again, every frame, as it ran.

Each camera becomes a ``video`` camera playing its recording in lockstep (every frame analysed,
none skipped), with the session's own settings (its model, thresholds, dynamic crop, crop
source, flip), its experiment, and its devices replaced by ``log`` (nothing is switched).
ROTATE and MIRROR are left out: the recording holds the frames after them. The one deliberate
change: forward prediction is off offline, so the reference decides on where the animal *was*;
live decisions made early by prediction are then seen as early (:mod:`offline.verify.events`).
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from deeplabstream.experiments.registry import config_file_of
from deeplabstream.hardware.cameras.video import VideoSettings
from deeplabstream.offline.replay.job import ProgressSink, ReplayOptions, ReplayResult
from deeplabstream.offline.replay.session import replay_with_plan
from deeplabstream.offline.verify.session_files import SessionFiles, VerifyError
from deeplabstream.settings.effective import CameraPlan, resolve_cameras
from deeplabstream.settings.sections import CameraSettings, DeviceSettings, Settings

log = logging.getLogger(__name__)

PREDICTION_KEYS = ("PREDICT", "PREDICTED")  # and every PREDICT_* key


@dataclass(frozen=True)
class OfflineRun:
    """One offline analysis: recording set ``part`` of every camera, in ``folder``."""

    part: int
    folder: Path
    result: ReplayResult
    prediction_removed: bool  # the experiment predicted live; the reference does not
    plan: CameraPlan  # each camera's effective settings: the session's, the recording its source


def analyse_offline(
    session: SessionFiles, target: Path, progress: ProgressSink | None = None
) -> list[OfflineRun]:
    """Analyse every recording of ``session`` into ``target/offline[-N]``; one run per part."""
    target.mkdir(parents=True, exist_ok=True)
    experiment, removed = reference_experiment(session, target)
    runs = []
    for part in range(session.recording_sets):
        settings = offline_settings(session, part, experiment)
        if not settings.cameras:
            continue
        folder = target / ("offline" if part == 0 else f"offline-{part + 1}")
        if folder.exists():
            shutil.rmtree(folder)  # an earlier verify's: this one replaces it
        plan = resolve_cameras(settings)  # verify's run: the plan is made here, once
        result = _replay(plan, session, folder, progress)
        runs.append(OfflineRun(part, folder, result, removed, plan))
    return runs


def offline_settings(session: SessionFiles, part: int, experiment: str | None) -> Settings:
    """Return the session's settings with recording ``part`` of each camera as its source."""
    settings = session.settings
    cameras = []
    for camera in session.cameras:
        if part >= len(camera.videos):
            continue
        original = next((c for c in settings.cameras if c.name == camera.name), None)
        common = original.common if original is not None else None
        replay_camera = CameraSettings(
            name=camera.name,
            source="video",
            options=VideoSettings(path=camera.videos[part].video, pacing="lockstep", loop=False),
            settings_folder=original.settings_folder if original is not None else None,
        )
        if common is not None:  # the frames in the video are already rotated and mirrored
            replay_camera = dataclasses.replace(
                replay_camera,
                common=dataclasses.replace(common, rotate=0, mirror="off", record=False),
            )
        cameras.append(replay_camera)
    devices = {name: DeviceSettings(type="log") for name in settings.devices}
    changed = dataclasses.replace(settings, cameras=tuple(cameras), devices=devices)
    if experiment is not None:
        changed = dataclasses.replace(
            changed, experiment=dataclasses.replace(changed.experiment, name=experiment)
        )
    return changed


def reference_experiment(session: SessionFiles, target: Path) -> tuple[str | None, bool]:
    """Return the experiment the reference runs, and whether prediction was taken out of it.

    A config file that predicts is copied into ``target`` with ``PREDICT = off`` and without
    its ``PREDICT_*`` and triggers' ``PREDICTED`` keys; its relative file paths are made
    absolute, so the copy reads what the original read. A class experiment runs as it is.
    """
    name = session.experiment and session.settings.experiment.name
    if not name:
        return None, False
    settings_folder = _settings_folder(session)
    config = config_file_of(name, settings_folder)
    if config is None or not config.is_file():
        return name, False
    parser = _read_config(config)
    if not parser.has_section("Experiment"):
        return name, False
    if parser.get("Experiment", "PREDICT", fallback="off").strip().lower() == "off":
        return name, False
    for section in parser.sections():
        for key in list(parser[section]):
            upper = key.upper()
            if upper in PREDICTION_KEYS or upper.startswith("PREDICT_"):
                parser.remove_option(section, key)
            else:
                parser[section][key] = _absolute_if_a_file(parser[section][key], config.parent)
    target.mkdir(parents=True, exist_ok=True)
    copy = target / f"{config.stem}.reference.ini"
    with copy.open("w", encoding="utf-8") as file:
        file.write(
            f"# {config} without forward prediction: deeplabstream-verify's reference decides "
            "on the measured keypoints.\n"
        )
        parser.write(file)
    return str(copy), True


def _absolute_if_a_file(value: str, folder: Path) -> str:
    """Return ``value`` made absolute when it names a file beside the config; else as it is."""
    text = value.strip()
    if not text or Path(text).is_absolute() or not (folder / text).exists():
        return value
    return str(folder / text)


def _read_config(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep the keys' case
    try:
        parser.read(path, encoding="utf-8-sig")
    except configparser.Error as error:
        raise VerifyError(f"{path}: the session's experiment cannot be read: {error}") from None
    return parser


def _settings_folder(session: SessionFiles) -> Path | None:
    """Return the session's settings file's folder, where its lab's plugins are (if there)."""
    recorded = (session.record.get("settings") or {}).get("file")
    folder = Path(recorded).parent if recorded else None
    return folder if folder is not None and folder.is_dir() else None


def _replay(
    plan: CameraPlan, session: SessionFiles, folder: Path, progress: ProgressSink | None
) -> ReplayResult:
    settings = plan.settings
    options = ReplayOptions(
        mode="fast",
        experiment=session.experiment is not None,
        log_devices=True,
        output_dir=folder.parent,
    )
    first = settings.cameras[0].options.path
    result = replay_with_plan(first, plan, options, progress, folder_name=folder.name)
    if result.session_dir is None:
        raise VerifyError(
            f"{session.folder}: the offline analysis could not run: "
            + "; ".join(result.errors or ("no reason given",))
        )
    return result
