"""A user's DeepLabCut 3.0 model: DeepLabCut-Live beside the project at fp32, fp16 and int8.

    python -m benchmarks.dlc_model [--frames N] [--threads T] [--dlclive-python PATH] [--quick]

The DeepLabCut 3.0 export of ../shared/data/dlc3-openfield-cspnext_s (``cspnext_s``, 640x480
open-field clip of 100 frames), one frame at a time, the clip's frames in order and cycled to
``--frames`` timed frames, ``--threads`` threads everywhere:

- **baseline: DeepLabCut-Live 1.1** ``DLCLive.get_pose`` (PyTorch engine, CPU, set up as
  ``../shared/peers/dlclive/dlclive_bench.py`` does), in its own process and virtual
  environment (never a dependency of the project; ``../shared/peers/dlclive/SETUP.md`` makes
  it): ``benchmarks/dlclive_peer.py``. Give its Python with ``--dlclive-python`` or
  ``$DLCLIVE_PYTHON``; without it the baseline is skipped and the reason printed and saved.
- **project**, the whole per-frame path (pre-processing, network, decoding) on ONNX Runtime as
  the app runs it, ``[Pose] PRECISION`` = ``fp32``, ``fp16`` and ``int8``.

All four take turns on blocks of 10 frames (rotating the order; each block starts with one
untimed frame), never at the same time, so that other load on the machine affects them alike.
The int8 model is the one ``python -m deeplabstream.pose.quantize`` makes; when there is none
(or it is stale) it is made first, calibrated on 32 frames of the clip.

Accuracy beside speed: each variant's keypoints against DeepLabCut's own predictions
(``analyze_videos``; largest |dx|, |dy|) and against the project's fp32 keypoints (median and
p99 pixel distance; for int8 on the frames not used for calibration only). The quantize
command's own record (its evaluation frames) is saved too. Results:
``benchmarks/results/dlc_model.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from benchmarks.converted_models import (
    BLOCK,
    CASES,
    Runner,
    open_runner,
    read_video,
    reference_poses,
    summary,
)
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description, package_version
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.precision import read_record

CASE = next(case for case in CASES if case.key == "dlc_cspnext_s")
PEER_SCRIPT = Path(__file__).resolve().parent / "dlclive_peer.py"
PEER_ENV = "DLCLIVE_PYTHON"
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_FRAMES = 32


class Peer:
    """DeepLabCut-Live in its own process (``benchmarks/dlclive_peer.py``), block by block."""

    def __init__(self, python: str, threads: int) -> None:
        command = [python, str(PEER_SCRIPT), str(CASE.model), str(CASE.clip), "--threads",
                   str(threads)]  # fmt: skip
        # Its warnings go to a file: a full stderr pipe would stop it in the middle of a block.
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True
        )
        line = self._answer('{"ready"')
        if not line:
            self.process.wait(timeout=60)
            self.errors.seek(0)
            error = self.errors.read()
            raise RuntimeError(f"DeepLabCut-Live did not start: {error.strip()[-800:]}")
        self.hello: dict[str, Any] = json.loads(line)
        self.seconds: list[float] = []
        self.poses: list[list[list[float]]] = []

    def _answer(self, start: str) -> str:
        """The next line of the peer's that starts with ``start`` ("" at its end).

        Lines a library prints to standard output on its own are skipped.
        """
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            if line.startswith(start):
                return line
        return ""

    def block(self, start: int, count: int) -> None:
        """Time ``count`` frames from clip frame ``start`` (one untimed first)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"block {start} {count}\n")
        self.process.stdin.flush()
        line = self._answer('{"seconds"')
        if not line:
            self.errors.seek(0)
            raise SystemExit(f"DeepLabCut-Live stopped: {self.errors.read().strip()[-800:]}")
        answer = json.loads(line)
        self.seconds += answer["seconds"]
        self.poses += answer["poses"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        self.process.wait(timeout=60)
        self.errors.close()


def open_peer(python: str | None, threads: int) -> tuple[Peer | None, str | None]:
    """Start DeepLabCut-Live's process; (None, the reason) when it cannot run."""
    if not python:
        return None, f"no DeepLabCut-Live environment: give --dlclive-python or ${PEER_ENV}"
    if not Path(python).is_file():
        return None, f"{python}: no such Python"
    try:
        return Peer(python, threads), None
    except (OSError, RuntimeError, ValueError) as error:
        return None, str(error)


def peer_summary(peer: Peer, reference: np.ndarray) -> dict[str, Any]:
    """DeepLabCut-Live's latency and its keypoints against DeepLabCut's own predictions."""
    poses = np.asarray(peer.poses, np.float64)
    error = np.abs(poses - reference[: len(poses)]).max(axis=(0, 1))
    latency = summarize_ms(np.asarray(peer.seconds) * 1e9)
    return {
        **peer.hello,
        "latency_ms": latency,
        "fps": round(len(poses) / sum(peer.seconds), 2),
        "max_dx_px": float(error[0]),
        "max_dy_px": float(error[1]),
        "max_dlikelihood": float(error[2]),
    }


def measure_all(
    runners: list[Runner], peer: Peer | None, frames: list[np.ndarray], clip_frames: int
) -> None:
    """The project's variants and DeepLabCut-Live take turns on blocks of frames."""
    sides: list[Runner | Peer] = [*runners, *([peer] if peer is not None else [])]
    for turn, start in enumerate(range(0, len(frames), BLOCK)):
        shift = turn % len(sides)
        for side in sides[shift:] + sides[:shift]:
            if isinstance(side, Peer):
                side.block(start % clip_frames, min(BLOCK, len(frames) - start))
                continue
            side.estimator.estimate([frames[start]])  # untimed: the switch between sides
            for frame in frames[start : start + BLOCK]:
                began = time.perf_counter_ns()
                side.poses.append(side.estimator.estimate([frame])[0])
                side.latencies_ns.append(time.perf_counter_ns() - began)
                side.inference_s.append(side.estimator.last_timings["inference"])


def int8_description(frames_for_size: tuple[int, int]) -> ModelDescription:
    """The int8 model of the export; quantized first (calibrated on the clip) when absent."""
    try:
        return load_model(CASE.model, frame_size=frames_for_size, precision="int8")
    except ModelError as missing:
        print(f"  {missing}\n  quantizing now ({CALIBRATION_FRAMES} calibration frames)")
    from deeplabstream.pose.quantize import main as quantize

    code = quantize(
        [str(CASE.model), str(CASE.clip), "--frames", str(CALIBRATION_FRAMES), "--eval-frames",
         "100"]
    )  # fmt: skip
    if code != 0:
        raise SystemExit("the int8 model could not be made")
    return load_model(CASE.model, frame_size=frames_for_size, precision="int8")


def fp32_deviation(
    poses: np.ndarray, fp32: np.ndarray, clip_indices: np.ndarray, excluded: set[int]
) -> dict[str, float]:
    """Median and p99 pixel distance from fp32's keypoints, frames in ``excluded`` left out."""
    keep = np.array([int(i) not in excluded for i in clip_indices])
    distance = np.hypot(*(poses[keep, :, :2] - fp32[keep, :, :2]).transpose(2, 0, 1))
    return {
        "median_px": round(float(np.median(distance)), 4),
        "p99_px": round(float(np.percentile(distance, 99)), 4),
        "max_px": round(float(distance.max()), 4),
        "frames": int(keep.sum()),
    }


def run_all_sides(
    frames_wanted: int, threads: int, python: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """fp32, fp16, int8 and DeepLabCut-Live interleaved on the clip's frames in order, cycled.

    Returns the project's figures and DeepLabCut-Live's (``{"skipped": reason}`` without it).
    """
    clip = read_video(CASE.clip)
    size = (clip[0].shape[0], clip[0].shape[1])
    descriptions = {p: load_model(CASE.model, frame_size=size, precision=p) for p in PRECISIONS[:2]}
    descriptions["int8"] = int8_description(size)
    record = read_record(descriptions["int8"].model_file)
    clip_indices = np.arange(frames_wanted) % len(clip)
    frames = [clip[i] for i in clip_indices]
    runners = [
        open_runner(precision, descriptions[precision], "onnxruntime", "cpu", threads, frames)
        for precision in PRECISIONS
    ]
    peer, skipped = open_peer(python, threads)
    if peer is None:
        print(f"  DeepLabCut-Live skipped: {skipped}")
    try:
        measure_all(runners, peer, frames, len(clip))
    finally:
        if peer is not None:
            peer.close()
    reference = reference_poses(CASE, descriptions["fp32"].keypoints)[clip_indices]
    baseline = peer_summary(peer, reference) if peer is not None else {"skipped": skipped}
    if peer is not None:
        print(
            f"  DeepLabCut-Live: p50 {baseline['latency_ms']['p50']:.1f} ms, p99 "
            f"{baseline['latency_ms']['p99']:.1f} ms; vs DeepLabCut max |dx|,|dy| "
            f"{max(baseline['max_dx_px'], baseline['max_dy_px']):.3g} px",
            flush=True,
        )
    poses = {runner.label: np.asarray(runner.poses) for runner in runners}
    calibration = set(record.get("calibration", {}).get("indices", []))
    results = {}
    for runner in runners:
        runner.backend.close()
        row = results[runner.label] = summary(runner, reference)
        excluded = calibration if runner.label == "int8" else set()
        row["vs_fp32"] = fp32_deviation(poses[runner.label], poses["fp32"], clip_indices, excluded)
        row["graph"] = str(descriptions[runner.label].model_file)
        print(
            f"  {runner.label}: p50 {row['latency_ms']['p50']:.1f} ms, p99 "
            f"{row['latency_ms']['p99']:.1f} ms; vs fp32 median {row['vs_fp32']['median_px']:.3f}"
            f" px, p99 {row['vs_fp32']['p99_px']:.3f} px; vs DeepLabCut max |dx|,|dy| "
            f"{max(row['max_dx_px'], row['max_dy_px']):.3g} px",
            flush=True,
        )
    return {"variants": results, "int8_record": record, "frames": frames_wanted}, baseline


def figures_of(project: dict[str, Any], peer: dict[str, Any]) -> list[Figure]:
    """Each precision's speed beside DeepLabCut-Live's; its accuracy beside fp32's."""
    timing = peer.get("latency_ms", {})
    figures = []
    for precision, row in project["variants"].items():
        name = f"ONNX Runtime {precision}"
        figures += [
            Figure(
                f"{precision}_latency_p50_ms",
                f"{name}: latency p50",
                row["latency_ms"]["p50"],
                timing.get("p50"),
                "ms",
                goal=">= 2.5x DeepLabCut-Live (fp32); >= 4x (int8)",
            ),
            Figure(
                f"{precision}_latency_p99_ms",
                f"{name}: latency p99",
                row["latency_ms"]["p99"],
                timing.get("p99"),
                "ms",
            ),
            Figure(
                f"{precision}_median_px_vs_fp32",
                f"{name}: median deviation from fp32",
                row["vs_fp32"]["median_px"],
                None,
                "px",
                goal="<= 0.5 px (int8)" if precision == "int8" else "",
                compare=False,
            ),
            Figure(
                f"{precision}_p99_px_vs_fp32",
                f"{name}: p99 deviation from fp32",
                row["vs_fp32"]["p99_px"],
                None,
                "px",
                compare=False,
            ),
            Figure(
                f"{precision}_max_dxy_px_vs_deeplabcut",
                f"{name}: max |dx|,|dy| vs DeepLabCut",
                round(max(row["max_dx_px"], row["max_dy_px"]), 5),
                max(peer["max_dx_px"], peer["max_dy_px"]) if "max_dx_px" in peer else None,
                "px",
                compare=False,
            ),
        ]
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="timed frames (clip cycled)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every side")
    parser.add_argument(
        "--dlclive-python",
        default=os.environ.get(PEER_ENV),
        help=f"Python of DeepLabCut-Live's environment (default ${PEER_ENV}; none: skipped)",
    )
    parser.add_argument("--quick", action="store_true", help="100 timed frames")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not CASE.model.is_file():
        print(f"the shared data folder is not beside the project: {CASE.model} is absent")
        return 1
    frames = 100 if args.quick else args.frames
    started, machine = now_iso(), machine_description()
    machine |= {"onnxruntime": package_version("onnxruntime")}
    print(f"\n{CASE.title}: {frames} frames, {args.threads} threads, one frame at a time")
    began = time.perf_counter()
    project, peer = run_all_sides(frames, args.threads, args.dlclive_python)
    figures = figures_of(project, peer)
    machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print_table(
        "DeepLabCut 3.0 cspnext_s: whole per-frame path, the project at each precision",
        figures,
        machine,
        project="DeepLabStream",
        baseline="DeepLabCut-Live",
    )
    path = save_result(
        "dlc_model",
        figures,
        started=started,
        machine=machine,
        details={
            "threads": args.threads,
            "seconds": round(time.perf_counter() - began, 1),
            **project,
        },
        baseline_details=peer,
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
