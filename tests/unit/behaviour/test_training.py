"""Training through the CLI, the ONNX export, the runtime classifier, convert-simba."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.behaviour.classifier import (
    MODEL_FORMAT,
    BehaviourClassifier,
    ClassifierError,
    metadata_path,
    metrics_path,
)
from deeplabstream.behaviour.features import FeatureSpec, default_spec, features_of
from deeplabstream.offline.training.behaviour import (
    TrainingError,
    export_onnx,
    main,
    onnx_difference,
    read_session_pose,
    session_fps,
)
from deeplabstream.outputs.pose.table import read_pose_table
from tests.support.paths import PROJECT_ROOT
from tests.unit.behaviour.synthetic import BEHAVIOURS, FPS, KEYPOINTS, PIXELS_PER_MM, write_session


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _session_json(folder: Path) -> None:
    record = {"format": "deeplabstream-session/1", "cameras": {"arena": {"nominal_fps": FPS}}}
    (folder / "session.json").write_text(json.dumps(record), encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("behaviour")
    sessions = {}
    for seed, name in enumerate(("a", "b", "c")):
        folder = root / f"session_{name}"
        sessions[name] = write_session(folder, "arena", seed)
        _session_json(folder)  # the frame rate comes from here: no --fps
    model = root / "models" / "motion.onnx"
    argv = ["train"]
    for name in ("a", "b"):
        argv += ["--pose", str(sessions[name][0]), "--labels", str(sessions[name][1])]
    argv += ["--test-pose", str(sessions["c"][0]), "--test-labels", str(sessions["c"][1])]
    argv += ["--out", str(model), "--pixels-per-mm", str(PIXELS_PER_MM), "--trees", "25"]
    code, out, err = _run(argv)
    assert code == 0, err
    return {"model": model, "sessions": sessions, "stdout": out, "root": root}


def test_train_writes_model_spec_and_metrics(trained: dict[str, object]) -> None:
    model = trained["model"]
    assert isinstance(model, Path)
    assert model.is_file() and metadata_path(model).is_file() and metrics_path(model).is_file()
    assert metadata_path(model).name == "motion.json"
    assert metrics_path(model).name == "motion.metrics.json"
    meta = json.loads(metadata_path(model).read_text())
    assert meta["format"] == MODEL_FORMAT
    assert meta["behaviours"] == sorted(BEHAVIOURS)
    assert meta["pixels_per_mm"] == PIXELS_PER_MM
    assert meta["fps"] == [FPS]
    assert FeatureSpec.from_dict(meta["feature_spec"]) == default_spec(KEYPOINTS, window_s=1.0)
    assert len(meta["training_sessions"]) == 2 and len(meta["test_sessions"]) == 1
    assert {"scikit-learn", "skl2onnx"} <= set(meta["versions"])
    metrics = json.loads(metrics_path(model).read_text())
    per = metrics["per_behaviour"]
    assert set(per) == set(BEHAVIOURS)
    assert all(per[b]["f1"] > 0.8 for b in BEHAVIOURS), per
    counts = np.array(metrics["confusion_matrix"]["counts"])
    assert counts.sum() == metrics["frames"] == sum(per[b]["support"] for b in BEHAVIOURS)
    stdout = trained["stdout"]
    assert isinstance(stdout, str)
    assert "ONNX check: the exported model's probabilities equal scikit-learn's" in stdout
    assert "precision" in stdout and "confusion matrix" in stdout


def test_runtime_update_equals_offline_probabilities(trained: dict[str, object]) -> None:
    model = trained["model"]
    sessions = trained["sessions"]
    assert isinstance(model, Path) and isinstance(sessions, dict)
    classifier = BehaviourClassifier.load(model)
    assert classifier.behaviours == tuple(sorted(BEHAVIOURS))
    assert classifier.keypoints == KEYPOINTS
    assert classifier.pixels_per_mm == PIXELS_PER_MM
    table = read_pose_table(sessions["c"][0])
    points, times = table.points[:400, 0], table.frames[:400] / FPS
    offline = classifier.probabilities_of(
        features_of(points, times, classifier.spec, classifier.pixels_per_mm)
    )
    assert offline.shape == (400, 3)
    np.testing.assert_allclose(offline.sum(axis=1), 1.0, atol=1e-5)
    # Sent to another process (pickled), the classifier makes its session again.
    live = pickle.loads(pickle.dumps(classifier))
    answers = [live.update(points[i], float(times[i])) for i in range(len(times))]
    assert answers[0] is None and answers[29] is None  # the window is not full before 1 s
    full = [i for i, a in enumerate(answers) if a is not None]
    assert full[0] == 30 and full[-1] == 399
    np.testing.assert_allclose(np.array([answers[i] for i in full]), offline[full], atol=1e-5)
    live.reset()
    assert live.update(points[0], 100.0) is None
    scaled = BehaviourClassifier.load(model, pixels_per_mm=4.0)
    assert scaled.pixels_per_mm == 4.0


def test_runtime_errors(trained: dict[str, object], tmp_path: Path) -> None:
    model = trained["model"]
    assert isinstance(model, Path)
    with pytest.raises(ClassifierError, match="no such classifier"):
        BehaviourClassifier.load(tmp_path / "absent.onnx")
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(model, lonely)
    with pytest.raises(ClassifierError, match=r"lonely\.json: missing"):
        BehaviourClassifier.load(lonely)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    shutil.copy(metadata_path(model), metadata_path(corrupt))
    with pytest.raises(ClassifierError, match="not a usable ONNX model"):
        BehaviourClassifier.load(corrupt)
    future = tmp_path / "future.onnx"
    shutil.copy(model, future)
    meta = json.loads(metadata_path(model).read_text())
    meta["format"] = "deeplabstream-behaviour-model/9"
    metadata_path(future).write_text(json.dumps(meta))
    with pytest.raises(ClassifierError, match="another version"):
        BehaviourClassifier.load(future)
    meta["format"] = MODEL_FORMAT
    meta["feature_spec"]["keypoints"] = ["nose"]
    metadata_path(future).write_text(json.dumps(meta))
    with pytest.raises(ClassifierError, match="feature_spec"):
        BehaviourClassifier.load(future)


def test_train_errors(trained: dict[str, object], tmp_path: Path) -> None:
    sessions = trained["sessions"]
    assert isinstance(sessions, dict)
    pose, labels = sessions["a"]
    code, _, err = _run(
        ["train", "--pose", str(pose), "--labels", str(labels), "--out", str(tmp_path / "m.onnx")]
    )
    assert code == 2 and "no held-back session" in err
    code, _, err = _run(
        [
            "train",
            "--pose",
            str(pose),
            "--labels",
            str(labels),
            "--test-pose",
            str(pose),
            "--test-labels",
            str(labels),
            "--out",
            str(tmp_path / "m.onnx"),
        ]
    )
    assert code == 2 and "both trains and tests" in err
    code, _, err = _run(
        [
            "train",
            "--pose",
            str(pose),
            "--labels",
            str(labels),
            "--test-pose",
            str(sessions["b"][0]),
            "--test-labels",
            str(sessions["b"][1]),
            "--behaviours",
            "flying",
            "--out",
            str(tmp_path / "m.onnx"),
        ]
    )
    assert code == 2 and "flying" in err
    assert not (tmp_path / "m.onnx").exists()
    bare = tmp_path / "cam.pose.csv"
    shutil.copy(pose, bare)
    with pytest.raises(TrainingError, match="pass --fps"):
        session_fps(bare, None)
    assert session_fps(bare, 25.0) == 25.0


def test_multi_animal_pose_needs_an_animal(tmp_path: Path) -> None:
    columns = pd.MultiIndex.from_tuples(
        [
            ("s", animal, k, c)
            for animal in ("m1", "m2")
            for k in ("nose", "tail_base")
            for c in ("x", "y", "likelihood")
        ],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    path = tmp_path / "two.pose.csv"
    pd.DataFrame(np.arange(24.0).reshape(2, 12), columns=columns).to_csv(path)
    with pytest.raises(TrainingError, match="--animal"):
        read_session_pose(path, None, None)
    _frames, points, names = read_session_pose(path, "m2", None)
    assert names == ("nose", "tail_base") and points.shape == (2, 2, 3)
    assert points[0, 0, 0] == 6.0


@pytest.mark.parametrize("kind", ["random-forest", "gradient-boosting"])
def test_onnx_probabilities_equal_sklearn(kind: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (300, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)
    # Here, not at the top: scikit-learn is seconds of import for every process that collects.
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    if kind == "random-forest":
        model = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    else:
        model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    onnx_bytes = export_onnx(model, 8)
    assert onnx_difference(onnx_bytes, model, x) < 1e-5


def test_convert_simba_needs_trust_and_a_matching_spec(tmp_path: Path) -> None:
    spec = default_spec(["nose", "centroid", "tail_base"])
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    rng = np.random.default_rng(1)
    x = rng.normal(0, 50, (200, spec.n_features)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    pickled = tmp_path / "attack.sav"
    pickled.write_bytes(pickle.dumps(forest))
    out = tmp_path / "attack.onnx"
    argv = [
        "convert-simba",
        "--model",
        str(pickled),
        "--feature-spec",
        str(spec_file),
        "--out",
        str(out),
        "--behaviours",
        "none,attack",
    ]
    code, _, err = _run(argv)
    assert code == 2 and "runs whatever code" in err and "--trust-pickle" in err
    assert not out.exists()
    other_spec = tmp_path / "other.json"
    other_spec.write_text(default_spec(["a", "b"]).to_json())
    code, _, err = _run([*argv[:4], str(other_spec), *argv[5:], "--trust-pickle"])
    assert code == 2 and "n_features_in_" in err
    code, out_text, err = _run([*argv, "--trust-pickle"])
    assert code == 0, err
    assert "unpickling" in err and "ONNX check" in out_text
    classifier = BehaviourClassifier.load(out)
    assert classifier.behaviours == ("none", "attack")
    np.testing.assert_allclose(classifier.probabilities_of(x), forest.predict_proba(x), atol=1e-5)


def test_train_with_own_spec_chosen_behaviours_and_boosting(
    trained: dict[str, object], tmp_path: Path
) -> None:
    sessions = trained["sessions"]
    assert isinstance(sessions, dict)
    spec = FeatureSpec(
        keypoints=("nose", "body_center", "tail_base"),
        distances=(("nose", "tail_base"),),
        speeds=("body_center",),
        window_s=0.5,
        aggregates=("mean", "max"),
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    out = tmp_path / "walk.onnx"
    argv = ["train", "--pose", str(sessions["a"][0]), "--labels", str(sessions["a"][1])]
    argv += ["--test-pose", str(sessions["b"][0]), "--test-labels", str(sessions["b"][1])]
    argv += ["--out", str(out), "--feature-spec", str(spec_file), "--fps", "30"]
    argv += ["--behaviours", "walking,still", "--classifier", "gradient-boosting"]
    argv += ["--trees", "15", "--pixels-per-mm", "2"]
    code, _, err = _run(argv)
    assert code == 0, err
    meta = json.loads(metadata_path(out).read_text())
    assert meta["behaviours"] == ["walking", "still", "none"]  # hunched became "none"
    assert FeatureSpec.from_dict(meta["feature_spec"]) == spec
    assert meta["classifier"]["class"] == "GradientBoostingClassifier"
    metrics = json.loads(metrics_path(out).read_text())
    assert metrics["per_behaviour"]["walking"]["f1"] > 0.8
    classifier = BehaviourClassifier.load(out)
    assert classifier.keypoints == ("nose", "body_center", "tail_base")


def test_the_runtime_imports_neither_sklearn_nor_pandas() -> None:
    code = (
        "import sys, deeplabstream.behaviour.classifier, deeplabstream.behaviour.features, "
        "deeplabstream.behaviour.labels; "
        "print(sorted(m for m in ('sklearn', 'pandas', 'skl2onnx', 'onnxruntime') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    )
    assert result.stdout.strip() == "[]"
