"""Read the ground truth the simulated camera writes (``<camera>.truth.csv``) back into arrays."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

SINGLE_ANIMAL_NAME = "animal1"
"""The identity given to the animal of a single-animal file (which names no individuals)."""

_COORDS = ("x", "y", "likelihood")
_BEHAVIOUR_HEADER = ["frame", "behaviour"]


class Truth(NamedTuple):
    """A truth table as arrays: ``positions`` (T, A, K, 2) px, NaN where empty; ``visible``."""

    frames: np.ndarray
    positions: np.ndarray
    visible: np.ndarray
    animals: tuple[str, ...]
    keypoints: tuple[str, ...]


def read_truth(path: Path | str) -> Truth:
    """Read a ``<camera>.truth.csv`` in DeepLabCut's single- or multi-animal CSV layout.

    Raises ValueError naming the file and what in its header is not as expected.
    """
    path = Path(path)
    rows = _csv_rows(path)
    header = _header(path, rows)
    columns = list(zip(*(row[1:] for row in header.values()), strict=True))
    animals, keypoints = _names(path, columns, multi="individuals" in header)
    body = [row for row in rows[len(header) :] if row]
    width = len(columns) + 1
    if any(len(row) != width for row in body):
        raise ValueError(f"{path}: every row must have {width} cells like the header")
    values = np.array(
        [[float(cell) if cell else np.nan for cell in row[1:]] for row in body], dtype=np.float64
    ).reshape(len(body), len(animals), len(keypoints), 3)
    return Truth(
        frames=np.array([int(row[0]) for row in body], dtype=np.int64),
        positions=values[..., :2],
        visible=values[..., 2] > 0.5,
        animals=animals,
        keypoints=keypoints,
    )


def _header(path: Path, rows: list[list[str]]) -> dict[str, list[str]]:
    """Return the header rows by their first cell, checked to be one of DeepLabCut's layouts."""
    names = [row[0] if row else "" for row in rows[:4]]
    expected = (["scorer", "individuals", "bodyparts", "coords"], ["scorer", "bodyparts", "coords"])
    for layout in expected:
        if names[: len(layout)] == layout:
            header = dict(zip(layout, rows, strict=False))
            if len({len(row) for row in header.values()}) != 1:
                raise ValueError(f"{path}: the header rows have different numbers of cells")
            return header
    raise ValueError(
        f"{path}: expected the header rows scorer, [individuals,] bodyparts, coords of "
        f"DeepLabCut's CSV layout, but the rows start with {', '.join(names)}"
    )


def _names(
    path: Path, columns: list[tuple[str, ...]], *, multi: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the animals and keypoints of the x, y, likelihood column triples."""
    if len(columns) % 3 or [column[-1] for column in columns] != list(_COORDS) * (
        len(columns) // 3
    ):
        raise ValueError(f"{path}: expected x, y, likelihood for every keypoint in 'coords'")
    triples = columns[::3]
    if multi:
        pairs = [(column[1], column[2]) for column in triples]
    else:
        pairs = [(SINGLE_ANIMAL_NAME, column[1]) for column in triples]
    animals = tuple(dict.fromkeys(animal for animal, _ in pairs))
    keypoints = tuple(dict.fromkeys(part for _, part in pairs))
    if pairs != [(animal, part) for animal in animals for part in keypoints]:
        raise ValueError(
            f"{path}: expected the same keypoints in the same order for every individual"
        )
    return animals, keypoints


class BehaviourLabels(NamedTuple):
    """A behaviour label file as arrays: ``frames`` (T,) and ``labels`` (T,) strings."""

    frames: np.ndarray
    labels: np.ndarray


def read_behaviours(path: Path | str) -> BehaviourLabels:
    """Read a ``<camera>.behaviour.csv``; ValueError naming the file and first bad row."""
    path = Path(path)
    rows = [row for row in _csv_rows(path) if row]
    if not rows or rows[0] != _BEHAVIOUR_HEADER:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise ValueError(f"{path}: expected the header frame,behaviour, found {found}")
    frames: list[int] = []
    labels: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip().isdigit() or not row[1]:
            raise ValueError(f"{path}: line {number} is not 'frame,behaviour': {','.join(row)}")
        frames.append(int(row[0]))
        labels.append(row[1])
    return BehaviourLabels(np.array(frames, dtype=np.int64), np.array(labels, dtype=str))


def _csv_rows(path: Path) -> list[list[str]]:
    """Return every row of the CSV file at ``path`` (UTF-8), empty rows included."""
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))
