"""Optional libraries a test module reads, imported by the first test that uses one.

``pytest.importorskip`` at a module's top imports the library while the module is collected: in
every process that collects the suite (each xdist worker of both tiers), whether or not it runs
one of the module's tests. ``installed`` skips the module's tests as that did when a library is
not installed (asked without importing it); ``lazy`` stands for the module and imports it when a
test first reads one of its names.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import pytest


def installed(*names: str) -> pytest.MarkDecorator:
    """Skip unless every one of ``names`` is installed (its top-level package is found)."""
    missing = [name for name in names if importlib.util.find_spec(name.split(".")[0]) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


class _Lazy(ModuleType):
    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):  # pytest asks each module-level object for its marks
            raise AttributeError(attribute)  # while it collects: that must not import
        return getattr(importlib.import_module(self.__name__), attribute)


def lazy(name: str) -> Any:
    """The module ``name``, imported when one of its names is first read."""
    return _Lazy(name)
