"""Labelled images scored the way the framework scores them (``utils/ImageAnalyzer.py``).

docs/outputs.md, "Labelled images (utils/ImageAnalyzer.py)".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.offline.labels import LabelsError, read_dlc_labels
from deeplabstream.outputs.pose.files import ENSEMBLE_COORDS
from deeplabstream.pose.ensemble.members import (
    KeypointMap,
    check_member,
    member_name,
    member_rows,
)
from deeplabstream.pose.ensemble.statistics import ensemble_frame
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.formats.lightning_context import (
    CONTEXT_FRAMES,
    context_image_paths,
    context_of,
)
from deeplabstream.pose.loading import open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.context import ContextEstimator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: DeepLabCut's default ``pcutoff``: its "RMSE with p-cutoff" leaves out predictions below it.
DLC_PCUTOFF = 0.6
PREDICTIONS_SUFFIX = "_predictions.csv"
ENSEMBLE_PREDICTIONS_SUFFIX = "_predictions_ensemble.csv"  # an ensemble's spread, EKS's columns
MEMBER_PREDICTIONS_SUFFIX = "_predictions_model{}.csv"  # each model's own (EKS's input files)
PIXEL_ERROR_SUFFIX = "_predictions_pixel_error.csv"
SCORES_SUFFIX = "_predictions_scores.json"


class ImagesError(DeepLabStreamError, ValueError):
    """The images or labels cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class ImageSet:
    """The images to predict, the names they go by in the output, and their labels if any.

    ``labels`` (N, K, 2) in image pixels, NaN where unlabelled, None for a folder.
    """

    source: Path
    paths: tuple[Path, ...]
    names: tuple[str, ...]
    labels: np.ndarray | None = None
    label_keypoints: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        """The output files' stem: the labels file's name, or the folder's."""
        return self.source.stem if self.source.is_file() else self.source.name


def find_images(source: Path) -> ImageSet:
    """Return the images of a folder (sorted, not recursive) or of a labels file.

    Raises ImagesError for a folder without images, a labels file not in DeepLabCut's layout,
    or missing images (every one named).
    """
    source = Path(source).expanduser().resolve()
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ImagesError(
                f"{source}: the folder holds no image ({', '.join(IMAGE_SUFFIXES)}); name a "
                "folder of labelled frames or a CollectedData labels file"
            )
        names = tuple(f"{source.name}/{p.name}" for p in paths)
        return ImageSet(source, tuple(paths), names)
    if not source.is_file():
        raise ImagesError(f"{source}: no such file or folder; check the path")
    return _labelled_images(source)


def _labelled_images(source: Path) -> ImageSet:
    """Return the images of a DeepLabCut-layout labels file, with their labels."""
    try:
        labels = read_dlc_labels(source)
    except LabelsError as error:
        raise ImagesError(str(error)) from None
    missing = labels.missing_images()
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ImagesError(
            f"{source}: {len(missing)} labelled image(s) not found: {shown}{more} (paths are "
            f"relative to {labels.project_folder}); copy them back, or name the images' folder"
        )
    names = tuple(
        _label_name(path, labels.project_folder, source.parent) for path in labels.image_paths
    )
    return ImageSet(source, labels.image_paths, names, labels.coordinates, tuple(labels.keypoints))


def _label_name(path: Path, project: Path, labels_folder: Path) -> str:
    """Return an image's path as the labels file names it (relative, POSIX style)."""
    for root in (project, labels_folder):
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def image_description(description: ModelDescription) -> ModelDescription:
    """Return the model as its framework runs it on a labelled image (see the module's notes)."""
    if description.framework == "lightning-pose":
        return dataclasses.replace(description, resize="bicubic-uint8")
    return description


def read_image(path: Path) -> np.ndarray:
    """Return an image as BGR uint8 (grey to 3 channels); ImagesError when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImagesError(f"{path}: cannot be read as an image (damaged, or not an image)")
    return image


def predict(
    images: ImageSet,
    description: ModelDescription,
    open_backend: Callable[[ModelDescription], Any],
    report: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Return every image's keypoints: (N, A, K, 3) x, y in image pixels and the likelihood.

    Each image runs at its own size through the model's image pre-processing; ``open_backend``
    opens the network of a description (one per input size met).
    """

    def window(index: int, image: np.ndarray) -> list[np.ndarray]:
        path = images.paths[index]
        return [
            image if other == path else _same_size(read_image(other), image, other)
            for other in context_image_paths(path)
        ]

    return predict_frames(
        lambda index: read_image(images.paths[index]),
        len(images.paths),
        image_description(description),
        open_backend,
        report,
        window,
    )


def predict_frames(
    frame: Callable[[int], np.ndarray],
    count: int,
    model: ModelDescription,
    open_backend: Callable[[ModelDescription], Any],
    report: Callable[[int], None] | None = None,
    window: Callable[[int, np.ndarray], list[np.ndarray]] | None = None,
) -> np.ndarray:
    """Return the keypoints of ``count`` frames (``frame(i)``) as :func:`predict` does.

    A context model sees ``window(i, frame)`` (default: the frame as its own context).
    """
    estimators: dict[tuple[int, ...], PoseEstimator] = {}
    backends: dict[tuple[int, int], Any] = {}
    others: list[Any] = []  # second graphs (a context model's heads, a top-down pose stage...)

    def open_stage(stage: ModelDescription) -> Any:
        others.append(open_backend(stage))
        return others[-1]

    points = np.full((count, model.animals, len(model.keypoints), 3), np.nan)
    try:
        for index in range(count):
            image = frame(index)
            estimator = estimators.get(image.shape)
            if estimator is None:
                sized = _at_size(model, image.shape[:2])
                size = (sized.input_height, sized.input_width)
                if size not in backends:
                    backends[size] = open_backend(sized)
                batch = CONTEXT_FRAMES if context_of(sized) is not None else 1  # a window at once
                estimator = estimators[image.shape] = open_estimator(
                    sized, backends[size], image.shape, max_batch=batch, open_stage=open_stage
                )
            if isinstance(estimator, ContextEstimator):
                frames = window(index, image) if window else [image] * CONTEXT_FRAMES
                points[index] = estimator.estimate_windows([frames])[0]
            else:
                points[index] = estimator.estimate_animals([image])[0]
            if report is not None:
                report(index + 1)
    finally:
        for backend in [*backends.values(), *others]:
            backend.close()
    return points


def _same_size(image: np.ndarray, centre: np.ndarray, path: Path) -> np.ndarray:
    """Return a context image; one of another size than its centre image is refused."""
    if image.shape != centre.shape:
        raise ImagesError(
            f"{path}: a context image of the Lightning Pose context model is "
            f"{image.shape[1]}x{image.shape[0]}, its labelled image "
            f"{centre.shape[1]}x{centre.shape[0]}; context images must be the same size"
        )
    return image


def _at_size(description: ModelDescription, size: tuple[int, int]) -> ModelDescription:
    """Return the model fed at an image's own size when it takes any size, else as it is."""
    return description.at_input_size(*size) if description.any_input_size else description


@dataclass(frozen=True)
class EnsemblePredictions:
    """An ensemble's predictions of the images (docs/ensembles.md).

    ``members`` (M, N, K, 3); ``points`` (N, 1, K, 3); ``variance`` (N, K, 2) px²; ``std``
    (N, K) px.
    """

    members: np.ndarray
    points: np.ndarray
    variance: np.ndarray
    std: np.ndarray


def predict_ensemble(
    images: ImageSet,
    descriptions: list[ModelDescription],
    open_backend: Callable[[ModelDescription], Any],
    keypoint_map: KeypointMap = (),
    report: Callable[[int], None] | None = None,
) -> EnsemblePredictions:
    """Return an ensemble's predictions: each model predicts every image as :func:`predict` does.

    Raises ModelError for a model that finds several animals or lacks one of the first model's
    keypoints.
    """
    ensemble = descriptions[0].keypoints
    rows = []
    for index, description in enumerate(descriptions):
        which = member_name(index, description.model_file)
        check_member(description, which)
        rows.append(member_rows(ensemble, description, keypoint_map if index else (), which))
    members = np.stack(
        [
            predict(images, description, open_backend, report)[:, 0, row]
            for description, row in zip(descriptions, rows, strict=True)
        ]
    )
    frames = [ensemble_frame(members[:, n]) for n in range(members.shape[1])]
    return EnsemblePredictions(
        members,
        np.stack([frame.keypoints for frame in frames])[:, None],
        np.stack([frame.variance for frame in frames]),
        np.stack([frame.std for frame in frames]),
    )


def ensemble_table(
    images: ImageSet, ensemble: EnsemblePredictions, keypoints: Iterable[str], scorer: str
) -> pd.DataFrame:
    """Return the ensemble's predictions, by image name, in ``<camera>.ensemble.csv``'s columns."""
    names = list(keypoints)
    points = ensemble.points[:, 0]
    values = np.concatenate([points, ensemble.variance], axis=-1)
    columns = pd.MultiIndex.from_tuples(
        [(scorer, k, c) for k in names for c in ENSEMBLE_COORDS],
        names=["scorer", "bodyparts", "coords"],
    )
    return pd.DataFrame(values.reshape(len(points), -1), index=list(images.names), columns=columns)


# -- the files ------------------------------------------------------------------------------


def predictions_table(
    images: ImageSet, points: np.ndarray, keypoints: Iterable[str], scorer: str
) -> pd.DataFrame:
    """Return the predictions in DeepLabCut's layout (``individuals`` row for several animals)."""
    names = list(keypoints)
    animals = points.shape[1]
    coords = ("x", "y", "likelihood")
    if animals == 1:
        columns = pd.MultiIndex.from_tuples(
            [(scorer, k, c) for k in names for c in coords],
            names=["scorer", "bodyparts", "coords"],
        )
        values = points[:, 0].reshape(len(points), -1)
    else:
        columns = pd.MultiIndex.from_tuples(
            [
                (scorer, f"animal{a + 1}", k, c)
                for a in range(animals)
                for k in names
                for c in coords
            ],
            names=["scorer", "individuals", "bodyparts", "coords"],
        )
        values = points.reshape(len(points), -1)
    return pd.DataFrame(values, index=list(images.names), columns=columns)


@dataclass(frozen=True)
class Scores:
    """Pixel errors of the predictions against the labels.

    ``errors`` (N, K) px, NaN where unlabelled; ``deeplabcut_rmse`` is DeepLabCut's "RMSE" (the
    mean error), ``deeplabcut_rmse_pcutoff`` over likelihoods >= ``pcutoff`` (NaN: none).
    """

    errors: np.ndarray
    per_keypoint: dict[str, dict[str, float]]
    deeplabcut_rmse: float
    deeplabcut_rmse_pcutoff: float
    pcutoff: float


def score(
    images: ImageSet, points: np.ndarray, keypoints: tuple[str, ...], pcutoff: float = DLC_PCUTOFF
) -> Scores:
    """Return the pixel errors of a single animal's predictions against ``images``' labels.

    Raises ImagesError without labels, with several animals, or with no keypoint name shared.
    """
    if images.labels is None:
        raise ImagesError(f"{images.source}: no labels to score against (a folder of images)")
    if points.shape[1] != 1:
        raise ImagesError(
            f"{images.source}: pixel errors need a single-animal model (this one reports "
            f"{points.shape[1]} animals, which the labels do not match one to one)"
        )
    shared = [k for k in images.label_keypoints if k in keypoints]
    if not shared:
        raise ImagesError(
            f"{images.source}: its keypoints ({', '.join(images.label_keypoints)}) are not the "
            f"model's ({', '.join(keypoints)})"
        )
    predicted = points[:, 0, [keypoints.index(k) for k in shared]]
    labels = images.labels[:, [images.label_keypoints.index(k) for k in shared]]
    errors = np.linalg.norm(predicted[..., :2] - labels, axis=-1)
    confident = np.where(predicted[..., 2] >= pcutoff, errors, np.nan)
    per_keypoint = {k: _figures(errors[:, i]) for i, k in enumerate(shared)}
    return Scores(
        errors=errors,
        per_keypoint=per_keypoint,
        deeplabcut_rmse=_mean(errors),
        deeplabcut_rmse_pcutoff=_mean(confident),
        pcutoff=pcutoff,
    )


def _figures(errors: np.ndarray) -> dict[str, float]:
    finite = errors[np.isfinite(errors)]
    if not len(finite):
        return {"median": float("nan"), "p95": float("nan"), "mean": float("nan"), "count": 0}
    return {
        "median": float(np.median(finite)),
        "p95": float(np.percentile(finite, 95)),
        "mean": float(finite.mean()),
        "count": len(finite),
    }


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def write_outputs(
    folder: Path,
    images: ImageSet,
    predictions: pd.DataFrame,
    scores: Scores | None,
    keypoints: tuple[str, ...],
) -> list[Path]:
    """Write the predictions (and with labels, the pixel errors and scores); return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{images.stem}{PREDICTIONS_SUFFIX}"]
    predictions.to_csv(written[0])
    if scores is None:
        return written
    shared = list(scores.per_keypoint)
    errors = pd.DataFrame(scores.errors, index=list(images.names), columns=shared)
    written.append(folder / f"{images.stem}{PIXEL_ERROR_SUFFIX}")
    errors.to_csv(written[-1])
    written.append(folder / f"{images.stem}{SCORES_SUFFIX}")
    summary = {
        "images": len(images.paths),
        "keypoints": shared,
        "per_keypoint_px": scores.per_keypoint,
        "deeplabcut_rmse_px": scores.deeplabcut_rmse,
        "deeplabcut_rmse_pcutoff_px": scores.deeplabcut_rmse_pcutoff,
        "pcutoff": scores.pcutoff,
        "model_keypoints": list(keypoints),
    }
    written[-1].write_text(json.dumps(summary, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    return written


def score_lines(scores: Scores) -> list[str]:
    """Return the scores as lines for a terminal: per keypoint, then the frameworks' figures."""
    width = max(len(k) for k in scores.per_keypoint)
    lines = [f"{'keypoint':<{width}}  median px   p95 px   labelled"]
    for keypoint, figures in scores.per_keypoint.items():
        lines.append(
            f"{keypoint:<{width}}  {figures['median']:9.3f} {figures['p95']:8.3f} "
            f"{figures['count']:10d}"
        )
    lines.append(
        f"DeepLabCut's RMSE (mean error): {scores.deeplabcut_rmse:.3f} px; with p-cutoff "
        f"{scores.pcutoff:g}: {scores.deeplabcut_rmse_pcutoff:.3f} px"
    )
    return lines
