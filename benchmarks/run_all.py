"""Run every benchmark, one after the other, each in its own Python process; write the page.

Run ``python -m benchmarks.run_all [--quick] [--only NAME ...]``. The benchmarks never run at the
same time (they would measure each other). Each one prints its table and writes
``benchmarks/results/<name>.json``; at the end ``docs/benchmarks.md`` is written from those files
(``benchmarks/report.py``), with the machine they ran on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = (
    "transport",
    "recording",
    "inference",
    "converted_models",
    "dlc_model",
    "dynamic_crop",
    "two_stage",
    "sleap_single",
    "end_to_end",
    "high_rate",
    "closed_loop",
    "latency_test",
    "profile_session",
    "forward_prediction",
    "replay",
    "cameras",
    "lsl",
    "multi_animal",
    "ensembles",
    "behaviour_classifier",
    "triangulation",
)

# Benchmarks that write their results only under the folder given with --out.
WRITE_WHERE_TOLD = ("multi_animal",)


def run_benchmark(name: str, quick: bool) -> int:
    """Run ``benchmarks.<name>`` in a fresh interpreter; its exit code."""
    command = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if quick else [])]
    if name in WRITE_WHERE_TOLD:  # they write only where the caller says
        command += ["--out", str(RESULTS_DIR)]
    print(f"== {' '.join(command[1:])}", flush=True)
    began = time.monotonic()
    code = subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode
    print(f"== {name}: exit code {code} after {time.monotonic() - began:.0f} s\n", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run them all; print where the results are; non-zero when any benchmark failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a few minutes in all)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        help="run these benchmarks only (the page keeps the other benchmarks' last results)",
    )
    args = parser.parse_args(argv)
    codes = {name: run_benchmark(name, args.quick) for name in args.only or BENCHMARKS}
    print("results:")
    for name, code in codes.items():
        path = RESULTS_DIR / f"{name}.json"
        state = "ok" if code == 0 else f"FAILED (exit code {code})"
        print(f"  {name:<11} {state:<24} {path if path.exists() else '(no file)'}")
    from benchmarks.report import DOCS_PAGE, load_results, render

    previous = DOCS_PAGE.read_text(encoding="utf-8") if DOCS_PAGE.exists() else ""
    DOCS_PAGE.write_text(render(load_results(), previous), encoding="utf-8")
    print(f"wrote {DOCS_PAGE}")
    return 0 if all(code == 0 for code in codes.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
