"""Pose files in the session folder, written as the stream runs.

Every file and column: docs/outputs.md, "<camera>.pose.csv, ...".
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.regular_files import open_regular, regular_file
from deeplabstream.core.whole_rows import WholeRowsFile
from deeplabstream.outputs.pose.table import is_multi_animal_csv

log = logging.getLogger(__name__)

POSE_CSV_SUFFIX = ".pose.csv"
POSE_PARQUET_SUFFIX = ".pose.pqt"
POSE_TIMING_SUFFIX = ".pose_timing.csv"
POSE_TIMES_SUFFIX = ".pose_times.csv"
POSE_EXACT_SUFFIX = ".pose_exact.csv"
IDENTITY_SUFFIX = ".identity.csv"
#: The columns of ``pose_exact.csv`` before the keypoints' values.
EXACT_LEADING_COLUMNS = ("frame_index", "batch", "time_s", "lead_s")
ENSEMBLE_SUFFIX = ".ensemble.csv"
EKS_CAUSAL_SUFFIX = ".eks_causal.csv"
EKS_SUFFIX = ".eks.csv"  # the package's smoother, offline (deeplabstream-eks)
#: The coords of each keypoint in an ensemble's file: the ensemble's position and likelihood
#: (as the pose CSV's) and the models' plain variance. Not EKS's names: its ``x`` is smoothed
#: and its ``x_ens_var`` divided by the mean likelihood (its default variance mode).
ENSEMBLE_COORDS = ("x", "y", "likelihood", "x_var", "y_var")
#: The coords of each keypoint in EKS's output (its single-camera smoother's, in its order),
#: which the causal filter's file takes with EKS's meanings.
EKS_COORDS = (
    "x", "y", "likelihood", "x_ens_median", "y_ens_median", "x_ens_var", "y_ens_var",
    "x_posterior_var", "y_posterior_var",
)  # fmt: skip
#: The ensemble's columns the pose table (``.pose.pqt``) takes from ``.ensemble.csv``.
ENSEMBLE_TABLE_COORDS = ENSEMBLE_COORDS[3:]
#: What ``.ensemble.csv`` called its variance before (read from older sessions' files).
_OLDER_ENSEMBLE_COORDS = {"x_ens_var": "x_var", "y_ens_var": "y_var"}
MEMBER_PREFIX = "model{}_"
#: The ``.pose.pqt`` metadata key that says how a multi-animal camera's rows got their identities.
IDENTITIES_METADATA_KEY = "deeplabstream.identities"
#: ``<camera>.identity.csv``'s last column: the identities the experiments did not see.
UNNAMED_COLUMN = "unnamed"
TIMES_COLUMNS = ("frame_index", "host_timestamp", "camera_timestamp", "analysed")
TIMING_COLUMNS = (
    "frame_index",
    "host_timestamp",  # frame arrived in the capture process
    "picked_up",  # the inference worker took it from the ring
    "preprocess_ms",
    "inference_ms",
    "decode_ms",
    "pose_ready",  # keypoints available, in frame pixels
    "latency_ms",  # pose_ready - host_timestamp
    "batch_size",
    "experiment_ms",  # the experiment's update on this batch (empty without an experiment)
    # The region analysed (frame pixels): the whole frame, or a dynamic crop
    # (pose/runtime/cropping.py).
    "crop_x",
    "crop_y",
    "crop_width",
    "crop_height",
    # The loop's deadline (core/deadline.py): when the worker finished its previous turn,
    # the experiment's decision and its last command on this frame (empty without), and the
    # stage blamed when the frame missed the deadline (empty when on time).
    "worker_free",
    "decided",
    "command_written",
    "deadline_stage",
)


def dlc_header(
    scorer: str,
    keypoints: tuple[str, ...],
    individuals: tuple[str, ...] | None = None,
    coords: tuple[str, ...] = ("x", "y", "likelihood"),
) -> str:
    """Return the header rows of a DeepLabCut pose CSV (four with ``individuals``: multi-animal)."""
    animals = individuals or ("",)
    width = len(coords)
    columns = [name for _ in animals for name in keypoints for _ in range(width)]
    rows = [["scorer", *[scorer] * len(columns)]]
    if individuals:
        rows.append(
            ["individuals", *[a for a in individuals for _ in range(width * len(keypoints))]]
        )
    rows.append(["bodyparts", *columns])
    rows.append(["coords", *list(coords) * (len(keypoints) * len(animals))])
    return "".join(",".join(row) + "\n" for row in rows)


def individual_names(animals: int) -> tuple[str, ...]:
    """Return the identities' names in pose files: animal1, animal2, ..."""
    return tuple(f"animal{i}" for i in range(1, animals + 1))


class _FrameRows(WholeRowsFile):
    """Keep a table's rows one per frame index, filling gaps with empty rows."""

    def __init__(self, path: Path, header: str, empty: str) -> None:
        super().__init__(path, header)
        self._empty = empty  # the row of a frame without data, after its index
        self._next: int | None = None  # the index the next row should have
        self._warned = False

    def _row(self, frame_index: int, text: str) -> None:
        """Append the row of ``frame_index`` (``text`` after the index), empty rows before it."""
        expected = self._next
        if expected is not None and frame_index != expected:
            if frame_index > expected:
                for missing in range(expected, frame_index):  # dropped, or never announced
                    self.write_row(f"{missing}{self._empty}")
            elif not self._warned:
                self._warned = True
                log.warning(
                    "%s: frame index %d after %d: the camera's counter went back; rows from "
                    "here on are not one per index",
                    self.path.name,
                    frame_index,
                    expected - 1,
                )
        self.write_row(f"{frame_index}{text}")
        self._next = max(frame_index + 1, expected or 0)

    def end_at(self, last_index: int) -> None:
        """Write the empty rows of the frames up to ``last_index`` (the last) not written yet."""
        if self._next is not None and last_index >= self._next:
            for missing in range(self._next, last_index + 1):
                self.write_row(f"{missing}{self._empty}")
            self._next = last_index + 1


class PoseCsvWriter(_FrameRows):
    """``<camera>.pose.csv``, one row per frame index; frames not analysed are empty rows.

    With ``individuals``, DeepLabCut's multi-animal header; an identity not seen is empty.
    """

    def __init__(
        self,
        path: Path,
        scorer: str,
        keypoints: tuple[str, ...],
        individuals: tuple[str, ...] | None = None,
    ) -> None:
        values = len(keypoints) * len(individuals or ("",))
        # "nan", not empty cells: pandas (and so movement) reads a row of empty cells right
        # under a multi-row header as the index's name, and would drop the first frame's row.
        super().__init__(
            path, dlc_header(scorer, keypoints, individuals), ",nan" * (3 * values) + "\n"
        )
        # Likelihoods to 9 significant digits (a float32's whole precision): a tiny one
        # (Lightning Pose writes 4e-20) stays itself, never 0.0 (whose log is -inf).
        self._template = ",%.3f,%.3f,%.9g" * values + "\n"
        self.analysed = 0  # rows with a pose

    def write(self, frame_index: int, pose: np.ndarray) -> None:
        """Append the keypoints (K, 3), or every identity's (A, K, 3), of one analysed frame."""
        self._row(frame_index, self._template % tuple(pose.ravel().tolist()))  # unseen: nan
        self.analysed += 1

    def write_missing(self, frame_index: int) -> None:
        """Append the empty row of a frame that was captured but not analysed."""
        self._row(frame_index, self._empty)


class ExactPoseWriter(WholeRowsFile):
    """``<camera>.pose_exact.csv``: each analysed frame's values in full, one row per frame.

    Written with all the significant digits of the values' type, so it reads back to the bits
    the experiment saw. ``members``: an ensemble's number of models (``model1_<keypoint>_x``, ...).
    """

    def __init__(
        self,
        path: Path,
        keypoints: tuple[str, ...],
        individuals: tuple[str, ...] | None = None,
        identities: bool = False,
        members: int = 0,
    ) -> None:
        prefixes = [f"{name}_" for name in individuals] if individuals else [""]
        prefixes += [MEMBER_PREFIX.format(index + 1) for index in range(members)]
        columns = [
            f"{prefix}{keypoint}_{coord}"
            for prefix in prefixes
            for keypoint in keypoints
            for coord in ("x", "y", "likelihood")
        ]
        confidences = [f"identity_{name}" for name in individuals or ()] if identities else []
        header = [*EXACT_LEADING_COLUMNS, *columns, *confidences]
        super().__init__(path, ",".join(header) + "\n")
        self._confidences = len(confidences)
        self._float32_row = ",%.9g" * len(columns)  # exact for float32
        self._float64_row = ",%.17g" * len(columns)  # exact for float64
        self.dtype: str | None = None  # the values' type (float32 or float64), once written

    def write(
        self,
        frame_index: int,
        pose: np.ndarray,
        batch: int = 0,
        time_s: float = math.nan,
        lead_s: float | None = None,
        confidence: np.ndarray | None = None,
        members: np.ndarray | None = None,
    ) -> None:
        """Append one analysed frame: its values (K, 3) or (A, K, 3), then ``members`` (M, K, 3)."""
        if members is not None:
            pose = np.concatenate([pose.reshape(-1, 3), members.reshape(-1, 3)]).astype(
                np.result_type(pose, members)
            )
        values = self._float32_row if pose.dtype == np.float32 else self._float64_row
        self.dtype = pose.dtype.name
        lead = "" if lead_s is None else repr(float(lead_s))
        row = f"{frame_index},{batch},{float(time_s)!r},{lead}" + values % tuple(
            pose.ravel().tolist()
        )
        if self._confidences:
            cells = confidence.tolist() if confidence is not None else []
            cells = (cells + [math.nan] * self._confidences)[: self._confidences]
            row += "".join(f",{value!r}" if math.isfinite(value) else "," for value in cells)
        self.write_row(row + "\n")


class EnsembleCsvWriter(_FrameRows):
    """``<camera>.ensemble.csv``: an ensemble's keypoints and spread, one row per frame index.

    ``smoothed``: write the causal Ensemble Kalman filter's ``.eks_causal.csv`` (EKS's columns).
    """

    def __init__(
        self, path: Path, scorer: str, keypoints: tuple[str, ...], smoothed: bool = False
    ) -> None:
        coords = EKS_COORDS if smoothed else ENSEMBLE_COORDS
        super().__init__(
            path,
            dlc_header(scorer, keypoints, coords=coords),
            ",nan" * (len(coords) * len(keypoints)) + "\n",
        )
        # Positions (and EKS's median) to 0.001 px as in the pose CSV; likelihoods and
        # variances in full.
        self._smoothed = smoothed
        positions = ",%.3f,%.3f,%.9g" + (",%.3f,%.3f" if smoothed else "")
        variances = ",%.9g" * (len(coords) - (5 if smoothed else 3))
        self._template = (positions + variances) * len(keypoints) + "\n"

    def write(
        self,
        frame_index: int,
        keypoints: np.ndarray,
        median: np.ndarray,
        variance: np.ndarray,
        posterior: np.ndarray | None = None,
    ) -> None:
        """Append one analysed frame: x, y, likelihood (K, 3), the median and variance (K, 2).

        ``median`` goes to the smoothed file only; ``posterior`` (K, 2): its posterior variance.
        """
        parts = (
            [keypoints[:, :3], median, variance] if self._smoothed else [keypoints[:, :3], variance]
        )
        if posterior is not None:
            parts.append(posterior)
        values = np.concatenate(parts, axis=1)
        self._row(frame_index, self._template % tuple(values.ravel().tolist()))

    def write_missing(self, frame_index: int) -> None:
        """Append the empty row of a frame that was captured but not analysed."""
        self._row(frame_index, self._empty)


@dataclass(frozen=True)
class EnsembleExact:
    """An ensemble camera's ``pose_exact.csv`` read back.

    ``frames`` (T,) analysed frame indices; ``members`` (T, M, K, 3) each model's x, y,
    likelihood; ``keypoints`` the K names.
    """

    frames: np.ndarray
    members: np.ndarray
    keypoints: tuple[str, ...]
    #: The file ended inside a row (a copy cut short): that line's number, left out; else 0.
    cut_line: int = 0


def read_ensemble_exact(path: Path) -> EnsembleExact | None:
    """Read the models' values of an ensemble's ``<camera>.pose_exact.csv`` (None: one model).

    A last row cut short is left out, its line kept in ``cut_line``. Raises ValueError naming
    the file and line for a bad layout or cell; OSError when it cannot be read or is not a
    regular file (``SpecialFileError``).
    """
    with open_regular(path, "rb") as file:
        raw = file.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not a pose_exact.csv: byte {error.start} is not text (UTF-8). The session "
            "writes text there, so the file is damaged: restore it from a copy"
        ) from None
    lines = text.splitlines()
    columns = lines[0].strip().split(",") if lines else []
    models = 0
    while any(c.startswith(MEMBER_PREFIX.format(models + 1)) for c in columns):
        models += 1
    if models == 0:
        return None
    # The update's columns (batch, time_s, lead_s) before the values, in newer files.
    leading = len(EXACT_LEADING_COLUMNS) if columns[1:4] == list(EXACT_LEADING_COLUMNS[1:]) else 1
    values = len(columns) - leading
    if columns[0] != "frame_index" or values % (3 * (models + 1)):
        raise ValueError(f"{path}: not a pose_exact.csv of an ensemble (its header: {columns[:4]})")
    keypoints = tuple(
        name.removesuffix("_x") for name in columns[leading : leading + values // (models + 1) : 3]
    )
    # The session ends every row with its newline: a file that does not ends in a cut row.
    cut = len(lines) if len(lines) > 1 and not text.endswith("\n") else 0
    data = _number_rows(path, lines[1 : cut - 1 if cut else None], len(columns))
    members = data[:, leading:].reshape(len(data), models + 1, len(keypoints), 3)[:, 1:]
    return EnsembleExact(data[:, 0].astype(np.int64), members, keypoints, cut)


def _number_rows(path: Path, lines: list[str], width: int) -> np.ndarray:
    """Return the rows of ``lines`` (line 2 on) as numbers; ValueError naming a bad line."""
    rows = np.full((len(lines), width), np.nan)
    for at, line in enumerate(lines):
        cells = line.split(",")
        row = _row_or_none(line) if len(cells) == width else None
        if row is None:
            what = (
                f"{len(cells)} values, the header {width}"
                if len(cells) != width
                else "a value that is not a number"
            )
            raise ValueError(
                f"{path}: line {at + 2} has {what}. The session writes whole rows of numbers, "
                "so the file was edited or damaged: restore it from a copy"
            )
        rows[at] = row
    return rows


def _row_or_none(line: str) -> list[float] | None:
    """Return a row's numbers (an empty cell: NaN), or None when a cell is not a number."""
    try:
        return [float(cell) if cell.strip() else math.nan for cell in line.split(",")]
    except ValueError:
        return None


class PoseTimesWriter(_FrameRows):
    """``<camera>.pose_times.csv``: every pose row's times, analysed or not."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, ",".join(TIMES_COLUMNS) + "\n", ",,,0\n")

    def write(
        self, frame_index: int, host_ns: int, camera_timestamp: float, analysed: bool
    ) -> None:
        """Append one captured frame's times (host clock in nanoseconds; camera clock in s)."""
        camera = "" if math.isnan(camera_timestamp) else repr(camera_timestamp)
        self._row(frame_index, f",{_seconds(host_ns)},{camera},{int(analysed)}\n")


class IdentityConfidenceWriter(_FrameRows):
    """``<camera>.identity.csv``: each identity's confidence, one row per pose CSV row.

    The last column, ``unnamed``, lists the identities the experiments did not see in that frame
    and, as ``individual:keypoint``, the keypoints withheld from them (docs/outputs.md).
    """

    def __init__(
        self, path: Path, individuals: tuple[str, ...], keypoints: tuple[str, ...] = ()
    ) -> None:
        header = ",".join(("frame_index", *individuals, UNNAMED_COLUMN)) + "\n"
        super().__init__(path, header, "," * (len(individuals) + 1) + "\n")
        self._individuals = individuals
        self._keypoints = keypoints

    def write(
        self,
        frame_index: int,
        confidence: np.ndarray,
        unnamed: np.ndarray | None = None,
        withheld: np.ndarray | None = None,
    ) -> None:
        """Append one analysed frame's confidences (A,), unnamed (A,), withheld keypoints (A, K)."""
        cells = [f"{value:.4f}" if math.isfinite(value) else "" for value in confidence.tolist()]
        hidden = unnamed.tolist() if unnamed is not None else [False] * len(self._individuals)
        names = [n for n, out in zip(self._individuals, hidden, strict=True) if out]
        if withheld is not None and self._keypoints and withheld.any():
            for row, keypoint in zip(*np.nonzero(withheld), strict=True):
                if not hidden[row]:
                    names.append(f"{self._individuals[row]}:{self._keypoints[keypoint]}")
        self._row(frame_index, "," + ",".join(cells) + "," + " ".join(names) + "\n")


class PoseTimingWriter(WholeRowsFile):
    """``<camera>.pose_timing.csv``: the stages of every analysed frame.

    ``model_stages``: the stages of a model that runs in several, each a ``<stage>_ms`` column
    after :data:`TIMING_COLUMNS`, then ``deadline_part``.
    """

    def __init__(self, path: Path, model_stages: tuple[str, ...] = ()) -> None:
        parts = ("deadline_part",) if model_stages else ()
        columns = (*TIMING_COLUMNS, *(f"{stage}_ms" for stage in model_stages), *parts)
        super().__init__(path, ",".join(columns) + "\n")
        self._model_stages = model_stages

    def write(
        self,
        frame_index: int,
        host_ns: int,
        picked_ns: int,
        stages_s: dict[str, float],
        ready_ns: int,
        batch_size: int,
        experiment_ms: float | None = None,
        crop: tuple[int, int, int, int] | None = None,
        worker_free_ns: int = 0,
        decided_ns: int = 0,
        written_ns: int = 0,
        deadline_stage: str = "",
        deadline_part: str = "",
    ) -> None:
        """Append one analysed frame's timings (host clock, nanoseconds in; seconds out).

        ``crop`` (x, y, width, height) or None; ``decided_ns``/``written_ns`` 0 leave their cells
        empty.
        """
        stages_ms = [stages_s.get(s, 0.0) * 1e3 for s in ("preprocess", "inference", "decode")]
        experiment = "" if experiment_ms is None else f"{experiment_ms:.3f}"
        region = ",,," if crop is None else ",".join(str(int(v)) for v in crop)
        decided = _seconds(decided_ns) if decided_ns else ""
        written = _seconds(written_ns) if written_ns else ""
        self.write_row(
            f"{frame_index},{_seconds(host_ns)},{_seconds(picked_ns)},"
            f"{stages_ms[0]:.3f},{stages_ms[1]:.3f},{stages_ms[2]:.3f},{_seconds(ready_ns)},"
            f"{(ready_ns - host_ns) / 1e6:.3f},{batch_size},{experiment},{region},"
            f"{_seconds(worker_free_ns)},{decided},{written},{deadline_stage}"
            + "".join(f",{stages_s.get(s, 0.0) * 1e3:.3f}" for s in self._model_stages)
            + (f",{deadline_part}\n" if self._model_stages else "\n")
        )


def _seconds(nanoseconds: int) -> str:
    whole, rest = divmod(nanoseconds, 1_000_000_000)
    return f"{whole}.{rest:09d}"


def write_pose_parquet(
    csv_path: Path,
    parquet_path: Path,
    times_path: Path | None = None,
    identity_path: Path | None = None,
    ensemble_path: Path | None = None,
    identities: dict[str, str] | None = None,
) -> int:
    """Convert a finished pose CSV to the IBL layout; return the number of rows.

    Every row is kept (not analysed: NaN). The optional ``times_path`` (``.pose_times.csv``),
    ``identity_path`` (``.identity.csv``) and ``ensemble_path`` (``.ensemble.csv``) add their
    columns (NaN where they have none); ``identities`` goes in the table's metadata under
    :data:`IDENTITIES_METADATA_KEY` (JSON).
    """
    import pandas as pd

    if not is_multi_animal_csv(csv_path):
        table = pd.read_csv(regular_file(csv_path), header=[0, 1, 2], index_col=0)
        flat = _flat_table(table, table.columns)
    else:  # one row per frame and individual, the individual in a column of its own
        table = pd.read_csv(regular_file(csv_path), header=[0, 1, 2, 3], index_col=0)
        individuals = list(dict.fromkeys(table.columns.get_level_values(1)))
        parts = []
        for individual in individuals:
            columns = [c for c in table.columns if c[1] == individual]
            part = _flat_table(table, columns)
            part.insert(1, "individual", individual)
            parts.append(part)
        flat = pd.concat(parts).sort_values("frame_index", kind="stable")
        if identity_path is not None and identity_path.is_file():
            flat["identity_confidence"] = _identity_confidence(identity_path, flat)
    if ensemble_path is not None and ensemble_path.is_file():
        flat = _with_ensemble(flat, ensemble_path)
    times = _row_times(times_path, pd.Index(flat["frame_index"]))
    flat["host_timestamp"] = times["host_timestamp"].to_numpy(dtype=np.float64)
    flat["camera_timestamp"] = times["camera_timestamp"].to_numpy(dtype=np.float64)
    _write_parquet(flat.reset_index(drop=True), parquet_path, identities)
    return len(flat)


def _write_parquet(table: Any, path: Path, identities: dict[str, str] | None) -> None:
    """Write ``table`` as parquet, with ``identities`` (JSON) in its key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if identities is not None:
        metadata = dict(arrow.schema.metadata or {})
        metadata[IDENTITIES_METADATA_KEY.encode()] = json.dumps(identities).encode()
        arrow = arrow.replace_schema_metadata(metadata)
    pq.write_table(arrow, path)


def read_identities_metadata(path: Path) -> dict[str, str] | None:
    """Return how a ``.pose.pqt``'s animals were given identities (None: not recorded)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    value = metadata.get(IDENTITIES_METADATA_KEY.encode())
    return None if value is None else dict(json.loads(value))


def _flat_table(table: Any, columns: Any) -> Any:
    """Columns ``<bodypart>_<coord>`` and ``frame_index`` of a DeepLabCut table's ``columns``."""
    import pandas as pd

    flat = pd.DataFrame(
        {f"{column[-2]}_{column[-1]}": table[column] for column in columns}, index=table.index
    )
    flat.insert(0, "frame_index", table.index.astype("int64"))
    return flat


def _with_ensemble(flat: Any, ensemble_path: Path) -> Any:
    """Return ``flat`` with the ensemble's variance columns, row by frame index."""
    import pandas as pd

    table = pd.read_csv(regular_file(ensemble_path), header=[0, 1, 2], index_col=0)
    table = table[~table.index.duplicated(keep="last")]
    table = table.rename(columns=_OLDER_ENSEMBLE_COORDS, level=2)  # an older session's file
    columns = [c for c in table.columns if c[-1] in ENSEMBLE_TABLE_COORDS]
    extra = pd.DataFrame(
        {f"{column[-2]}_{column[-1]}": table[column] for column in columns}, index=table.index
    )
    values = extra.reindex(pd.Index(flat["frame_index"])).to_numpy(dtype=np.float64)
    return pd.concat([flat, pd.DataFrame(values, columns=extra.columns, index=flat.index)], axis=1)


def _identity_confidence(identity_path: Path, flat: Any) -> np.ndarray:
    """Each (frame, individual) row's confidence from an ``.identity.csv`` (NaN where none)."""
    import pandas as pd

    table = pd.read_csv(regular_file(identity_path), index_col="frame_index")
    table = table[~table.index.duplicated(keep="last")]
    table = table.drop(columns=[UNNAMED_COLUMN], errors="ignore")  # older files lack it
    long = table.stack(future_stack=True)  # (frame_index, individual) -> confidence
    rows = pd.MultiIndex.from_arrays([flat["frame_index"], flat["individual"]])
    return long.reindex(rows).to_numpy(dtype=np.float64)


def _row_times(times_path: Path | None, index: Any) -> Any:
    """Return the host and camera times of the frame indices ``index`` (NaN where unknown)."""
    import pandas as pd

    columns = ["host_timestamp", "camera_timestamp"]
    if times_path is None or not times_path.is_file():
        return pd.DataFrame(np.nan, index=index, columns=columns)
    times = pd.read_csv(regular_file(times_path), index_col="frame_index")
    times = times[~times.index.duplicated(keep="last")]
    return times.reindex(index)[columns]


IBL_POSE_SUFFIX = ".dlc.pqt"
IBL_TIMES_SUFFIX = ".times.npy"


def ibl_stem(camera: str) -> str:
    """IBL's name for a camera's files: ``left`` -> ``_ibl_leftCamera``."""
    return f"_ibl_{camera}Camera"


def write_ibl_pose_files(parquet_path: Path, timing_path: Path, stem: Path) -> tuple[str, str]:
    """IBL-named copies: ``<stem>.dlc.pqt`` (the pose table) and ``<stem>.times.npy``.

    The times are the frames' host arrival times (s), one per table row, NaN where never
    delivered; a table without ``host_timestamp`` takes them from ``timing_path``.
    """
    import shutil

    import pandas as pd

    pose_target = stem.with_name(stem.name + IBL_POSE_SUFFIX)
    times_target = stem.with_name(stem.name + IBL_TIMES_SUFFIX)
    shutil.copyfile(parquet_path, pose_target)
    table = pd.read_parquet(regular_file(parquet_path))
    if "individual" in table.columns:  # several animals: one time per frame, not per row
        table = table.drop_duplicates("frame_index")
    if "host_timestamp" in table.columns:
        times = table["host_timestamp"]
    else:
        timing = pd.read_csv(regular_file(timing_path))
        times = timing.set_index("frame_index")["host_timestamp"].reindex(table["frame_index"])
    np.save(times_target, times.to_numpy(dtype=np.float64))
    return pose_target.name, times_target.name
