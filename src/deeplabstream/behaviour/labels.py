"""Per-frame behaviour labels from the files labs write: our CSV, BORIS, SiMBA.

docs/behaviour-classifiers.md, "Labelling".
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deeplabstream.core.errors import LabelsError

NO_BEHAVIOUR = "none"
"""The negative class: a frame labelled, but with none of the behaviours."""


@dataclass(frozen=True)
class FrameLabels:
    """One behaviour per frame, read from ``source``; ``ambiguous`` frames (several) are unlabelled.

    ``default`` is every other frame's behaviour (None, unlabelled, for our CSV).
    """

    source: Path
    labels: dict[int, str]
    default: str | None = None
    ambiguous: frozenset[int] = field(default_factory=frozenset)

    def behaviours(self) -> tuple[str, ...]:
        """Return the behaviours named in the file, sorted."""
        names = set(self.labels.values())
        if self.default is not None:
            names.add(self.default)
        return tuple(sorted(names))

    def for_frames(self, frames: Iterable[int]) -> list[str | None]:
        """Return the behaviour of each frame, None where it is unlabelled."""
        out: list[str | None] = []
        for frame in frames:
            index = int(frame)
            if index in self.ambiguous:
                out.append(None)
            else:
                out.append(self.labels.get(index, self.default))
        return out


def _open_rows(path: Path) -> tuple[list[list[str]], str]:
    """Read a CSV or TSV file's rows; the delimiter is sniffed from its first lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelsError(f"{path}: no such labels file") from None
    except UnicodeDecodeError as error:
        raise LabelsError(
            f"{path}: not a text file ({error}); export the labels as CSV or TSV"
        ) from None
    head = text[:4096]
    delimiter = "\t" if head.count("\t") > head.count(",") else ","
    return [row for row in csv.reader(text.splitlines(), delimiter=delimiter)], delimiter


def _int_frame(value: str, path: Path, where: str) -> int:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise LabelsError(
            f"{path}, {where}: expected a frame index (a whole number from 0), but got {value!r}"
        )
    return int(number)


def read_frame_csv(path: Path) -> FrameLabels:
    """Read our ``frame,behaviour`` CSV (``behavior`` accepted); a frame listed twice must agree."""
    rows, _ = _open_rows(path)
    if not rows:
        raise LabelsError(f"{path}: empty file; expected a header 'frame,behaviour'")
    header = [h.strip().lower() for h in rows[0]]
    if "frame" not in header or not ({"behaviour", "behavior"} & set(header)):
        raise LabelsError(
            f"{path}: expected the columns 'frame' and 'behaviour', but the header is "
            f"{rows[0]}; write one row per frame, e.g. '0,walking'"
        )
    frame_col = header.index("frame")
    name_col = header.index("behaviour" if "behaviour" in header else "behavior")
    labels: dict[int, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(frame_col, name_col):
            raise LabelsError(f"{path}, line {line}: expected {len(header)} columns, got {row}")
        frame = _int_frame(row[frame_col].strip(), path, f"line {line}, column 'frame'")
        name = row[name_col].strip()
        if not name:
            raise LabelsError(
                f"{path}, line {line}, column 'behaviour': empty; name a behaviour "
                f"(use '{NO_BEHAVIOUR}' for a frame with none) or leave the frame out"
            )
        if labels.get(frame, name) != name:
            raise LabelsError(
                f"{path}, line {line}: frame {frame} is labelled both '{labels[frame]}' and "
                f"'{name}'; keep one row per frame"
            )
        labels[frame] = name
    return FrameLabels(path, labels)


_BORIS_KINDS = ("status", "behavior type", "behaviour type")


def _boris_header(rows: list[list[str]], path: Path) -> int:
    for number, row in enumerate(rows):
        names = {cell.strip().lower() for cell in row}
        if "time" in names and ({"behavior", "behaviour"} & names):
            return number
    raise LabelsError(
        f"{path}: no header row with the columns 'Time' and 'Behavior' found; export the "
        "events from BORIS with Observations > Export events > Tabular events (CSV or TSV)"
    )


def read_boris(path: Path, fps: float | None = None) -> FrameLabels:
    """Read a BORIS tabular events export (CSV or TSV); ``fps`` only where the file has none."""
    rows, _ = _open_rows(path)
    start = _boris_header(rows, path)
    header = [cell.strip().lower() for cell in rows[start]]
    col_time = header.index("time")
    col_behaviour = header.index("behavior" if "behavior" in header else "behaviour")
    kinds = [k for k in _BORIS_KINDS if k in header]
    if not kinds:
        raise LabelsError(
            f"{path}: no 'Status' column (START/STOP/POINT) in the header {rows[start]}; "
            "export the events again as tabular events"
        )
    col_kind = header.index(kinds[0])
    col_fps = header.index("fps") if "fps" in header else None
    col_observation = header.index("observation id") if "observation id" in header else None
    observations: set[str] = set()
    events: list[tuple[int, float, str, str]] = []
    file_fps: set[float] = set()
    for line, row in enumerate(rows[start + 1 :], start=start + 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(col_time, col_behaviour, col_kind):
            raise LabelsError(f"{path}, line {line}: too few columns: {row}")
        if col_observation is not None and col_observation < len(row):
            observations.add(row[col_observation].strip())
        try:
            time = float(row[col_time])
        except ValueError:
            time = math.nan
        if not math.isfinite(time) or time < 0:
            raise LabelsError(
                f"{path}, line {line}, column 'Time': expected seconds, got {row[col_time]!r}"
            )
        kind = row[col_kind].strip().upper()
        if kind not in ("START", "STOP", "POINT"):
            raise LabelsError(
                f"{path}, line {line}, column '{rows[start][col_kind].strip()}': expected "
                f"START, STOP or POINT, but got {row[col_kind]!r}"
            )
        name = row[col_behaviour].strip()
        if not name:
            raise LabelsError(f"{path}, line {line}, column 'Behavior': empty")
        if col_fps is not None and col_fps < len(row):
            try:
                value = float(row[col_fps])
            except ValueError:
                value = math.nan
            if math.isfinite(value) and value > 0:
                file_fps.add(value)
        events.append((line, time, name, kind))
    if len(observations) > 1:
        raise LabelsError(
            f"{path}: holds {len(observations)} observations ({sorted(observations)}); export "
            "one observation per file (one video per file)"
        )
    if len(file_fps) > 1:
        raise LabelsError(
            f"{path}, column 'FPS': several frame rates {sorted(file_fps)}; export one video's "
            "observation per file"
        )
    rate = file_fps.pop() if file_fps else fps
    if rate is None or not (math.isfinite(rate) and rate > 0):
        raise LabelsError(
            f"{path}: no frame rate: the FPS column is missing or not a number; pass the video's "
            "frame rate (--fps)"
        )
    covered: dict[int, set[str]] = {}

    def mark(first: int, stop: int, name: str) -> None:
        for frame in range(first, max(stop, first + 1)):
            covered.setdefault(frame, set()).add(name)

    open_since: dict[str, tuple[int, float]] = {}
    for line, time, name, kind in sorted(events, key=lambda e: (e[1], e[0])):
        frame = round(time * rate)
        if kind == "POINT":
            mark(frame, frame + 1, name)
        elif kind == "START":
            if name in open_since:
                raise LabelsError(
                    f"{path}, line {line}: '{name}' starts again at {time} s while it started "
                    f"at {open_since[name][1]} s and has not stopped; fix the observation in BORIS"
                )
            open_since[name] = (frame, time)
        else:
            if name not in open_since:
                raise LabelsError(
                    f"{path}, line {line}: '{name}' stops at {time} s without a START; fix the "
                    "observation in BORIS"
                )
            first, _ = open_since.pop(name)
            mark(first, frame, name)
    if open_since:
        unfinished = ", ".join(f"'{n}' at {t} s" for n, (_, t) in open_since.items())
        raise LabelsError(
            f"{path}: state events without a STOP: {unfinished}; stop them in BORIS "
            "(Observations > Fix unpaired events)"
        )
    labels = {f: next(iter(names)) for f, names in covered.items() if len(names) == 1}
    ambiguous = frozenset(f for f, names in covered.items() if len(names) > 1)
    return FrameLabels(path, labels, NO_BEHAVIOUR, ambiguous)


_POSE_SUFFIXES = ("_x", "_y", "_p", "_likelihood", "_z")


def read_simba(path: Path, behaviours: Sequence[str] | None = None) -> FrameLabels:
    """Read a SiMBA annotation CSV: one 0/1 column per behaviour, one row per frame."""
    rows, _ = _open_rows(path)
    if len(rows) < 2:
        raise LabelsError(f"{path}: expected a header and one row per frame, but got no rows")
    header = [h.strip() for h in rows[0]]
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    index_col = 0 if header and header[0] in ("", "Unnamed: 0", "frame", "Frame") else None
    if behaviours is None:
        chosen = []
        for number, name in enumerate(header):
            if number == index_col or not name or name.lower().endswith(_POSE_SUFFIXES):
                continue
            cells = {row[number].strip() for row in body if number < len(row)}
            if cells and cells <= {"0", "1", "0.0", "1.0"}:
                chosen.append(name)
        if not chosen:
            raise LabelsError(
                f"{path}: no behaviour column (only 0 and 1) found; name the behaviours "
                "(--behaviours) or check that this is SiMBA's targets_inserted CSV"
            )
    else:
        missing = [b for b in behaviours if b not in header]
        if missing:
            raise LabelsError(
                f"{path}: no column {missing} among {header[:40]}"
                f"{' ...' if len(header) > 40 else ''}; "
                "name the behaviours as SiMBA's annotation columns are named"
            )
        chosen = list(behaviours)
    columns = [header.index(b) for b in chosen]
    labels: dict[int, str] = {}
    ambiguous: set[int] = set()
    for number, row in enumerate(body):
        line = number + 2
        frame = (
            _int_frame(row[index_col], path, f"line {line}, first column")
            if index_col is not None
            else number
        )
        on = []
        for name, column in zip(chosen, columns, strict=True):
            cell = row[column].strip() if column < len(row) else ""
            if cell in ("1", "1.0"):
                on.append(name)
            elif cell not in ("0", "0.0"):
                raise LabelsError(
                    f"{path}, line {line}, column '{name}': expected 0 or 1, but got {cell!r}"
                )
        if len(on) > 1:
            ambiguous.add(frame)
        else:
            labels[frame] = on[0] if on else NO_BEHAVIOUR
    return FrameLabels(path, labels, None, frozenset(ambiguous))


def label_format(path: Path) -> str:
    """Return which reader a labels file needs: ``"csv"``, ``"boris"`` or ``"simba"``."""
    rows, _ = _open_rows(path)
    if not rows:
        raise LabelsError(f"{path}: empty labels file")
    first = {cell.strip().lower() for cell in rows[0]}
    if "frame" in first and ({"behaviour", "behavior"} & first):
        return "csv"
    for row in rows[:50]:
        names = {cell.strip().lower() for cell in row}
        if "time" in names and ({"behavior", "behaviour"} & names):
            return "boris"
    return "simba"


def read_labels(
    path: Path, fps: float | None = None, behaviours: Sequence[str] | None = None
) -> FrameLabels:
    """Read any of the three formats, recognised from the file's header."""
    kind = label_format(path)
    if kind == "csv":
        return read_frame_csv(path)
    if kind == "boris":
        return read_boris(path, fps)
    return read_simba(path, behaviours)
