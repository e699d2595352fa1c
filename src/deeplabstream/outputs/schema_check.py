"""A JSON value held to a JSON Schema, problem by problem, each named by its key.

The strict check behind ``session_record --check``; it knows only the parts of JSON Schema
that :func:`outputs.session_record.json_schema` writes.
"""

from __future__ import annotations

from typing import Any


def schema_problems(data: Any, schema: dict[str, Any], where: str) -> list[str]:
    """Return every way ``data`` (named ``where``) breaks ``schema``, one text per problem."""
    problems: list[str] = []
    _schema_walk(data, schema, schema["$defs"], where, problems)
    return problems


def json_kind(value: Any) -> str:
    """Say what a JSON value is, as a damaged record's message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({value!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _schema_walk(
    value: Any, schema: dict[str, Any], definitions: dict[str, Any], where: str, out: list[str]
) -> None:
    """Add to ``out`` how ``value`` at ``where`` breaks ``schema``."""
    if "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        options: list[list[str]] = []
        for option in schema["anyOf"]:
            found: list[str] = []
            _schema_walk(value, option, definitions, where, found)
            if not found:
                return
            options.append(found)
        nearest: list[str] = min(options, key=len)  # the option it came nearest to
        out.extend(nearest)
        return
    kinds = schema.get("type")
    if kinds is not None and not any(_is_kind(value, kind) for kind in _as_list(kinds)):
        words = " or ".join(KIND_WORDS[kind] for kind in _as_list(kinds))
        out.append(f"{where} is {json_kind(value)}, not {words}")
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join("null" if v is None else str(v) for v in schema["enum"])
        out.append(f"{where} is {value!r}, not one of {allowed}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where} is {value!r}, below its minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{where} is {value!r}, above its maximum {schema['maximum']}")
    if isinstance(value, dict):
        _object_walk(value, schema, definitions, where, out)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _schema_walk(item, schema["items"], definitions, f"{where}[{index}]", out)


def _object_walk(
    value: dict[str, Any],
    schema: dict[str, Any],
    definitions: dict[str, Any],
    where: str,
    out: list[str],
) -> None:
    """Add to ``out`` the required keys ``value`` lacks and how its keys break ``schema``."""
    for name in schema.get("required", ()):
        if name not in value:
            out.append(f"{where}: the required key {name!r} is missing")
    properties = schema.get("properties", {})
    others = schema.get("additionalProperties", True)
    for name, item in value.items():
        below = properties.get(name, others)
        if below is False:
            out.append(f"{where}: the key {name!r} is not allowed")
        elif isinstance(below, dict):
            _schema_walk(item, below, definitions, f"{where}.{name}", out)


#: How a JSON Schema type reads in a problem's text (and a damaged record's message).
KIND_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


def _as_list(kinds: str | list[str]) -> list[str]:
    return [kinds] if isinstance(kinds, str) else kinds


def _is_kind(value: Any, kind: str) -> bool:
    """Tell whether ``value`` is of the JSON Schema type ``kind`` (a boolean is no number)."""
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    python: dict[str, Any] = {
        "string": str, "integer": int, "number": int | float, "boolean": bool, "array": list,
        "object": dict, "null": type(None),
    }  # fmt: skip
    return isinstance(value, python[kind])
