"""The latency self-test on the simulated rig: the board's measurement beside the app's account.

    python -m benchmarks.latency_test [--fps F] [--recording on|off] [--duration S] [--quick]

Runs ``DeepLabStream.py --headless --latency-test --simulated-board --duration S`` with the
simulated arena at ``--fps`` (default 30) and the bundled model, recording every frame or not
(the firmware under simavr flashes its LED into the simulated camera; the app answers each flash
it sees). The board's light-on -> command-received figure is the independent observer; beside
it, the app's own account of the same flashes, its stages, and the part of frame -> command that
is not the model (the pipeline: delivery, waiting, transport, hand-over, experiment, output).
``|app - board|`` is the agreement. Not a project-vs-baseline race: the two columns are two
clocks measuring one thing.

Goals (docs/benchmarks.md): at 200 fps, board p50 <= 6.0 ms, p99 <= 9.0 ms, max <= 12 ms,
frame -> command less the model p50 <= 0.5 ms and p99 <= 1.5 ms, agreement p99 <= 0.3 ms; at
30 fps, agreement p99 <= 0.5 ms. Saved to ``benchmarks/results/latency_test.json`` (30 fps with
recording, the default) or ``latency_test_<F>fps[_recording].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.outputs.session_record import read_session_record

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATS = ("p50", "p95", "p99", "max")
HIGH_RATE_FPS = 150  # from here on, the physical-limit goals apply


def settings_at(folder: Path, fps: float, root: Path = PROJECT_ROOT) -> Path:
    """The shipped settings (of the checkout ``root``) with the arena camera at ``fps``."""
    text = (root / "settings.ini").read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^FRAMERATE = .*$", f"FRAMERATE = {fps:g}", text, count=1)
    if count != 1:
        raise SystemExit("settings.ini has no FRAMERATE line for the arena camera")
    path = folder / "settings.ini"
    path.write_text(text, encoding="utf-8")
    return path


def run_test(
    duration_s: float, folder: Path, fps: float, recording: bool, root: Path = PROJECT_ROOT
) -> dict[str, Any]:
    """Run the app's latency test (of the checkout ``root``); its latency_test.json and health."""
    command = [
        sys.executable, str(root / "DeepLabStream.py"), "--headless", "--latency-test",
        "--simulated-board", "--duration", f"{duration_s:g}", "--settings",
        str(settings_at(folder, fps, root)), "--output-dir", str(folder / "out"),
        "--log-level", "WARNING",
    ]  # fmt: skip
    if recording:
        command.append("--recording-enabled")
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, env=checkout_environment(root)
    )
    print(result.stdout[-3000:])
    sessions = sorted((folder / "out").glob("*/latency_test.json"))
    if not sessions:
        raise SystemExit(f"the latency test failed ({result.returncode}):\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(sessions[-1].read_text(encoding="utf-8"))
    info = read_session_record(sessions[-1].parent)
    data["exit_code"] = result.returncode
    data["health"] = info.health.to_json() if info.has("health") else None
    data["session_cameras"] = {name: camera.to_json() for name, camera in info.cameras.items()}
    return data


def _stat(figures: dict[str, Any] | None, stat: str) -> float | None:
    return None if not figures else figures.get(stat)


def figures_of(data: dict[str, Any], fps: float) -> list[Figure]:
    """Board vs app per percentile, the app's stages, the pipeline's parts, the agreement."""
    high = fps >= HIGH_RATE_FPS
    board_goals = {"p50": "<= 6.0 ms", "p99": "<= 9.0 ms", "max": "<= 12 ms"} if high else {}
    figures = [
        Figure(f"light_to_command_{stat}", f"light on -> command {stat}",
               _stat(data["app_ms"], stat), _stat(data["board_ms"], stat), "ms",
               goal=f"board {board_goals[stat]}" if stat in board_goals else "", compare=False)
        for stat in STATS
    ]  # fmt: skip
    stages = data["stages_ms"]
    for stage, label in (
        ("sampling_wait", "app stage: sampling wait"),
        ("frame_to_command", "app stage: frame -> command written"),
        ("model", "  of which the model (pre-processing, network, decoding)"),
        ("pipeline", "  of which the pipeline around the model"),
        ("transfer", "app stage: serial transfer"),
    ):
        for stat in ("p50", "p99", "max"):
            goal = ""
            if stage == "pipeline" and high and stat in ("p50", "p99"):
                goal = "<= 0.5 ms" if stat == "p50" else "<= 1.5 ms"
            figures.append(
                Figure(f"{stage}_{stat}", f"{label} {stat}", _stat(stages.get(stage), stat),
                       None, "ms", goal=goal, compare=False)
            )  # fmt: skip
    for part, stats in (data.get("pipeline_parts_ms") or {}).items():
        for stat in ("p50", "p99"):
            figures.append(
                Figure(f"part_{part}_{stat}", f"    pipeline part: {part} {stat}",
                       _stat(stats, stat), None, "ms", compare=False)
            )  # fmt: skip
    agreement_goal = "<= 0.3 ms" if high else "<= 0.5 ms"
    for stat in ("p50", "p99", "max"):
        figures.append(
            Figure(f"agreement_{stat}", f"|app - board| {stat}", _stat(data["agreement_ms"], stat),
                   None, "ms", goal=agreement_goal if stat == "p99" else "", compare=False)
        )  # fmt: skip
    figures.append(Figure("flashes", "flashes accounted for", data["events"], None, compare=False))
    return figures


def result_name(fps: float, recording: bool) -> str:
    """``latency_test`` for the classic run (30 fps, recording); else the rate and recording."""
    if fps == 30 and recording:
        return "latency_test"
    return f"latency_test_{fps:g}fps{'_recording' if recording else ''}"


def checkout_environment(root: Path) -> dict[str, str] | None:
    """Another checkout's package first on the path (this one is installed editable)."""
    if root.resolve() == PROJECT_ROOT.resolve():
        return None
    paths = [str(root / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


BEFORE_FIGURES = (
    ("board_ms", "p50", "board: light on -> command p50"),
    ("board_ms", "p99", "board: light on -> command p99"),
    ("board_ms", "max", "board: light on -> command max"),
    ("pipeline", "p50", "app: pipeline around the model p50"),
    ("pipeline", "p99", "app: pipeline around the model p99"),
    ("frame_to_command", "p50", "app: frame -> command p50"),
    ("frame_to_command", "p99", "app: frame -> command p99"),
    ("agreement_ms", "p99", "|app - board| p99"),
)


def compare_with_before(
    before: Path, duration: float, fps: float, recording: bool, rounds: int
) -> int:
    """This checkout's self-test beside an earlier checkout's, taking turns (now, before, ...).

    Each figure is the median over the rounds of each run's own percentile. Saved to
    ``results/latency_test_vs_before.json``.
    """
    if not (before / "DeepLabStream.py").is_file():
        raise SystemExit(f"--before {before}: no DeepLabStream.py there (give a checkout)")
    started, machine = now_iso(), machine_description()
    runs: dict[str, list[dict[str, Any]]] = {"now": [], "before": []}
    for number in range(rounds):
        for side, root in (("now", PROJECT_ROOT), ("before", before)):
            print(f"round {number + 1} of {rounds}: {side} ({root}) ...", flush=True)
            with tempfile.TemporaryDirectory(prefix="dls-latency-") as folder:
                runs[side].append(run_test(duration, Path(folder), fps, recording, root))
    figures = [
        Figure(f"{group}_{stat}", label, _median_stat(runs["now"], group, stat),
               _median_stat(runs["before"], group, stat), "ms")
        for group, stat, label in BEFORE_FIGURES
    ]  # fmt: skip
    title = (
        f"Latency self-test now vs before ({before}): {fps:g} fps, recording "
        f"{'on' if recording else 'off'}, {duration:g} s, median of {rounds} runs each"
    )
    print_table(title, figures, machine, project="now", baseline="before")
    details = {"before": str(before), "fps": fps, "recording": recording,
               "duration_s": duration, "rounds": rounds,
               "runs": {side: [_run_summary(run) for run in side_runs]
                        for side, side_runs in runs.items()}}  # fmt: skip
    path = save_result(
        "latency_test_vs_before", figures, started=started, machine=machine, details=details
    )
    print(f"saved {path}")
    return 0


def _median_stat(runs: list[dict[str, Any]], group: str, stat: str) -> float | None:
    values = []
    for run in runs:
        figures = run.get(group) or (run.get("stages_ms") or {}).get(group)
        value = _stat(figures, stat)
        if value is not None:
            values.append(float(value))
    return round(statistics.median(values), 3) if values else None


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "board_ms": run.get("board_ms"),
        "pipeline_ms": (run.get("stages_ms") or {}).get("pipeline"),
        "agreement_ms": run.get("agreement_ms"),
        "events": run.get("events"),
        "exit_code": run.get("exit_code"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=40.0, help="seconds (default 40)")
    parser.add_argument("--fps", type=float, default=30.0, help="the camera's rate (default 30)")
    parser.add_argument("--recording", choices=("on", "off"), default="on")
    parser.add_argument("--quick", action="store_true", help="20 s")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a checkout of earlier code (git worktree add DIR COMMIT): run both, taking turns",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --before: runs of each")
    args = parser.parse_args(argv)
    recording = args.recording == "on"
    duration = 20.0 if args.quick else args.duration
    if args.before is not None:
        return compare_with_before(
            args.before.resolve(), duration, args.fps, recording, args.rounds
        )
    machine = machine_description()
    started = now_iso()
    with tempfile.TemporaryDirectory(prefix="dls-latency-") as folder:
        data = run_test(duration, Path(folder), args.fps, recording)
    figures = figures_of(data, args.fps)
    title = (
        f"Latency self-test (simulated rig), {args.fps:g} fps, recording {args.recording}, "
        f"{duration:g} s"
    )
    print_table(title, figures, machine, project="app's account", baseline="board")
    details = {key: data.get(key) for key in ("flashes", "flashes_missed", "agreement_bias_ms",
                                              "camera", "simulated_board", "test", "exit_code",
                                              "health")}  # fmt: skip
    details |= {"fps": args.fps, "recording": recording, "duration_s": duration}
    path = save_result(
        result_name(args.fps, recording), figures, started=started, machine=machine,
        details=details,
    )  # fmt: skip
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
