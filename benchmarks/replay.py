"""Replay throughput: a video through the live pipeline (``VideoAnalyzer --fast``) vs a naive loop.

    python -m benchmarks.replay [--video PATH] [--model PATH] [--quick]

1. **App, fast**: :func:`offline.replay.session.replay_video` in ``fast`` mode (the capture process
   decodes, lockstep pacing, the inference worker analyses every frame); the rate is frames
   analysed per second between the first and the last pose (``session.json``), and over the whole
   run including start-up.
2. **App, realtime**: the same video at its own rate: the share of frames skipped.
3. **Baseline**, in the same run: the naive offline loop (decode -> preprocess -> infer -> decode
   keypoints, one frame after the other, in one thread), as DeepLabCut's ``analyze_videos`` does.

Video: ``--video``, else the open-field video of ``../shared/data`` (2330 frames, 640x480), else
(and with ``--quick``) a generated video of the simulated arena. Saved to
``benchmarks/results/replay.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.live.selftest.naive_loop import worker_threads
from deeplabstream.offline.replay.job import ReplayOptions
from deeplabstream.offline.replay.session import replay_video
from deeplabstream.offline.replay.videos import camera_name_for
from deeplabstream.outputs.session_record import read_session_record
from deeplabstream.settings import load_settings

SHARED_VIDEO = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "data"
    / "dlc-openfield"
    / "videos"
    / "m3v1mp4.mp4"
)
GENERATED_FRAMES, QUICK_FRAMES = 900, 300


def generated_video(path: Path, frames: int) -> Path:
    """The simulated arena at 640x480, 30 fps, H.264 (as a lab's camera files usually are)."""
    arena = SimulatedArena(ArenaParams(width=640, height=480, seed=11))
    image = np.empty((480, 640, 3), np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for index in range(frames):
            arena.render_next(image)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def app_replay(video: Path, mode: str, model: Path | None, folder: Path) -> dict[str, Any]:
    """Replay ``video`` through the app; rates from the session's own files."""
    options = ReplayOptions(mode=mode, model=model, experiment=False, output_dir=folder)
    began = time.perf_counter()
    result = replay_video(video, options)
    wall = time.perf_counter() - began
    if not result.ok or result.session_dir is None:
        raise RuntimeError(f"replay of {video} failed: {result.errors}")
    session = read_session_record(result.session_dir)
    assert session.pose is not None  # a replay always estimates poses
    figures = session.pose.cameras[camera_name_for(video)]
    return {
        "analysed": result.frames_analysed,
        "skipped": result.frames_skipped,
        "captured": result.frames_captured,
        "analysed_fps": figures.analysed_fps,
        "wall_fps": round(result.frames_analysed / wall, 3),
        "wall_s": round(wall, 3),
        "latency_ms": figures.latency_ms.to_json() if figures.latency_ms else None,
    }


def naive_offline(video: Path, model: Path | None) -> dict[str, Any]:
    """Decode -> estimate, one frame after the other, in this thread."""
    from deeplabstream.pose.loading import load_model, open_estimator
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.settings.effective import resolve_cameras

    settings = load_settings(None)
    # The replayed video's camera runs the shared model: --model, else [Pose] MODEL_PATH.
    description = load_model(resolve_cameras(settings, model=model).shared_model)
    began = time.perf_counter()
    backend = open_backend(description, "onnxruntime", "cpu", worker_threads(settings))
    backend.warm_up(1)
    estimator = None
    frames = 0
    first = time.perf_counter()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="bgr24")
            if estimator is None:
                estimator = open_estimator(description, backend, image.shape, max_batch=1)
                first = time.perf_counter()
            estimator.estimate([image])
            frames += 1
    end = time.perf_counter()
    backend.close()
    return {
        "analysed": frames,
        "analysed_fps": round(frames / (end - first), 3),
        "wall_fps": round(frames / (end - began), 3),
        "wall_s": round(end - began, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, help="video to replay (default: see above)")
    parser.add_argument("--model", type=Path, help="pose model (default: the bundled model)")
    parser.add_argument("--quick", action="store_true", help="a short generated video")
    args = parser.parse_args(argv)
    started, machine = now_iso(), machine_description()
    with tempfile.TemporaryDirectory() as folder:
        video = args.video
        if video is None and not args.quick and SHARED_VIDEO.is_file():
            video = SHARED_VIDEO
        if video is None:
            frames = QUICK_FRAMES if args.quick else GENERATED_FRAMES
            video = generated_video(Path(folder) / "arena.mp4", frames)
        print(f"replay: {video} (fast, realtime, then the naive loop) ...", flush=True)
        fast = app_replay(video, "fast", args.model, Path(folder) / "fast")
        realtime = app_replay(video, "realtime", args.model, Path(folder) / "realtime")
        naive = naive_offline(video, args.model)
    skipped_share = realtime["skipped"] / max(1, realtime["captured"])
    figures = [
        Figure(
            "analysed_fps",
            "fast: analysed rate (first to last pose)",
            fast["analysed_fps"],
            naive["analysed_fps"],
            "fps",
            higher_is_better=True,
        ),
        Figure(
            "wall_fps",
            "fast: frames per second of the whole run",
            fast["wall_fps"],
            naive["wall_fps"],
            "fps",
            higher_is_better=True,
        ),
        Figure(
            "frames_analysed",
            "fast: frames analysed",
            fast["analysed"],
            naive["analysed"],
            compare=False,
        ),
        Figure(
            "realtime_skipped_share",
            "realtime: share of frames skipped",
            round(skipped_share, 4),
            None,
        ),
    ]
    print_table(
        f"Replay throughput of {video.name} ({fast['captured']} frames)",
        figures,
        machine,
        project="app",
        baseline="naive loop",
    )
    path = save_result(
        "replay",
        figures,
        started=started,
        machine=machine,
        details={"video": str(video), "fast": fast, "realtime": realtime},
        baseline_details=naive,
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
