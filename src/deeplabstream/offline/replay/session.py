"""Replay one video through the live pipeline: the video is the camera, the rest is unchanged.

docs/architecture.md, "Offline replay".
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deeplabstream.app.display.screen import has_display
from deeplabstream.core.control import StopRequested
from deeplabstream.core.device_lock import DeviceBusyError
from deeplabstream.core.digest import file_sha256
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.lifetime import parent_alive
from deeplabstream.core.logs import add_log_file
from deeplabstream.hardware.cameras.video import VideoSettings
from deeplabstream.hardware.cameras.video_length import AnnouncedLength, truncation_text
from deeplabstream.live.session.device_locks import lock_session_devices
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner, install_stop_signals
from deeplabstream.offline.replay.job import Progress, ProgressSink, ReplayOptions, ReplayResult
from deeplabstream.offline.replay.regions import region_camera_problems, region_overlay
from deeplabstream.offline.replay.videos import VideoInfo, camera_name_for, probe_video
from deeplabstream.outputs.annotated_video import (
    ANNOTATED_SUFFIX,
    FrameOverlay,
    annotate_session,
)
from deeplabstream.outputs.folder import SESSION_LOG
from deeplabstream.outputs.session_record import (
    FileDigest,
    PoseCamera,
    Replay,
    file_digest_record,
    read_session_record,
    write_record,
)
from deeplabstream.outputs.signature import seal, signing_key
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import CameraPlan, resolve_cameras
from deeplabstream.settings.sections import CameraSettings, DeviceSettings, Settings

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.25
#: Every key of ``replay`` is written, null or not (a reader may test any of them).
REPLAY_KEYS = frozenset(field.name for field in dataclasses.fields(Replay)) - {"extra", "present"}
END_OF_VIDEO = "end of source"  # the capture process's word for it (session.json "end")


def replay_plan(base: Settings, video: Path, options: ReplayOptions) -> CameraPlan:
    """Return the replay's plan: ``base`` with one camera playing ``video``, the options applied."""
    camera = CameraSettings(
        name=options.camera or camera_name_for(video),
        source="video",
        options=VideoSettings(
            path=video, pacing="lockstep" if options.mode == "fast" else "native", loop=False
        ),
    )
    settings = dataclasses.replace(base, cameras=(camera,))
    if options.experiment_name is not None:
        experiment = dataclasses.replace(settings.experiment, name=options.experiment_name)
        settings = dataclasses.replace(settings, experiment=experiment)
    if options.deadline_ms is not None:
        experiment = dataclasses.replace(settings.experiment, deadline_ms=options.deadline_ms)
        settings = dataclasses.replace(settings, experiment=experiment)
    if options.log_devices:
        devices = {name: DeviceSettings(type="log") for name in settings.devices}
        settings = dataclasses.replace(settings, devices=devices)
    return resolve_cameras(settings, model=options.model)


def replay_settings(base: Settings, video: Path, options: ReplayOptions) -> Settings:
    """Return the settings of :func:`replay_plan`: what the replay's session runs."""
    return replay_plan(base, video, options).settings


def replay_video(
    video: Path, options: ReplayOptions, progress: ProgressSink | None = None
) -> ReplayResult:
    """Replay ``video``; never raises for a bad video or settings: the result says what failed."""
    began = time.monotonic()
    report = progress or (lambda _update: None)
    report(Progress(video, "starting", 0, None))
    try:
        info = probe_video(video)
        plan = replay_plan(
            load_settings(options.settings_file, cameras_required=False), video, options
        )
    # ReplayError (the video) and SettingsError are ours; ValueError: a settings object's check
    except (DeepLabStreamError, ValueError) as error:
        return ReplayResult(video, False, errors=(str(error),), elapsed_s=time.monotonic() - began)
    camera = plan.settings.cameras[0].name
    mismatch = region_camera_problems(plan, camera, video) if options.experiment else []
    if mismatch:  # never a replay whose regions silently see nothing
        elapsed_s = time.monotonic() - began
        return ReplayResult(video, False, errors=tuple(mismatch), elapsed_s=elapsed_s)
    return _run(video, info, plan, options, report, began)


def replay_with_plan(
    video: Path,
    plan: CameraPlan,
    options: ReplayOptions,
    progress: ProgressSink | None = None,
    folder_name: str | None = None,
) -> ReplayResult:
    """Replay a plan made by the caller (its cameras play videos, ``video`` the first one)."""
    began = time.monotonic()
    report = progress or (lambda _update: None)
    report(Progress(video, "starting", 0, None))
    try:
        info = probe_video(video)
    except (DeepLabStreamError, ValueError) as error:
        return ReplayResult(video, False, errors=(str(error),), elapsed_s=time.monotonic() - began)
    return _run(video, info, plan, options, report, began, folder_name)


def _run(
    video: Path,
    info: VideoInfo,
    plan: CameraPlan,
    options: ReplayOptions,
    report: ProgressSink,
    began: float,
    folder_name: str | None = None,
) -> ReplayResult:
    settings = plan.settings
    output_dir = options.output_dir or settings.output.directory
    try:  # a video takes no lock; the experiment's real devices (without --log-devices) do
        locks = lock_session_devices(settings, devices=options.experiment)
    except DeviceBusyError as error:
        return ReplayResult(video, False, errors=(str(error),), elapsed_s=time.monotonic() - began)
    stream = LiveSession(settings, output_dir=output_dir, log_level=options.log_level, plan=plan)
    runner = _ReplayRunner(stream, video, info.frames, report)
    signalled: list[str] = []  # every stop signal, also those after the video's end

    def on_stop_signal(reason: str) -> None:
        signalled.append(reason)
        runner.signal_stop(reason)

    _install_signals(on_stop_signal)
    errors: list[str] = []
    interrupted = False
    try:
        # A stop (the batch stopped: SIGTERM, Ctrl-C) ends the waits for the camera and model.
        stream.open(stop_requested=lambda: runner.stop_reason)
        stream.pose.start_analysis(
            experiment=options.experiment, stop_requested=lambda: runner.stop_reason
        )
        stream.start()
        if options.show and has_display():
            # Qt loads only with a preview: replay processes and Ray tasks run without it.
            from deeplabstream.app.gui.preview import run_preview

            run_preview(stream, runner)
        else:
            runner.run_headless()
    except StopRequested as stop:  # a stop, not a failure: nothing streamed yet
        errors.append(f"not replayed: {stop.reason} before its stream started")
        interrupted = True
    except (DeepLabStreamError, OSError, MemoryError) as error:  # OSError: the disk
        errors.append(str(error))
        if stream.session_dir is not None:
            stream.report_error(str(error))
    finally:
        stream.stop(runner.stop_reason or "stop requested")
        locks.release()
    errors += [e for e in stream.errors if e not in errors]
    if interrupted:  # nothing streamed: the folder goes, as a preview's does in the app
        stream.discard_preview()
    if stream.session_dir is None:  # nothing started: the camera or the folder failed
        return ReplayResult(video, False, errors=tuple(errors), elapsed_s=time.monotonic() - began)
    _detach_session_log(stream.session_dir)
    session_dir = _rename_session(stream.session_dir, folder_name or camera_name_for(video))
    if session_dir != stream.session_dir:
        _log_final_folder(stream.session_dir, session_dir)
    hold_here("replay-finishing")  # a fault test's chosen moment (core/fault_hooks.py)
    result = _finish(video, info, settings, options, session_dir, runner, errors, report, began)
    return dataclasses.replace(result, stop_signal=signalled[0] if signalled else "")


def _finish(
    video: Path,
    info: VideoInfo,
    settings: Settings,
    options: ReplayOptions,
    session_dir: Path,
    runner: _ReplayRunner,
    errors: list[str],
    report: ProgressSink,
    began: float,
) -> ReplayResult:
    """Read the session's figures, render the annotated video, note the replay in session.json."""
    session = read_session_record(session_dir)
    camera = settings.cameras[0].name  # the video's camera (camera_name_for(video) in a replay)
    entry = session.cameras[camera]
    captured = entry.frames_captured
    pose = (session.pose.cameras.get(camera) if session.pose else None) or PoseCamera()
    annotated = None
    if options.annotated_video and (session_dir / f"{camera}.pose.csv").is_file():
        overlay = region_overlay(session.experiment, camera) if options.experiment else None
        annotated = _annotate(video, info, session_dir, camera, errors, report, overlay)
    if entry.status == "ended" and entry.end != END_OF_VIDEO and not errors:
        errors.append(f"stopped before the end of the video: {runner.stop_reason}")
    truncated = entry.end == END_OF_VIDEO and truncation(info, captured)
    if truncated and truncated not in errors:  # the live session said it already
        errors.append(truncated)
    delivery = entry.device.get("delivery")  # the video camera's own description
    lag = lag_warning(video, delivery)
    warnings = [lag] if lag else []
    _log_in_session(session_dir, warnings)
    elapsed = time.monotonic() - began
    replay = Replay(
        video=str(video),
        video_sha256=_sha256_or_none(video),
        mode=options.mode,
        frames_in_video=info.frames if info.frames_exact else None,
        frames_announced=info.frames,
        truncated=bool(truncated),
        annotated_video=annotated.name if annotated else None,
        elapsed_s=round(elapsed, 3),
        # --realtime: how late the video's frames were delivered (hardware/cameras/video.py
        # measures it)
        delivery=delivery,
        present=REPLAY_KEYS,
    )
    recorded = [*session.errors]
    recorded += [error for error in errors if error not in recorded]  # the replay's own, too
    noted = [*session.warnings]  # the session's own (a model's frame size) too
    noted += [warning for warning in warnings if warning not in noted]
    key = signing_key(noted)
    session = dataclasses.replace(
        session,
        replay=replay,
        errors=tuple(recorded),
        warnings=tuple(noted),
        files=_files_now(session_dir, session.files),  # with the annotated video
        signature=None,  # signed again below: the record changed
    )
    write_record(session_dir, session)
    if key is not None:
        seal(session_dir, key)
    return ReplayResult(
        video,
        ok=not errors,
        session_dir=session_dir,
        frames_in_video=info.frames,
        frames_captured=captured,
        frames_analysed=pose.frames_analysed or 0,
        frames_skipped=pose.frames_skipped or 0,
        elapsed_s=elapsed,
        stop_reason=runner.stop_reason or "",
        errors=tuple(errors),
        annotated_video=annotated,
        warnings=tuple(noted),
    )


def _sha256_or_none(video: Path) -> str | None:
    """Return the replayed video's SHA-256: a video swapped since is named (None: unreadable)."""
    try:
        return file_sha256(video)
    except OSError as error:
        log.warning("%s: its SHA-256 could not be taken: %s", video, error)
        return None


def _files_now(
    session_dir: Path, files: dict[str, FileDigest] | None
) -> dict[str, FileDigest] | None:
    """Every file's digest again, after the replay's own files (None: the close took none)."""
    if files is None:
        return None
    try:
        return file_digest_record(session_dir)
    except OSError as error:
        log.error("%s: the files could not all be digested again: %s", session_dir, error)
        return None


def lag_warning(video: Path, delivery: dict[str, Any] | None) -> str:
    """Say that a ``--realtime`` replay fell behind its video, or "" when it kept up."""
    if not delivery or not delivery.get("frames_late"):
        return ""
    late = delivery.get("late_ms") or {}
    return (
        f"{video}: the realtime replay fell behind the video: {delivery['frames_late']} of "
        f"{late.get('count', '?')} frames were delivered more than one frame interval "
        f"({delivery.get('frame_interval_ms')} ms) late (p99 {late.get('p99')} ms, max "
        f"{late.get('max')} ms), so the analysis saw them later than a live camera would have "
        "delivered them. The machine could not decode (or the process could not run) at the "
        "video's rate: use --fast to analyse every frame, or free the machine"
    )


def truncation(info: VideoInfo, frames_decoded: int) -> str:
    """Why the video counts as truncated (it ended before its container says), or ""."""
    return truncation_text(
        info.path, AnnouncedLength(info.frames, info.frames_exact), frames_decoded
    )


def _annotate(
    video: Path,
    info: VideoInfo,
    session_dir: Path,
    camera: str,
    errors: list[str],
    report: ProgressSink,
    overlay: FrameOverlay | None = None,
) -> Path | None:
    """Write the replay's annotated video with ``overlay`` (once: not if the settings chose it)."""
    target = session_dir / f"{camera}{ANNOTATED_SUFFIX}"
    if target.is_file():
        return target
    try:
        annotate_session(
            session_dir,
            cameras=(camera,),
            report=lambda _, done: report(Progress(video, "annotating", done, info.frames)),
            overlays={camera: overlay} if overlay is not None else None,
        )
    except (OSError, ValueError, KeyError) as error:  # av.FFmpegError is an OSError
        errors.append(f"{target}: the annotated video could not be written: {error}")
        return None
    return target if target.is_file() else None


class _ReplayRunner(SessionRunner):
    """A session runner that reports progress and ends when pose estimation ends."""

    def __init__(
        self, stream: LiveSession, video: Path, total: int | None, report: ProgressSink
    ) -> None:
        super().__init__(stream, status_out=None)
        self.ends_with_experiment = False  # the poses of the whole video, whatever it decides
        self._video = video
        self._total = total
        self._report = report
        self._next_report = 0.0

    def tick(self, timeout: float) -> bool:
        """Service the stream for up to ``timeout`` s; False once the run should end."""
        going = super().tick(timeout)
        analysis = self.stream.pose.analysis
        if going and analysis is not None and analysis.finished is not None:
            self.request_stop("pose estimation ended before the video did")
            going = False
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + REPORT_INTERVAL_S
            done = sum(stats["captured"] for stats in self.stream.camera_stats().values())
            self._report(Progress(self._video, "replaying", done, self._total))
        return going


def _install_signals(stop: Callable[[str], None]) -> None:
    """Make Ctrl-C and SIGTERM (the batch ended) stop the replay; only in a main thread."""

    def on_signal(reason: str) -> None:
        stop(reason if parent_alive() else "the batch's main process ended")

    try:
        install_stop_signals(on_signal)
    except ValueError:  # not the main thread (a Ray task on a thread): the caller stops it
        pass


def _detach_session_log(session_dir: Path) -> None:
    """Stop this process's logging into the session's log (the next replay has its own)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        filename = getattr(handler, "baseFilename", None)
        if filename is not None and Path(filename).parent == session_dir:
            root.removeHandler(handler)
            handler.close()


def _log_final_folder(old: Path, new: Path) -> None:
    """Make ``session.log`` name the folder by its final name, and say that it was renamed."""
    # Every process writing to the log has ended and this one's handler is detached by now,
    # so the file is rewritten in place.
    log_file = new / SESSION_LOG
    try:
        text = log_file.read_text(encoding="utf-8")
        text = text.replace(str(old), str(new))
        log_file.write_text(text, encoding="utf-8")
        add_log_file(log_file)
    except (OSError, UnicodeDecodeError) as error:
        log.warning("%s could not be updated with the folder's new name: %s", log_file, error)
        return
    try:
        log.info("session folder renamed after the video: %s -> %s", old.name, new)
    finally:
        _detach_session_log(new)


def _log_in_session(session_dir: Path, warnings: list[str]) -> None:
    """Log ``warnings`` to the console and to ``session.log`` (the session's handler is gone)."""
    if not warnings:
        return
    try:
        add_log_file(session_dir / SESSION_LOG)
    except OSError as error:
        log.warning("%s could not be written: %s", session_dir / SESSION_LOG, error)
    try:
        for warning in warnings:
            log.warning("%s", warning)
    finally:
        _detach_session_log(session_dir)


def _rename_session(session_dir: Path, name: str) -> Path:
    """Give the session folder the video's name (``-2``, ``-3``... when taken), replacing none."""
    for attempt in range(1, 1000):
        target = session_dir.with_name(name if attempt == 1 else f"{name}-{attempt}")
        if target.exists():
            continue
        try:
            session_dir.rename(target)
        except OSError:  # made by another replay meanwhile: try the next name
            continue
        return target
    log.warning("%s keeps its name: too many sessions named %s", session_dir, name)
    return session_dir
