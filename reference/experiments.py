"""Keep the generated parts of docs/experiments.md in step with the code.

The page is written by hand, except blocks between ``<!-- generated: NAME -->`` and
``<!-- end generated: NAME -->``, which are rendered here from the code: the trigger kinds and
their parameters (:func:`~experiments.triggers.parameters_of`), the keys of the config sections,
the ``events.csv`` columns and the shipped configs.

python -m reference.experiments            rewrite the generated blocks of docs/experiments.md
python -m reference.experiments --check    exit 1 if they are out of date
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from core.schema import describe_allowed, key_of, settings_fields, spec_of
from experiments.config import (
    COMBINATOR_KINDS,
    ExperimentSection,
    RuleSection,
    StimulationSection,
    load_experiment_config,
)
from experiments.events import EVENT_COLUMN_DOCS
from experiments.registry import CONFIG_FOLDER
from experiments.triggers import TRIGGER_KINDS, parameters_of
from reference.settings import default_text, write_generated

DOC_FILE = Path(__file__).resolve().parent.parent / "docs" / "experiments.md"

TRIGGER_DESCRIPTIONS: dict[str, str] = {
    "region": "A keypoint (default `nose`) relative to a circle, rectangle, ellipse or polygon: "
    "`MODE = inside` (default), `outside`, `entered` or `left` (one-update events). "
    "`MIN_DWELL_S`: it must stay that long first; `MARGIN_PX`: hysteresis at the border.",
    "head_direction": "The head (`ORIGIN` -> `TIP`, default `neck` -> `nose`) points at `TARGET` "
    "(a point `X,Y` or a shape's centre) within +-`ANGLE_DEG` (default 30).",
    "target_side": "`TARGET` is on the animal's own `SIDE` (`left` or `right`, egocentric), "
    "within `MAX_ANGLE_DEG` of straight ahead.",
    "speed_above": "A keypoint (default `body_center`) moves faster than `THRESHOLD` px/s "
    "(mm/s with `MM_PER_PX`), measured as its displacement over `WINDOW_S` (default 0.2 s).",
    "speed_below": "The same speed, known and below `THRESHOLD`.",
    "freezing": "The speed has stayed below `THRESHOLD` for `DURATION_S` seconds.",
    "distance_above": "Keypoints `A` and `B` are further apart than `THRESHOLD` px (mm with "
    "`MM_PER_PX`); `CAMERA_A`/`CAMERA_B` take them from two cameras.",
    "distance_below": "Keypoints `A` and `B` are closer than `THRESHOLD`.",
    "after": "True from `SECONDS` after the first update on.",
    "every": "On for `DURATION_S` at the start of every `PERIOD_S`, from `PHASE_S` on.",
    "motion_energy_above": "IBL motion energy (mean absolute grey-level change between frames) "
    "in `ROI` above `THRESHOLD`. Needs the frame image.",
    "motion_energy_below": "Motion energy in `ROI` below `THRESHOLD`.",
    "pupil_above": "IBL pupil diameter (median of six estimates from four keypoints) above "
    "`THRESHOLD`.",
    "pupil_below": "Pupil diameter below `THRESHOLD`.",
    "light": "A light in the image (an LED, a sync light) is on: the mean grey level of `ROI` "
    "is at least `THRESHOLD` (default 0.1) of the way from the region's off level to its on "
    "level, i.e. the light was on for that fraction of the frame's exposure. The levels are "
    "learnt in the first `SEARCH_S` seconds (default 3; false until then); without `ROI` the "
    "region is found then too: the 8 x 8 px blocks that switch between two steady levels "
    "again and again. The event log's detail gives the level, the previous frame's level and "
    "the off and on levels. Needs the frame image. Used by the latency self-test.",
    "height": "A keypoint (default `nose`) stands at least `ABOVE_M` metres above the floor "
    "(and/or less than `BELOW_M`; both: a band), from the camera's depth image: height = "
    "`FLOOR_M` (the floor's distance from the camera) minus the depth under the keypoint (the "
    "median of the measured pixels within `RADIUS_PX`, default 2). Needs a RealSense camera "
    "with `DEPTH = true` and `ALIGN_DEPTH = true`; false while the keypoint is missing or "
    "nothing under it was measured.",
    "all": "True while every trigger in `OF` is.",
    "and": "The same as `all`.",
    "any": "True while at least one trigger in `OF` is.",
    "or": "The same as `any`.",
    "not": "True while the one trigger in `OF` is false.",
    "rising": "An event: true in the one update where the trigger in `OF` becomes true.",
    "debounce": "The trigger in `OF`, changing state only once the change has lasted `ON_S` "
    "(to true) or `OFF_S` (to false) seconds.",
}
"""One line per trigger kind for the reference (a test checks every kind has one)."""


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def section_table(cls: type) -> str:
    """The keys of a config section class as a markdown table."""
    hints = typing.get_type_hints(cls)
    lines = ["| Key | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for field in settings_fields(cls):
        spec = spec_of(field)
        allowed = _escape(describe_allowed(hints[field.name], spec))
        lines.append(
            f"| `{key_of(field)}` | {default_text(field)} | {allowed} | {_escape(spec.doc)} |"
        )
    return "\n".join(lines)


def trigger_kinds() -> str:
    """Every trigger kind: what it is, and its keys."""
    parts = []
    for kind in TRIGGER_KINDS:
        rows = ["| Key | Allowed |", "|---|---|"]
        if kind in COMBINATOR_KINDS:
            single = kind in ("not", "rising", "debounce")
            names = "one trigger name" if single else "trigger names, comma-separated"
            rows.append(f"| `OF` | {names}, required |")
        for name, expected in parameters_of(kind).items():
            rows.append(
                f"| `{name.upper()}` | {_escape(expected.replace(' (required)', ', required'))} |"
            )
        parts.append(f"#### `{kind}`\n\n{TRIGGER_DESCRIPTIONS[kind]}\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def event_columns() -> str:
    """The events.csv columns as a table."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {_escape(doc)} |" for name, doc in EVENT_COLUMN_DOCS.items()]
    return "\n".join(lines)


def shipped_configs() -> str:
    """The configs in experiments/configs with their descriptions."""
    lines = ["| name | what it does |", "|---|---|"]
    for path in sorted(CONFIG_FOLDER.glob("*.ini")):
        description = load_experiment_config(path).experiment.description
        lines.append(f"| `{path.stem}` | {_escape(description)} |")
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[], str]] = {
    "shipped-configs": shipped_configs,
    "experiment-keys": lambda: section_table(ExperimentSection),
    "stimulation-keys": lambda: section_table(StimulationSection),
    "rule-keys": lambda: section_table(RuleSection),
    "trigger-kinds": trigger_kinds,
    "event-columns": event_columns,
}


def render(text: str) -> str:
    """``text`` with every generated block rendered anew (unknown or missing blocks: error)."""
    for name, make in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(name)} -->\n).*?(<!-- end generated: "
            rf"{re.escape(name)} -->)",
            re.DOTALL,
        )
        if not pattern.search(text):
            raise ValueError(f"{DOC_FILE.name} has no generated block {name!r}")
        body = make().rstrip("\n") + "\n"
        text = pattern.sub(lambda match, body=body: match[1] + body + match[2], text)
    return text


def main(argv: list[str]) -> int:
    """Rewrite (or with ``--check``, verify) the generated blocks; return the exit code."""
    text = render(DOC_FILE.read_text(encoding="utf-8"))
    return write_generated(DOC_FILE, text, argv, "reference.experiments")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
