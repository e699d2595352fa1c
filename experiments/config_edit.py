"""Edit the regions of an experiment config file in place, keeping everything else as written.

The region editor of the window reads the ``[Trigger NAME]`` sections that carry a ``SHAPE``
(``KIND = region``) as :class:`RegionSpec` and writes changes back into the same file. The
file is edited line by line, not rewritten by :mod:`configparser`, so every comment, blank line,
key order and spelling the user wrote survives; only the ``SHAPE`` and ``CAMERA`` lines of changed
regions, the sections of new regions and the sections of deleted ones differ.

:func:`save_regions` validates the new text with the loader before it touches the file: a text
that would not load leaves the file as it was and raises :class:`ConfigEditError` with the
loader's message. The previous file is kept as ``NAME.ini.bak``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.ini_text import save_with_backup
from experiments.config import (
    TRIGGER_PREFIX,
    ExperimentConfigError,
    parse_experiment_config,
)
from experiments.triggers.geometry import RegionShape, parse_shape

REGION_KIND = "region"
DEFAULT_MODE = "inside"
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
# configparser's default delimiters are "=" and ":"; keys start in the first column.
_KEY = re.compile(r"^(?P<key>[^\s=:#;\[][^=:]*?)\s*[=:]\s*(?P<value>.*)$")


class ConfigEditError(ValueError):
    """An edit that cannot be made; the message says why (and names the rule or the problem)."""


@dataclass(frozen=True)
class RegionSpec:
    """One region trigger of a config: its section name, camera, shape and keypoint."""

    trigger: str
    camera: str | None
    shape: RegionShape
    keypoint: str | None
    kind: str = REGION_KIND


@dataclass
class _Key:
    """One ``KEY = value`` of a section: its first line and the lines its value spans."""

    key: str
    value: str
    start: int
    end: int  # one past the last continuation line


@dataclass
class _Section:
    """A section of the text: its header line and one past its last line."""

    name: str
    start: int
    end: int
    keys: list[_Key]

    def key(self, name: str) -> _Key | None:
        """Return the key ``name`` (any case), or None."""
        return next((k for k in self.keys if k.key.upper() == name.upper()), None)


def _sections(lines: list[str]) -> list[_Section]:
    """Split ``lines`` (no line ends) into sections, as configparser reads them."""
    sections: list[_Section] = []
    for index, line in enumerate(lines):
        match = _SECTION.match(line.strip()) if line[:1] == "[" else None
        if match:
            if sections:
                sections[-1].end = index
            sections.append(_Section(match["name"].strip(), index, len(lines), []))
            continue
        if not sections:
            continue
        keys = sections[-1].keys
        stripped = line.strip()
        key = _KEY.match(line)
        if key and line[:1] not in " \t":
            keys.append(_Key(key["key"].strip(), key["value"].strip(), index, index + 1))
        elif stripped and not stripped.startswith(("#", ";")) and line[:1] in " \t" and keys:
            # an indented line continues the previous value (configparser's multi-line values)
            keys[-1].value += "\n" + stripped
            keys[-1].end = index + 1
    return sections


def _trigger_name(section: _Section) -> str | None:
    if section.name.startswith(TRIGGER_PREFIX):
        return section.name[len(TRIGGER_PREFIX) :].strip()
    return None


def _names(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class ConfigText:
    """The text of a config file with line-based edits of its region triggers.

    Parameters
    ----------
    text
        The file's text; edited lines end in a newline, as configparser writes them.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self._final_newline = text.endswith("\n") or not text

    @property
    def text(self) -> str:
        """The edited text."""
        return "\n".join(self.lines) + ("\n" if self._final_newline else "")

    def _trigger(self, name: str) -> _Section:
        for section in _sections(self.lines):
            if _trigger_name(section) == name:
                return section
        raise ConfigEditError(f"no [Trigger {name}] section in the config")

    def regions(self) -> list[RegionSpec]:
        """Return every trigger with a ``SHAPE``, in file order (a bad shape: ConfigEditError)."""
        found: list[RegionSpec] = []
        for section in _sections(self.lines):
            name = _trigger_name(section)
            shape_key = section.key("SHAPE")
            if name is None or shape_key is None:
                continue
            try:
                shape = parse_shape(shape_key.value)
            except ValueError as error:
                raise ConfigEditError(f"[{section.name}] SHAPE: {error}") from None
            camera, keypoint, kind = (section.key(k) for k in ("CAMERA", "KEYPOINT", "KIND"))
            found.append(
                RegionSpec(
                    trigger=name,
                    camera=camera.value if camera is not None and camera.value else None,
                    shape=shape,
                    keypoint=keypoint.value if keypoint is not None and keypoint.value else None,
                    kind=kind.value.lower() if kind is not None else REGION_KIND,
                )
            )
        return found

    def trigger_names(self) -> list[str]:
        """Return the names of every ``[Trigger NAME]`` section, regions or not."""
        return [n for n in (_trigger_name(s) for s in _sections(self.lines)) if n is not None]

    def users_of(self, trigger: str) -> list[str]:
        """Return the rules (``WHEN``) and combinators (``OF``) that name ``trigger``."""
        users: list[str] = []
        for section in _sections(self.lines):
            for key_name in ("WHEN", "OF"):
                key = section.key(key_name)
                if key is not None and trigger in _names(key.value):
                    users.append(f"[{section.name}] {key.key} = {', '.join(_names(key.value))}")
        return users

    def set_key(self, trigger: str, key: str, value: str | None) -> None:
        """Set ``key`` of ``[Trigger trigger]`` to ``value``; None removes the key."""
        section = self._trigger(trigger)
        existing = section.key(key)
        if existing is not None:
            new = [] if value is None else [f"{existing.key} = {value}"]
            self.lines[existing.start : existing.end] = new
        elif value is not None:
            # after the section's last key, so trailing blank lines and comments stay below
            at = section.keys[-1].end if section.keys else section.start + 1
            self.lines.insert(at, f"{key} = {value}")

    def set_shape(self, trigger: str, shape: RegionShape) -> None:
        """Write ``shape`` as the trigger's ``SHAPE``."""
        self.set_key(trigger, "SHAPE", str(shape))

    def set_camera(self, trigger: str, camera: str | None) -> None:
        """Write the trigger's ``CAMERA``; None removes it (the trigger reads any one camera)."""
        self.set_key(trigger, "CAMERA", camera)

    def add_region(self, spec: RegionSpec, mode: str = DEFAULT_MODE) -> None:
        """Add a ``[Trigger NAME]`` region section after the last trigger section."""
        sections = _sections(self.lines)
        if any(_trigger_name(s) == spec.trigger for s in sections):
            raise ConfigEditError(f"a trigger named {spec.trigger!r} exists already")
        block = [f"[{TRIGGER_PREFIX}{spec.trigger}]", f"KIND = {spec.kind}"]
        block.append(f"SHAPE = {spec.shape}")
        if spec.camera is not None:
            block.append(f"CAMERA = {spec.camera}")
        if spec.keypoint is not None:
            block.append(f"KEYPOINT = {spec.keypoint}")
        block.append(f"MODE = {mode}")
        triggers = [s for s in sections if _trigger_name(s) is not None]
        if triggers:
            at = self._content_end(triggers[-1])
            self.lines[at:at] = ["", *block]
        else:
            while self.lines and not self.lines[-1].strip():
                self.lines.pop()
            self.lines.extend(["", *block] if self.lines else block)

    def delete_trigger(self, trigger: str) -> None:
        """Remove ``[Trigger trigger]`` with the comment block right above it.

        Raises
        ------
        ConfigEditError
            A rule or combinator still names the trigger (the message names them).
        """
        section = self._trigger(trigger)
        users = self.users_of(trigger)
        if users:
            raise ConfigEditError(
                f"cannot delete region {trigger!r}: it is used by {'; '.join(users)}. "
                "Change or delete those first."
            )
        start = section.start
        while start > 0 and self.lines[start - 1].lstrip().startswith(("#", ";")):
            start -= 1  # the comments that describe this section go with it
        end = self._content_end(section)
        while end < len(self.lines) and not self.lines[end].strip():
            end += 1  # and the blank lines after it, so no gap of two blank lines remains
        if end >= len(self.lines):  # the last section: drop the blank lines before it instead
            while start > 0 and not self.lines[start - 1].strip():
                start -= 1
        del self.lines[start:end]

    def _content_end(self, section: _Section) -> int:
        """One past the section's last line that is not a blank or the next section's comments."""
        end = section.end
        while end > section.start + 1:
            line = self.lines[end - 1].strip()
            if line and not line.startswith(("#", ";")):
                break
            end -= 1
        return max(end, section.keys[-1].end if section.keys else section.start + 1)


def read_regions(path: Path) -> list[RegionSpec]:
    """Return the region triggers of the config file at ``path``, in file order."""
    return ConfigText(Path(path).read_text(encoding="utf-8")).regions()


def edited_text(text: str, regions: list[RegionSpec], mode: str = DEFAULT_MODE) -> str:
    """Return ``text`` changed so that its region triggers are ``regions``.

    Regions of ``text`` missing from ``regions`` are deleted (refused while a rule or combinator
    names them), changed ones get their new ``SHAPE`` and ``CAMERA`` lines, new ones are added
    as ``KIND = region`` sections with ``MODE = mode``.
    """
    config = ConfigText(text)
    before = {spec.trigger: spec for spec in config.regions()}
    wanted = {spec.trigger: spec for spec in regions}
    for name in before:
        if name not in wanted:
            config.delete_trigger(name)
    for name, spec in wanted.items():
        old = before.get(name)
        if old is None:
            config.add_region(spec, mode)
            continue
        if old.shape != spec.shape:
            config.set_shape(name, spec.shape)
        if old.camera != spec.camera:
            config.set_camera(name, spec.camera)
    return config.text


def save_regions(path: Path, regions: list[RegionSpec], mode: str = DEFAULT_MODE) -> Path:
    """Write ``regions`` into the config at ``path``; keep the old file as ``NAME.ini.bak``.

    The new text is validated by the experiment loader first; the file is replaced in one step
    (a temporary file renamed over it), so a failure leaves it untouched.

    Returns
    -------
    Path
        The backup file.

    Raises
    ------
    ConfigEditError
        The edit is refused (a deleted region is still used) or the result would not load;
        the message is the loader's.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new_text = edited_text(text, regions, mode)
    try:
        parse_experiment_config(new_text, path)
    except ExperimentConfigError as error:
        raise ConfigEditError(f"not saved, the config would not load: {error}") from None
    backup = save_with_backup(path, new_text)  # atomic; the old file kept as NAME.ini.bak
    assert backup is not None  # the file was read above
    return backup
