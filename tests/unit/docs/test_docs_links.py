"""The user docs as a reader of a clone sees them: every link resolves, nothing points outside.

README.md, CHANGELOG.md and docs/*.md: every relative link and image resolves to a file of the
repository, and every ``#anchor`` to a heading of its page by GitHub's rules (lower case, what is
not a letter, digit, space, ``-`` or ``_`` dropped, spaces to ``-``, a repeated heading numbered
``-1``, ``-2``...). The docs speak of the project and its users only: they never name a path
outside the repository (the data folder beside a developer's checkout, an absolute path of the
machine they were written on, the developers' brief) nor the project's internal issue numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_ROOT

PAGES = sorted(
    [
        PROJECT_ROOT / "README.md",
        PROJECT_ROOT / "CHANGELOG.md",
        *(PROJECT_ROOT / "docs").glob("*.md"),
    ]
)

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")

#: What a clone does not have, or a reader cannot look up: (what, pattern).
_OUTSIDE = (
    ("the data folder beside a developer's checkout", re.compile(r"\.\./shared|shared/data")),
    ("the developers' brief", re.compile(r"BRIEF\.md|\bthe brief\b", re.I)),
    ("a path of the machine the docs were written on", re.compile(r"(?<![\w.])/work/")),
    ("another project checked out beside this one", re.compile(r"\.\./peers|\bpeers/")),
    ("an internal issue", re.compile(r"\bissues?\s+#?\d+|\bissue\s+#|(?<![\w/&])#\d+\b|the issue's",
                                     re.I)),
    ("an internal round of work", re.compile(r"\b(first|second|third|fourth|fifth|sixth|seventh)"
                                              r" wave\b", re.I)),
)  # fmt: skip


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)`` outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def _without_code_spans(line: str) -> str:
    return re.sub(r"`+[^`]*`+", "", line)


def heading_text(markdown: str) -> str:
    """Return a heading's text as GitHub renders it: code, links and emphasis as their text."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown)  # images add nothing
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>`]+>(?=(?:[^`]*`[^`]*`)*[^`]*$)", "", text)  # HTML tags outside code
    text = re.sub(r"`+([^`]*)`+", r"\1", text)  # code: its characters
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<!\w)[*_](.+?)[*_](?!\w)", r"\1", text)
    return text


def github_anchor(text: str) -> str:
    """Return GitHub's anchor of a heading whose rendered text is ``text``."""
    kept = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Return every anchor of ``page``'s headings (a repeated one numbered as GitHub does)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(page.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(heading_text(match[2]))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, target)`` of every link and image of ``page``'s prose."""
    for number, line in _prose_lines(page.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_without_code_spans(line)):
            yield number, match[1]


def broken(page: Path, target: str) -> str | None:
    """Return why ``target`` (a link on ``page``) does not resolve, or None when it does."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
        return None
    path_text, _, anchor = target.partition("#")
    path = (page.parent / path_text).resolve() if path_text else page
    if not path.is_relative_to(PROJECT_ROOT):
        return f"{path_text} is outside the repository"
    if not path.exists():
        return f"{path_text}: no such file in the repository"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"{path.relative_to(PROJECT_ROOT)} has no heading whose anchor is #{anchor}"
    return None


def test_the_pages_are_found() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "CHANGELOG.md", "plugins.md", "gui.md", "cameras.md"} <= names
    assert all(page.is_file() for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_and_anchor_resolves(page: Path) -> None:
    problems = [
        f"{page.name}:{number}: {target}: {why}"
        for number, target in links(page)
        if (why := broken(page, target)) is not None
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_nothing_outside_the_repository_is_named(page: Path) -> None:
    problems = [
        f"{page.name}:{number}: {what}: {line.strip()[:120]}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        for what, pattern in _OUTSIDE
        if pattern.search(line)
    ]
    assert not problems, "\n".join(problems)


def tables(page: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first line number, rows)`` of every run of table rows of ``page``'s prose."""
    run: list[str] = []
    start = 0
    for number, line in [*_prose_lines(page.read_text(encoding="utf-8")), (0, "")]:
        if line.lstrip().startswith("|"):
            start = start or number
            run.append(line.strip())
        elif run:
            yield start, run
            run, start = [], 0


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_table_has_its_header(page: Path) -> None:
    """A table's rows run on from its header: a blank line cuts it, and its rest shows as text."""
    headless = [
        f"{page.name}:{number}: {rows[0][:80]}"
        for number, rows in tables(page)
        if len(rows) < 2 or not re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", rows[1])
    ]
    assert not headless, "rows without a header (a blank line before them?):\n" + "\n".join(
        headless
    )


def test_the_anchor_rules_are_githubs() -> None:
    """Headings as GitHub made their anchors (checked against the pages it renders)."""
    assert github_anchor(heading_text(
        "`<camera>.pose.csv`, `<camera>.pose_times.csv`, `<camera>.pose.pqt`"
    )) == "cameraposecsv-camerapose_timescsv-cameraposepqt"  # fmt: skip
    assert github_anchor(heading_text("Outputs are plugins: choosing one, adding one")) == (
        "outputs-are-plugins-choosing-one-adding-one"
    )
    assert github_anchor(heading_text("A lab's own camera")) == "a-labs-own-camera"
    assert github_anchor(heading_text("[Pose] `MODEL_PATH` **several**")) == (
        "pose-model_path-several"
    )
    assert github_anchor(heading_text("3D: 1366x768 — *fast*")) == "3d-1366x768--fast"


def test_a_broken_link_and_an_outside_path_are_found(tmp_path: Path) -> None:
    """The checks find what they look for (a page of the repository's own docs folder)."""
    docs = PROJECT_ROOT / "docs"
    assert broken(docs / "plugins.md", "outputs.md#no-such-heading") is not None
    assert broken(docs / "plugins.md", "nowhere.md") is not None
    assert broken(docs / "plugins.md", "../../elsewhere/x.md") is not None
    assert (
        broken(docs / "plugins.md", "outputs.md#outputs-are-plugins-choosing-one-adding-one")
        is None
    )
    assert broken(docs / "plugins.md", "https://example.org/x.md#y") is None
    cut = tmp_path / "cut.md"
    cut.write_text("| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n", encoding="utf-8")
    assert [rows for _, rows in tables(cut)] == [
        ["| a | b |", "|---|---|", "| 1 | 2 |"],
        ["| 3 | 4 |"],
    ]
    said = "see `../shared/data/x` and issue 36 (#12)"
    assert [what for what, pattern in _OUTSIDE if pattern.search(said)] == [
        "the data folder beside a developer's checkout", "an internal issue",
    ]  # fmt: skip


#: The interfaces a lab implements (docs/plugins.md): a class of a docs example deriving from one
#: is a plugin example, which a test must run (or hold against the code it is taken from).
PLUGIN_BASES = frozenset({
    "Camera", "StimulationDevice", "Trigger", "Experiment", "Output", "LiveOutput", "PoseSink",
    "Backend", "InferenceBackend", "ModelFormat",
})  # fmt: skip

_DOC_TESTS = "tests/unit/docs/"
_PLUGINS_DOC = _DOC_TESTS + "test_plugins_doc.py::"
_INTERFACE_DOCS = _DOC_TESTS + "test_interface_docs.py::"

#: (page, class) -> the test that runs it.
EXAMPLE_TESTS = {
    ("cameras.md", "MovingDotCamera"): _INTERFACE_DOCS
    + "test_the_cameras_page_excerpt_is_the_example_cameras",
    ("ensembles.md", "StillAndSure"): _DOC_TESTS
    + "test_ensembles_doc.py::test_the_pages_trigger_reads_the_spread",
    ("experiments.md", "EveryNth"): _INTERFACE_DOCS
    + "test_the_experiments_page_trigger_is_the_distributions",
    ("experiments.md", "AtLeast"): _INTERFACE_DOCS
    + "test_the_experiments_page_combinator_updates_every_child_and_resets_them",
    ("experiments.md", "Staircase"): "tests/unit/experiments/test_experiment_api.py::"
    "test_the_documented_example_is_a_working_staircase",
    ("experiments.md", "AlternatingReward"): _INTERFACE_DOCS
    + "test_the_experiments_page_alternation_is_the_shipped_one",
    ("outputs.md", "NoseOutput"): _INTERFACE_DOCS
    + "test_the_outputs_page_example_writes_every_nth_frame",
    ("outputs.md", "_Live"): _INTERFACE_DOCS
    + "test_the_outputs_page_example_writes_every_nth_frame",
    ("plugins.md", "LabArena"): _PLUGINS_DOC + "test_the_camera_streams_the_arena_at_its_settings",
    ("plugins.md", "LabLed"): _PLUGINS_DOC
    + "test_the_device_gets_each_command_and_is_acknowledged",
    ("plugins.md", "NoseLeft"): _PLUGINS_DOC
    + "test_the_trigger_reads_the_nose_with_the_common_parameters",
    ("plugins.md", "LabProtocol"): _PLUGINS_DOC
    + "test_the_experiment_pulses_on_each_entry_and_ends_itself",
    ("plugins.md", "NoseCsv"): _PLUGINS_DOC + "test_the_output_writes_a_row_per_analysed_frame",
    ("plugins.md", "NoseRows"): _PLUGINS_DOC + "test_the_output_writes_a_row_per_analysed_frame",
    ("plugins.md", "LabOnnx"): _PLUGINS_DOC + "test_the_format_and_the_backend_run_the_arena_model",
    ("plugins.md", "LabJson"): _PLUGINS_DOC + "test_the_format_and_the_backend_run_the_arena_model",
}


def plugin_examples(page: Path) -> Iterator[str]:
    """Yield the classes of ``page``'s Python blocks that implement a plugin interface."""
    text = page.read_text(encoding="utf-8")
    for block in re.findall(r"^```python[^\n]*\n(.*?)^```", text, re.M | re.S):
        for name, bases in re.findall(r"^class (\w+)\(([^)]*)\)", block, re.M):
            if {base.strip().rsplit(".", 1)[-1] for base in bases.split(",")} & PLUGIN_BASES:
                yield name


def test_every_plugin_example_of_the_docs_is_run_by_a_test() -> None:
    """A plugin interface shown in the docs is run by a named test that reads its page."""
    found = {(page.name, name) for page in PAGES for name in plugin_examples(page)}
    assert found == set(EXAMPLE_TESTS), (
        f"examples without a test: {sorted(found - set(EXAMPLE_TESTS))}; "
        f"tests of examples no longer shown: {sorted(set(EXAMPLE_TESTS) - found)}"
    )
    for (page, _), test in EXAMPLE_TESTS.items():
        file, _, function = test.partition("::")
        source = (PROJECT_ROOT / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {function}\(", source, re.M), f"{test} is gone"
        assert page in source, f"{file} never reads {page}"
