r"""Set up this project on Windows, macOS or Linux: a virtual environment with the pinned packages.

    python scripts/setup.py               the app: ONNX Runtime's CPU build
    python scripts/setup.py --gpu         the app: ONNX Runtime's GPU build (NVIDIA; Linux, Windows)
    python scripts/setup.py --tests       and the test and lint tools (CI: scripts/setup.sh --tests)
    python scripts/setup.py --ensembles   and the Ensemble Kalman Smoother (docs/ensembles.md)

What it does, on every platform:

1. On Linux with apt (Debian, Ubuntu): installs the system libraries Qt, OpenCV and RealSense
   load, as root or with passwordless sudo; otherwise it names them and goes on.
2. Creates ``.venv`` in the repository with the Python running this script (3.11 or newer).
3. Installs exactly one ONNX Runtime build with the shared pins: ``requirements-cpu.txt`` or, with
   ``--gpu``, ``requirements-gpu.txt`` (both include ``requirements.txt``), plus
   ``requirements-dev.txt`` with ``--tests``. A build of the other kind already in ``.venv`` is
   removed first: both install the same ``onnxruntime`` module.
4. With ``--ensembles`` (and ``--tests``, whose tests compare with it): the
   ``ensemble-kalman-smoother`` package, ``requirements-ensembles.txt`` with ``--no-deps`` (the
   file says why: a second OpenCV build would break the window).
5. Compiles the installed packages' bytecode on every core (pip's installs skip their own
   compile, which uses one core: 90 s of a clean two-core set-up's 220).
6. Installs the project itself editable (``src/deeplabstream``) and compiles it, then prints the
   commands to run next with this platform's paths (``.venv\Scripts\python.exe`` on Windows).

Each step is announced as it begins (``setup: step 3 of 5: ...``) with the command it runs, and
said done with its time; pip's and apt's own output follows as they go (downloads, builds): the
set-up used to print nothing for eight minutes after "creating .venv". ``--dry-run`` prints the
steps and commands without running any.

docs/install.md describes each platform, its cameras and devices, and CUDA on Windows.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
MINIMUM_PYTHON = (3, 11)
ENSEMBLES = "requirements-ensembles.txt"
# pip's own progress is shown (what it downloads and builds); only its version nag is not.
PIP_OPTIONS = ["--disable-pip-version-check"]
# pip byte-compiles what it installs on one core (about 90 s of the set-up's 220 on a clean
# two-core machine); its installs skip that and one step compiles the environment on every core.
INSTALL_OPTIONS = [*PIP_OPTIONS, "--no-compile"]
# As pip's own compile: every installed module, errors ignored (torch ships files of newer
# Pythons' syntax), on all cores.
COMPILE_PACKAGES = (
    "import compileall, sysconfig; p = sysconfig.get_paths(); "
    "[compileall.compile_dir(d, quiet=2, workers=0) for d in sorted({p['purelib'], p['platlib']})]"
)

# Shared libraries of PyQt5's and OpenCV's wheels that a minimal Debian lacks, the xcb family that
# Qt's X11 platform plugin loads to open a window on a real display
# (src/deeplabstream/app/display/screen.py names them when one is missing), and libusb, which
# pyrealsense2 (RealSense cameras) loads.
DEBIAN_RUNTIME = (
    "libgl1", "libegl1", "libx11-6", "libx11-xcb1", "libxext6", "libxkbcommon0",
    "libxkbcommon-x11-0", "libfontconfig1", "libfreetype6", "libglib2.0-0", "libdbus-1-3",
    "libusb-1.0-0", "libxcb1", "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1",
    "libxcb-randr0", "libxcb-render-util0", "libxcb-shape0", "libxcb-xfixes0",
    "libxcb-xinerama0", "libxcb-xkb1", "libxcb-cursor0",
)  # fmt: skip
# The tests also build the stimulus firmware (avr-gcc), run it on an emulated microcontroller
# (simavr), talk to it over pseudo-terminals (socat), and open the real window on a virtual X
# display (xvfb-run).
DEBIAN_TESTS = (
    "make", "gcc", "gcc-avr", "binutils-avr", "avr-libc", "simavr", "libsimavr-dev", "libelf-dev",
    "socat", "xvfb", "xauth",
)  # fmt: skip


def venv_python(root: Path, system: str) -> Path:
    r"""Return the virtual environment's Python: ``Scripts\python.exe`` on Windows, else bin/.

    Parameters
    ----------
    root
        The repository, which holds ``.venv``.
    system
        ``platform.system()``: ``Windows``, ``Darwin`` or ``Linux``.
    """
    if system == "Windows":
        return root / ".venv" / "Scripts" / "python.exe"
    return root / ".venv" / "bin" / "python"


def onnxruntime_build(gpu: bool, system: str) -> str:
    """Return the ONNX Runtime distribution an install gets (macOS has no NVIDIA build)."""
    return "onnxruntime-gpu" if gpu and system != "Darwin" else "onnxruntime"


def requirement_files(gpu: bool, tests: bool) -> list[str]:
    """Return the requirement files one install takes, the ONNX Runtime build's file first."""
    files = ["requirements-gpu.txt" if gpu else "requirements-cpu.txt"]
    if tests:
        files.append("requirements-dev.txt")
    return files


def own_requirements(file: Path) -> list[str]:
    """Return a requirement file's own lines: its requirements, not its includes or comments."""
    lines = (line.strip() for line in file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def debian_packages(tests: bool) -> list[str]:
    """Return the Debian packages the runtime needs, and the tests' with ``tests``."""
    return [*DEBIAN_RUNTIME, *(DEBIAN_TESTS if tests else ())]


def unsupported(system: str, machine: str) -> str | None:
    """Return why the pins cannot install on this machine, or None where they can.

    The pins are resolved for Windows x64, macOS arm64 and Linux x86-64
    (tests/integration/test_install_resolution.py); another Linux machine is left to try.
    """
    machine = machine.lower()
    if system == "Darwin" and machine != "arm64":
        return (
            "this is an Intel Mac (or a Python running under Rosetta): the pinned ONNX Runtime "
            "and torch publish macOS wheels for Apple silicon (arm64) only. On an Apple silicon "
            "Mac, run this script with an arm64 Python (python.org's installer, or Homebrew's)."
        )
    if system == "Windows" and machine not in ("amd64", "x86_64"):
        return (
            f"Windows on {machine}: the pins are checked for Windows x64 only; install a 64-bit "
            "x64 Python (python.org's Windows installer, 64-bit)."
        )
    return None


def next_commands(system: str, tests: bool) -> list[str]:
    """Return the commands a user runs next, with this platform's paths to the environment."""
    if system == "Windows":
        python = r".venv\Scripts\python.exe"
        offscreen = f"$env:QT_QPA_PLATFORM='offscreen'; {python} app.py   (PowerShell)"
    else:
        python = ".venv/bin/python"
        offscreen = f"QT_QPA_PLATFORM=offscreen {python} app.py"
    commands = [
        f"{python} app.py                      the desktop app on the simulated arena",
        f"{offscreen}",
        f"{python} DeepLabStream.py --help      the headless command",
    ]
    if tests:
        commands.append(f'{python} -m pytest -m "not slow"    the test suite')
    return commands


def say(text: str) -> None:
    """Print a line of the set-up's own at once (before the output of what it runs next)."""
    print(f"setup: {text}", flush=True)


def run(command: list[str | Path], env: dict[str, str] | None = None) -> None:
    """Run a command from the repository, its output shown as it comes; exit if it fails."""
    words = " ".join(str(part) for part in command)
    say(f"  $ {words}")
    result = subprocess.run([str(part) for part in command], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(f"setup: this failed (exit code {result.returncode}): {words}")


Command = list[str | Path]


class Step(NamedTuple):
    """One step of the set-up: what it does, in words, and the commands that do it.

    ``call`` does a step that decides its commands as it goes (apt: only the packages missing).
    """

    what: str
    commands: tuple[Command, ...] = ()
    call: Callable[[], None] | None = None

    def run(self) -> None:
        """Do the step: its call, then each command, its output shown as it comes."""
        if self.call is not None:
            self.call()
        for command in self.commands:
            run(command)


def run_steps(steps: list[Step], dry_run: bool = False) -> None:
    """Run ``steps`` in order, each announced as it begins and said done with its time.

    With ``dry_run`` each step and its commands are printed, and nothing is run.
    """
    for number, step in enumerate(steps, start=1):
        say(f"step {number} of {len(steps)}: {step.what}")
        if dry_run:
            for command in step.commands:
                say(f"  $ {' '.join(str(part) for part in command)}")
            continue
        started = time.monotonic()
        step.run()
        say(f"step {number} of {len(steps)} done in {_duration(time.monotonic() - started)}")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{seconds:.1f} s"


def install_debian_packages(packages: list[str]) -> None:
    """Install the missing ones with apt, as root or with passwordless sudo; else name them."""
    if shutil.which("dpkg-query") is None:
        print(
            "setup: no dpkg here (not Debian or Ubuntu): install Qt's xcb libraries and libusb "
            "with this system's package manager if the window or a RealSense camera needs them"
        )
        return
    missing = [package for package in packages if not _debian_package_installed(package)]
    if not missing:
        return
    if os.geteuid() == 0:
        sudo: list[str] = []
    elif (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        sudo = ["sudo", "-n"]
    else:
        print(
            f"setup: please install these Debian packages (needs root): {' '.join(missing)}",
            file=sys.stderr,
        )
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    run([*sudo, "apt-get", "update", "-q"])
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(
        [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        env=environment,
    )


def _debian_package_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return "install ok installed" in result.stdout


def installed_distribution(python: Path, name: str) -> bool:
    """Return whether the environment of ``python`` holds the distribution ``name``."""
    probe = (
        "import importlib.metadata as m, sys\n"
        "try:\n    m.distribution(sys.argv[1])\nexcept m.PackageNotFoundError:\n    sys.exit(1)\n"
    )
    return subprocess.run([str(python), "-c", probe, name], check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    """Set up ``.venv`` as the command line asks; return 0 (a failure exits with its message)."""
    parser = argparse.ArgumentParser(
        prog="python scripts/setup.py",
        description="Create .venv in this repository with the pinned packages and the project "
        "installed editable, on Windows, macOS or Linux (docs/install.md).",
    )
    parser.add_argument(
        "--tests", action="store_true", help="also the test and lint tools (requirements-dev.txt)"
    )
    parser.add_argument(
        "--ensembles",
        action="store_true",
        help="also the Ensemble Kalman Smoother for deeplabstream-eks (requirements-ensembles.txt; "
        "always with --tests)",
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="ONNX Runtime's NVIDIA GPU build (requirements-gpu.txt) instead of "
        "the CPU build (Linux x86-64, Windows x64; on macOS the standard build)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the steps and the commands they run, and run none",
    )
    arguments = parser.parse_args(argv)
    system, machine = platform.system(), platform.machine()

    if sys.version_info < MINIMUM_PYTHON:
        sys.exit(
            f"setup: Python >= 3.11 is needed; this is {platform.python_version()}. "
            "Run this script with a newer Python."
        )
    reason = unsupported(system, machine)
    if reason is not None:
        sys.exit(f"setup: {reason}")
    if arguments.gpu and system == "Darwin":
        say(
            "macOS has no NVIDIA build of ONNX Runtime; installing the standard build, "
            "whose CoreML provider uses Apple's GPU and Neural Engine"
        )
    files = requirement_files(arguments.gpu, arguments.tests)
    if arguments.ensembles or arguments.tests:
        files.append(ENSEMBLES)
    steps = plan(system, arguments.gpu, arguments.tests, files, arguments.dry_run)
    say(f"{len(steps)} steps; pip's own output follows each of its steps (downloads take minutes)")
    run_steps(steps, arguments.dry_run)
    if arguments.dry_run:
        say("dry run: nothing was run")
        return 0
    build = onnxruntime_build(arguments.gpu, system)
    say(f"ready (.venv, {' + '.join(files)}, {build}, deeplabstream installed editable)")
    print("Next, from this folder:")
    for command in next_commands(system, arguments.tests):
        print(f"  {command}")
    return 0


def plan(system: str, gpu: bool, tests: bool, files: list[str], dry_run: bool) -> list[Step]:
    """Return the set-up's steps for this platform and choice (see the module's docstring)."""
    python = venv_python(ROOT, system)
    pip: Command = [python, "-m", "pip"]
    steps = []
    if system == "Linux":
        packages = debian_packages(tests)
        steps.append(
            Step(
                "the system libraries Qt, OpenCV and RealSense load (apt, those missing)",
                call=lambda: install_debian_packages(packages),
            )
        )
    if not python.exists():
        venv: Command = [sys.executable, "-m", "venv", ROOT / ".venv"]
        steps.append(Step(f"creating .venv with Python {platform.python_version()}", (venv,)))
    build = onnxruntime_build(gpu, system)
    other = "onnxruntime" if build == "onnxruntime-gpu" else "onnxruntime-gpu"
    # Both builds own the files of the module `onnxruntime`: the other one is removed, then
    # this one is reinstalled over the files its removal took away.
    replacing = not dry_run and python.exists() and installed_distribution(python, other)
    if replacing:
        remove: Command = [*pip, "uninstall", *PIP_OPTIONS, "-y", other]
        steps.append(Step(f"removing {other}: it would share the module with {build}", (remove,)))
    pinned = [name for name in files if name != ENSEMBLES]
    install: Command = [*pip, "install", *INSTALL_OPTIONS, *(p for f in pinned for p in ("-r", f))]
    what = f"the pinned packages of {' + '.join(pinned)} ({build}; minutes of downloads)"
    steps.append(Step(what, (install,)))
    if replacing:
        again: Command = [*pip, "install", *INSTALL_OPTIONS, "--force-reinstall", "--no-deps"]
        again += own_requirements(ROOT / files[0])
        steps.append(Step(f"reinstalling {build} over the files the removal took", (again,)))
    if ENSEMBLES in files:
        # Every package it needs is listed there; --no-deps keeps aniposelib's second OpenCV out.
        smoother: Command = [*pip, "install", *INSTALL_OPTIONS, "--no-deps", "-r", ENSEMBLES]
        steps.append(Step(f"the Ensemble Kalman Smoother ({ENSEMBLES}, --no-deps)", (smoother,)))
    packages_compiled: Command = [python, "-c", COMPILE_PACKAGES]
    steps.append(
        Step("compiling the installed packages' bytecode (every core)", (packages_compiled,))
    )
    # The project itself, editable: `import deeplabstream` works from any folder and the console
    # scripts are in the environment. Its pinned dependencies and build tools came from the
    # requirement files above (no download here).
    editable: Command = [*pip, "install", *PIP_OPTIONS, "--no-deps", "--no-build-isolation"]
    editable += ["-e", "."]
    steps.append(Step("the project itself, editable (src/deeplabstream)", (editable,)))
    # Every process a session starts imports the package: compiled once here, it is read from
    # __pycache__ even where PYTHONDONTWRITEBYTECODE keeps Python from writing it itself.
    compiled: Command = [python, "-m", "compileall", "-q", ROOT / "src"]
    steps.append(Step("compiling the project's bytecode (src/deeplabstream)", (compiled,)))
    return steps


if __name__ == "__main__":
    sys.exit(main())
