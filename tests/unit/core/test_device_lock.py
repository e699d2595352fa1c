"""The device locks: one per camera and board, refused with the holder's name, freed by death.

The holders are real spawned processes holding real operating-system locks; a crash is a real
SIGKILL. The plugins' keys are read from real settings files.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from deeplabstream.core.device_lock import (
    LOCK_ENV,
    DeviceBusyError,
    DeviceClaim,
    DeviceLocks,
    lock_folder,
)

SPAWN = multiprocessing.get_context("spawn")
LEFT = DeviceClaim("basler:0815-0000", "camera 'left'")
RIGHT = DeviceClaim("basler:0815-0001", "camera 'right'")
ANY_BASLER = DeviceClaim("basler:*", "camera 'only'")
BOARD = DeviceClaim("serial-port:/dev/ttyACM0", "device 'board'")


def hold(folder: Path, keys: list[str], held, settings: str) -> None:
    """Hold ``keys`` until killed (a crash: nothing releases them)."""
    locks = DeviceLocks(
        [DeviceClaim(key, f"camera '{key}'") for key in keys],
        folder=folder,
        settings_file=Path(settings),
    )
    try:
        locks.acquire()
    except DeviceBusyError as error:
        held.send(str(error))
        return
    held.send("held")
    multiprocessing.Event().wait(120)


@pytest.fixture
def holder(tmp_path: Path):
    """Start a process holding the given keys; every one started is killed at the end."""
    started = []

    def start(*keys: str) -> multiprocessing.Process:
        held, held_send = SPAWN.Pipe(duplex=False)
        process = SPAWN.Process(
            target=hold, args=(tmp_path, list(keys), held_send, "/rigs/rig_a.ini")
        )
        process.start()
        held_send.close()
        started.append(process)
        assert held.poll(60), "the holder did not start"
        answer = held.recv()
        assert answer == "held", answer
        return process

    yield start
    for process in started:
        process.kill()
        process.join(30)


def test_a_device_held_by_another_process_is_refused_naming_the_holder(tmp_path, holder):
    other = holder(LEFT.key)
    locks = DeviceLocks([LEFT], folder=tmp_path)
    with pytest.raises(DeviceBusyError) as refused:
        locks.acquire()
    message = str(refused.value)
    assert "camera 'left' (basler:0815-0000) is in use by another DeepLabStream" in message
    assert f"process {other.pid} (" in message
    assert "started 20" in message and "settings /rigs/rig_a.ini" in message
    assert "second rig" in message and "--settings rig2.ini" in message
    assert not locks.held
    assert refused.value.busy[0][1] is not None and refused.value.busy[0][1].pid == other.pid


def test_a_crashed_holder_leaves_no_lock_behind(tmp_path, holder):
    other = holder(LEFT.key, BOARD.key)
    other.kill()  # the kernel drops the locks with the process
    other.join(30)
    with DeviceLocks([LEFT, BOARD], folder=tmp_path) as locks:
        assert locks.held


def test_two_rigs_with_different_devices_hold_their_locks_side_by_side(tmp_path, holder):
    holder(LEFT.key, "serial-port:/dev/ttyACM0")
    with DeviceLocks([RIGHT, DeviceClaim("serial-port:/dev/ttyACM1", "device 'b'")],
                     folder=tmp_path) as locks:  # fmt: skip
        assert locks.held


def test_all_or_nothing_and_every_busy_device_named(tmp_path, holder):
    holder(LEFT.key, BOARD.key)
    free = DeviceClaim("basler:0815-0002", "camera 'third'")
    locks = DeviceLocks([free, LEFT, BOARD], folder=tmp_path)
    with pytest.raises(DeviceBusyError) as refused:
        locks.acquire()
    assert {claim.key for claim, _ in refused.value.busy} == {LEFT.key, BOARD.key}
    with DeviceLocks([free], folder=tmp_path) as alone:  # the free one was given back
        assert alone.held


def test_any_camera_of_a_kind_conflicts_with_each_one_both_ways(tmp_path, holder):
    other = holder(LEFT.key)
    with pytest.raises(DeviceBusyError) as refused:
        DeviceLocks([ANY_BASLER], folder=tmp_path).acquire()
    assert f"process {other.pid}" in str(refused.value)
    other.kill()
    other.join(30)
    holder(ANY_BASLER.key)
    for claim in (LEFT, RIGHT):
        with pytest.raises(DeviceBusyError):
            DeviceLocks([claim], folder=tmp_path).acquire()
    with DeviceLocks([BOARD], folder=tmp_path) as locks:  # another kind is not concerned
        assert locks.held


def test_a_session_may_claim_any_and_one_of_the_same_kind(tmp_path):
    with DeviceLocks([LEFT, ANY_BASLER], folder=tmp_path) as locks:
        assert locks.held and locks.keys == [ANY_BASLER.key, LEFT.key]


def test_release_empties_the_holder_lines(tmp_path):
    locks = DeviceLocks([LEFT, ANY_BASLER], folder=tmp_path)
    locks.acquire()
    files = sorted(tmp_path.glob("*.lock"))
    assert any(str(os.getpid()) in path.read_text() for path in files)
    locks.release()
    assert not locks.held
    assert all(path.read_text() == "" for path in files)
    locks.release()  # safe twice


def test_the_environment_variable_isolates_the_lock_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "rig.lock"))
    assert lock_folder() == tmp_path / "rig.lock.d"
    with DeviceLocks([LEFT]):
        assert list((tmp_path / "rig.lock.d").glob("basler@0815-0000-*.lock"))


def test_a_key_without_kind_and_identity_is_refused():
    with pytest.raises(ValueError, match="'kind:identity'"):
        DeviceClaim("0815-0000", "camera 'left'")


def test_each_plugin_says_what_identifies_its_device(tmp_path):
    # Imported here: the holders' processes import this module, and need none of it.
    from deeplabstream.live.session.device_locks import session_claims
    from deeplabstream.settings import load_settings
    from tests.support.files import write_settings

    link = tmp_path / "board-by-id"
    link.symlink_to("/dev/ttyACM7")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    settings = load_settings(
        write_settings(
            tmp_path,
            "[Camera a]\nSOURCE = basler\nSERIAL = 21234567\n"
            "[Camera b]\nSOURCE = basler\nUSER_NAME = top\n"
            "[Camera c]\nSOURCE = basler\n"
            "[Camera d]\nSOURCE = opencv\nDEVICE = 2\n"
            "[Camera f]\nSOURCE = realsense\n"
            "[Camera g]\nSOURCE = synthetic\n"
            f"[Device board]\nTYPE = serial\nPORT = {link}\n"
            "[Device daq]\nTYPE = nidaq\nLINES = Dev1/port0/line0, DEV1/port0/line1\n"
            "[Device pins]\nTYPE = gpio\nPINS = 17, GPIO27, BOARD11\n"
            "[Device log]\nTYPE = log\n"
            "[Device screen]\nTYPE = visual\nFULLSCREEN = true\nSCREEN = 1\n",
        )
    )
    claims = {claim.key: claim.user for claim in session_claims(settings, devices=True)}
    assert claims == {
        "basler:21234567": "camera 'a'",
        "basler:name=top": "camera 'b'",
        "basler:*": "camera 'c'",
        "video-device:/dev/video2": "camera 'd'",
        "realsense:*": "camera 'f'",
        "serial-port:/dev/ttyACM7": "device 'board'",
        "nidaq:dev1/port0/line0": "device 'daq'",
        "nidaq:dev1/port0/line1": "device 'daq'",
        "gpio:BCM17": "device 'pins'",
        "gpio:BCM27": "device 'pins'",
        "gpio:BOARD11": "device 'pins'",
        "screen:1": "device 'screen'",
    }
    streaming_only = session_claims(settings, devices=False)
    assert all(claim.user.startswith("camera") for claim in streaming_only)
    # Files and URLs are shared: no key (settings files check that a video is one, so the
    # classes are asked directly here).
    from deeplabstream.hardware.cameras.opencv import OpenCVCamera, OpenCVSettings
    from deeplabstream.hardware.cameras.video import VideoCamera

    assert OpenCVCamera.lock_keys(OpenCVSettings(device=str(video))) == ()
    assert OpenCVCamera.lock_keys(OpenCVSettings(device="rtsp://10.0.0.5/stream")) == ()
    assert VideoCamera.lock_keys(None) == ()


def test_a_lab_plugin_that_says_nothing_is_one_session_at_a_time():
    from deeplabstream.hardware.cameras.base import Camera
    from deeplabstream.hardware.stimulation.base import StimulationDevice

    class LabCamera(Camera):  # only what the interface requires; lock_keys is inherited
        open = grab = close = nominal_fps = None  # type: ignore[assignment]

    assert LabCamera.lock_keys(None) == (f"{__name__}.{LabCamera.__qualname__}:*",)
    assert StimulationDevice.lock_keys(None)[0].endswith("StimulationDevice:*")
