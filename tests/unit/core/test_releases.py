"""Releases a lab can follow: CHANGELOG.md, the version, ``--version`` and the deprecations' ends.

The package's version is ``deeplabstream.__version__`` (pyproject.toml reads it there), and it is
CHANGELOG.md's newest release; every release lists what it added, changed, deprecated and
removed. Every deprecation in the code names the release that removes it, a release after this
one, listed in the changelog: once the version reaches it, this test fails until the old form
is gone. Every command answers ``--version``: each console script ends in
``core.optional.exit_with``, which answers it before the command runs.
"""

from __future__ import annotations

import ast
import re
import tomllib

import pytest

import deeplabstream
from deeplabstream.core.optional import exit_if_version_asked
from tests.support.paths import PACKAGE_ROOT, PROJECT_ROOT

CHANGELOG = PROJECT_ROOT / "CHANGELOG.md"
SECTIONS = ["Added", "Changed", "Deprecated", "Removed"]
_RELEASE = re.compile(r"^## (\d+)\.(\d+)\.(\d+)(?: \(([^)]*)\))?$", re.M)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def releases() -> list[tuple[str, str, str]]:
    """Return ``(version, what follows it on its line, its text)`` of each release, newest first."""
    text = CHANGELOG.read_text(encoding="utf-8")
    heads = list(_RELEASE.finditer(text))
    ends = [head.start() for head in heads[1:]] + [len(text)]
    return [
        (".".join(head.groups()[:3]), head[4] or "", text[head.end() : end])
        for head, end in zip(heads, ends, strict=True)
    ]


def test_the_version_is_the_changelogs_newest_release() -> None:
    (newest, _, _), *_ = releases()
    assert deeplabstream.__version__ == newest
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "deeplabstream.__version__"


def test_each_release_says_what_it_added_changed_deprecated_and_removed() -> None:
    found = releases()
    versions = [_version(version) for version, _, _ in found]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    assert found[-1][0] == "0.1.0"  # the first release: everything was added
    for version, _, text in found[:-1]:
        sections = re.findall(r"^### (\w+)$", text, re.M)
        assert sections == SECTIONS, (version, sections)
        bodies = re.split(r"^### \w+$", text, flags=re.M)[1:]
        for name, body in zip(sections, bodies, strict=True):
            assert body.strip().startswith(("- ", "Nothing")), (version, name)
    for version, when, _ in found[1:]:  # a past release: when it ended, and where
        assert re.fullmatch(r"\d{4}-\d\d-\d\d, commit [0-9a-f]{7,}", when), version


def _deprecations() -> list[tuple[str, str]]:
    """Return ``(file, release)`` of every ``removed_in=`` the package's deprecations name."""
    found = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "removed_in" not in source and "REMOVED_IN" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            names_removal = (isinstance(node, ast.keyword) and node.arg == "removed_in") or (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "REMOVED_IN" for t in node.targets)
            )
            value = getattr(node, "value", None)
            if names_removal and isinstance(value, ast.Constant):
                found.append((str(path.relative_to(PACKAGE_ROOT)), str(value.value)))
    return found


def test_every_deprecation_ends_in_a_later_release_the_changelog_names() -> None:
    found = _deprecations()
    (_, _, newest), *_ = releases()
    # Release 0.8.0 removed the forms deprecated until it: none is left to find, and its
    # "Removed" names each.
    removed = newest.split("### Removed", 1)[1]
    for gone in ("deeplabstream.outputs.plugin", "DeviceCommand", "`_step`"):
        assert gone in removed, gone
    deprecated = newest.split("### Deprecated", 1)[1].split("### Removed", 1)[0]
    for file, release in found:
        assert _version(release) > _version(deeplabstream.__version__), (
            f"{file}: its deprecation ends in {release}: remove the old form now"
        )
        assert re.search(rf"\b{re.escape(release)}\b", deprecated), (file, release)


def test_version_is_answered_before_the_command_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        exit_if_version_asked(["--settings", "x.ini", "--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"DeepLabStream {deeplabstream.__version__}\n"
    exit_if_version_asked(["--settings", "x.ini"])  # not asked: the command goes on
    exit_if_version_asked(["--", "--version"])  # after --: the command's own argument


def test_every_console_script_ends_in_exit_with() -> None:
    """Each command of pyproject.toml calls ``exit_with``, which answers ``--version``."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = project["project"]["scripts"]
    assert "deeplabstream" in scripts and len(scripts) >= 12
    for command, target in scripts.items():
        module, _, function = target.partition(":")
        path = PACKAGE_ROOT.joinpath(*module.split(".")[1:]).with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        (defined,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
        calls = {
            node.func.id
            for node in ast.walk(defined)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        if module == "deeplabstream.launch":
            assert calls & {"run"}, command  # launch.py: the stop signals first, then the command
            continue
        assert "exit_with" in calls, f"{command} ({target}) does not end in exit_with"
