"""Every DeepLabCut, Lightning Pose and sleap-nn command this program prints runs in that framework.

The frameworks' released interfaces are in ``tests/fixtures/framework_signatures/signatures.json``
(made by ``scripts/make_signatures.py`` there: DeepLabCut 3.0.2's functions by
``inspect.signature`` in an installed DeepLabCut; sleap-nn 0.3.5's and Lightning Pose 2.4.3's
command lines read from their released wheels). Each command is checked against them:

* a DeepLabCut call: the function exists, every keyword is one of its parameters, no more
  positional arguments than it takes;
* a command line: the subcommand exists, every option is one of its options.

The commands are found where a lab meets them: the messages the program builds (called here
with real folders), every string of the program's source (``src/``), and the code in the docs
and README.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplabstream.pose.formats.dlc3_folders import export_command, training_folder
from tests.support.paths import PROJECT_ROOT
from tests.unit.pose.test_framework_folders import dlc_project, train_folder

SIGNATURES = json.loads(
    (PROJECT_ROOT / "tests/fixtures/framework_signatures/signatures.json").read_text()
)
DEEPLABCUT = SIGNATURES["deeplabcut"]["functions"]
COMMANDS = {**SIGNATURES["sleap-nn"]["commands"], **SIGNATURES["lightning-pose"]["commands"]}
# A DeepLabCut call, up to its closing parenthesis (no nested calls in the ones printed).
PYTHON_CALL = re.compile(r"(deeplabcut(?:\.\w+)+)\(([^()]*)\)")
# A command line: the program, a word, the rest up to the end of its code span or sentence.
COMMAND_LINE = re.compile(r"\b(sleap-nn|litpose) ([\w-]+)([^`\n;)]*)")


def check_python_call(function: str, arguments: str) -> list[str]:
    """Return what in ``function(arguments)`` DeepLabCut's released function would refuse."""
    if function not in DEEPLABCUT:
        return [f"{function} is not a function of DeepLabCut {SIGNATURES['deeplabcut']['version']}"]
    signature = DEEPLABCUT[function]
    problems = []
    parts = [p.strip() for p in _split_arguments(arguments) if p.strip()]
    keywords = [p.split("=", 1)[0].strip() for p in parts if re.match(r"^\w+\s*=", p)]
    positional = [p for p in parts if not re.match(r"^\w+\s*=", p)]
    if len(positional) > len(signature["parameters"]):
        problems.append(f"{function}: {len(positional)} positional arguments")
    for keyword in keywords:
        if keyword not in signature["parameters"] and not signature["var_keyword"]:
            problems.append(f"{function}() got an unexpected keyword argument '{keyword}'")
    taken = signature["parameters"][: len(positional)]
    problems += [f"{function}: {k} given twice" for k in keywords if k in taken]
    return problems


def _split_arguments(arguments: str) -> list[str]:
    """Split a call's arguments at the commas outside quotes and brackets."""
    parts, depth, quote, current = [], 0, "", ""
    for char in arguments:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{<":
            depth += 1
        elif char in "]}>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def check_command_line(program: str, subcommand: str, rest: str) -> list[str]:
    """Return what the framework's released command line would refuse in this command."""
    name = f"{program} {subcommand}"
    if name not in COMMANDS:
        return [f"`{name}` is no command of {program}"]
    spec = COMMANDS[name]
    options = re.findall(r"(?<![\w<])(--?[A-Za-z][\w-]*)", rest)
    if not spec["options_complete"]:
        return []
    return [
        f"`{name}` has no option {option}" for option in options if option not in spec["options"]
    ]


def commands_in(text: str, *, code_only: bool) -> Iterator[tuple[str, list[str]]]:
    """Yield each command in ``text`` and what its framework would refuse in it.

    ``code_only``: command lines count only in code (backticks, code blocks) or when they carry
    an option; elsewhere ``sleap-nn`` and ``litpose`` are names in prose.
    """
    text = text.replace("\\\n", " ")  # a shell command continued on the next line
    for match in PYTHON_CALL.finditer(text):
        yield match.group(0), check_python_call(match.group(1), match.group(2))
    for match in COMMAND_LINE.finditer(text):
        program, subcommand, rest = match.groups()
        in_code = text.count("`", 0, match.start()) % 2 == 1 or not code_only
        if not (in_code or " -" in rest):
            continue
        yield match.group(0), check_command_line(program, subcommand, rest)


def _source_strings(path: Path) -> Iterator[str]:
    """Every string of a source file; an f-string with its fields as ``<field>``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr):
            yield "".join(
                part.value if isinstance(part, ast.Constant) else "<field>" for part in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _doc_code(path: Path) -> Iterator[str]:
    """The code of a Markdown file: its code spans and fenced blocks, each as one text."""
    text = path.read_text(encoding="utf-8")
    yield from re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    yield from re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))


def test_the_signature_table_names_the_released_versions() -> None:
    assert SIGNATURES["deeplabcut"]["version"] == "3.0.2"
    assert SIGNATURES["sleap-nn"]["version"].startswith("0.3.")
    assert SIGNATURES["lightning-pose"]["version"].startswith("2.4.")
    # What 3.0.2 really takes (the top-level function has no detector_snapshot_index).
    assert "detector_snapshot_index" not in DEEPLABCUT["deeplabcut.export_model"]["parameters"]
    engine = DEEPLABCUT["deeplabcut.pose_estimation_pytorch.apis.export_model"]["parameters"]
    assert "detector_snapshot_index" in engine


def test_the_checks_refuse_what_the_frameworks_refuse() -> None:
    # The command: a TypeError in DeepLabCut 3.0.2.
    refused = check_python_call(
        "deeplabcut.export_model", '".../config.yaml", shuffle=2, snapshotindex=0, '
        "detector_snapshot_index=1"
    )  # fmt: skip
    assert refused == [
        "deeplabcut.export_model() got an unexpected keyword argument 'detector_snapshot_index'"
    ]
    assert check_python_call("deeplabcut.export_model", '"c.yaml", shuffle=2') == []
    assert check_command_line("sleap-nn", "export", " m --format onnx -o out") == []
    assert check_command_line("sleap-nn", "export", " m --runtime onnx") != []
    assert check_command_line("litpose", "export", " m --runtime onnx") == []
    assert check_command_line("litpose", "export", " m --format onnx") != []
    assert check_command_line("litpose", "exporter", "") != []


def test_the_export_commands_built_for_deeplabcut_folders_run(tmp_path: Path) -> None:
    bottom_up = dlc_project(tmp_path / "bu")
    names = ("snapshot-100.pt", "snapshot-best-150.pt", "snapshot-detector-best-020.pt")
    top_down = dlc_project(tmp_path / "td", names)
    commands = [
        export_command(training_folder(train_folder(bottom_up))),
        export_command(training_folder(train_folder(top_down))),
    ]
    assert "detector_snapshot_index=0" in commands[1]
    for command in commands:
        (match,) = PYTHON_CALL.finditer(command)
        assert check_python_call(match.group(1), match.group(2)) == [], command


def test_every_command_in_the_programs_messages_runs() -> None:
    found, refused = 0, []
    for path in sorted((PROJECT_ROOT / "src").rglob("*.py")):
        for text in _source_strings(path):
            for command, problems in commands_in(text, code_only=True):
                found += 1
                refused += [f"{path.relative_to(PROJECT_ROOT)}: {command}: {p}" for p in problems]
    assert found >= 10  # export and predict commands of the three frameworks
    assert refused == []


@pytest.mark.parametrize(
    "path",
    [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))],
    ids=lambda p: p.name,
)
def test_every_command_in_the_docs_runs(path: Path) -> None:
    refused = [
        f"{command}: {problem}"
        for code in _doc_code(path)
        for command, problems in commands_in(code, code_only=False)
        for problem in problems
    ]
    assert refused == []
