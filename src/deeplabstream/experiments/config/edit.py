"""Edit the regions of an experiment config file in place, keeping everything else as written.

Its design: docs/experiments-internals.md (`experiments.config.edit`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.ini_text import save_with_backup
from deeplabstream.experiments.config.parse import (
    EXPERIMENT_SECTION,
    RULE_PREFIX,
    STIMULATION_PREFIX,
    TRIGGER_PREFIX,
    ExperimentConfigError,
    parse_experiment_config,
)
from deeplabstream.experiments.observation import DEFAULT_HOLD_S
from deeplabstream.experiments.triggers import file_parameters_of
from deeplabstream.experiments.triggers.geometry import RegionShape, parse_shape
from deeplabstream.experiments.triggers.kinds import TRIGGERS, keypoint_parameters

REGION_KIND = "region"
DEFAULT_MODE = "inside"
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
# configparser's default delimiters are "=" and ":"; keys start in the first column.
_KEY = re.compile(r"^(?P<key>[^\s=:#;\[][^=:]*?)\s*[=:]\s*(?P<value>.*)$")


class ConfigEditError(SettingsError):
    """An edit that cannot be made; the message says why (and names the rule or the problem)."""

    lists_problems = False


EDGE_WORDS = {"rising": "on entry", "while": "while inside", "falling": "on exit"}
"""A rule's ``EDGE`` for a region that is true inside, in the window's words."""
_EDGE_VERBS = {"rising": "becomes true", "while": "is true", "falling": "becomes false"}
_TRUE_WORDS = ("1", "yes", "true", "on")  # configparser's booleans
NO_ACTION = "none"
FIRST_ANIMAL = "1"
ANIMAL_CHOICES = ("any", "each")
"""``ANIMAL`` besides a number: any animal (one state), each animal (a state and edges each)."""


def animal_words(animal: str | None) -> str:
    """Say a region's ``ANIMAL`` in words: ``animal 2``, ``any animal``, ``each animal``."""
    value = (animal or FIRST_ANIMAL).strip().lower()
    return f"{value} animal" if value in ANIMAL_CHOICES else f"animal {value}"


def _same_animal(a: str | None, b: str | None) -> bool:
    return (a or FIRST_ANIMAL).strip().lower() == (b or FIRST_ANIMAL).strip().lower()


@dataclass(frozen=True)
class RegionAction:
    """What a region does: one stimulation fired by one rule (docs/experiments-internals.md).

    ``command`` is ``pulse`` (``duration_s``) or ``pattern``, a train (``on_s``, ``off_s``,
    ``count``); :data:`NO_ACTION` asks :func:`edited_text` to remove the region's action.
    ``hold_s`` is the region trigger's ``HOLD_S`` in effect (its own, else ``[Experiment]
    HOLD``, else the default): how long a keypoint not seen keeps the region's state, so that a
    blink of the model does not fire the rule again; it is written into the ``[Trigger]``
    section only when it differs from what the trigger would inherit, or the trigger has one.
    ``rule`` and ``stimulation`` are the sections it is read from (empty for a new one).
    """

    device: str
    command: str = "pulse"
    channel: int = 0
    duration_s: float | None = 0.1
    on_s: float | None = None
    off_s: float | None = None
    count: int | None = None
    edge: str = "rising"
    refractory_s: float = 0.0
    hold_s: float = DEFAULT_HOLD_S
    rule: str = ""
    stimulation: str = ""

    @classmethod
    def removed(cls, old: RegionAction | None) -> RegionAction:
        """Return the request to remove ``old`` (the region then fires nothing)."""
        return cls(
            "",
            NO_ACTION,
            rule=old.rule if old else "",
            stimulation=old.stimulation if old else "",
        )

    def what(self) -> str:
        """Say the stimulation alone: ``pulse 100 ms``, ``train 20 ms on / 30 ms off x 5``."""
        if self.command == "pulse":
            return f"pulse {_ms(self.duration_s)}"
        count = f" x {self.count}" if self.count else " until off"
        return f"train {_ms(self.on_s)} on / {_ms(self.off_s)} off{count}"

    def describe(self) -> str:
        """Say it in words: ``pulse 100 ms, stimulus_box channel 0, on entry``."""
        if self.command == NO_ACTION:
            return "no action"
        text = (
            f"{self.what()}, {self.device} channel {self.channel}, "
            f"{EDGE_WORDS.get(self.edge, self.edge)}"
        )
        if self.refractory_s:
            text += f", then {self.refractory_s:g} s refractory"
        if self.hold_s != DEFAULT_HOLD_S:
            text += f", holds {self.hold_s:g} s through a loss"
        return text


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:g} ms"


@dataclass(frozen=True)
class RegionSpec:
    """One region trigger of a config: its section name, camera, shape and keypoint.

    ``action``: None leaves the config's rules as they are; a :class:`RegionAction` is written
    (or, with :data:`NO_ACTION`, removed) by :func:`edited_text`. ``animal``: which animal the
    region watches (:data:`ANIMAL_CHOICES`).
    """

    trigger: str
    camera: str | None
    shape: RegionShape
    keypoint: str | None
    kind: str = REGION_KIND
    action: RegionAction | None = None
    animal: str | None = None
    """``ANIMAL`` as written: a number, ``any`` or ``each``; None: not written (animal 1)."""


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

    def _section(self, name: str) -> _Section | None:
        return next((s for s in _sections(self.lines) if s.name == name), None)

    def section_names(self, prefix: str) -> list[str]:
        """Return the names of the sections ``[PREFIX NAME]`` (``prefix`` with its space)."""
        return [
            s.name[len(prefix) :].strip()
            for s in _sections(self.lines)
            if s.name.startswith(prefix)
        ]

    def value(self, section: str, key: str) -> str | None:
        """Return ``key`` of ``[section]`` as written, or None."""
        found = self._section(section)
        written = found.key(key) if found is not None else None
        return written.value if written is not None else None

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
            camera, keypoint, kind, animal = (
                section.key(k) for k in ("CAMERA", "KEYPOINT", "KIND", "ANIMAL")
            )
            found.append(
                RegionSpec(
                    trigger=name,
                    camera=camera.value if camera is not None and camera.value else None,
                    shape=shape,
                    keypoint=keypoint.value if keypoint is not None and keypoint.value else None,
                    kind=kind.value.lower() if kind is not None else REGION_KIND,
                    animal=animal.value.strip().lower() if animal and animal.value else None,
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

    def rules_of(self, trigger: str) -> list[str]:
        """Return the names of the rules whose ``WHEN`` names ``trigger``, in file order."""
        return [
            rule
            for rule in self.section_names(RULE_PREFIX)
            if trigger in _names(self.value(RULE_PREFIX + rule, "WHEN") or "")
        ]

    def describe_rule(self, rule: str) -> str:
        """Say rule ``rule`` in a line: ``left_entry: when nose_in_left becomes true, do ...``."""
        section = RULE_PREFIX + rule
        when = ", ".join(_names(self.value(section, "WHEN") or "")) or "?"
        edge = (self.value(section, "EDGE") or "rising").strip().lower()
        parts = [f"{rule}: when {when} {_EDGE_VERBS.get(edge, edge)}"]
        do = _names(self.value(section, "DO") or "")
        if do:
            parts.append(f"do {', '.join(do)}")
        for key, words in (("STARTS_TRIAL", "start a trial"), ("ENDS_TRIAL", "end the trial")):
            if (self.value(section, key) or "").strip().lower() in _TRUE_WORDS:
                parts.append(words)
        return ", ".join(parts)

    def described(self) -> str:
        """Say what the config's rules do, in one line (what the window writes as DESCRIPTION).

        ``When nose_in_left becomes true: pulse 50 ms on stimulus_box channel 1, a trial
        starts; when ...``; "" for a config without rules.
        """
        clauses = []
        for rule in self.section_names(RULE_PREFIX):
            section = RULE_PREFIX + rule
            when = " and ".join(_names(self.value(section, "WHEN") or "")) or "?"
            edge = (self.value(section, "EDGE") or "rising").strip().lower()
            does = [
                self._stimulation_words(name) for name in _names(self.value(section, "DO") or "")
            ]
            for key, words in (
                ("STARTS_TRIAL", "a trial starts"),
                ("ENDS_TRIAL", "the trial ends"),
            ):
                if (self.value(section, key) or "").strip().lower() in _TRUE_WORDS:
                    does.append(words)
            clauses.append(
                f"when {when} {_EDGE_VERBS.get(edge, edge)}: {', '.join(does) or 'nothing'}"
            )
        text = "; ".join(clauses)
        return text[:1].upper() + text[1:]

    def _stimulation_words(self, name: str) -> str:
        """Say ``[Stimulation name]``: ``pulse 50 ms on stimulus_box channel 1`` (else its name)."""
        action = self._stimulation_action(name)
        if action is None:
            return name
        return f"{action.what()} on {action.device} channel {action.channel}"

    def describe_as(self, text: str) -> None:
        """Write ``text`` as ``[Experiment] DESCRIPTION`` (the section is added when missing)."""
        if self._section(EXPERIMENT_SECTION) is None:
            self.append_section(EXPERIMENT_SECTION, [("DESCRIPTION", text)])
        else:
            self.set_section_key(EXPERIMENT_SECTION, "DESCRIPTION", text)

    def delete_rule(self, rule: str) -> list[str]:
        """Remove ``[Rule rule]`` and the stimulations it did that no other rule does.

        Returns the sections removed (``[Rule left_entry]``, ``[Stimulation left_stimulus]``);
        nothing for a rule that is not there (deleted already).
        """
        section = RULE_PREFIX + rule
        if self._section(section) is None:
            return []
        stimulations = _names(self.value(section, "DO") or "")
        self.delete_section(section)
        removed = [f"[{section}]"]
        for stimulation in dict.fromkeys(stimulations):
            present = self._section(STIMULATION_PREFIX + stimulation) is not None
            if present and not self._rules_doing(stimulation):
                self.delete_section(STIMULATION_PREFIX + stimulation)
                removed.append(f"[{STIMULATION_PREFIX}{stimulation}]")
        return removed

    def set_key(self, trigger: str, key: str, value: str | None) -> None:
        """Set ``key`` of ``[Trigger trigger]`` to ``value``; None removes the key."""
        self._set(self._trigger(trigger), key, value)

    def set_section_key(self, section: str, key: str, value: str | None) -> None:
        """Set ``key`` of ``[section]`` to ``value``; None removes the key."""
        found = self._section(section)
        if found is None:
            raise ConfigEditError(f"no [{section}] section in the config")
        self._set(found, key, value)

    def _set(self, section: _Section, key: str, value: str | None) -> None:
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
        if not _same_animal(spec.animal, None):
            block.append(f"ANIMAL = {spec.animal}")
        block.append(f"MODE = {mode}")
        triggers = [s for s in sections if _trigger_name(s) is not None]
        if triggers:
            at = self._content_end(triggers[-1])
            self.lines[at:at] = ["", *block]
        else:
            while self.lines and not self.lines[-1].strip():
                self.lines.pop()
            self.lines.extend(["", *block] if self.lines else block)

    def append_section(self, name: str, items: list[tuple[str, str]]) -> None:
        """Add ``[name]`` with ``items`` at the end of the file (a blank line before it)."""
        if self._section(name) is not None:
            raise ConfigEditError(f"a section [{name}] exists already")
        while self.lines and not self.lines[-1].strip():
            self.lines.pop()
        block = [f"[{name}]", *(f"{key} = {value}" for key, value in items)]
        self.lines.extend(["", *block] if self.lines else block)

    def delete_section(self, name: str) -> None:
        """Remove ``[name]`` with the comment block right above it (nothing if it is absent)."""
        section = self._section(name)
        if section is not None:
            self._delete(section)

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
        self._delete(section)

    def _delete(self, section: _Section) -> None:
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

    # -- a region's action --------------------------------------------------------------------

    def region_action(self, trigger: str) -> RegionAction | None:
        """Return the action of region ``trigger`` (docs/experiments-internals.md), or None."""
        for rule in self.section_names(RULE_PREFIX):
            when = _names(self.value(RULE_PREFIX + rule, "WHEN") or "")
            do = _names(self.value(RULE_PREFIX + rule, "DO") or "")
            if when != [trigger] or len(do) != 1:
                continue
            action = self._stimulation_action(do[0])
            if action is None:
                continue
            edge = (self.value(RULE_PREFIX + rule, "EDGE") or "rising").strip().lower()
            try:
                refractory = float(self.value(RULE_PREFIX + rule, "REFRACTORY") or 0)
            except ValueError:
                continue
            return replace(
                action, edge=edge, refractory_s=refractory, hold_s=self.hold(trigger), rule=rule
            )
        return None

    def inherited_hold(self) -> float:
        """Return ``[Experiment] HOLD``, the hold of every trigger without its own ``HOLD_S``."""
        try:
            return float(self.value(EXPERIMENT_SECTION, "HOLD") or DEFAULT_HOLD_S)
        except ValueError:  # the loader names it
            return DEFAULT_HOLD_S

    def hold(self, trigger: str) -> float:
        """Return the ``HOLD_S`` in effect for ``trigger`` (its own, else the inherited one)."""
        try:
            return float(self.value(TRIGGER_PREFIX + trigger, "HOLD_S") or self.inherited_hold())
        except ValueError:  # the loader names it
            return self.inherited_hold()

    def _stimulation_action(self, name: str) -> RegionAction | None:
        """Return ``[Stimulation name]`` as an action when it is a pulse or a pattern."""
        section = STIMULATION_PREFIX + name
        command = (self.value(section, "COMMAND") or "").strip().lower()
        if command not in ("pulse", "pattern"):
            return None

        def number(key: str) -> float | None:
            text = (self.value(section, key) or "").strip()
            return float(text) if text else None

        try:
            count = number("COUNT")
            return RegionAction(
                device=(self.value(section, "DEVICE") or "").strip(),
                command=command,
                channel=int(self.value(section, "CHANNEL") or 0),
                duration_s=number("DURATION"),
                on_s=number("ON_DURATION"),
                off_s=number("OFF_DURATION"),
                count=None if count is None else int(count),
                stimulation=name,
            )
        except ValueError:  # the loader names it; the window shows no action it cannot read
            return None

    def set_region_action(self, trigger: str, action: RegionAction) -> None:
        """Write ``action`` as the action of region ``trigger`` (:data:`NO_ACTION`: remove it).

        Its rule and stimulation are edited in place; a stimulation that other rules share is
        not changed under them: the region gets a stimulation of its own.
        """
        if action.command == NO_ACTION:
            self._remove_action(action)
            return
        rules, stimulations = (
            self.section_names(RULE_PREFIX),
            self.section_names(STIMULATION_PREFIX),
        )
        rule = action.rule if action.rule in rules else _free(f"{trigger}_action", rules)
        stimulation = action.stimulation
        shared = [r for r in self._rules_doing(stimulation) if r != rule]
        if stimulation not in stimulations or shared:
            stimulation = _free(f"{trigger}_action", stimulations)
            self.append_section(STIMULATION_PREFIX + stimulation, [])
        section = STIMULATION_PREFIX + stimulation
        for key, value in _stimulation_items(action):
            self.set_section_key(section, key, value)
        if rule not in rules:
            self.append_section(RULE_PREFIX + rule, [("WHEN", trigger)])
        section = RULE_PREFIX + rule
        self.set_section_key(section, "DO", stimulation)
        self.set_section_key(section, "EDGE", action.edge)
        refractory = f"{action.refractory_s:g}" if action.refractory_s else None
        self.set_section_key(section, "REFRACTORY", refractory)
        own_hold = self.value(TRIGGER_PREFIX + trigger, "HOLD_S") is not None
        if own_hold or action.hold_s != self.inherited_hold():
            self.set_key(trigger, "HOLD_S", f"{action.hold_s:g}")

    def is_action_only(self, action: RegionAction) -> bool:
        """Whether the action's rule does nothing else (no trials started or ended by it)."""
        section = self._section(RULE_PREFIX + action.rule)
        keys = {key.key.upper() for key in section.keys} if section is not None else set()
        return keys <= {"WHEN", "DO", "EDGE", "REFRACTORY"}

    def _rules_doing(self, stimulation: str) -> list[str]:
        return [
            rule
            for rule in self.section_names(RULE_PREFIX)
            if stimulation in _names(self.value(RULE_PREFIX + rule, "DO") or "")
        ]

    def _remove_action(self, action: RegionAction) -> None:
        """Remove the action's rule, and its stimulation when no other rule uses it."""
        if action.rule:
            self.delete_section(RULE_PREFIX + action.rule)
        if action.stimulation and not self._rules_doing(action.stimulation):
            self.delete_section(STIMULATION_PREFIX + action.stimulation)

    def make_files_absolute(self, folder: Path) -> None:
        """Write every relative file a trigger names (a classifier's MODEL) as ``folder / it``.

        Before the text is saved in another folder, so that it still names the same files.
        """
        for section in _sections(self.lines):
            kind_key = section.key("KIND")
            kind = (kind_key.value if kind_key else "").strip().lower().replace("-", "_")
            if _trigger_name(section) is None or kind not in TRIGGERS:
                continue
            for parameter in file_parameters_of(kind):
                key = section.key(parameter)
                if key is not None and key.value and not Path(key.value).expanduser().is_absolute():
                    absolute = (folder / Path(key.value).expanduser()).resolve()
                    self.set_section_key(section.name, key.key, str(absolute))

    # -- keypoints ------------------------------------------------------------------------------

    def map_keypoints(self, mapping: Mapping[str, str]) -> list[str]:
        """Rename keypoints by ``mapping`` (old name -> new) wherever the config reads them.

        Returns what changed, one line each (``[Trigger x] KEYPOINT = snout (was nose)``). A key
        left out but read by default (a region's ``nose``) is written with the new name; a
        ``DESCRIPTION`` that names an old keypoint is rewritten with the new (:func:`rename_words`).
        """
        kinds = TRIGGERS
        changes: list[str] = []
        for section in _sections(self.lines):
            if _trigger_name(section) is not None:
                kind_key = section.key("KIND")
                kind = (kind_key.value if kind_key else "").strip().lower().replace("-", "_")
                keys = keypoint_parameters(kind) if kind in kinds else {}
            elif section.name == EXPERIMENT_SECTION:
                keys = {"event_keypoint": ""}
            else:
                continue
            for parameter, default in keys.items():
                written = section.key(parameter)
                names = _names(written.value if written is not None else default)
                mapped = [mapping.get(name, name) for name in names]
                if mapped == names:
                    continue
                value = ",".join(mapped)
                self.set_section_key(section.name, parameter.upper(), value)
                was = ",".join(names) + ("" if written is not None else ", its default")
                changes.append(f"[{section.name}] {parameter.upper()} = {value} (was {was})")
        return changes + self._map_descriptions(mapping)

    def _map_descriptions(self, mapping: Mapping[str, str]) -> list[str]:
        """Rewrite every section's ``DESCRIPTION`` that names a keypoint of ``mapping``."""
        changes = []
        for name in [section.name for section in _sections(self.lines)]:
            section = self._section(name)  # read again: a rewrite above may move the lines
            written = section.key("DESCRIPTION") if section is not None else None
            if written is None:
                continue
            renamed = rename_words(written.value, mapping)
            if renamed != written.value:
                first, *more = renamed.split("\n")  # a value of several lines stays so
                lines = [f"{written.key} = {first}", *(f"    {line}" for line in more)]
                self.lines[written.start : written.end] = lines
                changes.append(f"[{name}] {written.key} = {renamed} (was {written.value})")
        return changes

    def _content_end(self, section: _Section) -> int:
        """One past the section's last line that is not a blank or the next section's comments."""
        end = section.end
        while end > section.start + 1:
            line = self.lines[end - 1].strip()
            if line and not line.startswith(("#", ";")):
                break
            end -= 1
        return max(end, section.keys[-1].end if section.keys else section.start + 1)


def rename_words(text: str, mapping: Mapping[str, str]) -> str:
    """Return ``text`` with each keypoint name of ``mapping`` written as its new name.

    Whole words only, in one pass (``nose -> head, head -> neck`` does not make the nose a neck),
    any case, and a name with ``_`` also as written with a space or ``-`` (``tail base``); a word
    that began with a capital keeps it: "Nose in zone" becomes "Head in zone".
    """
    spellings: dict[str, str] = {}
    for old, new in mapping.items():
        if old and old != new:
            for spelt in {old, *(old.replace("_", sep) for sep in (" ", "-"))}:
                spellings[spelt.lower()] = new
    if not spellings:
        return text
    alternatives = "|".join(re.escape(word) for word in sorted(spellings, key=len, reverse=True))
    pattern = re.compile(rf"(?<![A-Za-z0-9_])({alternatives})(?![A-Za-z0-9_])", re.IGNORECASE)

    def renamed(match: re.Match[str]) -> str:
        new = spellings[match[0].lower()]
        return new[:1].upper() + new[1:] if match[0][:1].isupper() else new

    return pattern.sub(renamed, text)


def _free(stem: str, taken: list[str]) -> str:
    """Return ``stem``, or ``stem_2``, ``stem_3``... whichever is not in ``taken``."""
    name, number = stem, 1
    while name in taken:
        number += 1
        name = f"{stem}_{number}"
    return name


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def _stimulation_items(action: RegionAction) -> list[tuple[str, str | None]]:
    """Return the keys of the action's stimulation; None removes one its command does not take."""
    pulse = action.command == "pulse"
    return [
        ("DEVICE", action.device),
        ("COMMAND", action.command),
        ("CHANNEL", str(action.channel)),
        ("DURATION", _seconds(action.duration_s) if pulse else None),
        ("ON_DURATION", None if pulse else _seconds(action.on_s)),
        ("OFF_DURATION", None if pulse else _seconds(action.off_s)),
        ("COUNT", None if pulse or action.count is None else str(action.count)),
    ]


def read_regions(path: Path) -> list[RegionSpec]:
    """Return the region triggers of the config file at ``path``, in file order."""
    return ConfigText(Path(path).read_text(encoding="utf-8")).regions()


def edited_text(
    text: str,
    regions: list[RegionSpec],
    mode: str = DEFAULT_MODE,
    deleted_rules: Sequence[str] = (),
) -> str:
    """Return ``text`` changed so that its region triggers are ``regions``.

    The rules named in ``deleted_rules`` go first (:meth:`ConfigText.delete_rule`). Regions of
    ``text`` missing from ``regions`` are deleted with their own action (refused while another
    rule or a combinator names them), changed ones get their new ``SHAPE``, ``CAMERA``,
    ``KEYPOINT`` and ``ANIMAL`` lines, new ones are added as ``KIND = region`` sections with
    ``MODE = mode``; a region whose ``action`` is given gets it written (or removed).
    ``[Experiment] DESCRIPTION`` is written anew from the rules when the edit changes what they do.
    """
    config = ConfigText(text)
    did = config.described()
    for rule in deleted_rules:
        config.delete_rule(rule)
    before = {spec.trigger: spec for spec in config.regions()}
    wanted = {spec.trigger: spec for spec in regions}
    for name in before:
        if name not in wanted:
            own = config.region_action(name)
            if own is not None and config.is_action_only(own) and len(config.users_of(name)) == 1:
                config.set_region_action(name, RegionAction.removed(own))  # it goes with it
            config.delete_trigger(name)
    for name, spec in wanted.items():
        old = before.get(name)
        if old is None:
            config.add_region(spec, mode)
        else:
            if old.shape != spec.shape:
                config.set_shape(name, spec.shape)
            if old.camera != spec.camera:
                config.set_camera(name, spec.camera)
            if old.keypoint != spec.keypoint and spec.keypoint is not None:
                config.set_key(name, "KEYPOINT", spec.keypoint)
            if not _same_animal(old.animal, spec.animal):  # the file has a key if it differs
                config.set_key(name, "ANIMAL", spec.animal or FIRST_ANIMAL)
        if spec.action is not None:
            config.set_region_action(name, spec.action)
    does = config.described()
    if does != did:
        config.describe_as(does)
    return config.text


def save_regions(
    path: Path,
    regions: list[RegionSpec],
    mode: str = DEFAULT_MODE,
    deleted_rules: Sequence[str] = (),
) -> Path:
    """Write ``regions`` into the config at ``path``; keep the old file as ``NAME.ini.bak``.

    ``deleted_rules``: the rules to remove first (see :func:`edited_text`).

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
    new_text = edited_text(text, regions, mode, deleted_rules)
    try:
        parse_experiment_config(new_text, path)
    except ExperimentConfigError as error:
        raise ConfigEditError(f"not saved, the config would not load: {error}") from None
    backup = save_with_backup(path, new_text)  # atomic; the old file kept as NAME.ini.bak
    assert backup is not None  # the file was read above
    return backup


def save_keypoint_mapping(path: Path, mapping: Mapping[str, str]) -> list[str]:
    """Rename the keypoints the config at ``path`` reads by ``mapping``; keep ``NAME.ini.bak``.

    Validated by the loader first, written in one step (see :func:`save_regions`).

    Returns
    -------
    list[str]
        What changed, one line per key (empty: nothing to change, the file is untouched).

    Raises
    ------
    ConfigEditError
        The result would not load (the loader's message).
    """
    path = Path(path)
    config = ConfigText(path.read_text(encoding="utf-8"))
    changes = config.map_keypoints(mapping)
    if not changes:
        return []
    try:
        parse_experiment_config(config.text, path)
    except ExperimentConfigError as error:
        raise ConfigEditError(f"not saved, the config would not load: {error}") from None
    save_with_backup(path, config.text)
    return changes
