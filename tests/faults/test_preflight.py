"""Issue 14: a bad model or experiment is refused before anything starts.

A problem found before the start must give exit code 2, a message naming the file, section and
key, and no session folder. One case of each kind runs a real ``DeepLabStream.py`` process
(:func:`_run`); the others ask the command's check before the start in this process
(:func:`_refusal`): the same decision and the same lines, without a process's start. (Ctrl-C
during the start-up: ``test_start_up_stop.py``.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deeplabstream.app.headless import build_parser
from deeplabstream.live.session.preflight import check_plan
from deeplabstream.pose.inspect import main as inspect_main
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import resolve_cameras
from tests.support.files import write_settings
from tests.support.in_process import headless_here, run_main_here
from tests.support.paths import PROJECT_ROOT

CAMERA = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n"
DEVICE = "[Device stimulus_box]\nTYPE = log\n"


def _run(
    tmp_path: Path, settings_text: str, *extra: str, process: bool = False
) -> subprocess.CompletedProcess:
    """The headless command on these settings: its ``main`` in this process (the same parser,
    checks and exit code, ``headless_here``), or with ``process`` ``DeepLabStream.py`` started
    as a process, as a user starts it (one test keeps that end to end)."""
    settings = write_settings(tmp_path, settings_text)
    if not process:
        args = ["--settings", str(settings), "--headless", "--frames", "30"]
        return headless_here(*args, "--output-dir", str(tmp_path / "out"), *extra)
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "DeepLabStream.py"),
            "--settings",
            str(settings),
            "--headless",
            "--frames",
            "30",
            "--output-dir",
            str(tmp_path / "out"),
            *extra,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_refused(tmp_path: Path, result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    for word in words:
        assert word in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def _refusal(tmp_path: Path, settings_text: str, *extra: str) -> str:
    """The lines the command's check before the start refuses :func:`_run`'s run with.

    Asked in this process as ``app/headless_run.py``'s ``run_checks`` asks it (the command
    line's options read by its own parser, the run's plan, ``check_plan``); a refusal there is
    exit code 2 with these lines and nothing started (the :func:`_run` tests show it).
    """
    settings = write_settings(tmp_path, settings_text)
    args = build_parser().parse_args(["--settings", str(settings), "--headless", *extra])
    experiment = bool(args.experiment_enabled or args.experiment is not None)
    model = args.model.resolve() if args.model is not None else None
    plan = resolve_cameras(load_settings(settings), model=model, experiment=args.experiment)
    problems = check_plan(
        plan,
        pose=bool(args.pose_enabled or experiment),
        experiment=experiment,
        experiment_option=args.experiment,
    )
    assert problems, "the run was not refused"
    return "\n".join(problems)


def _assert_says(text: str, *words: str) -> None:
    for word in words:
        assert word in text, text


def test_missing_model_is_refused_before_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    text = f"{CAMERA}[Pose]\nMODEL_PATH = {missing}\n"
    result = _run(tmp_path, text, "--pose-enabled", process=True)  # the command, end to end
    _assert_refused(tmp_path, result, "[Pose] MODEL_PATH", str(missing), "not found")


def test_missing_model_of_one_camera_names_its_section(tmp_path: Path) -> None:
    missing = tmp_path / "side_model"
    refusal = _refusal(tmp_path, f"{CAMERA}MODEL_PATH = {missing}\n", "--pose-enabled")
    _assert_says(refusal, "[Camera arena] MODEL_PATH", str(missing))


def test_garbage_pt_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    model = tmp_path / "junk.pt"
    model.write_bytes(b"garbage not a model " * 100)
    refusal = _refusal(tmp_path, CAMERA, "--pose-enabled", "--model", str(model))
    _assert_says(refusal, "--model", str(model), "DeepLabCut 3.0", "export_model")
    assert "weights_only=False" not in refusal
    assert "weights_only` set to `False" not in refusal


def test_empty_pt_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "empty.pt"
    model.write_bytes(b"")
    refusal = _refusal(tmp_path, f"{CAMERA}[Pose]\nMODEL_PATH = {model}\n", "--pose-enabled")
    _assert_says(refusal, "[Pose] MODEL_PATH", str(model), "empty")


def test_unknown_experiment_is_refused(tmp_path: Path) -> None:
    text = f"{CAMERA}[Experiment]\nNAME = NoSuchExperiment\n{DEVICE}"
    result = _run(tmp_path, text, "--experiment-enabled")
    _assert_refused(tmp_path, result, "[Experiment] NAME", "NoSuchExperiment", "unknown experiment")


def test_broken_experiment_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "broken.ini"
    config.write_text("[Experiment]\nMAX_TRIALS = many\n\n[Rule r]\nWHEN = nothing\n")
    refusal = _refusal(
        tmp_path, f"{CAMERA}{DEVICE}", "--experiment-enabled", "--experiment", str(config)
    )
    _assert_says(refusal, "--experiment", str(config))


def test_experiment_file_that_fails_to_import_is_refused(tmp_path: Path) -> None:
    (tmp_path / "experiments").mkdir()
    module = tmp_path / "experiments" / "broken_experiment.py"
    module.write_text("import no_such_module_here\n")
    text = f"{CAMERA}[Experiment]\nNAME = broken_experiment\n{DEVICE}"
    refusal = _refusal(tmp_path, text, "--experiment-enabled")
    _assert_says(refusal, "[Experiment] NAME", "no_such_module_here")


def test_experiment_with_an_undeclared_device_is_refused(tmp_path: Path) -> None:
    # ExampleExperiment drives stimulus_box; these settings declare no device at all.
    refusal = _refusal(
        tmp_path, f"{CAMERA}[Experiment]\nNAME = ExampleExperiment\n", "--experiment-enabled"
    )
    _assert_says(refusal, "stimulus_box", "[Device stimulus_box]")


def test_inspect_of_an_empty_pt_says_so(tmp_path: Path) -> None:
    model = tmp_path / "empty.pt"
    model.write_bytes(b"")
    # The command's main in this process (``python -m deeplabstream.pose.inspect``'s parser
    # and checks; an exception would fail the test here as a traceback would there).
    code, _, stderr = run_main_here(inspect_main, [str(model)])
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert str(model) in stderr and "empty" in stderr


def test_social_experiment_on_a_single_animal_model_is_refused_before_the_start(
    tmp_path: Path,
) -> None:
    text = f"{CAMERA}{DEVICE}[Experiment]\nNAME = social_example\n"
    result = _run(tmp_path, text, "--experiment-enabled")
    _assert_refused(tmp_path, result, "social_example", "animal 2", "MAX_ANIMALS")


def test_dynamic_crop_with_a_multi_animal_model_is_refused_before_the_start(
    tmp_path: Path,
) -> None:
    from tests.support.paths import shared_data

    model = shared_data("sleap-flies") / "onnx" / "flies_bottomup_tiny_onnx"
    text = f"{CAMERA}[Pose]\nMODEL_PATH = {model}\nDYNAMIC_CROP = on\n"
    refusal = _refusal(tmp_path, text, "--pose-enabled")
    _assert_says(refusal, "[Camera arena]", "DYNAMIC_CROP = off", "multi-animal")
