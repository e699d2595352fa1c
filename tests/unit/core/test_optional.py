"""A command that needs an optional library which is not installed names the extra, exit 2.

The library is hidden the way Python itself allows (``sys.modules[name] = None`` makes every
``import name`` raise ``ModuleNotFoundError``), in a real subprocess running the console
script's entry function.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deeplabstream.core.optional import EXTRA_OF_MODULE, missing_extra
from tests.support.paths import PROJECT_ROOT, shared_data

DLC_MODEL = (
    "dlc3-openfield-cspnext_s/model/"
    "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
)


def _run_with_hidden(
    module: str, entry: str, argv: list[str], cwd: Path
) -> subprocess.CompletedProcess:
    script = (
        f"import sys; sys.modules[{module!r}] = None; "
        f"sys.argv = {argv!r}; "
        f"from {entry.split(':')[0]} import {entry.split(':')[1]} as run; run()"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_every_extra_named_exists_in_pyproject() -> None:
    pyproject = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    for extra in set(EXTRA_OF_MODULE.values()):
        assert f"\n{extra} = [" in pyproject, extra


def test_only_optional_libraries_are_explained() -> None:
    assert missing_extra(ModuleNotFoundError("no", name="numpy")) is None
    message = str(missing_extra(ModuleNotFoundError("no", name="pypylon.pylon")))
    assert 'pip install "deeplabstream[basler]"' in message and "'pypylon'" in message


def test_training_without_torch_names_the_extra_torch_hidden(tmp_path: Path) -> None:
    result = _run_with_hidden(
        "torch", "deeplabstream.offline.training.command:run", ["deeplabstream-train"], tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert 'pip install "deeplabstream[torch]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_inspecting_a_deeplabcut_file_without_torch_names_the_extra_torch_hidden(
    tmp_path: Path,
) -> None:
    model = shared_data(DLC_MODEL)
    result = _run_with_hidden(
        "torch",
        "deeplabstream.pose.inspect:run",
        ["deeplabstream-inspect", str(model)],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert 'pip install "deeplabstream[torch]"' in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("library", ["torch"])
def test_a_session_with_a_deeplabcut_file_without_torch_starts_nothing_torch_hidden(
    tmp_path: Path, library: str
) -> None:
    model = shared_data(DLC_MODEL)
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[Camera arena]\nSOURCE = synthetic\n\n[Pose]\nMODEL_PATH = {model}\n")
    result = _run_with_hidden(
        library,
        "deeplabstream.app.headless:run",
        [
            "deeplabstream",
            "--settings",
            str(settings),
            "--pose-enabled",
            "--frames",
            "5",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f'pip install "deeplabstream[{library}]"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: script name -> ``module:function``."""
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as file:
        return dict(tomllib.load(file)["project"]["scripts"])


def test_every_command_helps_without_torch_torch_hidden(tmp_path: Path) -> None:
    """The base install has no torch: a module-level ``import torch`` reached from a command
    (the Faster R-CNN constants once were) broke its --help and the default session."""
    scripts = _console_scripts()
    assert len(scripts) >= 10, scripts
    for script, entry in scripts.items():
        result = _run_with_hidden("torch", entry, [script, "--help"], tmp_path)
        assert result.returncode == 0, (script, result.stderr[-2000:])
        assert "usage" in result.stdout.lower(), script


def test_the_default_session_runs_without_torch_torch_hidden(tmp_path: Path) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n[Device stimulus_box]\nTYPE = log\n")
    argv = [
        "deeplabstream", "--headless", "--pose-enabled", "--experiment-enabled",
        "--frames", "10", "--settings", str(settings), "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    result = _run_with_hidden("torch", "deeplabstream.app.headless:run", argv, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # The newest frame is analysed: on a busy machine some of the 10 are skipped, none lost.
    analysed = re.search(r"(\d+) frames analysed \([^)]*\)(?:, (\d+) skipped)?", result.stdout)
    assert analysed, result.stdout[-2000:]
    assert int(analysed[1]) >= 1 and int(analysed[1]) + int(analysed[2] or 0) == 10, analysed[0]


def test_the_ensemble_kalman_smoother_is_installed_without_its_second_opencv() -> None:
    message = str(missing_extra(ModuleNotFoundError("no", name="eks.singlecam_smoother")))
    assert "pip install --no-deps -r requirements-ensembles.txt" in message
    assert "opencv" in message.lower() or "OpenCV" in message
    lines = (Path(__file__).resolve().parents[3] / "requirements-ensembles.txt").read_text()
    pins = [line.split("==")[0] for line in lines.splitlines() if "==" in line]
    assert "ensemble-kalman-smoother" in pins and "aniposelib" in pins
    assert not any(pin.startswith("opencv") for pin in pins)  # the project's headless cv2 stays
