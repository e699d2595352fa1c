"""The keypoints reference: the recording analysed again on the live session's own schedule.

Design: docs/verify.md, "offline.verify.reanalysis".
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabstream.hardware.cameras.video import VideoSettings
from deeplabstream.offline.replay.job import ProgressSink, ReplayOptions, ReplayResult
from deeplabstream.offline.replay.session import replay_with_plan
from deeplabstream.offline.verify.frames import ExactRows
from deeplabstream.offline.verify.session_files import (
    SessionFiles,
    VerifyError,
    VerifyStopped,
    changed_lab_files,
)
from deeplabstream.settings.effective import CameraPlan, resolve_cameras
from deeplabstream.settings.sections import CameraSettings, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineRun:
    """One offline analysis: recording set ``part`` of every camera, in ``folder``."""

    part: int
    folder: Path
    result: ReplayResult
    plan: CameraPlan  # each camera's effective settings: the session's, the recording its source
    scheduled: dict[str, int]  # per camera: the frames of this part the live loop analysed
    schedule: dict[str, tuple[int, ...]]  # per camera: their positions in the recording


def analyse_offline(
    session: SessionFiles,
    target: Path,
    live: dict[str, ExactRows],
    progress: ProgressSink | None = None,
) -> list[OfflineRun]:
    """Analyse every recording of ``session`` on the live schedule into ``target/offline[-N]``."""
    target.mkdir(parents=True, exist_ok=True)
    used = [
        entry
        for entry in session.record.get("plugin_files") or []
        if (entry or {}).get("kind") in ("model format", "backend")
    ]
    changed = changed_lab_files(used)
    if changed:  # the reference would run other code than the session ran
        raise VerifyError(f"{session.folder}: " + "; ".join(changed))
    runs = []
    made: list[Path] = []
    try:
        for part in range(session.recording_sets):
            schedule = _schedule(session, part, live)
            settings = offline_settings(session, part, schedule)
            if not settings.cameras:
                continue
            folder = target / ("offline" if part == 0 else f"offline-{part + 1}")
            if folder.exists():
                shutil.rmtree(folder)  # an earlier verify's: this one replaces it
            made.append(folder)
            plan = resolve_cameras(settings)  # verify's run: the plan is made here, once
            result = _replay(plan, session, folder, progress)
            scheduled = {camera: len(frames) for camera, frames in schedule.items()}
            runs.append(OfflineRun(part, folder, result, plan, scheduled, schedule))
    except VerifyStopped:
        # A stopped verify writes nothing (its message says so): no partial pose files or
        # session.json of an analysis that did not finish stay to be taken for one.
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return runs


def _schedule(
    session: SessionFiles, part: int, live: dict[str, ExactRows]
) -> dict[str, tuple[int, ...]]:
    """Per camera: the positions in recording ``part`` of the frames the live loop analysed."""
    schedule: dict[str, tuple[int, ...]] = {}
    for camera in session.cameras:
        if part >= len(camera.videos):
            continue
        rows = live.get(camera.name)
        if rows is None:
            schedule[camera.name] = ()  # no schedule known: every frame
            continue
        table = camera.videos[part].live_index()
        if table is None:  # a replay's own video: its frame i was the replay's frame i
            analysed = sorted({int(f) for f in rows.frames.tolist() if f >= 0})
        else:
            position = {int(frame): i for i, frame in enumerate(table.tolist())}
            analysed = sorted({position[int(f)] for f in rows.frames if int(f) in position})
        schedule[camera.name] = tuple(analysed) if analysed else (-1,)
    return schedule


def offline_settings(
    session: SessionFiles, part: int, schedule: dict[str, tuple[int, ...]] | None = None
) -> Settings:
    """Return the session's settings with recording ``part`` of each camera as its source.

    ``schedule``: per camera, the recording's frames to analyse (empty: every frame); a camera
    none of whose recorded frames was analysed live is left out.
    """
    settings = session.settings
    schedule = schedule or {}
    cameras = []
    for camera in session.cameras:
        frames = schedule.get(camera.name, ())
        if part >= len(camera.videos) or frames == (-1,):
            continue
        original = next((c for c in settings.cameras if c.name == camera.name), None)
        common = original.common if original is not None else None
        replay_camera = CameraSettings(
            name=camera.name,
            source="video",
            options=VideoSettings(
                path=camera.videos[part].video, pacing="lockstep", loop=False, frames=frames
            ),
            settings_folder=original.settings_folder if original is not None else None,
        )
        if common is not None:  # the frames in the video are already rotated and mirrored
            replay_camera = dataclasses.replace(
                replay_camera,
                common=dataclasses.replace(common, rotate=0, mirror="off", record=False),
            )
        cameras.append(replay_camera)
    # The reference writes what verify reads: no device, no output besides the pose files.
    output = dataclasses.replace(settings.output, lsl="off", nwb="off", slp="off")
    return dataclasses.replace(
        settings, cameras=tuple(cameras), devices={}, outputs=(), output=output
    )


#: How a replay names a stop that a signal asked for (live.session.runner.install_stop_signals).
STOP_SIGNAL_WORDING = " received"


def _stop_handlers() -> dict[int, Any]:
    """Return the handlers of Ctrl-C and SIGTERM now (main thread only: none elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    taken = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))
    return {signum: signal.getsignal(signum) for signum in taken}


def _replay(
    plan: CameraPlan, session: SessionFiles, folder: Path, progress: ProgressSink | None
) -> ReplayResult:
    options = ReplayOptions(mode="fast", experiment=False, output_dir=folder.parent)
    first = plan.settings.cameras[0].options.path
    handlers = _stop_handlers()
    try:
        result = replay_with_plan(first, plan, options, progress, folder_name=folder.name)
    finally:  # the replay took Ctrl-C and SIGTERM for its own stop: they are verify's again
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    # A signal after the video's end (the replay closing its files) is a stop too: the
    # replay's own stop reason is then the video's end, and the signal would be lost.
    stop = result.stop_signal or result.stop_reason
    if stop.endswith(STOP_SIGNAL_WORDING) and stop.startswith(("Ctrl-C", "SIG")):
        name = "SIGINT" if stop.startswith("Ctrl-C") else stop.split()[0]
        signum = int(getattr(signal, name, signal.SIGTERM))
        raise VerifyStopped(f"{stop} during the offline analysis", signum)
    if result.session_dir is None:
        raise VerifyError(
            f"{session.folder}: the offline analysis could not run: "
            + "; ".join(result.errors or ("no reason given",))
        )
    return result
