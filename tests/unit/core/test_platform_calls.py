"""Every platform-specific call on the product path has a fallback that a test runs.

``docs/platforms.md`` lists them (file, call, where it exists, fallback, test); this test reads
``src/`` for calls and paths that exist on some platforms only and fails on any not listed, or
listed with a test that does not exist.
"""

from __future__ import annotations

import ast
import re

from deeplabstream.pose.runtime.trt_cache import tensorrt_version
from tests.support.paths import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "src" / "deeplabstream"
TABLE = PROJECT_ROOT / "docs" / "platforms.md"

#: Attributes that exist on some platforms only (CPython's docs: "Availability").
PLATFORM_ATTRIBUTES = {
    "os": {
        "kill", "getppid", "nice", "getloadavg", "sched_setaffinity", "sched_getaffinity",
        "sched_setscheduler", "statvfs", "getuid", "geteuid", "fork", "setsid", "killpg",
        "getpgid", "setpgrp", "mkfifo",
    },
    "select": {"select", "poll", "epoll", "kqueue"},
    "signal": {
        "SIGRTMIN", "pthread_sigmask", "pthread_kill", "SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2",
        "SIGALRM", "SIGCHLD", "SIGQUIT", "SIGPIPE", "setitimer", "alarm", "pause", "siginterrupt",
    },
    "ctypes": {"CDLL", "WinDLL", "windll", "cdll"},
}  # fmt: skip
PLATFORM_MODULES = {"fcntl", "termios", "resource", "pwd", "grp", "msvcrt", "winreg", "_winapi"}
PLATFORM_PATHS = ("/proc", "/dev/", "/sys/")


def platform_calls() -> set[tuple[str, str]]:
    """(file relative to the package, call) for every platform-specific use in ``src/``."""
    found: set[tuple[str, str]] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.attr in PLATFORM_ATTRIBUTES.get(node.value.id, ())
            ):
                found.add((relative, f"{node.value.id}.{node.attr}"))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                for name in names:
                    if name.split(".")[0] in PLATFORM_MODULES:
                        found.add((relative, f"import {name}"))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                for prefix in PLATFORM_PATHS:
                    if node.value.startswith(prefix):
                        found.add((relative, _path_key(node.value)))
    return found


def _path_key(path: str) -> str:
    """``/proc/cpuinfo`` as written; ``/dev/video3`` -> ``/dev/video``; ``/dev/`` itself."""
    return re.sub(r"\d+$", "", path)


def listed_calls() -> dict[tuple[str, str], str]:
    """(file, call) -> the test named in ``docs/platforms.md``'s table."""
    rows = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[4].startswith("`tests/"):
            rows[(cells[0].strip("`"), cells[1].strip("`"))] = cells[4].strip("`")
    return rows


def test_every_platform_specific_call_is_listed_with_its_fallback() -> None:
    listed = listed_calls()
    missing = sorted(call for call in platform_calls() if call not in listed)
    assert not missing, (
        f"platform-specific calls without a row in docs/platforms.md: {missing}; add each "
        "with its fallback and the test that runs it (or use a portable call)"
    )


def test_every_listed_fallback_has_a_test_that_exists() -> None:
    for (file, call), test in listed_calls().items():
        test_file, _, test_name = test.partition("::")
        text = (PROJECT_ROOT / test_file).read_text(encoding="utf-8")
        assert f"def {test_name}(" in text, f"{file} {call}: {test} does not exist"


def test_no_row_is_left_for_a_call_that_is_gone() -> None:
    stale = sorted(set(listed_calls()) - platform_calls())
    assert not stale, f"docs/platforms.md lists calls no longer in src/: {stale}"


def test_tensorrt_version_is_none_without_its_library() -> None:
    # No TensorRT here: neither NVIDIA's package nor its library; the cache key says unknown.
    assert tensorrt_version() is None
