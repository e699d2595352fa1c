"""Keep the generated parts of docs/experiments.md in step with the code.

Rewrites the ``<!-- generated: NAME -->`` blocks; ``--check`` exits 1 when out of date.
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from deeplabstream.core.schema import describe_allowed, key_of, settings_fields, spec_of
from deeplabstream.experiments.config.parse import (
    ExperimentSection,
    RuleSection,
    StimulationSection,
    load_experiment_config,
)
from deeplabstream.experiments.events import EVENT_COLUMN_DOCS
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.experiments.triggers import TRIGGER_KINDS, trigger_kind
from deeplabstream.experiments.triggers.factory import parameter_specs
from deeplabstream.offline.reference.settings import default_text, write_generated

DOC_FILE = Path(__file__).resolve().parents[4] / "docs" / "experiments.md"

TRIGGER_DESCRIPTIONS: dict[str, str] = {
    kind: trigger_kind(kind).description for kind in TRIGGER_KINDS
}
"""One line per trigger kind for the reference, declared with the kind in its trigger module."""


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def section_table(cls: type) -> str:
    """Return the keys of a config section class as a markdown table."""
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
    """Every trigger kind: what it is, and its keys (their settings-schema specs)."""
    parts = []
    for kind in TRIGGER_KINDS:
        rows = ["| Key | Allowed |", "|---|---|"]
        children = trigger_kind(kind).children
        if children is not None:
            single = children == (1, 1)
            names = "one trigger name" if single else "trigger names, comma-separated"
            rows.append(f"| `OF` | {names}, required |")
        for name, spec in parameter_specs(kind).items():
            allowed = describe_allowed(str, spec) + (", required" if spec.required else "")
            rows.append(f"| `{name.upper()}` | {_escape(allowed)} |")
        parts.append(f"#### `{kind}`\n\n{TRIGGER_DESCRIPTIONS[kind]}\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def event_columns() -> str:
    """Return the events.csv columns as a table."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {_escape(doc)} |" for name, doc in EVENT_COLUMN_DOCS.items()]
    return "\n".join(lines)


def shipped_configs() -> str:
    """Return the configs in experiments/configs with their descriptions."""
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
        text = pattern.sub(_between(body), text)
    return text


def main(argv: list[str]) -> int:
    """Rewrite (or with ``--check``, verify) the generated blocks; return the exit code."""
    text = render(DOC_FILE.read_text(encoding="utf-8"))
    return write_generated(DOC_FILE, text, argv, "deeplabstream.offline.reference.experiments")


def _between(body: str) -> Callable[[re.Match[str]], str]:
    """Return a replacement that puts ``body`` between a generated block's two markers."""

    def replace(match: re.Match[str]) -> str:
        return match[1] + body + match[2]

    return replace


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
