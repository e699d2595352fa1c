"""Release 0.7.0's import paths that 0.8.0 moved still work, with a warning that names 0.9.0."""

from __future__ import annotations

import importlib
import sys

import pytest

from deeplabstream.core import timing
from deeplabstream.hardware.stimulation import base


@pytest.mark.parametrize(
    ("old_path", "name", "new_home"),
    [
        ("deeplabstream.core.clock", "host_now_ns", timing),
        ("deeplabstream.core.clock", "precise_timers", timing),
        ("deeplabstream.hardware.stimulation.action", "Action", base),
        ("deeplabstream.hardware.stimulation.action", "COMMANDS", base),
    ],
)
def test_a_moved_path_gives_the_same_object_and_says_where_it_went(
    old_path: str, name: str, new_home: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, old_path, raising=False)  # imported afresh: it warns
    with pytest.warns(DeprecationWarning, match=r"since release 0\.8\.0.*until release 0\.9\.0"):
        old = importlib.import_module(old_path)
    assert getattr(old, name) is getattr(new_home, name)
