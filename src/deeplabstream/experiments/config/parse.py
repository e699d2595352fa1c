"""Experiments without code: an ini file of triggers, stimulations and rules.

Its design: docs/experiments-internals.md (`experiments.config.parse`).
"""

from __future__ import annotations

import configparser
import dataclasses
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.schema import (
    Where,
    greater_than_zero,
    key_of,
    keys_written_twice,
    parse_section,
    setting,
    settings_fields,
)
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.events import EventLog
from deeplabstream.experiments.options import ExperimentOptions
from deeplabstream.experiments.prediction import (
    DEFAULT_LEAD_MARGIN_MS,
    DEFAULT_MAX_GAP_S,
    DEFAULT_MEASUREMENT_NOISE,
    DEFAULT_PROCESS_NOISE,
    DEFAULT_WINDOW_S,
    MAX_LEAD_MS,
    PredictionSettings,
)
from deeplabstream.experiments.triggers import (
    Trigger,
    file_parameters_of,
    make_trigger,
    parameters_of,
    trigger_kind,
)
from deeplabstream.experiments.triggers.base import AnyObservation
from deeplabstream.experiments.triggers.kinds import TRIGGERS

EXPERIMENT_SECTION = "Experiment"
TRIGGER_PREFIX = "Trigger "
STIMULATION_PREFIX = "Stimulation "
RULE_PREFIX = "Rule "
SECTION_FORMS = ("Experiment", "Trigger NAME", "Stimulation NAME", "Rule NAME")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or '_'"


EDGES: tuple[str, ...] = ("rising", "while", "falling")
_RULE_FIELDS = ("when", "edge", "do", "starts_trial", "ends_trial", "during", "refractory")


class ExperimentConfigError(SettingsError):
    """Problems in an experiment config file; each line names file, section, key and value."""


_POSITIVE_SECONDS = "a number > 0 s, or empty for none"


def _device_name(value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError("expected a device name without spaces")


_LEAD_ALLOWED = f"auto, or a number of ms from 0 to {MAX_LEAD_MS:g}"


def _lead(value: str) -> None:
    """``PREDICT_LEAD``: ``auto`` or milliseconds."""
    if value.lower() == "auto":
        return
    try:
        lead = float(value)
    except ValueError:
        raise ValueError(f"expected {_LEAD_ALLOWED}") from None
    if not 0.0 <= lead <= MAX_LEAD_MS:  # also rejects nan
        raise ValueError(f"expected {_LEAD_ALLOWED}")


# Keys that mean something only with one prediction method (checked in ExperimentSection).
_PREDICT_ONLY: dict[str, tuple[str, ...]] = {
    "predict_lead": ("constant-velocity", "kalman"),
    "predict_lead_margin": ("constant-velocity", "kalman"),
    "predict_max_gap": ("constant-velocity", "kalman"),
    "predict_min_likelihood": ("constant-velocity", "kalman"),
    "predict_window": ("constant-velocity",),
    "predict_process_noise": ("kalman",),
    "predict_measurement_noise": ("kalman",),
}

#: The options an ``[Experiment]`` key sets one to one: ExperimentOptions' fields declared with
#: :func:`~core.schema.setting` (all but ``prediction``, which the ``PREDICT`` keys set together).
OPTION_FIELDS: tuple[dataclasses.Field, ...] = settings_fields(ExperimentOptions)

_Section = TypeVar("_Section", bound=type)


def _with_option_keys(section: _Section) -> _Section:
    """Give ``section`` a key for each of :data:`OPTION_FIELDS`, in the reference's order."""
    own = inspect.get_annotations(section)
    twice = sorted(set(own) & {option.name for option in OPTION_FIELDS})
    if twice:
        raise TypeError(f"{section.__name__} declares option(s) {', '.join(twice)} again")
    hints = typing.get_type_hints(ExperimentOptions)
    keys: dict[str, Any] = {"description": own["description"]}
    for option in fields(ExperimentOptions):
        if option.name == "prediction":
            keys |= {name: own[name] for name in own if name.startswith("predict")}
            continue
        keys[option.name] = hints[option.name]
        setattr(section, option.name, field(default=option.default, metadata=option.metadata))
        if option.name == "hold_s":
            keys["max_ensemble_std"] = own["max_ensemble_std"]
    if set(own) - set(keys):
        raise TypeError(
            f"{section.__name__}: no place for {', '.join(sorted(set(own) - set(keys)))}"
        )
    section.__annotations__ = keys
    return section


@dataclass(frozen=True)
@_with_option_keys
class ExperimentSection:
    """``[Experiment]``: what the experiment is, its options (:data:`OPTION_FIELDS`), prediction.

    The keys of the options are generated from ExperimentOptions' fields (``hold_s`` is ``HOLD``);
    only the keys that are not an option are declared here.
    """

    description: str = setting("", doc="One line saying what the experiment does.")
    max_ensemble_std: float | None = setting(
        None,
        doc="A camera that runs an ensemble of models (several in `MODEL_PATH`): a keypoint whose "
        "spread across the models is larger than this many pixels is not seen, as one below "
        "`MIN_LIKELIHOOD` (the same `POLICY` and `HOLD`), so rules act only where the models "
        "agree. Applies to every keypoint trigger that does not set its own `MAX_ENSEMBLE_STD`. "
        "Empty: the spread is not looked at. See docs/ensembles.md.",
        minimum=0,
        unit="px",
        check=greater_than_zero(),
        allowed="a number > 0 (px), or empty for none",
    )
    predict: Literal["off", "constant-velocity", "kalman"] = setting(
        "off",
        doc="Forward prediction: keypoint triggers act on where each keypoint will be when the "
        "command reaches the device, `PREDICT_LEAD` after the frame. `constant-velocity`: the "
        "straight line through the last `PREDICT_WINDOW` seconds of positions; `kalman`: a "
        "constant-velocity Kalman filter. A trigger reads measured positions with "
        "`PREDICTED = false`. See Forward prediction.",
    )
    predict_lead: str = setting(
        "auto",
        doc="How far ahead to predict. `auto`: the median of the latest 50 measured latencies "
        "frame -> command written (before the first, frame -> decision plus "
        "`PREDICT_LEAD_MARGIN`); or a fixed number of ms.",
        check=_lead,
        allowed=_LEAD_ALLOWED,
    )
    predict_lead_margin: float = setting(
        DEFAULT_LEAD_MARGIN_MS,
        doc="`PREDICT_LEAD = auto` before any command was measured: added to the time from the "
        "frame to the decision (alone where that is unknown, as in an offline replay).",
        minimum=0,
        maximum=MAX_LEAD_MS,
        unit="ms",
    )
    predict_window: float = setting(
        DEFAULT_WINDOW_S,
        doc="`constant-velocity`: seconds of positions the line is fitted to.",
        minimum=0,
        unit="s",
        check=greater_than_zero("s"),
        allowed="a number > 0 s",
    )
    predict_max_gap: float = setting(
        DEFAULT_MAX_GAP_S,
        doc="A keypoint not seen (below the likelihood threshold) for longer is not predicted, "
        "and its track starts afresh when it is seen again.",
        minimum=0,
        unit="s",
        check=greater_than_zero("s"),
        allowed="a number > 0 s",
    )
    predict_min_likelihood: float | None = setting(
        None,
        doc="Keypoints with a lower likelihood are not used by the predictor. Empty: "
        "`MIN_LIKELIHOOD`.",
        minimum=0,
        maximum=1,
    )
    predict_process_noise: float = setting(
        DEFAULT_PROCESS_NOISE,
        doc="`kalman`: how fast the velocity may change (white-noise acceleration, px²/s³). "
        "Larger follows turns sooner but passes on more keypoint noise.",
        minimum=0,
        check=greater_than_zero(),
        allowed="a number > 0 (px²/s³)",
    )
    predict_measurement_noise: float = setting(
        DEFAULT_MEASUREMENT_NOISE,
        doc="`kalman`: the keypoints' noise (standard deviation, px). Larger smooths more and "
        "follows turns later.",
        minimum=0,
        check=greater_than_zero(),
        allowed="a number > 0 (px)",
    )

    def __post_init__(self) -> None:
        """``PREDICT_*`` keys only with their method."""
        defaults = ExperimentSection.__dataclass_fields__
        for name, methods in _PREDICT_ONLY.items():
            value = getattr(self, name)
            value = value.lower() if isinstance(value, str) else value
            if value != defaults[name].default and self.predict not in methods:
                raise ValueError(
                    f"{name.upper()} is only used with PREDICT = {' or '.join(methods)} "
                    f"(PREDICT = {self.predict})"
                )

    def options(self) -> ExperimentOptions:
        """Return the experiment's options these keys set."""
        values = {option.name: getattr(self, option.name) for option in OPTION_FIELDS}
        return ExperimentOptions(prediction=self.prediction(), **values)

    def prediction(self) -> PredictionSettings:
        """Return the forward prediction these keys describe."""
        lead = None if self.predict_lead.lower() == "auto" else float(self.predict_lead)
        return PredictionSettings(
            method=self.predict,
            lead_ms=lead,
            lead_margin_ms=self.predict_lead_margin,
            window_s=self.predict_window,
            max_gap_s=self.predict_max_gap,
            min_likelihood=self.predict_min_likelihood,
            process_noise=self.predict_process_noise,
            measurement_noise=self.predict_measurement_noise,
        )


@dataclass(frozen=True)
class StimulationSection:
    """``[Stimulation NAME]``: one command for one output of a stimulation device."""

    device: str = setting(
        doc="The name of a configured stimulation device (no spaces).", check=_device_name
    )
    command: Literal["on", "off", "pulse", "pattern"] = setting(
        doc="`on` and `off` switch the channel; `pulse` is on for `DURATION` then off; "
        "`pattern` repeats `ON_DURATION` on, `OFF_DURATION` off, `COUNT` times (empty: until "
        "`off`). Timing is kept by the device."
    )
    channel: int = setting(0, doc="The device's output channel.", minimum=0)
    duration: float | None = setting(
        None,
        doc="`pulse`: how long the output is on.",
        minimum=0,
        unit="s",
        check=greater_than_zero("s"),
        allowed=_POSITIVE_SECONDS,
    )
    on_duration: float | None = setting(
        None,
        doc="`pattern`: on time of one cycle.",
        minimum=0,
        unit="s",
        check=greater_than_zero("s"),
        allowed=_POSITIVE_SECONDS,
    )
    off_duration: float | None = setting(
        None,
        doc="`pattern`: off time of one cycle.",
        minimum=0,
        unit="s",
        check=greater_than_zero("s"),
        allowed=_POSITIVE_SECONDS,
    )
    count: int | None = setting(
        None, doc="`pattern`: number of cycles; empty: until `off`.", minimum=1
    )

    def __post_init__(self) -> None:
        """Each command takes exactly its own timing keys."""
        given = {
            key
            for key, value in (
                ("DURATION", self.duration),
                ("ON_DURATION", self.on_duration),
                ("OFF_DURATION", self.off_duration),
                ("COUNT", self.count),
            )
            if value is not None
        }
        needs = {"pulse": {"DURATION"}, "pattern": {"ON_DURATION", "OFF_DURATION"}}.get(
            self.command, set()
        )
        takes = {"pulse": {"DURATION"}, "pattern": {"ON_DURATION", "OFF_DURATION", "COUNT"}}.get(
            self.command, set()
        )
        if needs - given:
            raise ValueError(
                f"COMMAND = {self.command} needs {' and '.join(sorted(needs - given))}"
            )
        if given - takes:
            raise ValueError(
                f"COMMAND = {self.command} takes no {', '.join(sorted(given - takes))}"
                + (f" (it takes {', '.join(sorted(takes))})" if takes else "")
            )

    def action(self, reason: str = "") -> Action:
        """Return the :class:`Action` this section describes."""
        return Action(
            self.device,
            self.command,
            self.channel,
            duration_s=self.duration,
            on_s=self.on_duration,
            off_s=self.off_duration,
            count=self.count,
            reason=reason,
        )


@dataclass(frozen=True)
class RuleSection:
    """``[Rule NAME]``: when a trigger changes, do stimulations and start or end trials."""

    when: tuple[str, ...] = setting(
        doc="The trigger(s) it watches, comma-separated; with several, any of them will do.",
        allowed="trigger names, comma-separated",
    )
    edge: Literal["rising", "while", "falling"] = setting(
        "rising",
        doc="`rising`: in the update where the trigger becomes true. `falling`: where it becomes "
        "false. `while`: in every update while it is true (an `on` is sent once and held).",
    )
    do: tuple[str, ...] = setting(
        (),
        doc="The stimulation(s) to perform, comma-separated, in order. Empty: none (a rule may "
        "only start or end trials).",
        allowed="stimulation names, comma-separated, or empty",
    )
    starts_trial: bool = setting(
        False,
        doc="The rule starts a trial, and fires only when a trial can start: not during a trial "
        "or the inter-trial interval, and fewer than `MAX_TRIALS` so far.",
    )
    ends_trial: bool = setting(
        False, doc="After its stimulations, the rule ends the trial in progress (if any)."
    )
    during: Literal["session", "trial"] = setting(
        "session",
        doc="`session`: the rule fires whenever the experiment runs. `trial`: only during a trial.",
    )
    refractory: float = setting(
        0.0,
        doc="After the rule fires, it does not fire again for this many seconds of frame time: "
        "its edges meanwhile are ignored (with `EDGE = while`, one firing per period while the "
        "trigger holds). 0: no pause.",
        minimum=0,
        unit="s",
    )

    def __post_init__(self) -> None:
        """Reject rules that contradict themselves or do nothing."""
        if not self.when:
            raise ValueError("WHEN needs at least one trigger name")
        if self.starts_trial and self.ends_trial:
            raise ValueError("a rule cannot both start (STARTS_TRIAL) and end (ENDS_TRIAL) trials")
        if self.starts_trial and self.during == "trial":
            raise ValueError(
                "STARTS_TRIAL = true fires only between trials; DURING = trial contradicts it"
            )
        if not (self.do or self.starts_trial or self.ends_trial):
            raise ValueError("the rule does nothing: give DO, STARTS_TRIAL or ENDS_TRIAL")


@dataclass(frozen=True)
class TriggerSpec:
    """``[Trigger NAME]`` as data: its kind, parameters (text) and the triggers it combines."""

    name: str
    kind: str
    params: dict[str, str] = field(default_factory=dict)
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """A ``[Rule NAME]`` section with its name."""

    name: str
    when: tuple[str, ...]
    edge: str
    do: tuple[str, ...]
    starts_trial: bool
    ends_trial: bool
    during: str
    refractory: float = 0.0


#: Each experiment option and the ``[Experiment]`` keys that set it.
EXPERIMENT_KEYS: dict[str, tuple[str, ...]] = {
    option.name: (key_of(option),) for option in OPTION_FIELDS
} | {"prediction": ("PREDICT", *(name.upper() for name in _PREDICT_ONLY))}


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment config file (plain data; :meth:`build` makes the experiment)."""

    file: Path
    name: str
    experiment: ExperimentSection
    triggers: dict[str, TriggerSpec]
    stimulations: dict[str, StimulationSection]
    rules: tuple[Rule, ...]
    experiment_keys: frozenset[str] = frozenset()  # the [Experiment] keys the file sets

    def build(self, events: EventLog | None = None) -> ConfiguredExperiment:
        """Return a fresh experiment (new triggers, no history) following this config."""
        return ConfiguredExperiment(self, events)


class ConfiguredExperiment(Experiment):
    """An experiment defined by a config file: its rules are :meth:`on_update`.

    How the rules fire, per animal too: docs/experiments.md (Config reference).
    """

    def __init__(self, config: ExperimentConfig, events: EventLog | None = None) -> None:
        section = config.experiment
        options = section.options()  # a frozen dataclass: its fields are its __dict__
        super().__init__(
            name=config.name, description=section.description, events=events, **vars(options)
        )
        self.config = config
        _, problems = _build_triggers(config.triggers, section, self.add_trigger)
        if problems:  # pragma: no cover - load_experiment_config has checked them
            raise ExperimentConfigError([f"{config.file}: {p}" for p in problems.values()])
        self.stimulations = {
            name: stimulation.action() for name, stimulation in config.stimulations.items()
        }
        for action in self.stimulations.values():
            self.declare_output(action.device, action.channel)
        self.rules = config.rules
        self._rules_by_name = {rule.name: rule for rule in config.rules}
        # (rule, animal) -> frame time it last fired; animal None: the rule as a whole
        self._fired_s: dict[tuple[str, int | None], float] = {}

    def deciding_trigger(self, action: Action) -> str | None:
        """Return the ``WHEN`` trigger of the rule that sent ``action``, fired in this update."""
        rule = self._rules_by_name.get(action.reason)
        if rule is None:  # a switch-off at a trial's end, pause or stop
            return super().deciding_trigger(action)
        for name in rule.when:
            if self._edge(rule.edge, name, action.animal):
                return name
        return rule.when[0]

    def on_update(self, obs: AnyObservation, t: float) -> list[Action]:
        """Apply the rules in order (see the class docstring)."""
        actions: list[Action] = []
        for rule in self.rules:
            for animal in self._firings(rule):
                if not self._resting(rule, animal, t):
                    self._fire(rule, animal, t, actions)
        return actions

    def _fire(self, rule: Rule, animal: int | None, t: float, actions: list[Action]) -> None:
        """Fire ``rule`` (for ``animal``'s own edge, or as a whole): trials, then its actions."""
        if rule.starts_trial:
            cause = rule.name if animal is None else f"{rule.name} (animal {animal})"
            if not self.start_trial(cause):
                return
        elif rule.during == "trial" and not self.in_trial:
            return
        self._fired_s[(rule.name, animal)] = t
        for name in rule.do:
            action = self.stimulations[name]
            if rule.edge == "while" and action.holds and self._holding(action, actions):
                continue  # already on: "while" holds it, it does not repeat it
            actions.append(action.with_reason(rule.name).for_animal(animal))
        if rule.ends_trial:
            self.end_trial(f"rule {rule.name}")

    def _resting(self, rule: Rule, animal: int | None, t: float) -> bool:
        """Whether ``rule`` fired (for ``animal``) less than ``REFRACTORY`` before time ``t``."""
        fired = self._fired_s.get((rule.name, animal))
        return fired is not None and t - fired < rule.refractory

    def _firings(self, rule: Rule) -> list[int | None]:
        """Return what ``rule`` fires for in this update: each animal, and/or None (as a whole)."""
        found: dict[int | None, None] = {}
        for name in rule.when:
            if self.triggers[name].edges_per_animal:
                found.update(dict.fromkeys(self._animal_edges(rule.edge, name)))
            elif self._edge(rule.edge, name):
                found[None] = None
        return list(found)

    def _animal_edges(self, edge: str, name: str) -> tuple[int, ...]:
        """Return the animals of an ``ANIMAL = each`` trigger that show ``edge`` now."""
        if edge == "rising":
            return self.animals_rose(name)
        if edge == "falling":
            return self.animals_fell(name)
        states = self.triggers[name].animal_states() or {}
        return tuple(animal for animal, state in sorted(states.items()) if state)

    def _edge(self, edge: str, name: str, animal: int | None = None) -> bool:
        """Whether trigger ``name`` shows ``edge`` (rising, falling, while) in this update."""
        if edge == "rising":
            return self.rose(name, animal)
        if edge == "falling":
            return self.fell(name, animal)
        return self.is_true(name, animal)

    def _holding(self, action: Action, pending: list[Action]) -> bool:
        for earlier in reversed(pending):
            if earlier.output == action.output:
                return earlier.holds
        return self.is_held(action.device, action.channel)


# --------------------------------------------------------------------------------------------------
# Reading a file
# --------------------------------------------------------------------------------------------------


def load_experiment_config(path: Path | str) -> ExperimentConfig:
    """Read and validate an experiment config; :class:`ExperimentConfigError` lists problems."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ExperimentConfigError([f"{file}: experiment config file not found"])
    return parse_experiment_config(file.read_text(encoding="utf-8"), file)


def parse_experiment_config(text: str, file: Path | str = Path("<text>")) -> ExperimentConfig:
    """Validate the text of an experiment config (``file`` names it in messages)."""
    file = Path(file)
    parser = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep the user's case
    try:
        parser.read_string(text, source=str(file))
    except configparser.Error as error:
        raise ExperimentConfigError([f"{file}: cannot be read as an ini file: {error}"]) from None

    problems: list[str] = []
    experiment = ExperimentSection()
    experiment_keys: frozenset[str] = frozenset()
    triggers: dict[str, TriggerSpec] = {}
    stimulations: dict[str, StimulationSection] = {}
    rules: list[Rule] = []
    wheres: dict[str, Where] = {}
    for section in parser.sections():
        items = dict(parser.items(section))
        where = Where(file, section)
        problems += keys_written_twice(items, where)
        if section == EXPERIMENT_SECTION:
            experiment_keys = frozenset(key.upper() for key in items)
            parsed = parse_section(ExperimentSection, items, where, problems)
            experiment = parsed if parsed is not None else experiment
            continue
        prefix = next(
            (p for p in (TRIGGER_PREFIX, STIMULATION_PREFIX, RULE_PREFIX) if section.startswith(p)),
            None,
        )
        if prefix is None:
            problems.append(
                f"{file}: [{section}]: unknown section. Allowed sections: "
                + ", ".join(f"[{form}]" for form in SECTION_FORMS)
            )
            continue
        name = section[len(prefix) :].strip()
        if not NAME_PATTERN.match(name):
            problems.append(f"{file}: [{section}]: name {name!r} is not allowed; use {NAME_RULE}")
            continue
        kind_word = prefix.strip()
        taken = wheres.get(f"{kind_word} {name}")
        if taken is not None:  # pragma: no cover - configparser's strict mode catches these
            problems.append(f"{file}: [{section}]: a second {kind_word} named {name!r}")
            continue
        wheres[f"{kind_word} {name}"] = where
        if prefix == TRIGGER_PREFIX:
            spec = _parse_trigger(name, items, where, problems)
            if spec is not None:
                triggers[name] = spec
        elif prefix == STIMULATION_PREFIX:
            parsed = parse_section(StimulationSection, items, where, problems)
            if parsed is not None:
                stimulations[name] = parsed
        else:
            parsed = parse_section(RuleSection, items, where, problems)
            if parsed is not None:
                rules.append(Rule(name, **{k: getattr(parsed, k) for k in _RULE_FIELDS}))

    trigger_names = {n for k, n in (key.split(" ", 1) for key in wheres) if k == "Trigger"}
    stimulation_names = {n for k, n in (key.split(" ", 1) for key in wheres) if k == "Stimulation"}
    problems += _check_references(file, triggers, trigger_names, stimulation_names, rules, wheres)
    problems += _check_rules_against_timing(file, experiment, stimulations, rules, wheres)
    problems += _check_predicted_triggers(experiment, triggers, wheres)
    _, failures = _build_triggers(triggers, experiment, lambda name, trigger: trigger)
    for name, message in failures.items():
        problems.append(_trigger_problem(wheres[f"Trigger {name}"], message))
    if problems:
        raise ExperimentConfigError(problems)
    return ExperimentConfig(
        file=file,
        name=file.stem,
        experiment=experiment,
        triggers=triggers,
        stimulations=stimulations,
        rules=tuple(rules),
        experiment_keys=experiment_keys,
    )


def _parse_trigger(
    name: str, items: dict[str, str], where: Where, problems: list[str]
) -> TriggerSpec | None:
    upper = {key.upper(): value.strip() for key, value in items.items()}
    raw_kind = upper.get("KIND")
    if raw_kind is None:
        known = ", ".join(sorted(TRIGGERS))
        problems.append(f"{where.key('KIND')}: missing; expected one of {known}")
        return None
    kind = raw_kind.lower().replace("-", "_")
    try:  # a built-in kind, or an installed package's (entry point group deeplabstream.triggers)
        combinator = trigger_kind(kind).combines
    except ValueError as error:  # unknown (the known ones listed), or a plugin that fails to load
        problems.append(f"{where.key('KIND')} = {raw_kind!r}: {error}")
        return None
    parameters = parameters_of(kind)
    allowed = ["KIND", *(["OF"] if combinator else []), *(p.upper() for p in parameters)]
    count_before = len(problems)
    for key in upper:
        if key not in allowed:
            problems.append(
                f"{where.key(key)}: unknown key for KIND = {kind}. Allowed in this section: "
                f"{', '.join(allowed)}"
            )
    for parameter, expected in parameters.items():
        if expected.endswith("(required)") and parameter.upper() not in upper:
            problems.append(
                f"{where.key(parameter.upper())}: missing; expected "
                f"{expected.removesuffix(' (required)')}"
            )
    children: tuple[str, ...] = ()
    if combinator:
        text = upper.get("OF")
        if text is None:
            problems.append(
                f"{where.key('OF')}: missing; expected the names of the triggers it combines, "
                "comma-separated"
            )
        else:
            children = tuple(item.strip() for item in text.split(",") if item.strip())
            if not children:
                problems.append(
                    f"{where.key('OF')} = {text!r}: expected the names of the triggers it "
                    "combines, comma-separated"
                )
    if len(problems) > count_before:
        return None
    params = {key.lower(): value for key, value in upper.items() if key not in ("KIND", "OF")}
    for parameter in file_parameters_of(kind):  # a model file beside the config, say
        if parameter in params and where.file.is_absolute():
            path = Path(params[parameter]).expanduser()
            params[parameter] = str(path if path.is_absolute() else where.file.parent / path)
    return TriggerSpec(name, kind, params, children)


def _check_references(
    file: Path,
    triggers: dict[str, TriggerSpec],
    trigger_names: set[str],
    stimulation_names: set[str],
    rules: list[Rule],
    wheres: dict[str, Where],
) -> list[str]:
    """Names that refer to no section, and cycles among combinators."""
    problems: list[str] = []
    known_triggers = ", ".join(sorted(trigger_names)) or "none"
    known_stimulations = ", ".join(sorted(stimulation_names)) or "none"
    for spec in triggers.values():
        where = wheres[f"Trigger {spec.name}"]
        for child in spec.children:
            if child not in trigger_names:
                problems.append(
                    f"{where.key('OF')} = {', '.join(spec.children)!r}: no trigger named "
                    f"{child!r}; triggers in this file: {known_triggers}"
                )
    for rule in rules:
        where = wheres[f"Rule {rule.name}"]
        for name in rule.when:
            if name not in trigger_names:
                problems.append(
                    f"{where.key('WHEN')} = {', '.join(rule.when)!r}: no trigger named {name!r}; "
                    f"triggers in this file: {known_triggers}"
                )
        for name in rule.do:
            if name not in stimulation_names:
                problems.append(
                    f"{where.key('DO')} = {', '.join(rule.do)!r}: no stimulation named {name!r}; "
                    f"stimulations in this file: {known_stimulations}"
                )
    for cycle in _cycles(triggers):
        where = wheres[f"Trigger {cycle[0]}"]
        problems.append(
            f"{where.key('OF')}: combinators refer to each other in a cycle: "
            f"{' -> '.join(cycle)} (a trigger cannot contain itself)"
        )
    return problems


def _cycles(triggers: dict[str, TriggerSpec]) -> list[list[str]]:
    """Each cycle among the triggers' OF references, once, starting at its first-declared name."""
    order = {name: index for index, name in enumerate(triggers)}
    found: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :]
            start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
            cycle = cycle[start:] + cycle[:start]
            if frozenset(cycle) not in seen_sets:
                seen_sets.add(frozenset(cycle))
                found.append([*cycle, cycle[0]])
            return
        if name in done or name not in triggers:
            return
        for child in triggers[name].children:
            visit(child, [*path, name])
        done.add(name)

    for name in triggers:
        visit(name, [])
    return found


def _check_rules_against_timing(
    file: Path,
    experiment: ExperimentSection,
    stimulations: dict[str, StimulationSection],
    rules: list[Rule],
    wheres: dict[str, Where],
) -> list[str]:
    """Rules that cannot work with the [Experiment] trial timing."""
    problems: list[str] = []
    options = experiment.options()
    instant = options.trial_duration_s == 0
    for rule in rules:
        where = wheres[f"Rule {rule.name}"]
        if instant and rule.ends_trial:
            problems.append(
                f"{where.key('ENDS_TRIAL')}: trials end in the update they start in "
                "([Experiment] TRIAL_DURATION = 0); set TRIAL_DURATION to the longest trial in "
                "seconds, or empty for trials that only a rule ends"
            )
        in_trial = rule.starts_trial or rule.during == "trial"
        if instant and in_trial and options.switch_off_at_trial_end:
            for name in rule.do:
                stimulation = stimulations.get(name)
                if stimulation is not None and stimulation.action().holds:
                    problems.append(
                        f"{where.key('DO')} = {', '.join(rule.do)!r}: stimulation {name!r} "
                        "switches its output on until an off, but trials end in the update they "
                        "start in ([Experiment] TRIAL_DURATION = 0) and a trial's outputs are "
                        "switched off when it ends; set TRIAL_DURATION (seconds, or empty for "
                        "trials that a rule with ENDS_TRIAL ends), use a pulse, or set "
                        "SWITCH_OFF_AT_TRIAL_END = false"
                    )
    return problems


def _with_defaults(spec: TriggerSpec, experiment: ExperimentSection) -> dict[str, str]:
    """Return the trigger's parameters, with the experiment's likelihood policy where unset."""
    params = dict(spec.params)
    if trigger_kind(spec.kind).combines:
        return params
    kind_parameters, options = parameters_of(spec.kind), experiment.options()
    if "hold_s" in kind_parameters:  # every kind that reads keypoints (3D, pupil too)
        params.setdefault("hold_s", repr(options.hold_s))
    if "policy" not in kind_parameters:
        return params
    params.setdefault("min_likelihood", repr(options.min_likelihood))
    params.setdefault("policy", options.policy)
    if experiment.max_ensemble_std is not None and "max_ensemble_std" in kind_parameters:
        params.setdefault("max_ensemble_std", repr(experiment.max_ensemble_std))
    first_animal = params.get("animal", "1").strip() == "1"
    if experiment.predict != "off" and "predicted" in parameters_of(spec.kind) and first_animal:
        params.setdefault("predicted", "true")
    return params


def _check_predicted_triggers(
    experiment: ExperimentSection, triggers: dict[str, TriggerSpec], wheres: dict[str, Where]
) -> list[str]:
    """Triggers asking for predicted positions in an experiment that predicts none."""
    if experiment.predict != "off":
        return []
    problems = []
    for spec in triggers.values():
        value = spec.params.get("predicted", "").strip()
        if value.lower() in ("true", "yes", "on", "1"):
            where = wheres[f"Trigger {spec.name}"]
            problems.append(
                f"{where.key('PREDICTED')} = {value!r}: this experiment predicts no positions; "
                "set PREDICT = constant-velocity or kalman in [Experiment], or remove PREDICTED"
            )
    return problems


def _build_triggers(
    specs: dict[str, TriggerSpec],
    experiment: ExperimentSection,
    register: Callable[[str, Trigger], Trigger],
) -> tuple[dict[str, Trigger], dict[str, str]]:
    """Build every trigger, children first; return the built ones and the failures by name."""
    built: dict[str, Trigger] = {}
    failures: dict[str, str] = {}
    building: set[str] = set()

    def build(name: str) -> Trigger | None:
        if name in built:
            return built[name]
        if name in failures or name in building or name not in specs:
            return None
        spec = specs[name]
        building.add(name)
        children = [build(child) for child in spec.children]
        building.discard(name)
        if any(child is None for child in children):
            failures.setdefault(name, "")  # reported at the child, the name or the cycle
            return None
        try:
            trigger = make_trigger(spec.kind, _with_defaults(spec, experiment), children)  # type: ignore[arg-type]
        except ValueError as error:
            failures[name] = str(error)
            return None
        built[name] = register(name, trigger)
        return built[name]

    for name in specs:
        build(name)
    return built, {name: message for name, message in failures.items() if message}


_PARAMETER_ERROR = re.compile(r"^trigger '(\w+)': parameter '(\w+)' = (.*)$", re.DOTALL)


def _trigger_problem(where: Where, message: str) -> str:
    """Return a factory message, with the parameter named as its config key."""
    match = _PARAMETER_ERROR.match(message)
    if match:
        return f"{where.key(match.group(2).upper())} = {match.group(3)}"
    return f"{where.file}: [{where.section}]: {message}"
