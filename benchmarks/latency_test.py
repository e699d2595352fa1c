"""The latency self-test on the simulated rig: the board's measurement beside the app's account.

Runs ``DeepLabStream.py --headless --latency-test --simulated-board --recording-enabled
--duration S`` (the firmware under simavr flashes its LED into the simulated arena camera, the
bundled model runs, every frame is recorded) and sets, per percentile, the board's light-on ->
command-received figure (the independent observer) beside the app's own account of the same
flashes and its stages. ``|app - board|`` is the agreement (goal: p99 <= 0.5 ms over >= 40
flashes). Not a project-vs-baseline race: the two columns are two clocks measuring one thing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_test(duration_s: float, folder: Path) -> dict:
    """Run the app's latency test; its latency_test.json."""
    command = [
        sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--latency-test",
        "--simulated-board", "--recording-enabled", "--duration", f"{duration_s:g}",
        "--output-dir", str(folder), "--log-level", "WARNING",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    print(result.stdout[-2500:])
    if result.returncode != 0:
        raise SystemExit(f"the latency test failed ({result.returncode}):\n{result.stderr[-3000:]}")
    session = next(folder.iterdir())
    return json.loads((session / "latency_test.json").read_text(encoding="utf-8"))


def figures_of(data: dict) -> list[Figure]:
    """Board vs app per percentile, the app's stages, and the agreement."""
    figures = []
    for stat in ("p50", "p95", "p99", "max"):
        figures.append(
            Figure(
                f"light_to_command_{stat}",
                f"light on -> command {stat}",
                data["app_ms"][stat],
                data["board_ms"][stat],
                "ms",
                compare=False,
            )
        )
    for stage, label in (
        ("sampling_wait", "app stage: sampling wait"),
        ("frame_to_command", "app stage: frame -> command written"),
        ("transfer", "app stage: serial transfer"),
    ):
        for stat in ("p50", "p99"):
            figures.append(
                Figure(f"{stage}_{stat}", f"{label} {stat}", data["stages_ms"][stage][stat],
                       None, "ms", compare=False)
            )  # fmt: skip
    for stat in ("p50", "p99", "max"):
        goal = "<= 0.5 ms over >= 40 flashes" if stat == "p99" else ""
        figures.append(
            Figure(f"agreement_{stat}", f"|app - board| {stat}", data["agreement_ms"][stat],
                   None, "ms", goal=goal, compare=False)
        )  # fmt: skip
    figures.append(Figure("flashes", "flashes accounted for", data["events"], None, compare=False))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=40.0, help="seconds (default 40)")
    parser.add_argument("--quick", action="store_true", help="20 s")
    args = parser.parse_args(argv)
    machine = machine_description()
    started = now_iso()
    with tempfile.TemporaryDirectory(prefix="dls-latency-") as folder:
        data = run_test(20.0 if args.quick else args.duration, Path(folder))
    figures = figures_of(data)
    print_table("Latency self-test (simulated rig)", figures, machine, project="app's account",
                baseline="board")  # fmt: skip
    details = {key: data[key] for key in ("flashes", "flashes_missed", "agreement_bias_ms",
                                          "camera", "simulated_board", "test")}  # fmt: skip
    save_result("latency_test", figures, started=started, machine=machine, details=details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
