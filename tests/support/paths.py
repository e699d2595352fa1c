"""Where the project and the shared data folder are."""

from __future__ import annotations

from pathlib import Path

import pytest

import deeplabstream

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
PACKAGE_ROOT = Path(deeplabstream.__file__).resolve().parent  # src/deeplabstream


def shared_data(relative: str) -> Path:
    """A path in ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data folder is not beside the project")
    return path
