"""Shared test helpers: settings files, test videos, the shared data folder, leak checks."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The tests' own instance lock: a DeepLabStream the developer is running never blocks them.
os.environ.setdefault(
    "DEEPLABSTREAM_LOCK_FILE", str(Path(tempfile.mkdtemp(prefix="dls-tests-")) / "instance.lock")
)


def shared_data(relative: str) -> Path:
    """A path in ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data folder is not beside the project")
    return path


def write_settings(folder: Path, text: str, name: str = "settings.ini") -> Path:
    """Write a settings file whose recording limits suit a test machine."""
    path = folder / name
    if "[Recording]" not in text:
        text += "\n[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    path.write_text(text, encoding="utf-8")
    return path


def patterned_frame(index: int, height: int, width: int, channels: int) -> np.ndarray:
    """A frame whose pixels say which frame it is (distinct for the first 256 frames)."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    frame = np.empty(shape, np.uint8)
    ramp = (np.arange(width, dtype=np.uint16) + 3 * index) % 256
    frame[...] = ramp[None, :] if channels == 1 else ramp[None, :, None]
    if channels > 1:
        frame[..., 1] = index % 256
    return frame


def make_ffv1_video(
    path: Path, frames: int, width: int = 160, height: int = 120, fps: int = 30, channels: int = 3
) -> list[np.ndarray]:
    """Write a lossless video of patterned frames; return the frames written."""
    written = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "gray" if channels == 1 else "bgr0"
        for index in range(frames):
            pixels = patterned_frame(index, height, width, channels)
            written.append(pixels)
            frame = av.VideoFrame.from_ndarray(pixels, format="gray" if channels == 1 else "bgr24")
            frame = frame.reformat(format=stream.pix_fmt)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return written


def read_video(path: Path, gray: bool = False) -> list[np.ndarray]:
    """Every frame of a video file, decoded with PyAV."""
    with av.open(str(path)) as container:
        return [
            frame.to_ndarray(format="gray" if gray else "bgr24")
            for frame in container.decode(container.streams.video[0])
        ]


def run_cli(
    *args: str, timeout: float = 120, env: dict | None = None, script: str = "DeepLabStream.py"
) -> subprocess.CompletedProcess:
    """Run a project command in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def shared_memory_of(pid: int) -> list[str]:
    """Shared-memory blocks made by the process ``pid`` that still exist."""
    shm = Path("/dev/shm")
    return sorted(p.name for p in shm.glob(f"dls{pid}_*")) if shm.is_dir() else []


def only_session(output: Path) -> Path:
    """The one session folder in ``output``."""
    sessions = [p for p in output.iterdir() if p.is_dir()]
    assert len(sessions) == 1, sessions
    return sessions[0]


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves this process's shared memory or child processes behind."""
    import psutil

    yield
    me = psutil.Process()
    children = [
        c
        for c in me.children(recursive=True)
        if c.is_running()
        and c.status() != psutil.STATUS_ZOMBIE
        and "resource_tracker" not in " ".join(c.cmdline())
    ]
    assert not children, f"processes left running: {children}"
    assert shared_memory_of(os.getpid()) == []
