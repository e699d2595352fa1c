"""DeepLabCut labels (``CollectedData_<scorer>.csv`` or ``.h5``) read into one typed form.

Read by training (offline.training) and by the labelled-image predictions
(offline.replay.images); the offline tools do not import each other, so the readers sit beside
them, in the offline package (docs/architecture.md).

DeepLabCut has written its labels in several layouts over the years, all of which are read:

* **header rows**: ``scorer``, ``bodyparts``, ``coords`` (single animal), or ``scorer``,
  ``individuals``, ``bodyparts``, ``coords`` (multi-animal; an individual named ``single`` holds
  the "unique" bodyparts that belong to no animal);
* **index**: one column of image paths (``labeled-data/video/img000.png``), or, from DeepLabCut
  2.3 on, the same path split over three columns (``labeled-data``, ``video``, ``img000.png``).

Image paths in the files are relative to the DeepLabCut project folder, which is two folders above
the labels file (``project/labeled-data/<video>/CollectedData_x.csv``). Windows separators are
accepted.

Only one animal is trained on for now: a multi-animal file with several individuals is refused
unless one is chosen with ``individual=``; its unique bodyparts are then appended to that animal's.

An ``.h5`` file is never allowed to run code when read (issue 37): pandas' HDF5 reader unpickles
columns of Python objects, and PyTables unpickles pickled attributes, either of which a crafted
file can use to run a command. So every node of the file is first inspected with ``h5py``
(which never unpickles; :func:`pickle_problems`): a column of Python objects, an attribute of
any type (bytes or text, fixed or variable length, arrays of them; issue 44) holding a pickle
that would import or call anything (:data:`UNSAFE_PICKLE_OPCODES`), an attribute h5py cannot
read, or a link into another file is refused with a message unless the user passes
``trust_pickle`` (``--trust-pickle``). DeepLabCut's own files hold numbers and pickles of lists,
tuples, dicts and strings only, and pass.
"""

from __future__ import annotations

import csv
import importlib.util
import pickletools
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd

from deeplabstream.core.errors import LabelsError

UNIQUE_INDIVIDUAL = "single"
"""The name DeepLabCut gives the pseudo-individual that holds the unique bodyparts."""

_HEADER_NAMES = ("scorer", "individuals", "bodyparts", "coords")


@dataclass(frozen=True)
class LabeledData:
    """Labeled frames of one animal.

    Attributes
    ----------
    source
        The labels file.
    scorer
        DeepLabCut's scorer name (the labeller).
    project_folder
        The DeepLabCut project folder the image paths are relative to.
    image_paths
        Absolute path of each labeled image (they may not all exist; see :meth:`missing_images`).
    keypoints
        Keypoint names, in the order of the keypoint axis of :attr:`coordinates`.
    coordinates
        Array (N, K, 2) of x, y in image pixels; NaN where a keypoint is not labeled.
    layout
        How the file was laid out, for messages: e.g. ``single-animal, 3-column index``.
    individual
        The individual taken from a multi-animal file; None for single-animal files.
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


def read_dlc_labels(
    path: str | Path, individual: str | None = None, *, trust_pickle: bool = False
) -> LabeledData:
    """Read DeepLabCut labels in any of its layouts.

    Parameters
    ----------
    path
        ``CollectedData_<scorer>.csv`` or ``.h5`` (the ``.h5`` needs the ``tables`` package).
    individual
        For multi-animal files: the individual to take. May be omitted when the file has a single
        individual (besides ``single``, the unique bodyparts).
    trust_pickle
        Read an ``.h5`` file even when it holds pickled Python objects (which run code when
        read): only for a file the user trusts (``--trust-pickle``).

    Returns
    -------
    LabeledData
        Image paths resolved against the DeepLabCut project folder, keypoint names and coordinates.

    Raises
    ------
    LabelsError
        When the file is missing or unreadable, its layout is not DeepLabCut's, a multi-animal
        file has several individuals and none (or an unknown one) was chosen, or an ``.h5`` file
        holds pickled objects and ``trust_pickle`` is not given.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: no such labels file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = _read_csv(path)
    elif suffix in (".h5", ".hdf5", ".hdf"):
        table = _read_h5(path, trust_pickle)
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


def hdf5_available() -> bool:
    """Whether pandas can read ``.h5`` labels (it needs the ``tables`` package)."""
    return importlib.util.find_spec("tables") is not None


#: Pickle opcodes that import, call or build objects: a pickle holding none of them can only
#: make numbers, strings, lists, tuples, dicts and sets, and cannot run code.
UNSAFE_PICKLE_OPCODES = frozenset(
    {
        "GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD",
        "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
    }
)  # fmt: skip
#: The opcodes that import (a module, or a callable registered with copyreg): nothing can be
#: called without one of them first.
IMPORT_PICKLE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "EXT1", "EXT2", "EXT4"})
TRUST_PICKLE_HINT = (
    "reading it would unpickle Python objects, which can run any code the file's author put "
    "there. Refused; if you made this file yourself or trust its source, pass --trust-pickle "
    "(trust_pickle=True in Python), or use the .csv DeepLabCut writes beside it"
)


#: PyTables' pseudo-atoms whose rows are text, never unpickled; any other (``object``: every row
#: a pickle) is refused.
SAFE_PSEUDO_ATOMS = frozenset({b"vlstring", b"vlunicode"})


def pickle_problems(path: Path) -> list[str]:
    """Return where an ``.h5`` file holds pickles that could run code (read with h5py only).

    Every node (the root, groups, datasets, named types) is inspected before pandas or PyTables
    open the file:

    - every attribute, in whatever form h5py hands it back (bytes, text, fixed or variable
      length, arrays of any shape, compound or opaque values): each piece of text or bytes in
      it that parses as a pickle which imports or calls anything is refused. PyTables hands
      text attributes to ``pickle.loads`` as bytes, whatever their name and h5py's type;
    - an attribute h5py cannot read is refused too: PyTables might read it;
    - every dataset whose PyTables pseudo-atom (``PSEUDOATOM``, in any form) is not text: its
      rows are pickles (how pandas stores a column or index of objects);
    - a link into another file, which the inspection does not follow.

    Nothing is unpickled here: values are parsed opcode by opcode (``pickletools``).
    """
    try:
        import h5py
    except ImportError:
        return [f"{path}: the 'h5py' package, needed to check the file safely, is not installed"]
    problems: list[str] = []

    def look(name: str, node: object) -> None:
        problems.extend(f"{path}: /{name} {problem}" for problem in _node_problems(node))

    def look_at_link(name: str, link: object) -> None:
        if isinstance(link, h5py.ExternalLink):
            problems.append(
                f"{path}: /{name} links into another file ({link.filename}), which is not checked"
            )

    try:
        with h5py.File(path, "r") as file:
            look("", file)
            file.visititems(look)
            file.visititems_links(look_at_link)
    except OSError as error:
        raise LabelsError(f"{path}: cannot be read as HDF5: {error}") from None
    return problems


def _node_problems(node: object) -> list[str]:
    """Return what in one node of an HDF5 file could run code when PyTables reads it."""
    attributes = getattr(node, "attrs", None)
    if attributes is None:
        return []
    problems = []
    for key in attributes:
        try:
            value = attributes[key]
        except (OSError, TypeError, ValueError, KeyError) as error:  # a type h5py cannot map
            problems.append(f"attribute {key!r} cannot be inspected ({error})")
            continue
        texts = _texts(value)
        if key == "PSEUDOATOM" and not set(texts) <= SAFE_PSEUDO_ATOMS:
            problems.append("is a column of pickled Python objects")
        elif any(_unsafe_pickle(text) for text in texts):
            problems.append(f"attribute {key!r} is a pickle that runs code")
    return problems


def _texts(value: object) -> list[bytes]:
    """Every piece of text or bytes in an attribute's value, as bytes (what PyTables sees).

    Walks scalars, arrays of any shape and dtype (text, bytes, objects), compound values field
    by field and opaque values as their bytes; numbers hold no text.
    """
    found: list[bytes] = []
    pending = [value]
    while pending:  # a loop, not recursion: an object array may hold arrays
        item = pending.pop()
        if isinstance(item, str):
            found.append(item.encode("utf-8", "surrogateescape"))
        elif isinstance(item, bytes | bytearray | memoryview):
            found.append(bytes(item))
        elif isinstance(item, np.void):  # compound: field by field; opaque: its raw bytes
            names = item.dtype.names
            if names is None:
                found.append(item.tobytes())
            else:
                pending.extend(item[name] for name in names)
        elif isinstance(item, np.ndarray) and item.dtype.kind in "SUOV":
            pending.extend(item.reshape(-1))
        elif isinstance(item, np.generic) and item.dtype.kind in "SU":
            pending.append(item.item())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return found


def _unsafe_pickle(value: bytes) -> bool:
    """Return True when unpickling ``value`` could import or call anything.

    A whole pickle (parsed up to its STOP) is unsafe when it holds any of
    :data:`UNSAFE_PICKLE_OPCODES`. The unpickler runs each opcode as it reads it, so a value
    that is no whole pickle is still unsafe when an import (:data:`IMPORT_PICKLE_OPCODES`, the
    only way to reach code) comes before the first opcode that is not valid. Plain text such
    as ``Range Values`` (``R`` is REDUCE) is no pickle: it fails before anything is imported.
    """
    seen: set[str] = set()
    try:
        for opcode, _argument, _position in pickletools.genops(value):
            seen.add(opcode.name)
            if opcode.name in IMPORT_PICKLE_OPCODES:
                return True
    except Exception:  # not a whole pickle (pickletools raises several kinds)
        return False
    return bool(seen & UNSAFE_PICKLE_OPCODES)


def _read_h5(path: Path, trust_pickle: bool = False) -> pd.DataFrame:
    if not hdf5_available():
        csv_path = path.with_suffix(".csv")
        hint = (
            f"use {csv_path.name} beside it"
            if csv_path.is_file()
            else "use the .csv DeepLabCut writes"
        )
        raise LabelsError(
            f"{path}: reading .h5 labels needs the 'tables' package (pip install tables), which "
            f"is not installed; {hint} instead"
        )
    problems = [] if trust_pickle else pickle_problems(path)
    if problems:
        raise LabelsError("; ".join(problems[:3]) + f": {TRUST_PICKLE_HINT}")
    try:
        table = pd.read_hdf(path)
    except (OSError, ValueError, KeyError, ImportError, TypeError) as error:
        raise LabelsError(f"{path}: cannot be read as DeepLabCut labels: {error}") from None
    if not isinstance(table, pd.DataFrame) or not isinstance(table.columns, pd.MultiIndex):
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
