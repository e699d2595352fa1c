"""The emulation itself: each rule of Windows and macOS holds in a process started under it.

Quick checks (the default suite); the sessions under the emulation are in
``test_sessions_on_emulated_platforms.py`` (marked slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_ROOT
from tests.support.platforms import EMULATED_PLATFORMS, emulated_env

PROBE = r"""
import json, multiprocessing, os, select, signal
import psutil
from multiprocessing import shared_memory
facts = {
    "nice": hasattr(os, "nice"),
    "getloadavg": hasattr(os, "getloadavg"),
    "sched_setaffinity": hasattr(os, "sched_setaffinity"),
    "psutil_cpu_affinity": hasattr(psutil.Process, "cpu_affinity"),
    "sigrtmin": hasattr(signal, "SIGRTMIN"),
    "start_method": multiprocessing.get_start_method(),
}
import types
ours = types.ModuleType("deeplabstream.emulation_probe")  # the rules bind the project's calls
exec("import os\ndef probe(pid):\n    os.kill(pid, 0)", ours.__dict__)
try:
    ours.probe(os.getpid())
    facts["kill_0"] = "probe"
except OSError as error:
    facts["kill_0"] = str(error)
try:
    block = shared_memory.SharedMemory(name="d" * 31, create=True, size=16)
    block.close(); block.unlink()
    facts["shm_31"] = "created"
except OSError as error:
    facts["shm_31"] = str(error)
from deeplabstream.transport.channel import doorbell_kind
facts["doorbell"] = doorbell_kind("auto").value
print(json.dumps(facts))
"""


def run_emulated(platform: str, code: str, tmp_path: Path) -> str:
    """Run ``code`` in a fresh interpreter under ``platform``'s rules; its standard output."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, **emulated_env(platform, tmp_path / "locks")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def probe(platform: str, tmp_path: Path) -> dict:
    return json.loads(run_emulated(platform, PROBE, tmp_path).strip().splitlines()[-1])


def test_windows_rules_hold_in_an_emulated_process(tmp_path: Path) -> None:
    facts = probe("windows", tmp_path)
    assert not facts["nice"] and not facts["getloadavg"] and not facts["sched_setaffinity"]
    assert not facts["sigrtmin"]
    assert facts["start_method"] == "spawn"
    assert "WinError 87" in facts["kill_0"]
    assert facts["doorbell"] == "portable"  # no POSIX pipes: the portable doorbell
    assert facts["shm_31"] == "created"  # Windows takes long names


def test_macos_rules_hold_in_an_emulated_process(tmp_path: Path) -> None:
    facts = probe("macos", tmp_path)
    assert facts["nice"] and facts["getloadavg"]  # macOS has these
    assert not facts["sched_setaffinity"] and not facts["psutil_cpu_affinity"]
    assert facts["start_method"] == "spawn"
    assert "too long" in facts["shm_31"]  # PSHMNAMLEN
    assert facts["doorbell"] == "pipe"


SELECT_ON_A_PIPE = r"""
import multiprocessing, select, sys, types
module = types.ModuleType("deeplabstream.emulation_probe")
exec("import select\ndef look(r):\n    return select.select([r], [], [], 0)", module.__dict__)
reader, writer = multiprocessing.Pipe(duplex=False)
try:
    module.look(reader)
    print("select took a pipe")
except OSError as error:
    print("refused:", error)
from deeplabstream.live.processes.analysis.frame_wait import FrameWaiter
writer.send_bytes(b"x")
print("portable wait:", FrameWaiter("spin").wait([reader], [], timeout_s=5.0))
"""


@pytest.mark.parametrize("platform", EMULATED_PLATFORMS)
def test_the_workers_wait_uses_a_primitive_every_platform_has(
    platform: str, tmp_path: Path
) -> None:
    """Windows' select takes sockets only; the worker's wait does not need select."""
    output = run_emulated(platform, SELECT_ON_A_PIPE, tmp_path)
    if platform == "windows":
        assert "refused:" in output and "10038" in output, output
    assert "portable wait: True" in output, output
