"""A new virtual environment that sees only what a project declares, at the pinned versions.

Nothing is downloaded: the distributions a ``pyproject.toml`` asks for (its build requirements,
its dependencies and the chosen extras, and theirs, followed through their own metadata) are
taken from the environment running the tests (``requirements.txt``'s pins), linked into one
folder, and that folder alone is put on the new environment's path. A dependency the project
uses but does not declare is then missing there, as it would be after ``pip install`` from an
index.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import Distribution, distribution
from pathlib import Path

# packaging comes with pytest (its dependency): the same rules pip applies to requirements.
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def declared_distributions(pyproject: Path, extras: tuple[str, ...]) -> dict[str, Distribution]:
    """Return the installed distributions ``pyproject`` needs with ``extras``, by name.

    Raises PackageNotFoundError for one that is not installed here.
    """
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    texts = [*project["build-system"]["requires"], *project["project"]["dependencies"]]
    for extra in extras:
        texts += project["project"]["optional-dependencies"][extra]
    wanted = [(Requirement(text), "") for text in texts]
    seen: set[tuple[str, str]] = set()
    found: dict[str, Distribution] = {}
    while wanted:
        requirement, extra = wanted.pop()
        # a requirement of one extra (``; extra == "x"``), or of another platform, is left out
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        for wanted_extra in ("", *sorted(requirement.extras)):
            if (name, wanted_extra) in seen:
                continue
            seen.add((name, wanted_extra))
            found_now = found.setdefault(name, distribution(requirement.name))
            wanted += [(Requirement(text), wanted_extra) for text in found_now.requires or []]
    return found


def link_distributions(distributions: dict[str, Distribution], folder: Path) -> None:
    """Link each distribution's top-level files and folders (its RECORD's) into ``folder``."""
    folder.mkdir(parents=True)
    for name, found in distributions.items():
        if found.files is None:
            raise RuntimeError(f"{name} has no RECORD: its files cannot be linked")
        base = Path(str(found.locate_file("")))
        for file in found.files:
            top = file.parts[0]
            # ".." is a console script in bin/; a top-level folder shared by several
            # distributions (a namespace package) is linked once, with all of them
            if top == ".." or (folder / top).is_symlink():
                continue
            (folder / top).symlink_to(base / top)


def make_environment(root: Path, pyproject: Path, extras: tuple[str, ...]) -> Path:
    """Make a virtual environment at ``root`` seeing only what ``pyproject`` declares.

    Returns its Python. It has no pip of its own: ``python -m pip --python PYTHON`` installs
    into it from here.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
        check=True,
        timeout=120,
    )
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    pinned = root / "pinned"
    link_distributions(declared_distributions(pyproject, extras), pinned)
    # One path line: the linked folder goes on the path (after the environment's own
    # site-packages), and nothing of the test environment's own .pth files runs.
    (Path(purelib) / "pinned-requirements.pth").write_text(f"{pinned}\n", encoding="utf-8")
    return python
