"""DeepLabCut labels (``CollectedData_<scorer>.csv`` or ``.h5``) read into one typed form.

Every layout DeepLabCut wrote; an ``.h5`` is read by :mod:`offline.labels_hdf5`, never by
pandas.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd

from deeplabstream.core.errors import LabelsError
from deeplabstream.offline.labels_hdf5 import read_labels_table

UNIQUE_INDIVIDUAL = "single"
"""The name DeepLabCut gives the pseudo-individual that holds the unique bodyparts."""

_HEADER_NAMES = ("scorer", "individuals", "bodyparts", "coords")


@dataclass(frozen=True)
class LabeledData:
    """Labeled frames of one animal.

    ``image_paths`` are absolute and may be missing (:meth:`missing_images`); ``coordinates``
    (N, K, 2) in image pixels, NaN where not labelled.
    """

    source: Path
    scorer: str
    project_folder: Path
    image_paths: tuple[Path, ...]
    keypoints: tuple[str, ...]
    coordinates: np.ndarray
    layout: str
    individual: str | None = None

    def __post_init__(self) -> None:
        """Check that the arrays agree with the names."""
        expected = (len(self.image_paths), len(self.keypoints), 2)
        if self.coordinates.shape != expected:
            raise LabelsError(
                f"{self.source}: coordinates of shape {self.coordinates.shape}, expected {expected}"
            )

    def __len__(self) -> int:
        """Return the number of labeled images."""
        return len(self.image_paths)

    def subset(self, indices: np.ndarray | list[int]) -> LabeledData:
        """Return the same labels restricted to the images at ``indices`` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        return LabeledData(
            source=self.source,
            scorer=self.scorer,
            project_folder=self.project_folder,
            image_paths=tuple(self.image_paths[i] for i in indices),
            keypoints=self.keypoints,
            coordinates=self.coordinates[indices].copy(),
            layout=self.layout,
            individual=self.individual,
        )

    def missing_images(self) -> list[Path]:
        """Image paths that do not exist on disk."""
        return [path for path in self.image_paths if not path.is_file()]


def read_dlc_labels(path: str | Path, individual: str | None = None) -> LabeledData:
    """Read DeepLabCut labels (``CollectedData_<scorer>.csv`` or ``.h5``) in any of its layouts.

    ``individual`` picks one of a multi-animal file (needed when it has several). Raises
    LabelsError when the file is unreadable, not DeepLabCut's layout, or the individual is
    not chosen or unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: no such labels file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = _read_csv(path)
    elif suffix in (".h5", ".hdf5", ".hdf"):
        table = _checked_table(path, read_labels_table(path))
    else:
        raise LabelsError(f"{path}: expected a DeepLabCut CollectedData_*.csv or .h5 file")
    return _labeled_data(path, table, individual)


def _read_csv(path: Path) -> pd.DataFrame:
    """Read the labels table: column levels named as DeepLabCut names them, a string index."""
    raw = _read_csv_cells(path)
    first_column = raw.iloc[:, 0].tolist()
    header_rows = 0
    while header_rows < len(first_column) and first_column[header_rows] in _HEADER_NAMES:
        header_rows += 1
    names = tuple(first_column[:header_rows])
    if names not in (("scorer", "bodyparts", "coords"), _HEADER_NAMES):
        raise LabelsError(
            f"{path}: not a DeepLabCut labels file: its first column starts with "
            f"{first_column[:4]}, expected scorer, [individuals,] bodyparts, coords"
        )
    # Index columns are those whose header cells are blank after the row name: 1 in the old
    # layout (the path), 3 from DeepLabCut 2.3 on (labeled-data, video, image).
    scorer_row = raw.iloc[0].tolist()
    index_columns = 1
    while index_columns < len(scorer_row) and scorer_row[index_columns] == "":
        index_columns += 1
    if index_columns not in (1, 3):
        raise LabelsError(f"{path}: {index_columns} index columns; DeepLabCut writes 1 or 3")
    header = raw.iloc[:header_rows, index_columns:].copy()
    # Some writers leave the scorer row shorter than the others; its value is the same throughout.
    header.iloc[0] = header.iloc[0].replace("", np.nan).ffill().fillna("")
    body = raw.iloc[header_rows:]
    columns = pd.MultiIndex.from_arrays([header.iloc[i].tolist() for i in range(header_rows)])
    columns = columns.set_names(list(names))
    values = body.iloc[:, index_columns:].replace("", np.nan)
    try:
        numbers = values.astype(np.float64).to_numpy()
    except ValueError as error:
        raise LabelsError(f"{path}: a coordinate is not a number: {error}") from None
    index = [tuple(row) for row in body.iloc[:, :index_columns].itertuples(index=False)]
    if index_columns == 1:
        row_index = pd.Index([row[0] for row in index])
    else:
        row_index = pd.MultiIndex.from_tuples(index)
    return pd.DataFrame(numbers, index=row_index, columns=columns)


def _read_csv_cells(path: Path) -> pd.DataFrame:
    """Every cell as a string; rows shorter than the longest are padded with empty cells."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LabelsError(f"{path}: cannot be read as CSV: {error}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise LabelsError(f"{path}: the file is empty")
    width = max(len(row) for row in rows)
    return pd.DataFrame([row + [""] * (width - len(row)) for row in rows], dtype=str)


def _checked_table(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` when it has DeepLabCut's multi-level columns; LabelsError otherwise."""
    if not isinstance(table.columns, pd.MultiIndex):
        raise LabelsError(f"{path}: not a DeepLabCut labels table (no multi-level columns)")
    return table


def _labeled_data(path: Path, table: pd.DataFrame, individual: str | None) -> LabeledData:
    """LabeledData from a table with DeepLabCut's column levels."""
    levels = list(table.columns.names)
    if "bodyparts" not in levels or "coords" not in levels:
        raise LabelsError(f"{path}: columns need 'bodyparts' and 'coords' levels, got {levels}")
    scorers = table.columns.get_level_values(0).unique().tolist()
    multi = "individuals" in levels
    layout = f"{'multi-animal' if multi else 'single-animal'}, {table.index.nlevels}-column index"
    keep = np.ones(len(table.columns), dtype=bool)
    chosen = None
    if multi:
        keep, chosen = _columns_of_individual(path, table.columns, individual, layout)
    columns = table.columns[keep]
    keypoints = _keypoint_names(columns)
    try:
        values = table.to_numpy(dtype=np.float64)[:, keep]
    except (TypeError, ValueError) as error:  # a column of objects or words, not coordinates
        raise LabelsError(f"{path}: a coordinate is not a number: {error}") from None
    position: dict[tuple[str, str], int] = {}
    for i, (part, coord) in enumerate(
        zip(columns.get_level_values("bodyparts"), columns.get_level_values("coords"), strict=True)
    ):
        position.setdefault((str(part), str(coord)), i)  # the first wins if a name repeats
    if not keypoints:
        raise LabelsError(f"{path}: no bodypart has both an x and a y column")
    coordinates = np.stack(
        [values[:, [position[(name, "x")], position[(name, "y")]]] for name in keypoints], axis=1
    )
    project = _project_folder(path)
    images = tuple(_image_path(project, path.parent, entry) for entry in table.index)
    return LabeledData(
        source=path,
        scorer=str(scorers[0]),
        project_folder=project,
        image_paths=images,
        keypoints=keypoints,
        coordinates=coordinates,
        layout=layout,
        individual=chosen,
    )


def _columns_of_individual(
    path: Path, columns: pd.MultiIndex, individual: str | None, layout: str
) -> tuple[np.ndarray, str]:
    """Select one individual's columns plus the unique bodyparts; refuse an ambiguous choice."""
    names = list(dict.fromkeys(columns.get_level_values("individuals")))
    animals = [name for name in names if name != UNIQUE_INDIVIDUAL]
    if individual is None:
        if len(animals) > 1:
            raise LabelsError(
                f"{path}: {layout} labels with individuals {', '.join(animals)}; only one animal "
                f"can be trained on for now: choose one (individual=... or --individual)"
            )
        individual = animals[0] if animals else UNIQUE_INDIVIDUAL
    if individual not in names:
        raise LabelsError(
            f"{path}: no individual '{individual}' in the labels; they name {', '.join(names)}"
        )
    keep = columns.get_level_values("individuals").isin({individual, UNIQUE_INDIVIDUAL})
    return np.asarray(keep), individual


def _keypoint_names(columns: pd.MultiIndex) -> tuple[str, ...]:
    """Body part names in the order they first appear, keeping only those with x and y."""
    parts = [str(p) for p in columns.get_level_values("bodyparts")]
    pairs = set(zip(parts, (str(c) for c in columns.get_level_values("coords")), strict=True))
    return tuple(n for n in dict.fromkeys(parts) if (n, "x") in pairs and (n, "y") in pairs)


def _project_folder(labels_path: Path) -> Path:
    """Find the DeepLabCut project: the parent of ``labeled-data``, else the file's folder."""
    folder = labels_path.resolve().parent
    if folder.parent.name == "labeled-data":
        return folder.parent.parent
    return folder


def _image_path(project: Path, labels_folder: Path, entry: object) -> Path:
    """Where an image is: under the project folder, else beside the labels file (moved files)."""
    relative = _relative_image_path(entry)
    candidate = project / relative
    if not candidate.is_file() and (labels_folder / relative.name).is_file():
        return (labels_folder / relative.name).resolve()
    return candidate


def _relative_image_path(entry: object) -> Path:
    """Turn an index entry (a path string or a tuple of its parts) into a relative path."""
    parts = [str(p) for p in entry] if isinstance(entry, tuple) else [str(entry)]
    joined = "/".join(parts)
    # Labels made on Windows store backslashes; both flavours become a portable relative path.
    pure = PureWindowsPath(joined) if "\\" in joined else PurePosixPath(joined)
    return Path(*pure.parts)
