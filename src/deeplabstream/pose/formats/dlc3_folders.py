"""DeepLabCut's own folders around a trained model: the export inside, or the command that makes it.

Design: docs/pose-models.md, "The folders the frameworks write".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeplabstream.pose.model import ModelError

EXPORTS_FOLDER = "exported-models-pytorch"
MODELS_FOLDER = "dlc-models-pytorch"
TENSORFLOW_MODELS_FOLDER = "dlc-models"  # DeepLabCut 2.x (TensorFlow engine)
PROJECT_CONFIG = "config.yaml"
SNAPSHOT = re.compile(r"^snapshot(?P<detector>-detector)?(?P<best>-best)?-(?P<epochs>\d+)\.pt$")
_SHUFFLE_FOLDER = re.compile(r"trainset(?P<percent>\d+)shuffle(?P<shuffle>\d+)$")
_ITERATION_FOLDER = re.compile(r"^iteration-(?P<iteration>\d+)$")
_TRAINING = "a DeepLabCut training folder, not an exported model"
_PROJECT = f"a DeepLabCut project with no exported model ({EXPORTS_FOLDER}/ holds no .pt)"
_TO_RUN_EXPORT = (
    "then set MODEL_PATH (or --model) to the .pt file it writes (or to its folder) in {exports}"
)


@dataclass(frozen=True)
class TrainingFolder:
    """A shuffle's ``train/`` folder and what its place in the project says."""

    train: Path
    shuffle: int | None
    trainset_percent: int | None
    iteration: int | None
    project: Path | None  # the folder with the project's config.yaml, when found
    modelprefix: str  # where dlc-models-pytorch sits below the project ("" when directly)
    snapshots: list[Path] = field(default_factory=list)  # DeepLabCut's order
    detector_snapshots: list[Path] = field(default_factory=list)


# --- what DeepLabCut's folders are ---------------------------------------------------------------


def is_snapshot(path: Path) -> bool:
    """Return True for a training snapshot file (``snapshot[-detector][-best]-<epoch>.pt``)."""
    return path.is_file() and SNAPSHOT.match(path.name) is not None


def claims(path: Path) -> bool:
    """Return True for a folder or file of DeepLabCut's that is not itself an export."""
    if path.is_file():
        return is_snapshot(path)
    return (
        _is_project(path)
        or path.name in (EXPORTS_FOLDER, MODELS_FOLDER)
        or path.parent.name == EXPORTS_FOLDER
        or _is_iteration_folder(path)
        or bool(_snapshots_in(path))
        or bool(_snapshots_in(path / "train"))
    )


def _is_iteration_folder(path: Path) -> bool:
    """Return True for an ``iteration-<i>`` folder of ``dlc-models-pytorch``."""
    return path.parent.name == MODELS_FOLDER and _ITERATION_FOLDER.match(path.name) is not None


def _is_project(path: Path) -> bool:
    return (path / PROJECT_CONFIG).is_file() and any(
        (path / name).is_dir() for name in (EXPORTS_FOLDER, MODELS_FOLDER, TENSORFLOW_MODELS_FOLDER)
    )


# --- the export inside, or the refusal -----------------------------------------------------------


def deeplabcut_model_in(path: Path) -> Path:
    """Return the one export in DeepLabCut's folder ``path``; refuse anything else.

    Raises ModelError for a snapshot, a training folder, or none or several exports, naming the
    ``deeplabcut.export_model`` call to run or the exports to choose from.
    """
    if path.is_file():
        raise ModelError(snapshot_refusal(path))
    if _is_project(path):
        return _project_model(path)
    if path.name == EXPORTS_FOLDER or path.parent.name == EXPORTS_FOLDER:
        return _one_export(path, _exports_in(path)) or _no_export(path)
    trainings = _trainings_in(path)
    if not trainings:
        raise ModelError(f"{path}: a DeepLabCut model folder with no training snapshots in it")
    raise ModelError(_training_refusal(path, trainings, _TRAINING))


def _project_model(project: Path) -> Path:
    exports = _exports_in(project / EXPORTS_FOLDER)
    chosen = _one_export(project, exports)
    if chosen is not None:
        return chosen
    trainings = _trainings_in(project / MODELS_FOLDER)
    if trainings:
        raise ModelError(_training_refusal(project, trainings, _PROJECT))
    if (project / TENSORFLOW_MODELS_FOLDER).is_dir():
        raise ModelError(
            f"{project}: a DeepLabCut project whose models were trained with the TensorFlow "
            f"engine ({TENSORFLOW_MODELS_FOLDER}/), which this program does not run: train a "
            f"PyTorch model with DeepLabCut 3, export it with deeplabcut.export_model, and set "
            f"MODEL_PATH (or --model) to {project / EXPORTS_FOLDER}"
        )
    raise ModelError(
        f"{project}: a DeepLabCut project with no trained model ({MODELS_FOLDER}/ has no "
        f"snapshots, {EXPORTS_FOLDER}/ no export): train and export one with DeepLabCut "
        f"(deeplabcut.train_network, then deeplabcut.export_model)"
    )


def _one_export(folder: Path, exports: list[Path]) -> Path | None:
    """Return the only export; None when there is none; refuse several, naming them."""
    if len(exports) == 1:
        return exports[0]
    if exports:
        names = "; ".join(str(e.relative_to(folder)) for e in exports)
        raise ModelError(
            f"{folder}: {len(exports)} DeepLabCut exports ({names}): set MODEL_PATH (or --model) "
            "to the .pt file of the one to run"
        )
    return None


def _no_export(folder: Path) -> Path:
    """Refuse an export folder without exports, with the command when the project is above."""
    above = next((p for p in folder.parents if _is_project(p)), None)
    trainings = _trainings_in(above / MODELS_FOLDER) if above is not None else []
    match = re.search(r"iteration-(\d+)_shuffle-(\d+)$", folder.name)
    if match is not None:  # DLC_<Task>_<net>_iteration-<i>_shuffle-<s>: that shuffle's only
        wanted = (int(match.group(1)), int(match.group(2)))
        trainings = [t for t in trainings if (t.iteration, t.shuffle) == wanted] or trainings
    if trainings:
        what = "a DeepLabCut export folder with no .pt export in it"
        raise ModelError(_training_refusal(folder, trainings, what))
    raise ModelError(
        f"{folder}: a DeepLabCut export folder with no .pt export in it: export the model with "
        "deeplabcut.export_model (with the project's config.yaml and the shuffle) and set "
        "MODEL_PATH (or --model) to the .pt file it writes"
    )


def _exports_in(folder: Path) -> list[Path]:
    """Return the ``.pt`` exports in an export folder and its subfolders (no snapshots)."""
    if not folder.is_dir():
        return []
    found = [*folder.glob("*.pt"), *folder.glob("*/*.pt")]
    return sorted(f for f in found if f.is_file() and SNAPSHOT.match(f.name) is None)


# --- training folders and the command ------------------------------------------------------------


def _snapshots_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [f for f in folder.glob("snapshot-*.pt") if SNAPSHOT.match(f.name) is not None]


def _trainings_in(folder: Path) -> list[TrainingFolder]:
    """Every ``train/`` folder with snapshots at or below ``folder`` (at most 3 levels down)."""
    candidates = [folder, *folder.glob("*"), *folder.glob("*/*"), *folder.glob("*/*/*")]
    trains = sorted(
        {
            c if _snapshots_in(c) else c / "train"
            for c in candidates
            if c.is_dir() and (_snapshots_in(c) or _snapshots_in(c / "train"))
        }
    )
    return [training_folder(train) for train in trains]


def training_folder(train: Path) -> TrainingFolder:
    """Read a ``train/`` folder's shuffle, iteration, project and snapshots from its place."""
    shuffle_folder = train.parent if train.name == "train" else train
    shuffle_match = _SHUFFLE_FOLDER.search(shuffle_folder.name)
    iteration_match = _ITERATION_FOLDER.match(shuffle_folder.parent.name)
    models = shuffle_folder.parent.parent
    project, prefix = _project_of(models) if models.name == MODELS_FOLDER else (None, "")
    snapshots = [s for s in _snapshots_in(train) if not _is_detector(s)]
    detectors = [s for s in _snapshots_in(train) if _is_detector(s)]
    return TrainingFolder(
        train=train,
        shuffle=int(shuffle_match["shuffle"]) if shuffle_match else None,
        trainset_percent=int(shuffle_match["percent"]) if shuffle_match else None,
        iteration=int(iteration_match["iteration"]) if iteration_match else None,
        project=project,
        modelprefix=prefix,
        snapshots=sorted(snapshots, key=_deeplabcut_order),
        detector_snapshots=sorted(detectors, key=_deeplabcut_order),
    )


def _is_detector(snapshot: Path) -> bool:
    """Return True for a top-down model's detector snapshot (``snapshot-detector-...``)."""
    match = SNAPSHOT.match(snapshot.name)
    return match is not None and bool(match["detector"])


def _deeplabcut_order(snapshot: Path) -> tuple[int, int]:
    """DeepLabCut's order of snapshots: by epoch, the best one last."""
    match = SNAPSHOT.match(snapshot.name)
    assert match is not None
    return (1 if match["best"] else 0, int(match["epochs"]))


def _project_of(models: Path) -> tuple[Path | None, str]:
    """Return the project folder above ``dlc-models-pytorch`` and the modelprefix between them."""
    for project in [models.parent, *list(models.parent.parents)[:3]]:
        if (project / PROJECT_CONFIG).is_file():
            between = models.parent.relative_to(project)
            return project, "" if between == Path() else between.as_posix()
    return None, ""


def _project_config(project: Path | None) -> dict[str, Any]:
    """Return the project's config.yaml as a dict ({} when it is absent or unreadable)."""
    if project is None:
        return {}
    import yaml  # imported on use: only DeepLabCut's folders need it here

    try:
        config = yaml.safe_load((project / PROJECT_CONFIG).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


#: DeepLabCut's export function, and its PyTorch engine's own: only the latter takes the
#: detector's snapshot (``deeplabcut.export_model`` of DeepLabCut 3.0.x has no
#: ``detector_snapshot_index``: TypeError), under the same other keywords.
EXPORT_FUNCTION = "deeplabcut.export_model"
TOPDOWN_EXPORT_FUNCTION = "deeplabcut.pose_estimation_pytorch.apis.export_model"


def export_command(training: TrainingFolder, snapshot: Path | None = None) -> str:
    """Return the DeepLabCut call that exports ``snapshot`` of ``training`` (None: the best)."""
    config = _project_config(training.project)
    config_file = (
        training.project / PROJECT_CONFIG
        if training.project is not None
        else Path("<project folder>") / PROJECT_CONFIG
    )
    arguments = [json.dumps(str(config_file))]
    if training.shuffle is not None:
        arguments.append(f"shuffle={training.shuffle}")
    index = _trainingset_index(config, training.trainset_percent)
    if index:
        arguments.append(f"trainingsetindex={index}")
    pose, detector = _chosen(training, snapshot)
    if pose is not None:
        arguments.append(f"snapshotindex={training.snapshots.index(pose)}")
    if detector is not None:
        arguments.append(f"detector_snapshot_index={training.detector_snapshots.index(detector)}")
    if training.iteration is not None and config.get("iteration") != training.iteration:
        arguments.append(f"iteration={training.iteration}")
    if training.modelprefix:
        arguments.append(f"modelprefix={json.dumps(training.modelprefix)}")
    function = TOPDOWN_EXPORT_FUNCTION if detector is not None else EXPORT_FUNCTION
    return f"{function}({', '.join(arguments)})"


def _chosen(training: TrainingFolder, snapshot: Path | None) -> tuple[Path | None, Path | None]:
    """Return the pose and detector snapshots to export: ``snapshot``'s, else the last."""
    pose = training.snapshots[-1] if training.snapshots else None
    detector = training.detector_snapshots[-1] if training.detector_snapshots else None
    if snapshot is not None and snapshot in training.snapshots:
        pose = snapshot
    if snapshot is not None and snapshot in training.detector_snapshots:
        detector = snapshot
    return pose, detector


def _trainingset_index(config: dict[str, Any], percent: int | None) -> int | None:
    """Return the index of the shuffle's training fraction in the project's ``TrainingFraction``."""
    fractions = config.get("TrainingFraction")
    if percent is None or not isinstance(fractions, list):
        return None
    for index, fraction in enumerate(fractions):
        if isinstance(fraction, int | float) and round(fraction * 100) == percent:
            return index
    return None


def _exports_folder(training: TrainingFolder) -> str:
    if training.project is not None:
        return str(training.project / EXPORTS_FOLDER)
    return f"the project's {EXPORTS_FOLDER}/"


def _describe(training: TrainingFolder) -> str:
    """One shuffle's folder, its shuffle and iteration, and its snapshots in DeepLabCut's order."""
    names = ", ".join(s.name for s in training.snapshots) or "none"
    where = ", ".join(
        part
        for part in (
            f"shuffle {training.shuffle}" if training.shuffle is not None else "",
            f"iteration {training.iteration}" if training.iteration is not None else "",
        )
        if part
    )
    detectors = (
        f"; detector snapshots {', '.join(s.name for s in training.detector_snapshots)}"
        if training.detector_snapshots
        else ""
    )
    return f"{training.train} ({where}; snapshots {names}{detectors})"


def _training_refusal(path: Path, trainings: list[TrainingFolder], what: str) -> str:
    """Return the message for training snapshots without an export: the command(s)."""
    exports = _TO_RUN_EXPORT.format(exports=_exports_folder(trainings[0]))
    if len(trainings) == 1:
        training = trainings[0]
        chosen, _ = _chosen(training, None)
        named = f" ({chosen.name})" if chosen is not None else ""
        return (
            f"{path}: {what}; its training snapshots: {_describe(training)}. This program runs "
            f"what deeplabcut.export_model writes: run `{export_command(training)}`{named} in "
            f"DeepLabCut 3, {exports}"
        )
    commands = "; ".join(f"`{export_command(t)}` for {_describe(t)}" for t in trainings)
    return (
        f"{path}: {what}; {len(trainings)} trained shuffles. This program runs what "
        f"deeplabcut.export_model writes: run the one for the model to use in DeepLabCut 3: "
        f"{commands}; {exports}"
    )


def snapshot_refusal(path: Path) -> str:
    """Return the message for a training snapshot: what it is and the command that exports it."""
    training = training_folder(path.parent)
    found = path in training.snapshots or path in training.detector_snapshots
    command = (
        export_command(training, path)
        if found and training.shuffle is not None
        else 'deeplabcut.export_model("<project folder>/config.yaml", shuffle=<its shuffle>, '
        "snapshotindex=<its index>)"
    )
    detector = " of a top-down model's detector" if _is_detector(path) else ""
    return (
        f"{path}: a DeepLabCut training snapshot{detector} (the training state: metadata, "
        f"model weights, optimizer or scheduler), not an exported model. This program runs "
        f"what deeplabcut.export_model writes: run `{command}` in DeepLabCut 3 "
        f"(snapshotindex counts the snapshots of {path.parent} by epoch, the best one last), "
        + _TO_RUN_EXPORT.format(exports=_exports_folder(training))
    )
