"""``session.json``: the one typed, versioned record a session writes about itself.

Damage raises :class:`DamagedRecordError` naming the key; unknown keys are kept in ``extra``.
:func:`json_schema` is ``docs/session.schema.json``; every field: docs/outputs.md, "session.json".
"""

# ruff: noqa: RUF009 (the keys are declared by key(), which returns a dataclass field)
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self, TypeVar

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.regular_files import SpecialFileError, open_regular
from deeplabstream.outputs.folder import (
    SESSION_JSON,
    file_digests,
    write_session_json,
)
from deeplabstream.outputs.schema_check import KIND_WORDS, json_kind
from deeplabstream.outputs.schema_check import schema_problems as check_against_schema

log = logging.getLogger(__name__)

#: The version of the record's shape this code writes (``schema_version`` in the file). A file
#: without the key is version 1: the same keys, written before the record was typed.
SCHEMA_VERSION = 2
#: The ``format`` key every session.json has had (kept as it was: readers may test it).
FORMAT = "deeplabstream-session/1"
#: The largest ``session.json`` read (a real one is tens of kB): a larger file is no session's
#: record and is never read whole into memory.
MAX_RECORD_BYTES = 32 * 2**20
#: The deepest nesting of lists and objects read (a real record nests 6 deep; Python's own
#: recursion limit is about 1000, which a crafted file would reach).
MAX_RECORD_NESTING = 100
STATUSES = ("running", "finished", "interrupted")
CAMERA_STATUSES = ("streaming", "ended", "failed")
VERDICTS = ("ok", "warning", "error")


class DamagedRecordError(DeepLabStreamError, ValueError):
    """A ``session.json`` that is not what a session writes (its message says where)."""


# -- the machinery: fields, reading, writing, the schema ---------------------------------------


def key(
    doc: str,
    default: Any = None,
    *,
    factory: Any = None,
    name: str | None = None,
    optional: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    enum: tuple[str, ...] | None = None,
) -> Any:
    """Declare one key of a part: its documentation, default and checks.

    ``optional``: written only when it has a value; ``name``: the key in the file when it
    differs from the attribute; ``maximum``: in the published schema only.
    """
    metadata = {
        "doc": doc, "optional": optional, "minimum": minimum, "maximum": maximum, "enum": enum,
        "key": name,
    }  # fmt: skip
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Part:
    """One object of the record: its known keys typed, the others kept in :attr:`extra`."""

    #: Keys this part does not know (a plugin's, a later version's), written back unchanged.
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=True)
    #: The keys the file held (None: made by the session, every key written).
    present: frozenset[str] | None = field(default=None, repr=False, compare=False)
    #: Whether the schema lists this part's keys that are always written as required.
    required_keys: typing.ClassVar[bool] = True

    @classmethod
    def from_json(cls, data: Any, where: str = "session.json") -> Self:
        """Read this part from JSON data; raise :class:`DamagedRecordError` naming a bad key."""
        if not isinstance(data, dict):
            raise DamagedRecordError(f"{where} is {json_kind(data)}, not an object")
        values: dict[str, Any] = {}
        known: set[str] = set()
        hints = _hints(cls)
        for item in _own_fields(cls):
            name = _key_of(item)
            known.add(name)
            if name in data:
                values[item.name] = _read(hints[item.name], data[name], f"{where}.{name}", item)
        extra = {name: value for name, value in data.items() if name not in known}
        return cls(**values, extra=extra, present=frozenset(known & set(data)))

    def has(self, name: str) -> bool:
        """Tell whether the key ``name`` was in the file read (always, for a record made here)."""
        return self.present is None or name in self.present

    def to_json(self) -> dict[str, Any]:
        """Return this part as JSON data: its keys in order, then the unknown ones."""
        out: dict[str, Any] = {}
        for item in _own_fields(type(self)):
            name, value = _key_of(item), getattr(self, item.name)
            if self.present is None:  # made by the session: every key, optional ones when set
                if item.metadata["optional"] and value is None:
                    continue
            elif name not in self.present and value == _default_of(item):
                continue  # read from a file that did not have it: not added
            out[name] = _write(value)
        for name, value in self.extra.items():
            out.setdefault(name, value)
        return out


P = TypeVar("P", bound=Part)


def parse_or_keep(cls: type[P], data: Any, where: str) -> P:
    """Read ``data`` as ``cls``; when not of that shape, log it and keep it whole in ``extra``."""
    try:
        return cls.from_json(_plain_json(data), where)
    except (DamagedRecordError, TypeError, ValueError) as error:
        log.error("%s: written as it came, untyped: %s", where, error)
        return cls(extra=dict(data) if isinstance(data, dict) else {"value": data}, present=None)


def _plain_json(data: Any) -> Any:
    """Return ``data`` as JSON reads it back: paths as text, numpy's scalars as numbers."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if hasattr(value, "item"):  # a numpy scalar
            return value.item()
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    return json.loads(json.dumps(data, default=plain))


_HINTS: dict[str, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name not in _HINTS:
        _HINTS[name] = typing.get_type_hints(cls)
    return _HINTS[name]


def _own_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [item for item in fields(cls) if item.name not in ("extra", "present")]


def _key_of(item: dataclasses.Field[Any]) -> str:
    return item.metadata.get("key") or item.name


def _default_of(item: dataclasses.Field[Any]) -> Any:
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


#: The largest magnitude a whole number of the record may have: a signed 64-bit integer's
#: (what NumPy and the tables hold); a count beyond it is damage, never a figure.
LARGEST_WHOLE = 2**63 - 1


def _read(hint: Any, value: Any, where: str, item: dataclasses.Field[Any] | None) -> Any:
    """Return ``value`` read as ``hint``; raise :class:`DamagedRecordError` when it is not."""
    meta = item.metadata if item is not None else {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _read(option, value, where, item)
            except DamagedRecordError as error:
                problems.append(str(error))
        if len(problems) == 1:
            raise DamagedRecordError(problems[0])
        raise DamagedRecordError(f"{where} is {json_kind(value)}, not {_schema_words(hint)}")
    if isinstance(hint, type) and issubclass(hint, Part):
        return hint.from_json(value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise DamagedRecordError(f"{where} is {json_kind(value)}, not a list")
        return tuple(_read(args[0], v, f"{where}[{i}]", None) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise DamagedRecordError(f"{where} is {json_kind(value)}, not an object")
        return {k: _read(args[1], v, f"{where}.{k}", None) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise DamagedRecordError(f"{where} is {json_kind(value)}, not true or false")
        return value
    if hint is int or hint is float:
        number = int if hint is int else int | float
        if isinstance(value, bool) or not isinstance(value, number):
            words = "a whole number" if hint is int else "a number"
            raise DamagedRecordError(f"{where} is {json_kind(value)}, not {words}")
        minimum = meta.get("minimum")
        if minimum is not None and value < minimum:
            raise DamagedRecordError(f"{where} is {value!r}, below its minimum {minimum}")
        if hint is int and not -LARGEST_WHOLE <= value <= LARGEST_WHOLE:  # 10**30 frames
            raise DamagedRecordError(
                f"{where} is {value:.4g}, beyond 64 bits: no session counts or times that far"
            )
        return value
    if hint is str:
        if not isinstance(value, str):
            raise DamagedRecordError(f"{where} is {json_kind(value)}, not a string")
        return value
    raise TypeError(f"{where}: no reader for {hint!r}")  # a programming error, not damage


def _schema_words(hint: Any) -> str:
    kinds = KIND_WORDS
    schema = _schema(hint, {}, {})
    found = schema.get("type")
    names = found if isinstance(found, list) else [found] if found else ["an object"]
    return " or ".join(kinds.get(name, str(name)) for name in names)


def _write(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_write(item) for item in value]
    if isinstance(value, dict):
        return {k: _write(v) for k, v in value.items()}
    return value


def _schema(hint: Any, meta: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON Schema of ``hint``; parts go to ``definitions`` (``$defs``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        options = [_schema(a, meta, definitions) for a in args]
        kinds = [o.get("type") for o in options]
        if all(isinstance(t, str) for t in kinds) and all(len(o) == 1 for o in options):
            return {"type": kinds}
        return {"anyOf": options}
    if isinstance(hint, type) and issubclass(hint, Part):
        _define(hint, definitions)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if origin is tuple:
        return {"type": "array", "items": _schema(args[0], {}, definitions)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], {}, definitions)}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    schema: dict[str, Any] = {"type": simple[hint]}
    if meta.get("minimum") is not None:
        schema["minimum"] = meta["minimum"]
    if meta.get("maximum") is not None:
        schema["maximum"] = meta["maximum"]
    if meta.get("enum"):
        schema["enum"] = list(meta["enum"])
    return schema


def _define(cls: type[Part], definitions: dict[str, Any]) -> dict[str, Any]:
    if cls.__name__ in definitions:
        return definitions[cls.__name__]
    definitions[cls.__name__] = {}  # a placeholder: a part may contain itself
    hints = _hints(cls)
    properties: dict[str, Any] = {}
    required = []
    for item in _own_fields(cls):
        schema = _schema(hints[item.name], item.metadata, definitions)
        if "enum" in schema and isinstance(schema.get("type"), list):
            schema["enum"] = [*schema["enum"], None]
        properties[_key_of(item)] = {**schema, "description": item.metadata["doc"]}
        if not item.metadata["optional"] and cls.required_keys:
            required.append(_key_of(item))
    definition = {
        "type": "object",
        "description": (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
        "properties": properties,
        "additionalProperties": True,
    }
    if required:
        definition["required"] = required
    definitions[cls.__name__] = definition
    return definition


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of ``session.json``, from the typed classes."""
    definitions: dict[str, Any] = {}
    top = _define(SessionRecord, definitions)
    del definitions["SessionRecord"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/SchwarzNeuroconLab/DeepLabStream/docs/session.schema.json",
        "title": f"DeepLabStream session.json, schema version {SCHEMA_VERSION}",
        **top,
        "$defs": dict(sorted(definitions.items())),
    }


# -- the parts ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Percentiles(Part):
    """Percentiles of a duration in ms (``p50``, ``p95``, ``p99``, ``max``) and their ``count``."""

    required_keys = False
    p50: float | None = key("median", optional=True)
    p95: float | None = key("95th percentile", optional=True)
    p99: float | None = key("99th percentile", optional=True)
    max: float | None = key("the largest", optional=True)
    count: int | None = key("how many were measured", optional=True, minimum=0)


@dataclass(frozen=True, kw_only=True)
class Clock(Part):
    """The pair that maps host-clock times to dates."""

    host_clock: str = key("what the host clock is (time.perf_counter, seconds)", "")
    host_time_at_start: float = key("the host clock at the start, s", 0.0)
    wall_time_at_start: str = key("the wall clock at the same moment (ISO 8601 with zone)", "")


@dataclass(frozen=True, kw_only=True)
class Subject(Part):
    """The animal, for ``session.nwb``: ``[Session]`` ``SPECIES``, ``AGE``, ... as set."""

    species: str = key("[Session] SPECIES", "")
    age: str = key("[Session] AGE (ISO 8601 duration)", "")
    date_of_birth: str = key("[Session] DATE_OF_BIRTH", "")
    sex: str = key("[Session] SEX (M, F, U, O)", "U")
    strain: str = key("[Session] STRAIN", "")


@dataclass(frozen=True, kw_only=True)
class Metadata(Part):
    """The ``[Session]`` keys the user filled in (the window's Session group)."""

    animal: str = key("[Session] ANIMAL", "")
    experimenter: str = key("[Session] EXPERIMENTER ('Last, First'; several with ';')", "")
    notes: str = key("[Session] NOTES", "")
    planned_duration_s: float | None = key("[Session] PLANNED_DURATION, s (null: none)")
    recorded_cameras: tuple[str, ...] = key("cameras whose RECORD is not false", factory=tuple)
    subject: Subject = key("the animal, for session.nwb", factory=Subject)
    institution: str = key("[Session] INSTITUTION", "")
    lab: str = key("[Session] LAB", "")
    experiment_description: str = key("[Session] EXPERIMENT_DESCRIPTION", "")


@dataclass(frozen=True, kw_only=True)
class Cleanup(Part):
    """What this start found left by killed sessions, and what it did about it."""

    stale_rings_removed: tuple[str, ...] = key("shared-memory names removed", factory=tuple)
    stale_ring_bytes: int = key("their size, bytes", 0, minimum=0)
    interrupted_sessions_marked: tuple[str, ...] = key(
        "session folders found killed and marked interrupted", factory=tuple
    )
    damaged_session_files_moved: tuple[str, ...] = key(
        "session.json files that were not a session's record, renamed session.json.damaged",
        factory=tuple,
    )
    warnings: tuple[str, ...] = key("one per damaged file (also in the warnings)", factory=tuple)


@dataclass(frozen=True, kw_only=True)
class Recording(Part):
    """One recording of a camera: its files and frames."""

    video: str | None = key("the video file (in the session folder)")
    frames_table: str | None = key("its frames table (<camera>.frames.csv)")
    frames: int = key("frames written to the video", 0, minimum=0)
    lost: int = key("frames the recorder could not get in time", 0, minimum=0)
    error: str | None = key("why it stopped early, or null")
    running: bool | None = key(
        "true while it records (a killed session's last update)", optional=True
    )
    captured: int | None = key(
        "while it records: the frames the camera delivered since it began (recorded, lost or "
        "waiting in the ring); a killed session's repair adds those its files show after",
        optional=True,
        minimum=0,
    )


@dataclass(frozen=True, kw_only=True)
class CameraRecord(Part):
    """One camera's stream: geometry, rates, frames captured, recorded, lost, and its device."""

    camera_id: int | None = key("its index in the session")
    source: str | None = key("the camera plugin ([Camera] SOURCE)")
    record: bool | None = key("[Camera] RECORD: false when never recorded, by choice")
    status: str = key("how its stream is", "streaming", enum=CAMERA_STATUSES)
    end: str | None = key("how its stream ended (null while streaming)")
    width: int | None = key("frame width, px")
    height: int | None = key("frame height, px")
    channels: int | None = key("1 mono, 3 BGR colour")
    nominal_fps: float | None = key("the rate the camera was set to")
    measured_fps: float | None = key("the rate measured from host timestamps")
    frames_captured: int = key("frames the camera delivered", 0, minimum=0)
    frames_dropped_by_camera: int = key("gaps in the camera's own frame index", 0, minimum=0)
    frames_recorded: int = key("frames written to the video(s)", 0, minimum=0)
    frames_lost_in_recording: int = key("frames the recorder could not get", 0, minimum=0)
    frames_dropped: int = key("frames_dropped_by_camera + frames_lost_in_recording", 0, minimum=0)
    recordings: tuple[Recording, ...] = key("every recording, in order", factory=tuple)
    last_frame_index: int | None = key(
        "the camera's own index of its newest frame at this update: a killed session's repair "
        "counts the frames its files hold after it",
        optional=True,
    )
    device: dict[str, Any] = key(
        "what the camera plugin says of itself (its own keys; clock, companions, delivery)",
        factory=dict,
    )
    scheduling: dict[str, Any] | None = key(
        "what its capture process asked for and got: priority, cores, timers"
    )
    repaired_from_files: bool | None = key(
        "true when a later start found the session killed and re-derived the figures from the "
        "files",
        optional=True,
    )


@dataclass(frozen=True, kw_only=True)
class ModelRecord(Part):
    """The pose model: what it is, how it runs (the execution provider and its options)."""

    required_keys = False
    name: str | None = key("a short name", optional=True)
    framework: str | None = key("the framework that made it", optional=True)
    file: str | None = key("the graph that ran (converted: the cached graph)", optional=True)
    source_file: str | None = key(
        "the file the user named, where the graph was converted from it (a DeepLabCut 3.0 "
        "export, a Lightning Pose checkpoint, a crop-zoom pair's yaml)",
        optional=True,
    )
    model_path: str | None = key(
        "what MODEL_PATH named when that was a framework's folder around the model (a "
        "DeepLabCut project or exported-models-pytorch folder, a sleap-nn training folder, "
        "...); null when it named the model itself",
        optional=True,
    )
    model_found: str | None = key(
        "with model_path: the model found in that folder, the one that ran (a DeepLabCut .pt "
        "export, a sleap-nn export folder, a Lightning Pose checkpoint, ...)",
        optional=True,
    )
    keypoints: tuple[str, ...] | None = key("its keypoints, in order", optional=True)
    input: Any = key("its input size [width, height]", optional=True)
    stride: float | None = key("its output grid, in input pixels", optional=True)
    precision: str | None = key(
        "fp32, tf32 (the fp32 graph, TensorFloat-32 on a GPU), fp16 or int8", optional=True
    )
    decoder: str | None = key("how keypoints are read from its output", optional=True)
    provider: str | None = key("the execution provider it ran on", optional=True)
    max_animals: int | None = key("animals it finds at most", optional=True)
    skeleton: Any = key("its skeleton's edges (keypoint name or index pairs)", optional=True)
    sha256: str | None = key("SHA-256 of the graph that ran (file)", optional=True)
    source_sha256: str | None = key(
        "SHA-256 of source_file, the file the user named (converted models)", optional=True
    )
    ensemble: tuple[dict[str, Any], ...] | None = key(
        "an ensemble (MODEL_PATH names several models): each model's record, in order; the "
        "first's keypoints are the ensemble's (docs/ensembles.md)",
        optional=True,
    )
    keypoint_map: str | None = key(
        "an ensemble's KEYPOINT_MAP: the other models' keypoint names mapped onto the first's",
        optional=True,
    )
    input_prepared: str | None = key(
        "where the network's input was prepared: on the CPU (and why not on the GPU), or on the "
        "GPU by a graph wrapped around the model's (docs/gpu.md)",
        optional=True,
    )
    input_graph: str | None = key(
        "the wrapped graph that ran, when the input was prepared on the GPU (file stays the "
        "model's)",
        optional=True,
    )


@dataclass(frozen=True, kw_only=True)
class PoseCamera(Part):
    """One camera's analysis: frames analysed, skipped, lost; its latency and files."""

    required_keys = False
    frames_analysed: int | None = key("frames with keypoints", optional=True, minimum=0)
    frames_skipped: int | None = key("frames passed over for a newer one", optional=True, minimum=0)
    frames_lost: int | None = key(
        "frames overwritten before the worker took them", optional=True, minimum=0
    )
    analysed_fps: float | None = key(
        "analysed frames per second, first to last pose", optional=True
    )
    latency_ms: Percentiles | None = key("frame arrival -> keypoints", optional=True)
    pose_file: str | None = key("<camera>.pose.csv", optional=True)
    pose_rows: int | None = key("rows of the pose tables (one per frame)", optional=True, minimum=0)
    pose_times_file: str | None = key("<camera>.pose_times.csv", optional=True)
    pose_table: str | None = key("<camera>.pose.pqt", optional=True)
    file_errors: tuple[str, ...] | None = key("files that stopped early", optional=True)
    frames_cropped: int | None = key(
        "with DYNAMIC_CROP: frames analysed in a crop", optional=True, minimum=0
    )
    frames_full_frame: int | None = key(
        "with DYNAMIC_CROP: frames analysed whole", optional=True, minimum=0
    )
    dynamic_crop: dict[str, Any] | None = key(
        "with DYNAMIC_CROP: its settings and the crop sizes used (sizes)", optional=True
    )
    frames_not_analysed_worker_gone: int | None = key(
        "frames captured after the worker died", optional=True, minimum=0
    )
    frames_no_animal: int | None = key(
        "analysed frames in which the model found no animal", optional=True, minimum=0
    )
    rebuilt_from_files: bool | None = key(
        "true when the worker died and these figures were rebuilt from its files", optional=True
    )


@dataclass(frozen=True, kw_only=True)
class PoseRun(Part):
    """One analysis: the model(s) and each camera's figures."""

    required_keys = False
    model: ModelRecord | None = key("the model (the shared one)", optional=True)
    cameras: dict[str, PoseCamera] = key("each camera's figures", factory=dict)
    camera_models: dict[str, ModelRecord] | None = key(
        "cameras with their own MODEL_PATH: each camera's model", optional=True
    )

    def model_of(self, camera: str) -> ModelRecord:
        """Return the model of ``camera``: its own, else the shared one (empty when none)."""
        own = (self.camera_models or {}).get(camera)
        return own or self.model or ModelRecord()


@dataclass(frozen=True, kw_only=True)
class FileDigest(Part):
    """One file of the session as it was at its close."""

    sha256: str = key("the SHA-256 of its bytes (hex)", "")
    bytes: int = key("its size", 0, minimum=0)


@dataclass(frozen=True, kw_only=True)
class ExperimentLatency(Part):
    """An experiment's action latencies, host clock, from the source frame's arrival."""

    required_keys = False
    frame_to_command_written: Percentiles | None = key("frame -> command written", optional=True)
    frame_to_device_acknowledged: Percentiles | None = key(
        "frame -> the device's acknowledgement", optional=True
    )
    camera_pairing_error: Any = key(
        "with several cameras: how far apart paired frames were", optional=True
    )


@dataclass(frozen=True, kw_only=True)
class PluginFile(Part):
    """A lab's file a session used: where it was, and the SHA-256 of what ran."""

    required_keys = False
    kind: str | None = key(
        "the plugin kind: camera, device, output, backend, model format, experiment, trigger",
        optional=True,
    )
    name: str | None = key("the name the settings or the config gave it", optional=True)
    file: str | None = key("its absolute path (symbolic links resolved)", optional=True)
    sha256: str | None = key(
        "SHA-256 of its bytes as they ran (a config's: as read; null: unreadable)", optional=True
    )
    link: str | None = key(
        "the path in the lab's folder that named it, when that is a symbolic link to file",
        optional=True,
    )


@dataclass(frozen=True, kw_only=True)
class ExperimentRun(Part):
    """One experiment of the session: its summary (trials, events, triggers) and latencies."""

    required_keys = False
    name: str | None = key("the experiment's name", optional=True)
    description: str | None = key("its one-line description", optional=True)
    state: str | None = key("finished, failed, ...", optional=True)
    finish_reason: str | None = key("why it finished", optional=True)
    events_file: str | None = key(
        "its events file (events.csv, events.run2.csv, ...)", optional=True
    )
    events: Any = key(
        "events by kind ({count, by_kind}); a number when rebuilt from its file", optional=True
    )
    actions: int | None = key("commands sent", optional=True, minimum=0)
    plugins: dict[str, dict[str, str]] | None = key(
        "the experiment and its trigger kinds (kinds experiment, trigger): each name -> where "
        "it comes from: built in, distribution NAME VERSION, or lab folder: FILE",
        optional=True,
    )
    plugin_files: tuple[PluginFile, ...] | None = key(
        "the lab's files among plugins (its module or config, its trigger kinds' modules), "
        "with the SHA-256 of what ran",
        optional=True,
    )
    actions_not_sent: int | None = key(
        "decided, never sent (the device was gone)", optional=True, minimum=0
    )
    error: str | None = key("why it failed, or null", optional=True)
    file_errors: tuple[str, ...] | None = key("files that stopped early", optional=True)
    update_ms: Percentiles | None = key("its update alone, on every update", optional=True)
    latency_ms: ExperimentLatency | None = key("action latencies", optional=True)
    rebuilt_from_files: bool | None = key(
        "true when its worker died and this was rebuilt from its events file", optional=True
    )
    plan: dict[str, Any] | None = key(
        "the experiment as it ran: its file, kind, origin, SHA-256 of its content, a config's "
        "whole text, and every option with its origin (settings/experiment_plan.py)",
        optional=True,
    )
    updates: dict[str, int] | None = key(
        "the updates it was given: count, and the inference worker's first_batch and last_batch "
        "(pose_exact.csv's batch column)",
        optional=True,
    )


@dataclass(frozen=True, kw_only=True)
class DeadlineSetting(Part):
    """The loop's deadline as set."""

    setting: str | float = key("[Experiment] DEADLINE_MS: auto, off or ms", "auto")
    applies: bool = key("false with off and in replays", False)
    miss_tolerance_percent: float = key("[Experiment] DEADLINE_MISS_TOLERANCE", 0.0)
    judged: str = key("what is compared with the deadline", "")


@dataclass(frozen=True, kw_only=True)
class CameraHealth(Part):
    """One camera's deadline figures over every analysis."""

    deadline_ms: float | None = key("its deadline (null: none)")
    frames_checked: int = key("analysed frames", 0, minimum=0)
    misses: int = key("frames late", 0, minimum=0)
    miss_percent: float = key("misses / frames_checked, %", 0.0)
    misses_by_stage: dict[str, int] = key(
        "the stage that took longest on each late frame", factory=dict
    )
    end_to_end_ms: Percentiles | None = key("frame -> command, decision or pose")


@dataclass(frozen=True, kw_only=True)
class ExperimentHealth(Part):
    """One experiment run's update time."""

    name: str | None = key("the experiment")
    events_file: str | None = key("its events file")
    update_ms: Percentiles | None = key("its update alone")


@dataclass(frozen=True, kw_only=True)
class Stall(Part):
    """One stall: a time when no pose came."""

    required_keys = False
    camera: str | None = key("the camera", optional=True)
    at_s: float | None = key("when it began, s since the start", optional=True)
    duration_s: float | None = key("how long it lasted, s", optional=True)
    first_frame: int | None = key("the first frame not analysed", optional=True)
    last_frame: int | None = key("the last", optional=True)
    frames: int | None = key("frames not analysed", optional=True, minimum=0)


@dataclass(frozen=True, kw_only=True)
class Stalls(Part):
    """The analysis's stalls."""

    count: int = key("how many", 0, minimum=0)
    longest_s: float = key("the longest, s", 0.0)
    frames_not_analysed: int = key("frames that arrived while no pose came", 0, minimum=0)
    stalls: tuple[Stall, ...] = key("the first 100", factory=tuple, name="list")


@dataclass(frozen=True, kw_only=True)
class Counted(Part):
    """The session's errors and warnings the verdict counted."""

    errors: int = key("errors", 0, minimum=0)
    warnings: int = key("warnings", 0, minimum=0)


@dataclass(frozen=True, kw_only=True)
class Health(Part):
    """The loop's deadline, its stalls, and the session's verdict."""

    deadline: DeadlineSetting = key("the deadline as set", factory=DeadlineSetting)
    cameras: dict[str, CameraHealth] = key("each camera's deadline figures", factory=dict)
    experiments: tuple[ExperimentHealth, ...] = key("each experiment's update", factory=tuple)
    stalls: Stalls = key("the analysis's stalls", factory=Stalls)
    verdict: str = key(
        "the worst of the loop's, the errors' (error) and the warnings' (warning)",
        "ok",
        enum=VERDICTS,
    )
    problems: tuple[str, ...] = key("the loop's own texts (errors and warnings)", factory=tuple)
    loop_warnings: tuple[str, ...] | None = key(
        "those of problems that are warnings (absent in version 1 files before it existed)",
        optional=True,
    )
    counted: Counted | None = key(
        "the session's errors and warnings the verdict counted", optional=True
    )

    def warnings_of_the_loop(self) -> tuple[str, ...]:
        """Return the loop's warnings (an older record's: its problems, with that verdict)."""
        if self.loop_warnings is not None:
            return self.loop_warnings
        return self.problems if self.verdict == "warning" else ()


@dataclass(frozen=True, kw_only=True)
class Priority(Part):
    """Core placement and priorities: the plan and what each process ran with."""

    required_keys = False
    cpu_affinity: str | None = key("[Streaming] CPU_AFFINITY", optional=True)
    cores_available: tuple[int, ...] | None = key("cores the session could use", optional=True)
    inference_cores: tuple[int, ...] | None = key(
        "the worker's cores (null: not pinned)", optional=True
    )
    other_cores: tuple[int, ...] | None = key("the others' cores (null: not pinned)", optional=True)
    side_niceness: int | None = key("[Streaming] SIDE_NICENESS", optional=True)
    processes: dict[str, dict[str, Any]] | None = key(
        "each process's nice value and cpus, as last seen", optional=True
    )


@dataclass(frozen=True, kw_only=True)
class SettingsReload(Part):
    """A settings file re-read while streaming."""

    required_keys = False
    at: str | None = key("when (ISO 8601)", optional=True)
    changed: tuple[str, ...] | None = key("the sections taken", optional=True)


@dataclass(frozen=True, kw_only=True)
class Replay(Part):
    """A replay of a video (``utils/VideoAnalyzer.py``)."""

    required_keys = False
    video: str | None = key("the file replayed", optional=True)
    video_sha256: str | None = key(
        "the SHA-256 of the file replayed (deeplabstream-verify names a swapped video)",
        optional=True,
    )
    mode: str | None = key("fast or realtime", optional=True)
    frames_in_video: int | None = key(
        "as the container states it (null: it states none)", optional=True
    )
    frames_announced: int | None = key("the container's count, exact or estimated", optional=True)
    truncated: bool | None = key("the video ended before its container says", optional=True)
    annotated_video: str | None = key("its file name, or null", optional=True)
    elapsed_s: float | None = key("the whole replay, start-up included, s", optional=True)
    delivery: dict[str, Any] | None = key("--realtime: how late frames went out", optional=True)


@dataclass(frozen=True, kw_only=True)
class Signature(Part):
    """The installation's signature of the record, made at the close (outputs/signature.py)."""

    required_keys = False
    algorithm: str | None = key("Ed25519", optional=True)
    public_key: str | None = key("the signing key's public half, raw, base64", optional=True)
    fingerprint: str | None = key(
        "SHA256: and the base64 of the public key's digest", optional=True
    )
    rig: str | None = key("the rig's name (the computer's) that signed", optional=True)
    signed_at: str | None = key("when, ISO 8601 with zone", optional=True)
    covers: str | None = key("what is signed, in words", optional=True)
    fields: str | None = key(
        "a 4-byte digest of every value of the record, base64: names what changed", optional=True
    )
    value: str | None = key(
        "the signature over every other key of the record and this object's, base64",
        optional=True,
    )


@dataclass(frozen=True, kw_only=True)
class SessionRecord(Part):
    """``session.json``: what a session says about itself (rewritten every 2 s, final at stop)."""

    schema_version: int = key(
        "this record's version (absent: 1)", SCHEMA_VERSION, minimum=1, maximum=SCHEMA_VERSION
    )
    format: str = key("deeplabstream-session/1, as every session.json has said", FORMAT)
    status: str = key("running, finished or interrupted (killed)", "running", enum=STATUSES)
    stop_reason: str | None = key("why the run ended")
    started: str = key("wall clock, ISO 8601 with zone", "")
    ended: str | None = key("wall clock, ISO 8601 with zone (null while running)")
    clock: Clock = key("maps host timestamps to dates", factory=Clock)
    errors: tuple[str, ...] = key("every error of the session, in words", factory=tuple)
    warnings: tuple[str, ...] = key("what the session should tell but is no failure", factory=tuple)
    metadata: Metadata = key("the [Session] keys", factory=Metadata)
    settings: dict[str, Any] = key(
        "the effective settings, every key, after defaults", factory=dict
    )
    versions: dict[str, str] = key("Python's and the packages' versions", factory=dict)
    machine: dict[str, Any] = key("OS, CPU, cores, memory", factory=dict)
    cleanup_at_start: Cleanup = key(
        "what this start found left by killed sessions", factory=Cleanup
    )
    main_process_started: float | None = key(
        "when the main process started (s since the epoch): tells a reused pid"
    )
    cameras: dict[str, CameraRecord] = key("per camera", factory=dict)
    pose: PoseRun | None = key("the last analysis (null: none)")
    pose_runs: tuple[PoseRun, ...] = key("every analysis, in order", factory=tuple)
    experiment: ExperimentRun | None = key("the last experiment (null: none)")
    experiment_runs: tuple[ExperimentRun, ...] = key("every experiment, in order", factory=tuple)
    health: Health = key("the loop's deadline, stalls and the verdict", factory=Health)
    processes: dict[str, int | None] = key("process ids by process name", factory=dict)
    priority: Priority = key("core placement and priorities", factory=Priority)
    doorbell: str | None = key("how frame records travel: pipe or portable")
    plugins: dict[str, dict[str, str]] | None = key(
        "the plugins the settings chose, by kind (camera, device, output; with an analysis "
        "backend and model format): each name -> where it comes from: built in, distribution "
        "NAME VERSION, or lab folder: FILE (an experiment's own and its triggers': in its run)",
        optional=True,
    )
    plugin_files: tuple[PluginFile, ...] | None = key(
        "the lab's files among plugins, each with the SHA-256 of what ran (an experiment's: in "
        "its run)",
        optional=True,
    )
    settings_reloads: tuple[SettingsReload, ...] = key(
        "settings re-read while streaming", factory=tuple
    )
    replay: Replay | None = key("a replay of a video: what was replayed, how", optional=True)
    files: dict[str, FileDigest] | None = key(
        "every file the session wrote (path within the folder -> its SHA-256 and size), taken "
        "at its close; deeplabstream-verify takes them again (null while running)",
        optional=True,
    )
    signature: Signature | None = key(
        "the installation's signature of every other key, made last at the close (absent: "
        "not signed, or not closed)",
        optional=True,
    )

    @classmethod
    def from_json(cls, data: Any, where: str = "session.json") -> Self:
        """Read a record of any version; version 1 (no ``schema_version``) gets its runs lists."""
        record = super().from_json(data, where)
        if "schema_version" not in data:  # version 1: the shape before the record was typed
            changes: dict[str, Any] = {"schema_version": 1}
            if not record.pose_runs and record.pose is not None:
                changes["pose_runs"] = (record.pose,)
            if not record.experiment_runs and record.experiment is not None:
                changes["experiment_runs"] = (record.experiment,)
            record = dataclasses.replace(record, **changes)
        elif record.schema_version > SCHEMA_VERSION:
            log.info(
                "%s: schema version %d is newer than this code's %d; its new keys are kept",
                where,
                record.schema_version,
                SCHEMA_VERSION,
            )
        return record

    def camera_setting(self, camera: str, name: str) -> Any:
        """Return a camera's key as the session ran, else ``[Pose]``'s (a null one inherits)."""
        sections = ((self.settings.get("cameras") or {}).get(camera), self.settings.get("Pose"))
        values = [section.get(name) for section in sections if isinstance(section, dict)]
        return next((value for value in values if value is not None), None)

    def is_replay(self) -> bool:
        """Tell whether every camera was a video file (a replay)."""
        return bool(self.cameras) and all(c.source == "video" for c in self.cameras.values())


# -- the file ----------------------------------------------------------------------------------


def file_digest_record(folder: Path) -> dict[str, FileDigest]:
    """Return ``files`` of a finished session folder: every file's SHA-256 and size, now."""
    return {
        name: FileDigest(sha256=sha256, bytes=size)
        for name, (sha256, size) in file_digests(folder).items()
    }


def parse_record(text: str, where: str = SESSION_JSON) -> SessionRecord:
    """Read ``session.json``'s text; raise :class:`DamagedRecordError` naming what is wrong."""
    return SessionRecord.from_json(_parsed_json(text), where)


def load_record(path: Path) -> SessionRecord:
    """Read ``path`` (a ``session.json``; see :func:`read_record_data`).

    Raises DamagedRecordError when it is not a session's record (also a key of the wrong
    type), OSError when it cannot be read.
    """
    return SessionRecord.from_json(read_record_data(path), SESSION_JSON)


def read_record_data(path: Path) -> Any:
    """Return the JSON data of a ``session.json``, read so that no file can stop the reader.

    Only a regular file of at most :data:`MAX_RECORD_BYTES`, nested at most
    :data:`MAX_RECORD_NESTING`; else DamagedRecordError (also for not UTF-8, not JSON). OSError
    when it cannot be read.
    """
    return _parsed_json(_record_text(path))


def _record_text(path: Path) -> str:
    """Return a regular file's text, read only when it is no larger than a record can be."""
    try:
        file = open_regular(path, "rb")  # core/regular_files.py: a FIFO never blocks the read
    except SpecialFileError as error:
        raise DamagedRecordError(f"not a regular file ({error.kind})") from None
    with file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_RECORD_BYTES:
            raise DamagedRecordError(_too_large(size))
        data = file.read(MAX_RECORD_BYTES + 1)  # never more: the file may still grow
    if len(data) > MAX_RECORD_BYTES:
        raise DamagedRecordError(_too_large())
    try:  # a byte-order mark (an editor on Windows saved it) is no damage
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DamagedRecordError(f"not UTF-8 text ({error.reason})") from None


def _too_large(size: int | None = None) -> str:
    found = "" if size is None else f"{size / 2**20:.0f} MiB, "
    return (
        f"{found}larger than {MAX_RECORD_BYTES // 2**20} MiB: more than any session writes; "
        "not read"
    )


def _parsed_json(text: str) -> Any:
    """Return the JSON data of ``text``; DamagedRecordError when it is no JSON or too deep."""
    too_deep = f"nested deeper than {MAX_RECORD_NESTING} lists and objects"
    try:
        data = json.loads(text)
    except RecursionError:  # Python's parser recurses: far deeper than the limit
        raise DamagedRecordError(too_deep) from None
    except ValueError as error:
        raise DamagedRecordError(f"not valid JSON ({error})") from None
    if _nesting_exceeds(data, MAX_RECORD_NESTING):
        raise DamagedRecordError(too_deep)  # writing it back (json, _write) would recurse
    return data


def _nesting_exceeds(data: Any, limit: int) -> bool:
    """Tell whether lists and objects in ``data`` nest deeper than ``limit`` (no recursion)."""
    pending = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def read_session_record(session_dir: Path) -> SessionRecord:
    """Read the ``session.json`` of a session folder (see :func:`load_record`)."""
    return load_record(Path(session_dir) / SESSION_JSON)


def read_session_folder(session_dir: Path, error: type[Exception]) -> SessionRecord:
    """Read a session folder's ``session.json``, or raise ``error`` saying what is wrong."""
    session_dir = Path(session_dir)
    if not session_dir.is_dir():
        raise error(f"{session_dir}: no such session folder")
    try:
        return read_session_record(session_dir)
    except FileNotFoundError:
        raise error(f"{session_dir}: no {SESSION_JSON}: not a session folder") from None
    except (OSError, DamagedRecordError) as problem:
        raise error(f"{session_dir / SESSION_JSON}: cannot be read: {problem}") from None


def write_record(folder: Path, record: SessionRecord, use_reserve: bool = True) -> None:
    """Write ``record`` as the folder's ``session.json`` (atomically; see write_session_json)."""
    write_session_json(folder, record.to_json(), use_reserve=use_reserve)


# -- the published schema ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m deeplabstream.outputs.session_record --schema [PATH]``: write the schema."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--schema", nargs="?", const="-", help="write the JSON Schema (- : stdout)")
    parser.add_argument(
        "--check", type=Path, help="read a session.json, say whether the published schema takes it"
    )
    args = parser.parse_args(argv)
    if args.check is not None and not _check(args.check):
        return 1
    if args.schema is not None:
        text = schema_text()
        if args.schema == "-":
            sys.stdout.write(text)
        else:
            Path(args.schema).write_text(text, encoding="utf-8")
    return 0


def _check(path: Path) -> bool:
    """Say whether ``path`` is a whole record the published schema takes, a line per problem."""
    try:
        data = read_record_data(path)
        record = SessionRecord.from_json(data, SESSION_JSON)
    except (DamagedRecordError, OSError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        return False
    problems = schema_problems(data)
    for problem in problems[:20]:
        print(f"{path}: {problem} (docs/session.schema.json)", file=sys.stderr)
    if len(problems) > 20:
        print(f"{path}: and {len(problems) - 20} more problems", file=sys.stderr)
    if problems:
        return False
    print(f"{path}: schema version {record.schema_version}, status {record.status}")
    return True


def schema_problems(data: Any, where: str = SESSION_JSON) -> list[str]:
    """Return every way ``data`` breaks the published schema (:func:`json_schema`), by key.

    The strict check of ``--check``; ``data`` must be nested at most :data:`MAX_RECORD_NESTING`.
    """
    return check_against_schema(data, json_schema(), where)


def schema_text() -> str:
    """Return the JSON Schema as ``docs/session.schema.json`` holds it."""
    return json.dumps(json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
