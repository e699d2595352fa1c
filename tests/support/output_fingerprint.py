"""What a session folder's output files hold, less what differs from run to run: a fingerprint.

Two runs of the same deterministic session (a ``--fast`` replay: every frame analysed, in order)
write the same poses, decisions and tables, but not the same host times, measured durations,
random identifiers (NWB's object ids) or the session's start. :func:`folder_fingerprint` keeps
everything else of every output file, column by column, and says what it left out: a column of
times is kept as the count of its non-empty cells; an NWB dataset of times as its shape. Used by
tests/integration/test_outputs_unchanged.py against the fingerprint of the same replay written by
the code before the outputs became plugins (tests/fixtures/outputs_before.json).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Columns of the pose, timing, event and IBL tables that carry host times or measured
#: durations: they differ between two runs of one session, and only their filling is compared.
TIMED_COLUMNS = frozenset(
    {
        "host_timestamp",
        "picked_up",
        "preprocess_ms",
        "inference_ms",
        "decode_ms",
        "pose_ready",
        "latency_ms",
        "experiment_ms",
        "worker_free",
        "decided",
        "command_written",
        "written",
        "acknowledged",
        "lead_ms",
        "times",  # the IBL times (host seconds)
    }
)

#: session.json values that are times, durations, machine figures or paths of the run.
VOLATILE_JSON_KEYS = frozenset(
    {
        "started", "ended", "clock", "versions", "machine", "processes", "main_process_started",
        "priority", "doorbell", "latency_ms", "analysed_fps", "worker_wait", "elapsed_s",
        "delivery", "scheduling", "health", "cleanup_at_start", "deadline", "timing", "file",
        "directory", "pid", "fps", "duration_s", "measured_fps", "camera_clock", "stats",
        "host_clock", "frame_interval_ms", "first_frame", "last_frame", "update_ms",
    }
)  # fmt: skip

#: NWB attributes and datasets that are new for every file written.
VOLATILE_NWB = frozenset(
    {
        "object_id",
        "identifier",
        "session_start_time",
        "file_create_date",
        "timestamps_reference_time",
    }
)


#: Significant digits of ``pose_exact.csv``'s values kept: a likelihood's last bits come from the
#: CPU's vectorised ``exp`` (x and y agree to the bit across machines; likelihoods may not).
EXACT_SIGNIFICANT = 12

_FOLDER_TIME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# The checkout's own folder: text naming a bundled file (the model's path) differs by clone.
_PROJECT = str(Path(__file__).resolve().parents[2])


def normalised(text: str, root: str) -> str:
    """``text`` with the run's folder (``root``), the checkout's folder and the session folder's
    start time left out (each differs from run to run or clone to clone)."""
    text = text.replace(root, "<root>") if root else text
    return _FOLDER_TIME.sub("<started>", text.replace(_PROJECT, "<project>"))


def table_fingerprint(table: pd.DataFrame, significant: int | None = None) -> dict[str, Any]:
    """Each column's values (hashed), a timed column only as how many cells it fills.

    ``significant``: a float column's values are hashed to that many significant digits (a
    full-precision file: its last bits differ between CPUs, as their vector ``exp`` does).
    """
    columns: dict[str, Any] = {}
    for column in table.columns:
        name = "/".join(str(part) for part in column) if isinstance(column, tuple) else str(column)
        values = table[column]
        if name.split("/")[-1] in TIMED_COLUMNS:
            columns[name] = f"times: {int(values.notna().sum())} filled"
            continue
        if significant is not None and values.dtype.kind == "f":
            values = values.map(lambda value: f"{value:.{significant}g}")
        columns[name] = _digest(values.to_csv(index=False, header=False).encode())
    return {"rows": len(table), "columns": columns}


def json_fingerprint(value: Any, root: str = "", key: str = "") -> Any:
    """``value`` with its volatile keys replaced by their type (the key itself stays)."""
    if key in VOLATILE_JSON_KEYS:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        return {k: json_fingerprint(v, root, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [json_fingerprint(v, root) for v in value]
    if isinstance(value, str):
        return normalised(value, root)
    return value


def nwb_fingerprint(path: Path, root: str = "") -> dict[str, Any]:
    """Every group's attributes and every dataset's contents, less what is new in each file."""
    import h5py

    found: dict[str, Any] = {}

    def visit(name: str, item: Any) -> None:
        if name.split("/")[-1] in VOLATILE_NWB:
            found[name] = "<new in every file>"
            return
        attributes = {
            key: str(item.attrs[key]) for key in sorted(item.attrs) if key not in VOLATILE_NWB
        }
        entry: dict[str, Any] = {"attrs": _digest(json.dumps(attributes).encode())}
        if isinstance(item, h5py.Dataset):
            data = item[()]
            entry["shape"] = list(np.shape(data))
            if any(part in TIMED_COLUMNS for part in name.split("/")[-2:]):
                pass  # an events table's column of host times: its shape only
            elif isinstance(data, bytes):
                entry["data"] = _digest(normalised(data.decode(), root).encode())
            elif isinstance(data, np.ndarray) and data.dtype.kind in "fiub":
                entry["data"] = _digest(np.ascontiguousarray(data).tobytes())
            elif not _is_reference(data):
                entry["data"] = _digest(repr(data).encode())
        found[name] = entry

    with h5py.File(path, "r") as file:
        file.visititems(visit)
    return found


def _is_reference(data: Any) -> bool:
    """Object references (to other datasets) print as addresses: compared by shape only."""
    return isinstance(data, np.ndarray) and data.dtype.kind == "O"


def slp_fingerprint(path: Path) -> dict[str, Any]:
    """The skeleton, tracks, video and every labelled frame's points of a ``.slp`` file."""
    import sleap_io

    labels = sleap_io.load_slp(str(path))
    frames = []
    for frame in labels.labeled_frames:
        points = [np.asarray(instance.numpy(), np.float64) for instance in frame.instances]
        tracks = [instance.track.name if instance.track else None for instance in frame.instances]
        frames.append([frame.frame_idx, _digest(np.stack(points).tobytes()), tracks])
    return {
        "skeletons": [
            [list(skeleton.node_names), [list(edge) for edge in skeleton.edge_inds]]
            for skeleton in labels.skeletons
        ],
        "tracks": [track.name for track in labels.tracks],
        "videos": [Path(str(video.filename)).name for video in labels.videos],
        "frames": frames,
    }


def file_fingerprint(path: Path, root: str = "") -> Any:
    """One output file's fingerprint, by its kind (``root``: the run's folder, left out)."""
    name = path.name
    if name == "session.json":
        return json_fingerprint(json.loads(path.read_text(encoding="utf-8")), root)
    if name == "session.log":
        return "<log: every line is timed>"
    if name.endswith(".pose.csv"):
        return table_fingerprint(pd.read_csv(path, header=[0, 1, 2], index_col=0))
    if name.endswith(".pose_exact.csv"):  # 17 digits: the CPU's last bits
        return table_fingerprint(pd.read_csv(path), significant=EXACT_SIGNIFICANT)
    if name.endswith(".csv"):
        return table_fingerprint(pd.read_csv(path))
    if name.endswith(".pqt"):
        return table_fingerprint(pd.read_parquet(path))
    if name.endswith(".npy"):
        times = np.load(path)
        return {"shape": list(times.shape), "times": f"{int(np.isfinite(times).sum())} finite"}
    if name.endswith(".nwb"):
        return nwb_fingerprint(path, root)
    if name.endswith(".slp"):
        return slp_fingerprint(path)
    return _digest(path.read_bytes())  # videos: byte for byte


def folder_fingerprint(folder: Path, root: Path | None = None) -> dict[str, Any]:
    """Every file of a session folder, by name, fingerprinted (``root``: the run's folder)."""
    where = str(root) if root is not None else ""
    return {path.name: file_fingerprint(path, where) for path in sorted(folder.iterdir())}


def differences(before: Any, after: Any, where: str = "") -> list[str]:
    """Return where two fingerprints differ, one line each (empty: the same)."""
    if isinstance(before, dict) and isinstance(after, dict):
        lines = [f"{where}/{key}: only before" for key in before if key not in after]
        lines += [f"{where}/{key}: only after" for key in after if key not in before]
        for key in before:
            if key in after:
                lines += differences(before[key], after[key], f"{where}/{key}")
        return lines
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        lines = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            lines += differences(old, new, f"{where}[{index}]")
        return lines
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


#: Figures of a camera's analysis in session.json that the outputs write (pose.cameras.NAME).
OUTPUT_FIGURES = (
    "frames_analysed",
    "pose_file",
    "pose_rows",
    "pose_times_file",
    "pose_table",
    "file_errors",
    "ibl_files",
)


def outputs_fingerprint(folder: Path, root: Path) -> dict[str, Any]:
    """The fingerprint of a session's output files, and of what session.json says of them.

    Only the outputs: the rest of session.json (the machine, the health, the record's own
    layout) and the settings copied into ``session.nwb`` (``general/data_collection``) change
    with other work and say nothing of the outputs.
    """
    found = folder_fingerprint(folder, root)
    session = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    cameras = (session.get("pose") or {}).get("cameras") or {}
    found["session.json"] = {
        "errors": session.get("errors"),
        "output_settings": json_fingerprint(session.get("settings", {}).get("Output"), str(root)),
        "cameras": {
            name: {key: figures.get(key) for key in OUTPUT_FIGURES}
            for name, figures in sorted(cameras.items())
        },
    }
    found.pop("session.log", None)
    for name, value in found.items():
        if name.endswith(".nwb"):
            value.pop("general/data_collection", None)
    return found
