"""Take the pictures of docs/gui.md on a real X display, as a new user would see the window.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python scripts/gui_screenshots.py

It makes a rig folder, ``~/DeepLabStream-demo`` (a settings file, a side video recorded from the
simulated arena, a copy of the example experiment), so that the pictures show the paths a user
would have rather than temporary ones. Then it does what docs/gui.md tells a new user to do:
adds the video as a second camera in the Rig tab, gives each region a camera, starts the
stream, analysis (photographed while the model loads: the progress line, Start Recording
usable), recording and the experiment, and photographs each tab (the Keypoints tab too) from
the X server
(``QScreen.grabWindow``: what the display shows, not a widget's own rendering). The window as it
opens, and with the longest messages a session gives, is photographed at the size a laptop's
1366x768 screen leaves it (a 40 px task bar and a title bar less); the Rig tab also at
1280x720, the size it must stay usable at.

Last, a second window shows the keypoint mapping of docs/gui.md ("Mapping the experiment's
keypoints onto the model's"): the example experiment, which reads ``nose``, on the lab's own
DeepLabCut 3.0 model of ``../shared/data/dlc3-openfield-cspnext_s`` (copied into the rig
folder with its open-field clip), whose keypoints are ``snout, leftear, rightear, tailbase``.
Without that folder the bundled model stands in, with a copy of the example that reads
``snout``, a keypoint the bundled model lacks.

Then a third shows a rule for several animals (docs/gui.md, the Regions tab's **Animal**): the
two-fly clip of ``../shared/data/sleap-flies`` with its sleap-nn export, a region of ``ANIMAL =
each`` on the lower half of the arena, its rule panel and each fly's state on the live view.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PyQt5.QtWidgets import QApplication, QComboBox, QListWidget, QScrollArea

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.preferences import STATE_ENV
from deeplabstream.app.gui.session import Part
from deeplabstream.core.device_lock import LOCK_ENV
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.live.session.runner import CameraFigures

PROJECT = Path(__file__).resolve().parent.parent  # the repository: docs/images is written here
IMAGES = PROJECT / "docs" / "images"
RIG = Path.home() / "DeepLabStream-demo"
TIMEOUT_S = 120.0
HEALTHY_QUIET_S = 10.0  # no loss for this long before the README's picture is taken
DLC = PROJECT.parent / "shared" / "data" / "dlc3-openfield-cspnext_s"
FLIES = PROJECT.parent / "shared" / "data" / "sleap-flies"
LAPTOP = (1366 - 16, 768 - 40 - 32)  # a 1366x768 screen less a task bar, a title bar, borders


def main() -> int:
    """Make the rig, drive the window, write the pictures; 0 when every step worked."""
    settings = make_rig(RIG)
    # A lock of its own: a test or another app running on this machine keeps its cameras.
    os.environ.setdefault(LOCK_ENV, str(RIG / "instance.lock"))
    # Remembered view choices of its own: the pictures start from the defaults.
    os.environ.setdefault(STATE_ENV, str(RIG / "window.ini"))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(settings)
    window.resize(*LAPTOP)
    window.show()
    pump(0.5)
    window.rig_panel.wait_checked()
    pump(0.5)
    shoot(window, "gui-idle.png")
    shoot_messages(window)
    window.resize(1500, 940)

    rig = window.rig_panel
    rig.camera_box.add_video_camera(RIG / "videos" / "side.mp4")
    rig.camera_box.camera_table.set_value("LOOP", "true")
    rig.wait_checked()
    pump(0.3)
    shoot(window, "gui-rig.png")
    window.resize(1280, 720)
    pump(0.5)
    shoot(window, "gui-rig-1280x720.png")
    window.resize(1500, 940)
    pump(0.3)

    editor = window.region_editor
    window.tabs.setCurrentWidget(editor)
    regions = editor.findChild(QListWidget, "region_list")
    cameras = editor.findChild(QComboBox, "region_camera")
    for row in range(regions.count()):
        regions.setCurrentRow(row)
        index = cameras.findText("arena")
        cameras.setCurrentIndex(index)
        cameras.activated.emit(index)
    editor.save()
    rig.wait_checked()
    if rig.problems:
        print("the rig still has problems:", *rig.problems, sep="\n", file=sys.stderr)
        return 1

    press(window, Part.STREAM)
    pump(3.0)
    regions.setCurrentRow(0)
    pump(0.5)
    shoot(window, "gui-regions.png")

    window.tabs.setCurrentWidget(rig)
    window.buttons[Part.ANALYSIS].click()  # the model loads beside the rest: photographed then
    wait_for(lambda: window.busy_label.text().startswith("starting analysis"), "the load")
    pump(0.3)
    shoot(window, "gui-loading.png")
    wait_for(
        lambda: window.controller.running(Part.ANALYSIS) and not window.controller.working,
        f"analysis to start ({window.banner.label.text()})",
    )
    for part in (Part.RECORDING, Part.EXPERIMENT):
        press(window, part)
    window.overlay_toggles.trail.setChecked(True)
    window.overlay_toggles.heatmap.setChecked(True)
    window.tabs.setCurrentWidget(window.event_log)
    pump(25.0)
    if window.loss_banner.isVisible():  # a loaded machine loses frames: the alarm's picture
        window.tabs.setCurrentWidget(window.plots)
        pump(2.0)
        shoot(window, "gui-losses.png")
    else:
        print("no losses this time: gui-losses.png is left as it was")
    window.tabs.setCurrentWidget(window.event_log)
    # The README's first picture: a healthy session, never one losing frames (issue 44).
    healthy = shoot_healthy(window, "gui-log.png")
    window.tabs.setCurrentWidget(window.plots)
    pump(2.0)
    shoot(window, "gui-plots.png")
    window.tabs.setCurrentWidget(window.camera_tab)
    pump(1.0)
    shoot(window, "gui-camera.png")
    window.tabs.setCurrentWidget(window.keypoint_plot)
    pump(3.0)
    shoot(window, "gui-keypoints.png")

    window.close()
    wait_for(lambda: window.closed_down, "the window to close")
    app.processEvents()
    shoot_keypoint_mapping(make_mapping_rig(RIG))
    if FLIES.is_dir():
        shoot_animals(make_animal_rig(RIG))
    else:
        print(f"{FLIES} is absent: gui-animals.png is left as it was")
    print(f"pictures in {IMAGES}; sessions in {RIG / 'sessions'}")
    return 0 if healthy else 1


def shoot_messages(window: MainWindow) -> None:
    """Photograph the message area with a session's longest messages, at a laptop's size.

    What a session that went wrong says at once: the error of a session that ended with errors,
    two cameras' losses (through the window's own loss alarm, the recorder's first) with what
    to do about skipping, and a warning; then each is taken back, as the next Start Stream does.
    """
    cameras = ("arena", "side")
    summary = [
        "Stopped: camera 'side' was lost: no frame for 5.0 s: the recorder lost 228 frames of "
        "'side' (its video has holes); 'arena' dropped 40 frames",
        f"Session folder: {RIG / 'sessions' / '2026-11-24_10-15-02_mouse12'}",
        "  arena: 18000 frames captured (29.98 fps), 18000 recorded, 40 dropped by the camera",
        "  side: 9000 frames captured (14.99 fps), 8772 recorded + 228 lost in recording",
    ]
    window._show_error("The session ended with errors. " + "\n".join(summary))
    quiet = [CameraFigures(c, 30.0, 0, 0, 0, 30.0, 0, None, analysed=0) for c in cameras]
    window.loss_banner.update_figures(quiet, 0.0)
    lossy = [
        CameraFigures("arena", 30.0, 300, 300, 40, 10.0, 200, None, analysed=100),
        CameraFigures("side", 15.0, 150, 0, 0, 10.0, 20, None, record_lost=150, analysed=130),
    ]
    window.loss_banner.update_figures(lossy, 10.0)
    window._show_warning(
        "disk space low: 3.2 GB free on the disk of the session folder; recording stops by "
        "itself below 1 GB"
    )
    pump(0.5)
    shoot(window, "gui-messages.png")
    window.forget_last_session()
    pump(0.3)


def shoot_keypoint_mapping(settings: Path) -> None:
    """Photograph the Rig tab offering to map the experiment's keypoints onto the model's."""
    window = MainWindow(settings)
    window.resize(1500, 940)
    window.show()
    pump(0.5)
    rig = window.rig_panel
    rig.wait_checked()
    box = rig.keypoint_map
    wait_for(lambda: box.isVisible() and bool(box.choices), "the keypoint mapping offered")
    area = rig.findChild(QScrollArea, "rig_settings_area")
    area.ensureWidgetVisible(box, 0, 0)  # scrolled to it, as a user would
    pump(0.3)
    shoot(window, "gui-keypoint-map.png")
    window.close()
    wait_for(lambda: window.closed_down, "the window to close")
    QApplication.processEvents()


def shoot_animals(settings: Path) -> None:
    """Photograph a region of each animal: its rule panel, and each fly's state on the tile."""
    window = MainWindow(settings)
    window.resize(1500, 940)
    window.show()
    pump(0.5)
    window.rig_panel.wait_checked()
    window.rig_panel.keypoint_map.wait()
    for part in (Part.STREAM, Part.ANALYSIS, Part.EXPERIMENT):
        press(window, part)
    editor = window.region_editor
    window.tabs.setCurrentWidget(editor)
    editor.findChild(QListWidget, "region_list").setCurrentRow(0)
    view = window.live_view.views["flies"]
    wait_for(lambda: any(": 1 " in text for _, _, text in view.names), "each fly's state")
    pump(2.0)
    shoot(window, "gui-animals.png")
    window.close()
    wait_for(lambda: window.closed_down, "the window to close")
    QApplication.processEvents()


def make_animal_rig(folder: Path) -> Path:
    """Write a settings file for the two-fly clip and a region of each fly; return it."""
    video = folder / "videos" / "flies.mp4"
    shutil.copyfile(FLIES / "inference" / "flies_clip_first100.mp4", video)
    experiment = folder / "experiments" / "fly_zone.ini"
    experiment.write_text(
        "# A light for each fly that walks into the lower half of the arena (docs/gui.md)\n"
        "[Experiment]\nDESCRIPTION = A pulse each time a fly's thorax enters the lower half\n\n"
        "[Trigger lower_half]\nKIND = region\nSHAPE = rect 100 600 924 1000\n"
        "KEYPOINT = thorax\nANIMAL = each\nMODE = inside\n\n"
        "[Stimulation light]\nDEVICE = stimulus_box\nCOMMAND = pulse\nDURATION = 0.5\n\n"
        "[Rule lower_half_action]\nWHEN = lower_half\nEDGE = rising\nDO = light\n"
        "REFRACTORY = 2\n",
        encoding="utf-8",
    )
    model = FLIES / "onnx" / "flies_bottomup_tiny_onnx"
    settings = folder / "flies.ini"
    settings.write_text(
        "; Two flies, one region watched for each (docs/gui.md)\n"
        f"[Camera flies]\nSOURCE = video\nPATH = {video}\nLOOP = true\n\n"
        f"[Pose]\nMODEL_PATH = {model}\nMAX_ANIMALS = 2\nLIKELIHOOD_THRESHOLD = 0.1\n\n"
        f"[Experiment]\nNAME = {experiment}\n\n"
        "[Device stimulus_box]\nTYPE = log\n\n[Output]\nDIRECTORY = sessions\n",
        encoding="utf-8",
    )
    return settings


def make_mapping_rig(folder: Path) -> Path:
    """Write a settings file whose model lacks a keypoint the experiment reads; return it.

    The lab's DeepLabCut model and its clip where ../shared/data has them (the example reads
    ``nose``, the model says ``snout``), else the simulated arena and the bundled model with a
    copy of the example that reads ``snout``.
    """
    models = sorted((DLC / "model").glob("*.pt")) if DLC.is_dir() else []
    clip = DLC / "clip" / "m3v1mp4_first100.mp4"
    if models and clip.is_file():
        (folder / "models").mkdir(exist_ok=True)
        model = folder / "models" / models[0].name
        video = folder / "videos" / "openfield.mp4"
        shutil.copyfile(models[0], model)
        shutil.copyfile(clip, video)
        camera = f"[Camera openfield]\nSOURCE = video\nPATH = {video}\nLOOP = true\n\n"
        pose, experiment = f"[Pose]\nMODEL_PATH = {model}\n\n", "ExampleExperiment"
    else:
        print(f"{DLC} is absent: the bundled model with an experiment reading 'snout' instead")
        copy = folder / "experiments" / "snout_experiment.ini"
        text = (CONFIG_FOLDER / "ExampleExperiment.ini").read_text(encoding="utf-8")
        copy.write_text(text.replace("KEYPOINT = nose", "KEYPOINT = snout"), encoding="utf-8")
        camera = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 4\n\n"
        pose, experiment = "", str(copy)
    settings = folder / "openfield.ini"
    settings.write_text(
        "; The lab's own model, wired to the example experiment (docs/gui.md)\n"
        f"{camera}{pose}[Experiment]\nNAME = {experiment}\n\n"
        "[Device stimulus_box]\nTYPE = log\n\n[Output]\nDIRECTORY = sessions\n",
        encoding="utf-8",
    )
    return settings


def make_rig(folder: Path) -> Path:
    """Write the demo rig (the arena only, as a new user starts) and return its settings file."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "videos").mkdir(parents=True)
    (folder / "experiments").mkdir()
    record_side_video(folder / "videos" / "side.mp4")
    experiment = folder / "experiments" / "two_cameras.ini"
    shutil.copy(CONFIG_FOLDER / "ExampleExperiment.ini", experiment)
    settings = folder / "settings.ini"
    settings.write_text(
        "; The demo rig of docs/gui.md\n"
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nMOTION = random\nSEED = 4\n\n"
        f"[Experiment]\nNAME = {experiment}\n\n"
        "[Device stimulus_box]\nTYPE = log\n\n"
        "[Output]\nDIRECTORY = sessions\n\n"
        "[Session]\nANIMAL = mouse12\nEXPERIMENTER = Lab, A.\n",
        encoding="utf-8",
    )
    return settings


def record_side_video(target: Path) -> None:
    """Record 10 s of a second simulated arena with DeepLabStream.py: the "side" video."""
    work = target.parent / "_recording"
    work.mkdir()
    settings = work / "settings.ini"
    settings.write_text(
        "[Camera side]\nSOURCE = synthetic\nWIDTH = 480\nHEIGHT = 360\nSEED = 9\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    subprocess.run(
        [sys.executable, str(PROJECT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--recording-enabled", "--frames", "300", "--output-dir", str(work)],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.move(next(work.glob("*/side.mp4")), target)
    shutil.rmtree(work)


def press(window: MainWindow, part: Part) -> None:
    """Press ``part``'s Start button and wait until it runs."""
    window.buttons[part].click()
    wait_for(
        lambda: window.controller.busy is None and window.controller.running(part),
        f"{part.value} to start ({window.banner.label.text()})",
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Pump the event loop until ``condition`` holds (at most TIMEOUT_S)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {TIMEOUT_S:g} s for {what}")
        pump(0.05)


def pump(seconds: float) -> None:
    """Let the window work for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def shoot_healthy(
    window: MainWindow, name: str, quiet_s: float = HEALTHY_QUIET_S, timeout_s: float = 120.0
) -> bool:
    """Photograph ``name`` once the session has lost nothing for ``quiet_s`` seconds.

    The losses seen so far (the model's start-up) are acknowledged, as a user who saw them
    would; any new loss, or an error (analysis stalled), starts the wait again. A machine that
    never settles leaves the old picture, and says so (False).
    """
    window.loss_banner.acknowledge()
    quiet_since = time.monotonic()
    deadline = quiet_since + timeout_s
    while time.monotonic() < deadline:
        pump(1.0)
        if window.loss_banner.isVisible() or window.banner.isVisible():  # a loss, or a stall
            window.loss_banner.acknowledge()
            window.banner.clear()
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            shoot(window, name)
            return True
    print(f"the session kept losing frames: {name} is left as it was", file=sys.stderr)
    return False


def shoot(window: MainWindow, name: str) -> None:
    """Write what the X server shows of the window to docs/images/``name``."""
    pump(0.2)
    screen = QApplication.primaryScreen()
    assert screen is not None
    picture = screen.grabWindow(int(window.winId()))
    IMAGES.mkdir(parents=True, exist_ok=True)
    if not picture.save(str(IMAGES / name)):
        raise OSError(f"could not write {IMAGES / name}")
    print(f"wrote {IMAGES / name}")


if __name__ == "__main__":
    sys.exit(main())
