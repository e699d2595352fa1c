"""An ensemble's models and their keypoints: the first model's names, the others' mapped onto them.

Design: docs/ensembles.md, "Mapping keypoints".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deeplabstream.pose.model import ModelDescription, ModelError

#: ``(a model's keypoint, the ensemble's keypoint)`` pairs, as ``KEYPOINT_MAP`` writes them.
KeypointMap = tuple[tuple[str, str], ...]

KEYPOINT_MAP_SYNTAX = (
    "pairs MODEL_NAME=ENSEMBLE_NAME, comma-separated (snout=nose, tailbase=tail_base): a model's "
    "keypoint MODEL_NAME is the ensemble's ENSEMBLE_NAME (the first model's name)"
)


def parse_keypoint_map(text: str) -> KeypointMap:
    """Return the pairs of a ``KEYPOINT_MAP`` text (``"snout=nose, a = b"``); ValueError if bad."""
    pairs: list[tuple[str, str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        source, equals, target = (word.strip() for word in item.partition("="))
        names = source + target
        if not equals or not source or not target or "=" in target or any(map(str.isspace, names)):
            raise ValueError(f"{item!r} is not MODEL_NAME=ENSEMBLE_NAME")
        if source in dict(pairs):
            raise ValueError(f"{source!r} is mapped twice")
        pairs.append((source, target))
    return tuple(pairs)


def keypoint_map_text(keypoint_map: KeypointMap) -> str:
    """Return ``keypoint_map`` as ``KEYPOINT_MAP`` text (:func:`parse_keypoint_map` reads it)."""
    return ", ".join(f"{source}={target}" for source, target in keypoint_map)


def member_rows(
    ensemble: Sequence[str], member: ModelDescription, keypoint_map: KeypointMap, which: str
) -> np.ndarray:
    """Return the rows of ``member``'s keypoints that are the ensemble's, in the ensemble's order.

    ``which`` names the member for messages. Raises ModelError when the member lacks a keypoint or
    maps two onto one (:func:`mapping_problem`), listing both models' keypoints.
    """
    problem = mapping_problem(ensemble, member.keypoints, keypoint_map)
    if problem:
        raise ModelError(f"{which}: {problem}")
    renamed = _renamed(member.keypoints, keypoint_map)
    return np.array([renamed.index(name) for name in ensemble], dtype=np.intp)


def _renamed(keypoints: Sequence[str], keypoint_map: KeypointMap) -> list[str]:
    mapping = dict(keypoint_map)
    return [mapping.get(name, name) for name in keypoints]


def mapping_problem(
    ensemble: Sequence[str], keypoints: Sequence[str], keypoint_map: KeypointMap
) -> str:
    """Return why a model of ``keypoints`` cannot be read as the ensemble's ("" when it can)."""
    renamed = _renamed(keypoints, keypoint_map)
    doubled = sorted({name for name in renamed if renamed.count(name) > 1 and name in ensemble})
    if doubled:
        return (
            f"two of its keypoints ({', '.join(keypoints)}) are the ensemble's "
            f"{', '.join(doubled)} after KEYPOINT_MAP; map only one of them"
        )
    missing = [name for name in ensemble if name not in renamed]
    if missing:
        return (
            f"it has no keypoint {', '.join(missing)} of the ensemble (the first model's "
            f"keypoints: {', '.join(ensemble)}; this model's: {', '.join(keypoints)}). Name the "
            "models of an ensemble by the same keypoints, or map this model's names onto the "
            "first's with KEYPOINT_MAP = MODEL_NAME=ENSEMBLE_NAME, ... in [Pose] (or the "
            "camera's section); docs/ensembles.md"
        )
    return ""


def keypoint_map_problems(
    ensemble: Sequence[str], members: Sequence[Sequence[str]], keypoint_map: KeypointMap
) -> list[str]:
    """Return each ``KEYPOINT_MAP`` pair that names no keypoint it could map (a typing error)."""
    problems = []
    theirs = sorted({name for keypoints in members for name in keypoints})
    for source, target in keypoint_map:
        pair = f"{source}={target}"
        if source not in theirs:
            problems.append(
                f"{pair}: no model of the ensemble after the first has a keypoint {source!r} "
                f"(theirs: {', '.join(theirs)})"
            )
        elif target not in ensemble:
            problems.append(
                f"{pair}: {target!r} is no keypoint of the ensemble (the first model's: "
                f"{', '.join(ensemble)}); the right name is the first model's"
            )
    return problems


def check_member(description: ModelDescription, which: str) -> None:
    """Refuse (ModelError) a model an ensemble cannot hold: one that finds several animals."""
    if description.multi_animal or description.identity_classes:
        raise ModelError(
            f"{which} ({description.name}, {description.framework}) finds several animals; an "
            "ensemble is of single-animal models (each model's animals would first have to be "
            "matched to the others'): name one multi-animal model in MODEL_PATH, or an ensemble "
            "of single-animal models (docs/ensembles.md)"
        )


def member_name(index: int, path: object) -> str:
    """Return how messages name an ensemble's member: ``model 2 (/lab/lp/model.onnx)``."""
    return f"model {index + 1} ({path if path is not None else 'the bundled model'})"
