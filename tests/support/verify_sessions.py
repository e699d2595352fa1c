"""Sessions of the simulated arena for deeplabstream-verify's tests, and the command run on them.

``make_session`` runs ``DeepLabStream.py`` (recording, the bundled model, a two-region
experiment) as a process; frames are skipped on purpose by a lab trigger that stalls the
experiment on chosen frames, and forward prediction is made early on purpose with a fixed lead.
``run_verify`` runs ``python -m deeplabstream.offline.verify`` on a folder (``verify_here``: its
``main`` in this process, where the process is not the point); ``assert_agrees``
reads its verdict and ``redigest`` signs a changed session again as its installation would.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

from deeplabstream.core.digest import file_sha256
from deeplabstream.outputs.signature import installation_key, sign_record
from tests.support.files import write_settings
from tests.support.in_process import run_main_here
from tests.support.paths import PROJECT_ROOT

REGIONS = {"left": (160.0, 240.0, 60.0), "right": (480.0, 240.0, 60.0)}

EXPERIMENT = """
[Experiment]
DESCRIPTION = nose entries into two regions{experiment_keys}
MAX_TRIALS =
INTER_TRIAL_INTERVAL = 0
TRIAL_DURATION = 0

[Trigger nose_in_left]
KIND = region
SHAPE = circle 160 240 60
MODE = inside
KEYPOINT = nose

[Trigger nose_in_right]
KIND = region
SHAPE = circle 480 240 60
MODE = inside
KEYPOINT = nose

[Stimulation left_stimulus]
DEVICE = stimulus_box
COMMAND = pulse
CHANNEL = 1
DURATION = 0.1

[Stimulation right_stimulus]
DEVICE = stimulus_box
COMMAND = pulse
CHANNEL = 2
DURATION = 0.1

[Rule left_entry]
WHEN = nose_in_left
EDGE = rising
DO = left_stimulus

[Rule right_entry]
WHEN = nose_in_right
EDGE = rising
DO = right_stimulus
{extra}
"""

# A lab trigger that stalls the experiment (so the worker) on every 15th frame for 150 ms: at
# 30 fps the frames that arrive meanwhile are skipped, live only. It never fires.
STALL_TRIGGER = """
import time

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.kinds import TriggerKind


class Stall(Trigger):
    kind = "stall"

    def keypoints_read(self):
        return ()

    def step(self, obs: Observation) -> bool:
        if obs.frame_index % 15 == 7:
            time.sleep(0.15)
        return False

    def params(self):
        return {}


STALL = TriggerKind("stall", Stall, "Sleeps 150 ms on every 15th frame.", {})
"""

STALL_RULE = """
[Trigger stall]
KIND = stall

[Rule stall_rule]
WHEN = stall
EDGE = rising
DO = left_stimulus
"""

# A path that crosses both regions several times (waypoints: frame: x y, at 30 fps).
WAYPOINTS = (
    "0: 320 240; 30: 320 240; 90: 100 240; 120: 320 240; 180: 540 240; 210: 320 240; "
    "270: 100 250; 300: 320 240; 360: 540 230; 389: 320 240"
)


def make_session(
    tmp_path: Path,
    codec: str = "ffv1",
    stall: bool = False,
    predict: bool = False,
    frames: int = 390,
    lab_module: tuple[str, str] | None = None,
    lab_files: dict[str, str] | None = None,
    extra_rules: str = "",
    settings_extra: str = "",
) -> Path:
    """Run a session; ``lab_module`` (name, code): a class experiment of the lab's folder.

    ``lab_files``: more files of the lab's folder (``devices/x.py``: code); ``extra_rules``:
    more sections of the experiment's config; ``settings_extra``: more of the settings file.
    """
    lab = tmp_path / "lab"
    (lab / "experiments").mkdir(parents=True)
    for name, code in (lab_files or {}).items():
        (lab / name).parent.mkdir(parents=True, exist_ok=True)
        (lab / name).write_text(code, encoding="utf-8")
    experiment_keys = "\nPREDICT = constant-velocity\nPREDICT_LEAD = 150" if predict else ""
    extra = (STALL_RULE if stall else "") + extra_rules
    config = EXPERIMENT.format(experiment_keys=experiment_keys, extra=extra)
    (lab / "experiments" / "entries.ini").write_text(config, encoding="utf-8")
    name = "entries"
    if lab_module is not None:
        name = lab_module[0]
        (lab / "experiments" / f"{name}.py").write_text(lab_module[1], encoding="utf-8")
    if stall:
        (lab / "triggers").mkdir()
        (lab / "triggers" / "stall.py").write_text(STALL_TRIGGER, encoding="utf-8")
    settings = write_settings(
        lab,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\nMOTION = waypoints\n"
        f"WAYPOINTS = {WAYPOINTS}\n"
        f"[Recording]\nCODEC = {codec}\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
        f"[Experiment]\nNAME = {name}\n[Device stimulus_box]\nTYPE = log\n{settings_extra}",
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--recording-enabled", "--experiment-enabled", "--frames", str(frames),
         "--output-dir", str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    sessions = sorted(out.glob("*/session.json"))
    assert sessions, result.stdout[-3000:] + result.stderr[-3000:]
    return sessions[0].parent


def copy_session(session: Path, tmp_path: Path) -> Path:
    """Copy a session folder (without an earlier verify's) into ``tmp_path``; return the copy."""
    copy = tmp_path / session.name
    shutil.copytree(session, copy, ignore=shutil.ignore_patterns("verify"))
    return copy


def read_record(session: Path) -> dict:
    """The folder's session.json as JSON data."""
    return json.loads((session / "session.json").read_text(encoding="utf-8"))


def run_verify(session: Path, *options: str) -> tuple[int, dict, str]:
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.offline.verify", str(session), *options],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary_file = session / "verify" / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return result.returncode, summary, result.stdout + result.stderr


def verify_here(session: Path, *options: str) -> tuple[int, dict, str]:
    """``run_verify`` in this process: the command's own ``main`` (``tests/support/in_process``).

    For the cases where a separate process is not what is tested (a field changed, a record
    signed again or not at all). Cases that prove which code runs, or that a signal stops the
    command, keep ``run_verify``.
    """
    from deeplabstream.offline.verify.command import main

    code, out, err = run_main_here(main, [str(session), *options])
    summary_file = session / "verify" / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return code, summary, out + err


def assert_agrees(code: int, summary: dict, session: Path, output: str) -> None:
    """Agrees; or, where the recorder lost frames (a loaded machine), agrees in part saying so.

    A decision on a frame the recording lacks cannot be checked against it: the verdict says
    "agrees in part" and names it, which is right; nothing may differ either way.
    """
    assert summary["reasons"] == [], output
    lost = sum(c["frames_lost_in_recording"] for c in read_record(session)["cameras"].values())
    if lost == 0 or code == 0:
        assert code == 0 and summary["verdict"] == "agrees", output
        return
    assert code == 3 and summary["verdict"] == "agrees in part", output
    for item in summary["not_checked"]:  # decisions, or most frames, on frames it lost
        assert "the recording does not check" in item or "could be checked" in item, output


def redigest(session: Path, *names: str, **camera: int) -> None:
    """Write session.json as if the session had closed with ``names`` as they are now.

    Signed again with the key that signed it (the tests' own), as that installation would.
    """
    record = read_record(session)
    for name in names:
        path = session / name
        record["files"][name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    record["cameras"]["arena"].update(camera)
    key = installation_key()
    assert key is not None
    (session / "session.json").write_text(
        json.dumps(sign_record(record, key), indent=1), encoding="utf-8"
    )


def truth_nose(session: Path) -> dict[int, tuple[float, float]]:
    with (session / "arena.truth.csv").open(encoding="utf-8") as file:
        rows = list(csv.reader(file))[3:]
    return {int(row[0]): (float(row[1]), float(row[2])) for row in rows}


def inside(point: tuple[float, float], region: str, margin: float = 0.0) -> bool:
    x, y, radius = REGIONS[region]
    return math.hypot(point[0] - x, point[1] - y) <= radius + margin
