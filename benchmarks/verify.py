"""Verification time: ``deeplabstream-verify`` per minute of recording vs a plain replay of it.

    python -m benchmarks.verify [--seconds S] [--quick] [--codec h264]

1. A session of the simulated arena with the bundled model and the example experiment, recorded
   losslessly (``CODEC = ffv1``; ``--codec h264``: the default codec, whose bound verify measures
   from the recording), ``--seconds`` long (default 60; ``--quick`` 20).
2. **Verify**: ``python -m deeplabstream.offline.verify`` on its folder, as a process (the files
   proven, the decisions re-derived, the recording re-analysed on the live schedule, the
   comparison, summary.json and the report).
3. **Baseline**, in the same run: ``deeplabstream-replay --fast`` of the same recording with
   the same settings and experiment (every frame analysed, no comparison).
4. **The decisions alone** (``--decisions-only``): the seconds it takes, and per hour of updates
   at the session's rate, from the updates it re-ran (the check is one runtime update per
   recorded row: linear in the updates).

Both are wall-clock seconds per minute of recording, start-up included. Saved to
``benchmarks/results/verify.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = """
[Camera arena]
SOURCE = synthetic
FRAMERATE = 30
SEED = 1
[Recording]
CODEC = {codec}
MIN_FREE_SPACE = 0
WARN_FREE_SPACE = 0
[Experiment]
NAME = ExampleExperiment
DEADLINE_MS = off
[Device stimulus_box]
TYPE = log
"""


def record_session(folder: Path, seconds: float, codec: str = "ffv1") -> Path:
    """Run the default closed loop with a recording in ``codec``; return its session folder."""
    settings = folder / "settings.ini"
    settings.write_text(SETTINGS.format(codec=codec), encoding="utf-8")
    subprocess.run(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--recording-enabled", "--experiment-enabled",
         "--frames", str(round(seconds * 30)), "--output-dir", str(folder / "sessions")],
        cwd=ROOT, check=False, capture_output=True, timeout=seconds * 10 + 120,
    )  # fmt: skip
    (session,) = (folder / "sessions").glob("*/session.json")
    return session.parent


def timed(command: list[str]) -> tuple[float, int]:
    """Wall-clock seconds of ``command`` and its exit code."""
    began = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    return time.perf_counter() - began, result.returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="a 20 s recording")
    parser.add_argument("--codec", choices=("ffv1", "h264"), default="ffv1")
    args = parser.parse_args(argv)
    seconds = 20.0 if args.quick else args.seconds
    started, machine = now_iso(), machine_description()  # with the load average at the start
    with tempfile.TemporaryDirectory(prefix="dls-verify-bench-") as temp:
        folder = Path(temp)
        session = record_session(folder, seconds, args.codec)
        video = next(session.glob("arena.mkv" if args.codec == "ffv1" else "arena.mp4"))
        record = json.loads((session / "session.json").read_text())
        recorded = record["cameras"]["arena"]["frames_recorded"]
        verify_s, verify_code = timed([sys.executable, "-m", "deeplabstream.offline.verify",
                                       str(session), "--quiet"])  # fmt: skip
        replay_s, replay_code = timed(
            [sys.executable, str(ROOT / "utils" / "VideoAnalyzer.py"), "--fast",
             "--settings", str(folder / "settings.ini"), "--output-dir",
             str(folder / "replay"), str(video)]
        )  # fmt: skip
        summary = json.loads((session / "verify" / "summary.json").read_text())
        only = ["--quiet", "--decisions-only"]
        decisions_s, decisions_code = timed(
            [sys.executable, "-m", "deeplabstream.offline.verify", str(session), *only]
        )
        alone = json.loads((session / "verify" / "summary.json").read_text())
    minutes = recorded / 30 / 60
    updates = sum(run["updates_re_derived"] for run in alone["decisions"]) or 1
    per_hour = alone["decisions_elapsed_s"] / updates * 30 * 3600  # the runtime's share
    figures = [
        Figure("s_per_recorded_minute", "wall s per minute of recording", verify_s / minutes,
               replay_s / minutes, "s"),
        Figure("wall_s", "wall s, whole command", verify_s, replay_s, "s", compare=False),
    ]  # fmt: skip
    camera = summary["keypoints"]["arena"]
    details = {
        "frames_recorded": recorded,
        "verify_exit_code": verify_code,
        "codec": args.codec,
        "verdict": summary["verdict"],
        "verdict_line": summary["verdict_line"],
        "bound": camera.get("bound"),  # H.264: measured from the recording
        "verify_bound_s": summary.get("bounds_elapsed_s"),
        "frames_compared": camera["frames_compared"],
        "frames_to_the_bit": camera["frames"]["to_the_bit"],
        "decision_rows_equal": [run["rows_equal"] for run in summary["decisions"]],
        # Inside verify: its offline analysis (a replay) and the rest (reading, comparing,
        # summary; the report is drawn after, in the command's wall time only).
        "verify_offline_analysis_s": summary["offline"][0]["elapsed_s"],
        "verify_until_summary_s": summary["elapsed_s"],
        # The decisions alone: the whole command, the re-derivation inside it, and that share
        # per hour of updates at 30 per second (linear in the updates).
        "decisions_only_wall_s": round(decisions_s, 3),
        "decisions_only_exit_code": decisions_code,
        "decisions_rederived_s": alone["decisions_elapsed_s"],
        "decisions_updates": updates,
        "decisions_s_per_hour_at_30fps": round(per_hour, 2),
    }
    print_table("deeplabstream-verify vs a plain --fast replay", figures, machine)
    print(json.dumps(details))
    name = "verify" if args.codec == "ffv1" else "verify_h264"
    save_result(name, figures, started=started, machine=machine, details=details,
                baseline_details={"replay_exit_code": replay_code})  # fmt: skip


if __name__ == "__main__":
    main()
