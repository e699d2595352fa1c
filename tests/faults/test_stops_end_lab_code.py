"""Lab code that never returns holds no start and no test past a stop or its limit (issue 63).

- the window (``app.py``, offscreen) building its Rig tab imports a lab camera that sleeps at
  import: Ctrl-C and SIGTERM end it, naming the module (before: deaf until SIGKILL);
- a lab model format whose ``recognises`` sleeps holds a start: it is named, and a stop
  abandons it; a ``load`` that returns None is refused before the start naming the format
  (before: an AttributeError after the start);
- the plugin harness (``deeplabstream.testing``) interrupts a ``perform`` that sleeps, a
  ``grab`` that never returns and a ``recognises`` that hangs at the worker's limits (before:
  until Ctrl-C), and takes a model format by its name (before: TypeError).

Each hang is made on purpose (a module that writes a marker file, then sleeps an hour) and the
signal sent once the marker is there, never after a guessed delay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplabstream.core.plugins import (
    PluginStopped,
    abandon_imports_on_stop,
    plugin_call_watch,
    use_settings_folder,
)
from deeplabstream.live.session.preflight import model_problems
from deeplabstream.pose.loading import BUNDLED_MODEL
from deeplabstream.pose.model_format import use_lab_formats
from deeplabstream.testing import PluginCheckError, check_model_format, run_camera, run_device
from tests.support.paths import PROJECT_ROOT
from tests.unit.core.test_lab_folders import write_plugin

POSIX = pytest.mark.skipif(os.name == "nt", reason="signals to a process group are POSIX's")
HANG_S = 3600  # an hour: what a stuck call looks like from outside
WAIT_S = 120.0  # for a process to reach the hang on a loaded machine; never a bound on speed


def _sleeps_after_marker(marker: Path, before: str = "") -> str:
    """Python code that writes ``marker``, then sleeps an hour (at import, or in a method)."""
    return f"{before}Path({str(marker)!r}).write_text('here'); time.sleep({HANG_S})"


SLEEPING_CAMERA = """\
import time
from pathlib import Path
{hang}
from deeplabstream.hardware.cameras.synthetic import SyntheticCamera

class SlowCam(SyntheticCamera):
    '''Never reached: its module sleeps at import.'''
"""

HANGING_FORMAT = """\
import time
from pathlib import Path

from deeplabstream.pose.model_format import ModelFormat


class HangRec(ModelFormat):
    name = "hangrec"

    def recognises(self, path: Path) -> bool:
        {hang}
        return False
"""

NONE_FORMAT = """\
from pathlib import Path

from deeplabstream.pose.model_format import ModelFormat


class NoneFormat(ModelFormat):
    name = "noneformat"

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".nonemodel"

    def load(self, path, frame_size, precision):
        return None
"""


def _run_until_marker(command: list[str], marker: Path, sig: signal.Signals, cwd: Path, **env):
    """Run ``command`` until ``marker`` appears; send ``sig`` to its group; return its ending."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, **env},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT_S
        while not marker.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                out, err = process.communicate()
                pytest.fail(f"never reached the hang: exit {process.returncode}\n{out}\n{err}")
            time.sleep(0.05)
        os.killpg(process.pid, sig)
        out, err = process.communicate(timeout=30)  # ends within seconds, or the test fails
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, out, err


# -- 1. the window building its Rig tab -------------------------------------------------------


@POSIX
@pytest.mark.slow  # Qt and the window's modules load first (seconds)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_while_the_window_imports_a_sleeping_lab_camera_ends_it(
    tmp_path: Path, sig: signal.Signals
) -> None:
    marker = tmp_path / "importing"
    hang = _sleeps_after_marker(marker)
    path = write_plugin(tmp_path, "cameras", "slowcam", SLEEPING_CAMERA.format(hang=hang))
    (tmp_path / "settings.ini").write_text("[Camera a]\nSOURCE = slowcam\n")
    command = [
        sys.executable, str(PROJECT_ROOT / "app.py"), "--settings", str(tmp_path / "settings.ini"),
        "--start", "stream", "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    code, out, err = _run_until_marker(command, marker, sig, tmp_path, QT_QPA_PLATFORM="offscreen")
    said = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert code == 128 + sig, (code, out, err)
    assert f"Stopped: {said} received while importing camera 'slowcam' ({path})" in err, err
    assert "the import was abandoned" in err
    assert "Traceback" not in out + err and not (tmp_path / "out").exists()


# -- 2. a lab model format the start waits on ------------------------------------------------


@pytest.fixture
def stops_abandon_lab_code() -> Iterator[list[int]]:
    """This process as a command's: a stop noted by its handler, a lab call abandoned on it."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    noted: list[int] = []
    for sig in handlers:
        signal.signal(sig, lambda number, frame: noted.append(number))
    abandon_imports_on_stop()
    try:
        yield noted
    finally:
        abandon_imports_on_stop(False)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


@POSIX
@pytest.mark.parametrize("masks", [True, False], ids=["thread-masks", "no-masks-emulated"])
def test_a_stop_abandons_a_lab_call_the_start_waits_on(
    stops_abandon_lab_code: list[int], monkeypatch: pytest.MonkeyPatch, masks: bool
) -> None:
    """In a command's main thread, SIGTERM raises inside the call: a sleep of an hour ends.

    Where threads have no signal masks (Windows: ``pthread_sigmask`` emulated away), the
    watch's thread takes none either and the main thread is stopped the same.
    """
    inside = threading.Event()
    block = signal.pthread_sigmask
    if not masks:
        monkeypatch.delattr(signal, "pthread_sigmask")

    def signal_once_inside() -> None:
        block(signal.SIG_BLOCK, {signal.SIGTERM})  # the main thread takes it
        inside.wait(30)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_once_inside, daemon=True).start()
    started = time.monotonic()
    watched = plugin_call_watch("model format 'hangrec' (/rig/formats/hangrec.py)", "recognises(m)")
    with pytest.raises(PluginStopped) as stopped, watched:
        inside.set()
        for _ in range(HANG_S * 2):  # an hour, in steps: a signal just before a step's sleep
            time.sleep(0.5)  # began is taken at the next (Python looks between the steps)
    assert time.monotonic() - started < 30  # the hour's sleep ended with the signal
    assert stopped.value.signum == signal.SIGTERM
    assert stops_abandon_lab_code == [signal.SIGTERM]  # the command noted its stop too
    assert str(stopped.value).startswith(
        "SIGTERM received while model format 'hangrec' (/rig/formats/hangrec.py) ran its "
        "recognises(m) ("
    )


@POSIX
@pytest.mark.slow  # the headless command's imports first (seconds)
def test_a_lab_format_whose_recognises_sleeps_is_ended_by_a_stop_naming_it(tmp_path: Path) -> None:
    marker = tmp_path / "recognising"
    hang = _sleeps_after_marker(marker)
    path = write_plugin(tmp_path, "formats", "hangrec", HANGING_FORMAT.format(hang=hang))
    (tmp_path / "mouse.labmodel").write_text("")
    (tmp_path / "settings.ini").write_text(
        "[Camera a]\nSOURCE = synthetic\n[Pose]\nMODEL_FORMATS = hangrec\n"
        "MODEL_PATH = mouse.labmodel\n"
    )
    command = [
        sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
        str(tmp_path / "settings.ini"), "--pose-enabled", "--frames", "3", "--output-dir",
        str(tmp_path / "out"),
    ]  # fmt: skip
    code, out, err = _run_until_marker(command, marker, signal.SIGTERM, tmp_path)
    assert code == 143, (code, out, err)
    assert (
        f"Stopped: SIGTERM received while model format 'hangrec' ({path}) ran its "
        f"recognises({tmp_path / 'mouse.labmodel'})"
    ) in err, err
    assert "Traceback" not in out + err and not (tmp_path / "out").exists()


def test_a_format_whose_load_returns_none_is_refused_naming_it(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "formats", "noneformat", NONE_FORMAT)
    model = tmp_path / "mouse.nonemodel"
    model.write_text("")
    use_settings_folder(tmp_path)  # the conftest gives the next test none again
    use_lab_formats(["noneformat"])
    try:
        (problem,) = model_problems(model, "[Pose] MODEL_PATH in settings.ini")
    finally:
        use_lab_formats([])
    assert problem.startswith(
        f"[Pose] MODEL_PATH in settings.ini: model format 'noneformat' ({path}): its "
        f"load({model}) returned None, not a ModelDescription"
    ), problem


# -- 3. the plugin harness --------------------------------------------------------------------

SLEEPING_DEVICE = """\
import time
from pathlib import Path

from deeplabstream.hardware.stimulation.log_device import LogStimulator


class SleepyBox(LogStimulator):
    '''Its first command sleeps an hour.'''

    def perform(self, action):
        {hang}
"""

STUCK_CAMERA = """\
import time
from pathlib import Path

from deeplabstream.hardware.cameras.synthetic import SyntheticCamera


class StuckCam(SyntheticCamera):
    '''Its grab never returns.'''

    def grab(self, out):
        {hang}
"""


@pytest.fixture
def short_limits(monkeypatch: pytest.MonkeyPatch) -> float:
    """The harness's limits at 0.3 s (the worker's are 3 s): the mechanism, tested cheaply."""
    limit = 0.3
    monkeypatch.setattr("deeplabstream.testing.devices.PERFORM_LIMIT_S", limit)
    monkeypatch.setattr("deeplabstream.testing.models.RECOGNISES_LIMIT_S", limit)
    return limit


def test_the_harness_interrupts_a_perform_that_sleeps(tmp_path: Path, short_limits: float) -> None:
    hang = _sleeps_after_marker(tmp_path / "performing")
    write_plugin(tmp_path, "devices", "sleepy_box", SLEEPING_DEVICE.format(hang=hang))
    started = time.monotonic()
    with pytest.raises(PluginCheckError, match=r"its perform\(on channel=\d+\) had not returned"):
        run_device("sleepy_box", settings_folder=tmp_path)
    assert time.monotonic() - started < 30  # not the hour


def test_the_harness_interrupts_a_grab_that_never_returns(tmp_path: Path) -> None:
    hang = _sleeps_after_marker(tmp_path / "grabbing")
    write_plugin(tmp_path, "cameras", "stuck_cam", STUCK_CAMERA.format(hang=hang))
    started = time.monotonic()
    with pytest.raises(PluginCheckError, match=r"its grab\(out\) had not returned after 0.3 s"):
        run_camera("stuck_cam", settings_folder=tmp_path, grab_limit_s=0.3)
    assert time.monotonic() - started < 30


def test_the_harness_interrupts_a_recognises_that_hangs(
    tmp_path: Path, short_limits: float
) -> None:
    hang = _sleeps_after_marker(tmp_path / "recognising")
    write_plugin(tmp_path, "formats", "hangrec", HANGING_FORMAT.format(hang=hang))
    model = tmp_path / "mouse.labmodel"
    model.write_text("")
    started = time.monotonic()
    with pytest.raises(PluginCheckError, match=rf"its recognises\({model}\) had not returned"):
        check_model_format(model, model_format="hangrec", settings_folder=tmp_path)
    assert time.monotonic() - started < 30


@pytest.mark.slow  # the worker's own 3 s limit, waited out
def test_the_harness_keeps_the_workers_3_s_limit_on_perform(tmp_path: Path) -> None:
    hang = _sleeps_after_marker(tmp_path / "performing")
    write_plugin(tmp_path, "devices", "sleepy_box", SLEEPING_DEVICE.format(hang=hang))
    started = time.monotonic()
    with pytest.raises(PluginCheckError, match="had not returned after 3 s"):
        run_device("sleepy_box", settings_folder=tmp_path)
    assert 3.0 <= time.monotonic() - started < 30


def test_check_model_format_takes_a_format_by_its_name() -> None:
    check = check_model_format(BUNDLED_MODEL, model_format="deeplabstream")  # the registry's
    assert type(check.model_format).__name__ == "OwnModel"
    assert check.poses.shape == (1, 1, len(check.description.keypoints), 3)
