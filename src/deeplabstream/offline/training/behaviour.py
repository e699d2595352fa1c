"""Train behaviour classifiers from pose tables and labels; score them; export them to ONNX.

``convert-simba`` unpickles (runs code) only with ``--trust-pickle``.
docs/behaviour-classifiers.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.behaviour.classifier import MODEL_FORMAT, metadata_path, metrics_path
from deeplabstream.behaviour.features import (
    FeatureSpec,
    FeatureSpecError,
    default_spec,
    features_of,
)
from deeplabstream.behaviour.labels import NO_BEHAVIOUR, LabelsError, read_labels
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.optional import exit_with
from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.outputs.session_record import DamagedRecordError, load_record

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
ONNX_TOLERANCE = 1e-4
# Opsets every ONNX Runtime of the last years runs (the tree ensembles of ai.onnx.ml 3).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
CLASSIFIERS = ("random-forest", "gradient-boosting")


class TrainingError(DeepLabStreamError):
    """A problem with the inputs of a training run, told to the user without a traceback."""


@dataclass
class Session:
    """One recording's features and labels (labelled frames only)."""

    pose: Path
    labels: Path
    fps: float
    features: np.ndarray
    targets: list[str]
    frames_total: int
    ambiguous: int


def camera_of(pose_path: Path) -> str:
    """Return the camera a pose file belongs to (``arena.pose.csv`` -> ``arena``)."""
    name = pose_path.name
    return name[: -len(".pose.csv")] if name.endswith(".pose.csv") else name.split(".")[0]


def session_fps(pose_path: Path, fps: float | None) -> float:
    """Return ``fps``, else the camera's rate from the ``session.json`` beside the pose file."""
    if fps is not None:
        if not (math.isfinite(fps) and fps > 0):
            raise TrainingError(f"--fps: expected a positive frame rate, but got {fps}")
        return float(fps)
    record = pose_path.parent / "session.json"
    camera = camera_of(pose_path)
    if not record.is_file():
        raise TrainingError(
            f"{pose_path}: no frame rate: pass --fps (there is no session.json beside the file "
            "to read the camera's rate from)"
        )
    try:
        data = load_record(record)
    except (OSError, DamagedRecordError) as error:
        raise TrainingError(f"{record}: not a session's record ({error}); pass --fps") from None
    entry = data.cameras.get(camera)
    rate: Any = entry.nominal_fps if entry is not None else None
    if rate is None:  # the settings as the session ran: [Camera NAME] FRAMERATE
        rate = data.camera_setting(camera, "FRAMERATE")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        return float(rate)
    known = sorted(data.cameras)
    raise TrainingError(
        f"{record}: no frame rate for camera '{camera}' (cameras in the file: {known}); pass --fps"
    )


def read_session_pose(
    pose_path: Path, animal: str | None, keypoints: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Return (frames, (N, K, 3) keypoints, names) of one animal, analysed rows only.

    ``keypoints`` reorders the columns to a first session's order.
    """
    if not pose_path.is_file():
        raise TrainingError(f"{pose_path}: no such pose file")
    try:
        table = read_pose_table(pose_path, analysed_only=True)
    except Exception as error:  # pandas' parse errors come in several kinds
        raise TrainingError(
            f"{pose_path}: cannot read it as a DeepLabCut-layout pose CSV ({error})"
        ) from None
    if table.individuals is None:
        if animal is not None:
            raise TrainingError(f"{pose_path}: --animal {animal}: the file has one animal only")
        points = table.points[:, 0]
    else:
        if animal is None:
            if len(table.individuals) > 1:
                raise TrainingError(
                    f"{pose_path}: several animals {list(table.individuals)}; choose one with "
                    "--animal"
                )
            animal = table.individuals[0]
        if animal not in table.individuals:
            raise TrainingError(
                f"{pose_path}: no animal '{animal}' (it has {list(table.individuals)})"
            )
        points = table.points[:, table.individuals.index(animal)]
    names = table.keypoints
    if keypoints is not None:
        missing = [k for k in keypoints if k not in names]
        if missing:
            raise TrainingError(
                f"{pose_path}: no keypoints {missing}; every session needs the keypoints of the "
                f"first one ({list(keypoints)})"
            )
        points = points[:, [names.index(k) for k in keypoints]]
        names = tuple(keypoints)
    frames = table.frames
    if len(frames) > 1 and (np.diff(frames) <= 0).any():
        raise TrainingError(f"{pose_path}: frame indices do not increase from row to row")
    return frames, points, names


def load_session(
    pose_path: Path,
    labels_path: Path,
    args: argparse.Namespace,
    spec: FeatureSpec | None,
) -> tuple[Session, FeatureSpec]:
    """Read one session, compute its features (batch), keep its labelled frames."""
    fps = session_fps(pose_path, args.fps)
    frames, points, names = read_session_pose(
        pose_path, args.animal, spec.keypoints if spec else None
    )
    if spec is None:
        spec = default_spec(
            names,
            window_s=1.0 if args.window is None else args.window,
            likelihood_threshold=(
                0.5 if args.likelihood_threshold is None else args.likelihood_threshold
            ),
        )
    try:
        columns = [b for b in args.behaviours if b != NO_BEHAVIOUR] if args.behaviours else None
        labels = read_labels(labels_path, fps=fps, behaviours=columns or None)
    except LabelsError as error:
        raise TrainingError(str(error)) from None
    features = features_of(points, frames / fps, spec, args.pixels_per_mm)
    per_frame = labels.for_frames(frames.tolist())
    keep = [i for i, label in enumerate(per_frame) if label is not None]
    if not keep:
        raise TrainingError(
            f"{labels_path}: none of its frames is a frame of {pose_path} "
            f"(pose frames {int(frames[0]) if len(frames) else '-'}.."
            f"{int(frames[-1]) if len(frames) else '-'}); check that they belong together"
        )
    session = Session(
        pose_path,
        labels_path,
        fps,
        features[keep],
        [str(per_frame[i]) for i in keep],
        len(frames),
        sum(1 for f in frames.tolist() if int(f) in labels.ambiguous),
    )
    return session, spec


def class_names(train: list[Session], behaviours: Sequence[str] | None) -> list[str]:
    """Return the classes in probability order: the behaviours, then ``none`` if needed."""
    seen = {label for s in train for label in s.targets}
    if behaviours:
        chosen = list(dict.fromkeys(behaviours))
        absent = [b for b in chosen if b not in seen]
        if absent:
            raise TrainingError(
                f"--behaviours: {absent} has no labelled frame in the training sessions; label "
                "some, or leave it out"
            )
        if NO_BEHAVIOUR not in chosen and seen - set(chosen):
            chosen.append(NO_BEHAVIOUR)
    else:
        chosen = sorted(seen - {NO_BEHAVIOUR})
        if NO_BEHAVIOUR in seen:
            chosen.append(NO_BEHAVIOUR)
    if len(chosen) < 2:
        raise TrainingError(
            f"the training labels hold only {chosen}: a classifier needs two classes at least "
            f"(label frames with other behaviours, or '{NO_BEHAVIOUR}' for none)"
        )
    return chosen


def targets_of(sessions: list[Session], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Stack the sessions' features and class indices (other behaviours become ``none``)."""
    index = {name: i for i, name in enumerate(classes)}
    negative = index.get(NO_BEHAVIOUR)
    rows: list[np.ndarray] = []
    targets: list[int] = []
    for session in sessions:
        for row, label in zip(session.features, session.targets, strict=True):
            target = index.get(label, negative)
            if target is not None:
                rows.append(row)
                targets.append(target)
    width = sessions[0].features.shape[1]
    x = np.array(rows, np.float32).reshape(-1, width)
    return x, np.array(targets, np.int64)


def make_classifier(name: str, seed: int, trees: int, jobs: int) -> Any:
    """Return an untrained scikit-learn classifier (class weights balanced)."""
    if name == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=trees,
            min_samples_leaf=2,
            class_weight="balanced_subsample",
            n_jobs=jobs,
            random_state=seed,
        )
    if name == "gradient-boosting":
        # The classic one: skl2onnx 1.20 cannot convert HistGradientBoostingClassifier from
        # scikit-learn 1.9 (a boolean attribute its TreeEnsemble node refuses).
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=trees, max_depth=3, random_state=seed)
    raise TrainingError(f"--classifier: expected one of {list(CLASSIFIERS)}, but got '{name}'")


def export_onnx(model: Any, n_features: int) -> bytes:
    """Convert a fitted classifier: input ``features`` (N, F); ``label``, ``probabilities``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(
        model,
        "behaviour-classifier",
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options={id(model): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    names = [o.name for o in onnx_model.graph.output]
    if names != [LABEL_OUTPUT, PROBABILITIES_OUTPUT]:
        raise TrainingError(f"skl2onnx made outputs {names}, not {LABEL_OUTPUT}/probabilities")
    return bytes(onnx_model.SerializeToString())


def onnx_difference(onnx_bytes: bytes, model: Any, features: np.ndarray) -> float:
    """Return the largest |ONNX probability - predict_proba| on ``features``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )
    ours = session.run([PROBABILITIES_OUTPUT], {INPUT_NAME: features.astype(np.float32)})[0]
    theirs = model.predict_proba(features.astype(np.float32))
    return float(np.abs(np.asarray(ours, np.float64) - theirs).max())


def score(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Return precision, recall, F1, support per class, accuracy and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    matrix = confusion_matrix(truth, predicted, labels=labels)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(matrix[:, i].sum()),
        }
        for i, name in enumerate(classes)
    }
    behaviours = [name for name in classes if name != NO_BEHAVIOUR]
    return {
        "frames": len(truth),
        "accuracy": float((truth == predicted).mean()) if len(truth) else 0.0,
        "macro_f1": float(np.mean([per_class[b]["f1"] for b in behaviours])),
        "per_behaviour": per_class,
        "confusion_matrix": {
            "rows": "true class",
            "columns": "predicted class",
            "classes": classes,
            "counts": matrix.tolist(),
        },
    }


def format_scores(scores: dict[str, Any]) -> str:
    """Return the scores as a readable table."""
    classes = scores["confusion_matrix"]["classes"]
    width = max(12, *(len(c) + 2 for c in classes))
    lines = [f"{'behaviour':<{width}}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}"]
    for name in classes:
        entry = scores["per_behaviour"][name]
        lines.append(
            f"{name:<{width}}{entry['precision']:>10.3f}{entry['recall']:>10.3f}"
            f"{entry['f1']:>10.3f}{entry['support']:>10d}"
        )
    lines.append(
        f"accuracy {scores['accuracy']:.3f} over {scores['frames']} frames; "
        f"mean F1 of the behaviours {scores['macro_f1']:.3f}"
    )
    lines.append("confusion matrix (rows: true, columns: predicted)")
    cell = max(8, *(len(c) + 1 for c in classes))
    lines.append(" " * width + "".join(f"{c:>{cell}}" for c in classes))
    for name, row in zip(classes, scores["confusion_matrix"]["counts"], strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def _model_metadata(
    classes: list[str],
    spec: FeatureSpec,
    pixels_per_mm: float,
    fps: list[float],
    classifier: dict[str, Any],
    onnx_check: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Return ``NAME.json``: what the runtime needs to use the model, and where it came from."""
    return {
        "format": MODEL_FORMAT,
        "behaviours": classes,
        "negative_class": NO_BEHAVIOUR if NO_BEHAVIOUR in classes else None,
        "feature_spec": spec.to_dict(),
        "feature_names": list(spec.feature_names()),
        "n_features": spec.n_features,
        "pixels_per_mm": pixels_per_mm,
        "fps": fps,
        "input_name": INPUT_NAME,
        "label_output": LABEL_OUTPUT,
        "probabilities_output": PROBABILITIES_OUTPUT,
        "classifier": classifier,
        "onnx_check": onnx_check,
        "versions": versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **extra,
    }


def versions() -> dict[str, str]:
    """Return the versions of the libraries a classifier was made with."""
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    return {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


def _json_params(model: Any) -> dict[str, Any]:
    return {
        key: value
        for key, value in model.get_params().items()
        if isinstance(value, str | int | float | bool | type(None))
    }


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def train(args: argparse.Namespace) -> int:
    """Run ``train``: read, featurise, fit, score, check the ONNX export, write three files."""
    if len(args.pose) != len(args.labels):
        raise TrainingError(
            f"--pose given {len(args.pose)} times but --labels {len(args.labels)} times; "
            "give one --labels per --pose, in the same order"
        )
    if len(args.test_pose) != len(args.test_labels):
        raise TrainingError(
            f"--test-pose given {len(args.test_pose)} times but --test-labels "
            f"{len(args.test_labels)} times; give one --test-labels per --test-pose"
        )
    if not args.test_pose:
        raise TrainingError(
            "no held-back session: give --test-pose and --test-labels (a session not used for "
            "training) to score the classifier"
        )
    overlap = {p.resolve() for p in args.pose} & {p.resolve() for p in args.test_pose}
    if overlap:
        raise TrainingError(f"{sorted(map(str, overlap))} both trains and tests; hold it back")
    if not (math.isfinite(args.pixels_per_mm) and args.pixels_per_mm > 0):
        raise TrainingError(
            f"--pixels-per-mm: expected a positive number, got {args.pixels_per_mm}"
        )
    if args.window is not None and not (math.isfinite(args.window) and args.window > 0):
        raise TrainingError(f"--window: expected a positive number of seconds, got {args.window}")
    out: Path = args.out
    if out.suffix != ".onnx":
        raise TrainingError(f"--out: expected a file name ending in .onnx, but got {out}")

    spec: FeatureSpec | None = None
    if args.feature_spec is not None:
        spec = _read_spec(args.feature_spec)
        if args.window is not None:
            spec = spec.with_window(args.window)
        if args.likelihood_threshold is not None:
            spec = spec.with_threshold(args.likelihood_threshold)
    train_sessions: list[Session] = []
    for pose, labels in zip(args.pose, args.labels, strict=True):
        session, spec = load_session(pose, labels, args, spec)
        train_sessions.append(session)
    assert spec is not None
    test_sessions = [
        load_session(p, lab, args, spec)[0]
        for p, lab in zip(args.test_pose, args.test_labels, strict=True)
    ]
    for session in train_sessions + test_sessions:
        if session.ambiguous:
            print(
                f"warning: {session.labels}: {session.ambiguous} frames carry several behaviours "
                "at once and are left out",
                file=sys.stderr,
            )
    classes = class_names(train_sessions, args.behaviours)
    x_train, y_train = targets_of(train_sessions, classes)
    x_test, y_test = targets_of(test_sessions, classes)
    if len(x_test) == 0:
        raise TrainingError("the held-back sessions have no frame labelled with these classes")
    counts = np.bincount(y_train, minlength=len(classes))
    print(
        f"training on {len(x_train)} frames of {len(train_sessions)} sessions: "
        + ", ".join(f"{name} {int(count)}" for name, count in zip(classes, counts, strict=True))
    )
    print(f"features: {spec.n_features} per frame, window {spec.window_s} s")

    model = make_classifier(args.classifier, args.seed, args.trees, args.jobs)
    if args.classifier == "gradient-boosting":  # no class_weight: weigh the frames instead
        from sklearn.utils.class_weight import compute_sample_weight

        model.fit(x_train, y_train, sample_weight=compute_sample_weight("balanced", y_train))
    else:
        model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    scores = score(y_test, np.asarray(predicted, np.int64), classes)

    onnx_bytes = export_onnx(model, spec.n_features)
    check_rows = x_test if len(x_test) <= 20_000 else x_test[:: len(x_test) // 20_000 + 1]
    difference = onnx_difference(onnx_bytes, model, check_rows)
    if difference > ONNX_TOLERANCE:
        raise TrainingError(
            f"the ONNX export's probabilities differ from scikit-learn's by {difference:.2e} "
            f"(more than {ONNX_TOLERANCE}); nothing was written"
        )
    print(
        f"ONNX check: the exported model's probabilities equal scikit-learn's predict_proba on "
        f"{len(check_rows)} held-back frames (largest difference {difference:.1e})"
    )

    def describe(sessions: list[Session]) -> list[dict[str, Any]]:
        return [
            {
                "pose": str(s.pose),
                "labels": str(s.labels),
                "fps": s.fps,
                "frames": s.frames_total,
                "labelled_frames": len(s.targets),
            }
            for s in sessions
        ]

    metadata = _model_metadata(
        classes,
        spec,
        float(args.pixels_per_mm),
        sorted({s.fps for s in train_sessions}),
        {"kind": args.classifier, "class": type(model).__name__, "params": _json_params(model)},
        {"frames": len(check_rows), "max_difference": difference},
        animal=args.animal,
        training_sessions=describe(train_sessions),
        test_sessions=describe(test_sessions),
    )
    metrics = {
        "model": out.name,
        "test_sessions": describe(test_sessions),
        **scores,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(onnx_bytes)
    _write(metadata_path(out), metadata)
    _write(metrics_path(out), metrics)
    print("\nscores on the held-back sessions:")
    print(format_scores(scores))
    print(f"\nwrote {out}, {metadata_path(out).name} and {metrics_path(out).name}")
    return 0


def _read_spec(path: Path) -> FeatureSpec:
    try:
        return FeatureSpec.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingError(f"{path}: no such feature spec file") from None
    except FeatureSpecError as error:
        raise TrainingError(f"{path}: {error}") from None


def convert_simba(args: argparse.Namespace) -> int:
    """Run ``convert-simba``: a pickled random forest to ``NAME.onnx`` + ``NAME.json``."""
    model_file: Path = args.model
    if not args.trust_pickle:
        raise TrainingError(
            f"refusing to load {model_file}: loading a pickle runs whatever code it holds, so "
            "a file from an unknown source can take over this computer. If you made the file "
            "yourself or trust where it comes from, run again with --trust-pickle"
        )
    if not model_file.is_file():
        raise TrainingError(f"{model_file}: no such file")
    out: Path = args.out
    if out.suffix != ".onnx":
        raise TrainingError(f"--out: expected a file name ending in .onnx, but got {out}")
    spec = _read_spec(args.feature_spec)
    data = model_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    print(
        f"warning: unpickling {model_file} (SHA-256 {digest}) runs the code it holds; "
        "--trust-pickle says you trust it",
        file=sys.stderr,
    )
    model = pickle.loads(data)  # the one place a pickle is loaded, and only on --trust-pickle
    n_in = getattr(model, "n_features_in_", None)
    if not hasattr(model, "predict_proba") or n_in is None:
        raise TrainingError(
            f"{model_file}: holds a {type(model).__name__}, not a fitted scikit-learn classifier"
        )
    if int(n_in) != spec.n_features:
        raise TrainingError(
            f"{args.feature_spec}: makes {spec.n_features} features but the model "
            f"{model_file.name} takes {n_in} (n_features_in_); the spec must describe the "
            "features the model was trained on, in order"
        )
    classes = [str(c) for c in model.classes_]
    if args.behaviours is not None:
        if len(args.behaviours) != len(classes):
            raise TrainingError(
                f"--behaviours names {len(args.behaviours)} classes but the model has "
                f"{len(classes)} ({classes}); name them in that order, e.g. "
                "--behaviours none,attack for a SiMBA model (classes 0, 1)"
            )
        names = list(args.behaviours)
    elif all(isinstance(c, str) for c in model.classes_):
        names = classes
    else:
        raise TrainingError(
            f"the model's classes are {classes}; name them with --behaviours in that order, "
            "e.g. --behaviours none,attack for a SiMBA model (classes 0, 1)"
        )
    onnx_bytes = export_onnx(model, spec.n_features)
    rng = np.random.default_rng(0)
    probe = rng.normal(0.0, 50.0, (512, spec.n_features)).astype(np.float32)
    difference = onnx_difference(onnx_bytes, model, probe)
    if difference > ONNX_TOLERANCE:
        raise TrainingError(
            f"the ONNX export's probabilities differ from the model's by {difference:.2e}; "
            "nothing was written"
        )
    print(
        f"ONNX check: probabilities equal predict_proba on 512 probes (max diff {difference:.1e})"
    )
    metadata = _model_metadata(
        list(names),
        spec,
        float(args.pixels_per_mm),
        [args.fps] if args.fps else [],
        {"kind": "converted", "class": type(model).__name__},
        {"frames": len(probe), "max_difference": difference},
        converted_from={"file": str(model_file), "sha256": digest},
        training_sessions=[],
        test_sessions=[],
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(onnx_bytes)
    _write(metadata_path(out), metadata)
    print(f"wrote {out} and {metadata_path(out).name}")
    return 0


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected names separated by commas, got '{text}'")
    return names


def parser() -> argparse.ArgumentParser:
    """Return the command line parser of ``deeplabstream-train-behaviour``."""
    top = argparse.ArgumentParser(
        prog="deeplabstream-train-behaviour",
        description="Train behaviour classifiers on pose tables and labels; export to ONNX.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="train, score on held-back sessions, export")
    fit.add_argument(
        "--pose",
        type=Path,
        action="append",
        required=True,
        help="a training session's pose CSV (repeat for more sessions)",
    )
    fit.add_argument(
        "--labels",
        type=Path,
        action="append",
        required=True,
        help="its labels: frame,behaviour CSV, BORIS export or SiMBA CSV",
    )
    fit.add_argument(
        "--test-pose",
        type=Path,
        action="append",
        default=[],
        help="a held-back session's pose CSV (repeatable)",
    )
    fit.add_argument("--test-labels", type=Path, action="append", default=[], help="its labels")
    fit.add_argument("--out", type=Path, required=True, help="the model, NAME.onnx")
    fit.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate (default: the camera's in session.json beside the pose)",
    )
    fit.add_argument(
        "--pixels-per-mm",
        type=float,
        default=1.0,
        help="the training videos' scale (default 1.0: features in pixels)",
    )
    fit.add_argument(
        "--window", type=float, default=None, help="window length in s (1.0, or the spec's)"
    )
    fit.add_argument(
        "--likelihood-threshold",
        type=float,
        default=None,
        help="keypoints below it are missing (0.5, or the spec's)",
    )
    fit.add_argument(
        "--behaviours",
        type=_names,
        default=None,
        help="the behaviours to learn, comma-separated; others become 'none'",
    )
    fit.add_argument("--classifier", choices=CLASSIFIERS, default="random-forest")
    fit.add_argument(
        "--trees", type=int, default=100, help="trees (random forest) or boosting iterations (100)"
    )
    fit.add_argument("--animal", default=None, help="the animal of a multi-animal pose file")
    fit.add_argument(
        "--feature-spec",
        type=Path,
        default=None,
        help="a FeatureSpec JSON instead of the default features",
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--jobs", type=int, default=1, help="CPU cores for training (1)")
    fit.set_defaults(run=train)

    convert = commands.add_parser(
        "convert-simba", help="export a pickled SiMBA / scikit-learn random forest to ONNX"
    )
    convert.add_argument("--model", type=Path, required=True, help="the pickled model (.sav)")
    convert.add_argument(
        "--feature-spec",
        type=Path,
        required=True,
        help="FeatureSpec JSON describing the model's features, in order",
    )
    convert.add_argument("--out", type=Path, required=True, help="the model, NAME.onnx")
    convert.add_argument(
        "--behaviours",
        type=_names,
        default=None,
        help="names of the model's classes, in its order, e.g. none,attack",
    )
    convert.add_argument("--pixels-per-mm", type=float, default=1.0)
    convert.add_argument("--fps", type=float, default=None)
    convert.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load the pickle although loading a pickle runs code",
    )
    convert.set_defaults(run=convert_simba)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deeplabstream-train-behaviour``; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except DeepLabStreamError as error:  # TrainingError, a feature spec, labels: told plainly
        print(f"error: {error}", file=sys.stderr)
        return 2


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
