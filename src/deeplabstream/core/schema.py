"""Typed settings sections: how a dataclass declares its keys and how ini text becomes values."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from deeplabstream.core.regular_files import kind_of

_META_KEY = "dls_setting"

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    """What one key accepts, for parsing (:func:`parse_setting`) and the generated documentation.

    ``is_file``: relative to the file that gives it; ``names_keypoints``: keypoint names; ``key``:
    the ini key where it is not the field's name in upper case.
    """

    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    parse: Callable[[str], Any] | None = None
    allowed: str = ""  # human description for custom parsers
    check: Callable[[Any], None] | None = None  # raises ValueError("what is wrong")
    required: bool = False
    is_file: bool = False
    names_keypoints: bool = False
    key: str = ""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str = "",
    parse: Callable[[str], Any] | None = None,
    allowed: str = "",
    check: Callable[[Any], None] | None = None,
    key: str = "",
) -> Any:
    """Declare one settings key (a dataclass field with documentation and limits).

    ``check`` validates the parsed value and raises ValueError saying what is wrong.
    """
    required = default is dataclasses.MISSING
    spec = SettingSpec(doc, minimum, maximum, unit, parse, allowed, check, required, key=key)
    if isinstance(default, list | dict | set):
        raise TypeError("settings defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata={_META_KEY: spec})


def spec_of(field: dataclasses.Field) -> SettingSpec:
    """Return the :class:`SettingSpec` of a field declared with :func:`setting`."""
    return field.metadata[_META_KEY]


def key_of(field: dataclasses.Field) -> str:
    """Return the ini key of a field: its spec's ``key``, else its name in upper case."""
    return spec_of(field).key or field.name.upper()


@dataclasses.dataclass(frozen=True)
class Where:
    """A place in a settings file, used to make error messages precise."""

    file: Path
    section: str

    def key(self, key: str) -> str:
        """Describe ``key`` of this section for a message."""
        return f"{self.file}: [{self.section}] {key}"


def describe_allowed(annotation: Any, spec: SettingSpec) -> str:
    """Return a short human description of the values a field accepts."""
    if spec.allowed:
        return spec.allowed
    base, optional = _unwrap_optional(annotation)
    origin = get_origin(base)
    if origin is Literal:
        text = "one of " + ", ".join(str(a) for a in get_args(base))
    elif base is bool:
        text = "true or false"
    elif base is int or base is float:
        kind = "a whole number" if base is int else "a number"
        text = kind + _range_text(spec)
    elif base is Path:
        text = "a file or folder path (relative paths are relative to the settings file)"
    elif _is_path_list(base):
        text = (
            "a file or folder path, or several separated by ; or on lines of their own "
            "(relative paths are relative to the settings file), or empty for none"
        )
    elif origin is tuple:
        text = "a comma-separated list"
    else:
        text = "text"
    if optional:
        text += ", or empty for none"
    return text


def _range_text(spec: SettingSpec) -> str:
    lo, hi, unit = spec.minimum, spec.maximum, f" {spec.unit}" if spec.unit else ""
    if lo is not None and hi is not None:
        return f" from {lo:g} to {hi:g}{unit}"
    if lo is not None:
        return f" >= {lo:g}{unit}"
    if hi is not None:
        return f" <= {hi:g}{unit}"
    return unit


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def parse_value(text: str, annotation: Any, spec: SettingSpec, base_dir: Path) -> Any:
    """Turn the text of one key into a typed value, or raise ValueError saying what is allowed."""
    base, optional = _unwrap_optional(annotation)
    text = text.strip()
    if optional and text == "":
        return None
    if spec.parse is not None:
        return spec.parse(text)
    origin = get_origin(base)
    if origin is Literal:
        choices = {str(a).lower(): a for a in get_args(base)}
        if text.lower() not in choices:
            raise ValueError
        return choices[text.lower()]
    if base is bool:
        if text.lower() in _TRUE_WORDS:
            return True
        if text.lower() in _FALSE_WORDS:
            return False
        raise ValueError
    if base is int or base is float:
        value = int(text) if base is int else float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            raise ValueError
        return value
    if base is Path:
        if text == "":
            raise ValueError
        return _path_in(text, base_dir)
    if _is_path_list(base):
        return tuple(_path_in(item, base_dir) for item in split_path_list(text))
    if origin is tuple:
        items = tuple(item.strip() for item in text.split(",") if item.strip())
        if get_args(base)[:1] == (int,):  # tuple[int, ...]: whole numbers
            return tuple(int(item) for item in items)
        return items
    if base is str:
        return text
    raise TypeError(f"unsupported settings type {annotation!r}")


def _is_path_list(annotation: Any) -> bool:
    """Whether ``annotation`` is ``tuple[Path, ...]``: one path or several (``MODEL_PATH``)."""
    return get_origin(annotation) is tuple and get_args(annotation) == (Path, Ellipsis)


def path_list_keys(cls: type) -> frozenset[str]:
    """Return the keys of ``cls`` that take one path or several (written ``a; b``)."""
    hints = typing.get_type_hints(cls)
    return frozenset(key_of(f) for f in settings_fields(cls) if _is_path_list(hints[f.name]))


def split_path_list(text: str) -> list[str]:
    """Return the paths of a key that takes several, separated by ``;`` or on lines of their own."""
    return [item.strip() for line in text.splitlines() for item in line.split(";") if item.strip()]


def _path_in(text: str, base_dir: Path) -> Path:
    """Return ``text`` as a path, a relative one taken from ``base_dir``."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def parse_setting(text: str, annotation: Any, spec: SettingSpec, base_dir: Path) -> Any:
    """Parse one key's text and run its ``check``: the one parse path of every key.

    Raises ValueError (``expected <what is allowed>``, or the check's message); the caller prefixes
    the place, key and value.
    """
    try:
        value = parse_value(text, annotation, spec, base_dir)
    except ValueError as error:
        allowed, reason = describe_allowed(annotation, spec), str(error)
        if allowed in reason:  # the parser's own message already says what is allowed
            raise ValueError(reason) from None
        detail = f" ({reason})" if reason else ""
        raise ValueError(f"expected {allowed}{detail}") from None
    if spec.check is not None and value is not None:
        spec.check(value)
    return value


def settings_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    """Return the fields of a section class that are settings keys."""
    return tuple(f for f in dataclasses.fields(cls) if _META_KEY in f.metadata)


def keys_written_twice(items: dict[str, str], where: Where) -> list[str]:
    """Return a problem for each key ``items`` has in several cases (``KEY``, ``key``)."""
    spellings: dict[str, list[str]] = {}
    for key in items:
        spellings.setdefault(key.upper(), []).append(key)
    return [
        f"{where.file}: [{where.section}]: "
        + " and ".join(f"{key} = {items[key].strip()!r}" for key in keys)
        + f" are one key written {len(keys)} times (keys are read whatever their case, so only "
        "one could be taken): keep one"
        for keys in spellings.values()
        if len(keys) > 1
    ]


def parse_section(
    cls: type,
    items: dict[str, str],
    where: Where,
    problems: list[str],
    *,
    extra_allowed: set[str] | frozenset[str] = frozenset(),
    **fixed: Any,
) -> Any:
    """Build ``cls`` from the raw ``items`` of one ini section; append problems, never raise.

    ``fixed`` supplies fields not in the file. Returns None on a problem. A relative path default is
    relative to the settings file's folder.
    """
    hints = typing.get_type_hints(cls)
    fields = {key_of(f): f for f in settings_fields(cls)}
    count_before = len(problems)
    for key in items:
        if key.upper() not in fields:
            allowed = ", ".join(sorted({*fields, *extra_allowed})) or "no keys"
            problems.append(
                f"{where.key(key.upper())}: unknown key. Allowed in this section: {allowed}"
            )
    values: dict[str, Any] = dict(fixed)
    for key, field in fields.items():
        raw = _lookup(items, key)
        if raw is None:
            if field.default is dataclasses.MISSING:
                problems.append(f"{where.key(key)}: missing; expected {_allowed(field, hints)}")
            elif isinstance(field.default, Path) and not field.default.is_absolute():
                # A relative default is relative to the settings file too, like a value given
                values[field.name] = where.file.parent / field.default.expanduser()
            continue
        try:
            value = parse_setting(raw, hints[field.name], spec_of(field), where.file.parent)
        except ValueError as error:
            problems.append(f"{where.key(key)} = {raw.strip()!r}: {error}")
            continue
        values[field.name] = value
    if len(problems) > count_before:
        return None
    try:
        return cls(**values)
    except ValueError as error:  # cross-key checks in __post_init__
        problems.append(f"{where.file}: [{where.section}]: {error}")
        return None


def _lookup(items: dict[str, str], key: str) -> str | None:
    for name, value in items.items():
        if name.upper() == key:
            return value
    return None


def _allowed(field: dataclasses.Field, hints: dict[str, Any]) -> str:
    return describe_allowed(hints[field.name], spec_of(field))


def existing_file(path: Path) -> None:
    """``check`` for keys that name an input file: it must exist and not be a folder."""
    if not path.exists():
        raise ValueError(
            f"file not found: {path} (a relative path is relative to the settings file)"
        )
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a file")
    kind = kind_of(path.stat().st_mode)
    if kind is not None:  # a FIFO would block whoever opens it (core/regular_files.py)
        raise ValueError(f"{path} is not a regular file ({kind}); expected a file")


def check_quantity(
    name: str, value: float, unit: str, minimum: float | None = None, strict: bool = False
) -> float:
    """Return ``value`` as a finite float ``>= minimum`` (``>``: ``strict``); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        words = "seconds" if unit == "s" else unit
        raise ValueError(f"{name} must be a finite number of {words}, not {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = f"{'>' if strict else '>='} {minimum:g} {unit}"
        raise ValueError(f"{name} must be {bound}, not {value!r}")
    return float(value)


def greater_than_zero(unit: str = "", or_none: bool = False) -> Callable[[float], None]:
    """Return the ``check`` of a key whose value must be > 0 (in ``unit``; empty: for none)."""
    said = "must be > 0" + (f" {unit}" if unit else "") + (", or empty for none" if or_none else "")

    def check(value: float) -> None:
        if not value > 0:
            raise ValueError(said)

    return check
