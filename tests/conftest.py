"""Test set-up for every test: environment, and the fixture modules in ``tests/fixtures``."""

from __future__ import annotations

import os
import sys

# One thread each for the numeric libraries' own pools, set before any of them is imported:
# CI's two pytest-xdist workers share two cores, and a worker whose torch, OpenBLAS or OpenCV
# spread each call over every core slows the other worker's test (one training test took 146 s
# alone and 357 s beside another). The variables reach the sessions the tests start too; the
# product sets its inference threads itself (ONNX Runtime's intra-op threads, torch's for the
# PyTorch backend and training, from the settings), and those stay as the settings say.
for _variable in (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
):
    os.environ.setdefault(_variable, "1")
if "torch" in sys.modules:  # imported before this file (a plugin): the variable came too late
    sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
if "cv2" in sys.modules:
    sys.modules["cv2"].setNumThreads(int(os.environ["OPENCV_FOR_THREADS_NUM"]))

# Each pytest-xdist worker of both tiers collects every test module, and rewriting their
# asserts costs each worker about half of its collection: the rewritten bytecode is kept in the
# modules' (git-ignored) __pycache__ even where PYTHONDONTWRITEBYTECODE is set, as
# scripts/setup.py compiles src/ for the same reason.
sys.dont_write_bytecode = False

import tempfile  # noqa: E402  (the thread limits above come before any numeric library)
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from deeplabstream.core.plugins import use_settings_folder  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _private_file(variable: str, name: str) -> None:
    """Point ``variable`` at a file of the tests' own, one per pytest-xdist worker.

    The workers inherit the environment of the process that started them: without a file of
    their own, two workers' sessions would take each other's (emulated, per-process) cameras
    and ports for busy, and share one window-state file.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if variable in os.environ and not worker:
        return  # the developer's own choice, or this process's parent's
    folder = tempfile.mkdtemp(prefix=f"dls-tests-{worker}-" if worker else "dls-tests-")
    os.environ[variable] = str(Path(folder) / name)


# The tests' own instance lock: a DeepLabStream the developer is running never blocks them.
_private_file("DEEPLABSTREAM_LOCK_FILE", "instance.lock")
# The window's remembered view choices (app/gui/preferences.py): never the developer's own file.
_private_file("DEEPLABSTREAM_WINDOW_STATE", "window.ini")
# The key sessions are signed with (outputs/signature.py): the tests' own, never the user's.
_private_file("DEEPLABSTREAM_SIGNING_KEY", "session-signing-key.pem")
# The user's list of trusted signers (outputs/signature.py): never the developer's own.
_private_file("DEEPLABSTREAM_ALLOWED_SIGNERS", "allowed_signers")


pytest_plugins = [
    "tests.fixtures.processes",
    "tests.fixtures.firmware",
    "tests.fixtures.cuda_double",
]


@pytest.fixture(autouse=True)
def _no_settings_folder_after_the_test() -> Iterator[None]:
    """Forget the settings folder a test's loaded settings made the process's (core/plugins/).

    Loading a settings file makes its folder where every registry finds the lab's plugins; a
    later test must not find (or list) the lab modules of an earlier test's folder.
    """
    yield
    use_settings_folder(None)


@pytest.fixture(autouse=True)
def _process_state_as_it_was(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give the next test of this worker the process a fresh one has: stop signals and notices.

    A test that runs a child's entry in this process (Ctrl-C ignored, stop signals blocked) or
    defines a deprecated plugin class (a notice every later session in the process would
    report) would change what the next test's sessions and spawned commands see: a command
    started with SIGINT blocked never sees its Ctrl-C. Restored, and named as a warning.
    """
    import signal
    import warnings

    from deeplabstream.core.plugins import notices as plugin_notices

    stops = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    handlers = {sig: signal.getsignal(sig) for sig in stops}
    has_mask = hasattr(signal, "pthread_sigmask")
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set()) if has_mask else None
    notices = list(plugin_notices._NOTICES)
    yield
    plugin_notices._NOTICES[:] = notices
    changed = [sig.name for sig, handler in handlers.items() if signal.getsignal(sig) != handler]
    for sig, handler in handlers.items():
        if handler is not None:  # None: set outside Python, nothing to put back
            signal.signal(sig, handler)
    if has_mask and signal.pthread_sigmask(signal.SIG_SETMASK, mask) != mask:
        changed.append("the signal mask")
    if changed:
        warnings.warn(
            f"{request.node.nodeid} left {', '.join(changed)} changed in the test process "
            "(restored)",
            stacklevel=1,
        )


#: Where a test's CPU seconds are kept in the JUnit report (scripts/test_timings.py reads it).
CPU_PROPERTY = "cpu_s"
_CPU_AT_START = pytest.StashKey[float]()


def _cpu_seconds_so_far() -> float | None:
    """CPU seconds of this process and of its ended, waited-for descendants (None: no count).

    A test's CPU time, unlike its wall-clock time, barely moves with what else the machine
    runs, so the timing script can compare runs made at different loads. Windows has no
    ``resource`` module: no figure there.
    """
    try:
        import resource
    except ImportError:
        return None
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note the CPU seconds so far as the test's set-up begins."""
    start = _cpu_seconds_so_far()
    if start is not None:
        item.stash[_CPU_AT_START] = start


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Before the tear-down's report is made, add the test's CPU seconds to its properties.

    Set-up, call and tear-down are counted (a module fixture's set-up in its first test, as the
    JUnit time counts it); a process the test started and left running is not.
    """
    if call.when == "teardown" and _CPU_AT_START in item.stash:
        now = _cpu_seconds_so_far()
        if now is not None:
            item.user_properties.append((CPU_PROPERTY, f"{now - item.stash[_CPU_AT_START]:.2f}"))
    return (yield)
