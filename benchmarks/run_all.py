"""Run every benchmark, one after the other, each in its own Python process.

Run ``python -m benchmarks.run_all [--quick]``. The benchmarks never run at the same time (they
would measure each other). Each one prints its table and writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("transport", "recording", "inference", "closed_loop")


def run_benchmark(name: str, quick: bool) -> int:
    """Run ``benchmarks.<name>`` in a fresh interpreter; its exit code."""
    command = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if quick else [])]
    print(f"== {' '.join(command[1:])}", flush=True)
    began = time.monotonic()
    code = subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode
    print(f"== {name}: exit code {code} after {time.monotonic() - began:.0f} s\n", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run them all; print where the results are; non-zero when any benchmark failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about half a minute)")
    args = parser.parse_args(argv)
    codes = {name: run_benchmark(name, args.quick) for name in BENCHMARKS}
    print("results:")
    for name, code in codes.items():
        path = RESULTS_DIR / f"{name}.json"
        state = "ok" if code == 0 else f"FAILED (exit code {code})"
        print(f"  {name:<10} {state:<24} {path if path.exists() else '(no file)'}")
    return 0 if all(code == 0 for code in codes.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
