"""The project installs as one package: a wheel whose only top-level package is ``deeplabstream``.

The wheel is built from this checkout and installed into a folder of its own (``--target``, no
dependencies: the test environment already has them), and its console scripts run from another
folder, importing the installed copy, not this checkout.

``pip install .[cpu,basler,nwb]`` into a fresh virtual environment: pip resolves every dependency
and the extras offline (``--no-index``) against the distributions the project declares, linked
from the test environment at their pinned versions and nothing else (tests/support/
fresh_environment.py), then builds and installs the project; its console scripts then run from
another folder, an emulated Basler camera streaming and ``session.nwb`` written. What this does
not show: that an index (PyPI) offers those versions for the platform, or that the lowest
versions the ranges allow work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.files import write_settings
from tests.support.fresh_environment import make_environment
from tests.support.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(folder), str(PROJECT_ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = folder.glob("deeplabstream-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
         "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return target


def _run(installed: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run an installed console script from ``cwd``, the installed copy first on the path."""
    env = {**os.environ, "PYTHONPATH": str(installed)}
    script = installed / "bin" / command[0]
    return subprocess.run(
        [sys.executable, str(script), *command[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_wheels_only_top_level_package_is_deeplabstream(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"deeplabstream"}
    # the data a pip-installed app needs: the bundled models, shipped configs, default settings
    for needed in (
        "deeplabstream/pose/bundled/arena/model.onnx",
        "deeplabstream/experiments/configs/ExampleExperiment.ini",
        "deeplabstream/settings/default_settings.ini",
    ):
        assert needed in names, needed
    scripts = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    for command in (
        "deeplabstream ",
        "deeplabstream-app ",
        "deeplabstream-replay ",
        "deeplabstream-inspect ",
        "deeplabstream-calibrate ",
        "deeplabstream-train ",
    ):
        assert command in scripts, command


def test_the_installed_headless_command_runs_the_embedded_default_from_another_folder(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "lab"
    elsewhere.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import deeplabstream; print(deeplabstream.__file__)"],
        cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(installed)  # not this checkout
    result = _run(
        installed, elsewhere, "deeplabstream", "--headless", "--pose-enabled",
        "--experiment-enabled", "--frames", "60", "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # no settings.ini here: the embedded default was written beside the user, and said so
    assert (elsewhere / "settings.ini").is_file()
    assert "settings.ini" in result.stdout + result.stderr
    (session,) = (tmp_path / "out").iterdir()
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished" and info["errors"] == []
    assert info["cameras"]["arena"]["frames_captured"] == 60
    assert info["pose"]["model"]["name"] == "arena"
    assert info["experiment"]["name"] == "ExampleExperiment"


def test_the_wheel_is_the_release_and_its_command_says_so(
    wheel: Path, installed: Path, tmp_path: Path
) -> None:
    """The wheel's version is deeplabstream.__version__ (CHANGELOG.md's newest release)."""
    import deeplabstream

    assert wheel.name.startswith(f"deeplabstream-{deeplabstream.__version__}-")
    result = _run(installed, tmp_path, "deeplabstream", "--version")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"DeepLabStream {deeplabstream.__version__}"


def test_the_installed_commands_answer_help(installed: Path, tmp_path: Path) -> None:
    for command in (
        "deeplabstream-replay",
        "deeplabstream-inspect",
        "deeplabstream-calibrate",
        "deeplabstream-train",
        "deeplabstream-images",
    ):
        result = _run(installed, tmp_path, command, "--help")
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert "usage" in result.stdout.lower()


# -- pip install .[cpu,basler,nwb] into a fresh environment --------------------------------------

FRESH_EXTRAS = ("cpu", "basler", "nwb")  # cpu: the ONNX Runtime build
NEEDS_AN_EXTRA = {"deeplabstream-train": "torch"}  # its --help names the extra (exit 0)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with ``pip install .[cpu,basler,nwb]`` done; returns its bin/."""
    for module in ("pypylon", "pynwb", "ndx_pose"):  # the extras' libraries, linked from here
        pytest.importorskip(module)
    python = make_environment(
        tmp_path_factory.mktemp("fresh"), PROJECT_ROOT / "pyproject.toml", FRESH_EXTRAS
    )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "-q",
         f"{PROJECT_ROOT}[{','.join(FRESH_EXTRAS)}]"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return python.parent


def _fresh_env() -> dict[str, str]:
    """The environment of a command run from the fresh environment: no path of this checkout."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def test_the_fresh_environment_imports_its_installed_copy(fresh: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(fresh / "python"), "-c", "import deeplabstream; print(deeplabstream.__file__)"],
        cwd=tmp_path, env=_fresh_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()).is_relative_to(fresh.parent)  # the venv, not this checkout


def test_the_fresh_install_streams_a_basler_camera_and_writes_nwb_from_another_folder(
    fresh: Path, tmp_path: Path
) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    settings = write_settings(
        lab,
        "[Camera top]\nSOURCE = basler\nSERIAL = 0815-0000\nWIDTH = 640\nHEIGHT = 480\n"
        "[Device stimulus_box]\nTYPE = log\n[Output]\nNWB = on\n",
    )
    result = subprocess.run(
        [str(fresh / "deeplabstream"), "--headless", "--pose-enabled", "--experiment-enabled",
         "--frames", "30", "--settings", str(settings), "--output-dir", str(tmp_path / "out")],
        cwd=lab, env={**_fresh_env(), "PYLON_CAMEMU": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (session,) = (tmp_path / "out").iterdir()
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished" and info["errors"] == []
    assert info["cameras"]["top"]["frames_captured"] == 30
    assert info["cameras"]["top"]["device"]["serial"] == "0815-0000"  # the basler extra
    assert Path(info["pose"]["model"]["file"]).is_relative_to(fresh.parent)  # package data
    assert info["experiment"]["name"] == "ExampleExperiment"
    assert (session / "session.nwb").stat().st_size > 0  # the nwb extra


def test_every_console_script_of_the_fresh_install_answers_help(
    fresh: Path, tmp_path: Path
) -> None:
    import tomllib

    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    scripts = sorted(path.name for path in fresh.glob("deeplabstream*"))
    assert scripts == sorted(declared), scripts  # every [project.scripts] entry, no other
    for script in scripts:
        result = subprocess.run(
            [str(fresh / script), "--help"],
            cwd=tmp_path, env=_fresh_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        extra = NEEDS_AN_EXTRA.get(script)
        if extra is None:
            assert result.returncode == 0, (script, result.stderr[-2000:])
            assert "usage" in result.stdout.lower(), script
        else:  # the extra is not installed: --help still helps and names how to install it
            assert result.returncode == 0, (script, result.stderr[-2000:])
            assert f'pip install "deeplabstream[{extra}]"' in result.stdout, script
