"""The window answers within 100 ms at all times, on a real display (Xvfb + Qt's xcb plugin).

``tests/support/stall_probe.py`` drives the window as a user would with the lab's own
DeepLabCut 3.0 model (../shared/data/dlc3-openfield-cspnext_s; skipped when absent): Detect,
Inspect (the model converted on first use), Start Stream on its open-field clip, Start Analysis
while streaming with Start and Stop Recording clicked during the model's load, and Stop Stream.
The window's own stall monitor (app/gui/stall_monitor.py, a 15 ms timer) measures each phase.

How the check stays independent of the machine's load. The raw gap between two ticks is what a
user feels, but on a loaded machine most of it is time the window's thread waited for a
processor that other programs had: measured beside other test suites (load average about 20 on
2 cores), gaps reached 760 ms while the window computed 16 ms of them and waited 709 ms for a
processor. So the test bounds the figures that do not grow with the load:

- ``largest_busy_ms`` < 100 ms, the issue's bound: processor time the GUI thread used between
  two ticks, the window's own work before it could answer a click (Detect's probes, reading or
  converting a model, had they stayed on the GUI thread). Processor time is what the work costs,
  whatever else runs.
- during every stall, the processor time of the process's *other* threads < 100 ms: a
  background thread computing while the window cannot answer is one holding Python's GIL, as
  the in-process conversion did (the issue's 1.4-2.2 s freezes of Inspect).
- ``largest_own_ms`` < 1 s: the gap less the time the thread waited for a processor
  (``/proc/thread-self/schedstat``): its work plus any blocking call or wait for the GIL. It
  still holds waits for the X server, which the same load starves (201 ms measured under that
  load, while the window computed at most 6 ms), hence the generous bound: it catches a freeze
  of a second or more (the issue's: 1.4-2.6 s) without failing on a busy machine.

The raw gaps are printed (``pytest -s``) for the record, not bounded: they measure the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deeplabstream.app.display.screen import missing_xcb_libraries
from deeplabstream.app.gui.preferences import STATE_ENV
from deeplabstream.core.device_lock import LOCK_ENV
from deeplabstream.pose.formats.conversion import CACHE_ENV
from tests.support.paths import PROJECT_ROOT, shared_data

DLC = "dlc3-openfield-cspnext_s"
EXPORT = "model/DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
CLIP = "clip/m3v1mp4_first100.mp4"
BOUND_MS = 100.0  # the window's own work between two answers (processor time)
OWN_BOUND_MS = 1000.0  # a stall less the waits for a processor: generous, see above
PHASES = ("idle", "detect", "inspect", "start_stream", "load_while_streaming", "stop_stream")


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_the_window_answers_within_100_ms_through_detect_inspect_and_a_model_load(
    tmp_path: Path,
) -> None:
    export, clip = shared_data(f"{DLC}/{EXPORT}"), shared_data(f"{DLC}/{CLIP}")
    assert missing_xcb_libraries() == [], "scripts/setup.sh installs every xcb library"
    out = tmp_path / "figures.json"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "xcb",  # the real X11 plugin, on Xvfb's display
        LOCK_ENV: str(tmp_path / "instance.lock"),
        STATE_ENV: str(tmp_path / "window.ini"),
        CACHE_ENV: str(tmp_path / "cache"),
    }
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m",
         "tests.support.stall_probe", str(out), str(export), str(clip), str(tmp_path / "work")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures["platform"] == "xcb"
    assert figures["problems"] == []
    for name in PHASES:  # the record: what was measured, phase by phase
        phase = figures["phases"][name]
        print(
            f"{name}: {phase['seconds']} s, largest stall {phase['largest_gap_ms']} ms (less the "
            f"waits for a processor: {phase['largest_own_ms']} ms), largest GUI-thread work "
            f"{phase['largest_busy_ms']} ms, {phase['ticks']} ticks"
        )

    # What each phase did: the probes found nothing here and said where they looked; the model
    # was described; recording started and stopped while the model loaded; analysis ran.
    assert figures["detect_line"].startswith(("No camera found.", "Found"))
    assert "snout" in figures["inspect_text"] and "tailbase" in figures["inspect_text"]
    load = figures["load"]
    assert load["model_job"] and load["recording_enabled"]
    assert load["progress_line"].startswith("starting analysis: ")
    assert load["recorded_while_loading"] and load["stopped_recording_while_loading"]
    assert figures["analysing"], figures["banner"]
    session = Path(figures["session"])
    assert (session / "openfield.mp4").is_file() and (session / "openfield.pose.csv").is_file()

    for name in PHASES:
        phase = figures["phases"][name]
        assert phase["ticks"] > 0, name
        assert phase["largest_busy_ms"] < BOUND_MS, (name, phase)
        for stall in phase["stalls"]:
            assert stall["other_threads_ms"] < BOUND_MS, (name, stall)
        if phase["queue_known"]:  # Linux says how long the thread waited for a processor
            assert phase["largest_own_ms"] < OWN_BOUND_MS, (name, phase)
