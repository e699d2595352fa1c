"""One registry for every kind of plugin: built-ins by name, entry points, the lab's own folder.

DeepLabStream has seven kinds of plugin, each with one small interface (docs/architecture.md,
"Plugins"): cameras, stimulation devices, inference backends, model formats, triggers,
experiments and outputs. Each kind has one :class:`Registry`, made where the kind's interface
lives, and every registry works the same way:

* **built-ins by name**: ``name -> "module:Class"`` strings, imported on first use, so a
  missing optional library (pypylon, nidaqmx, torch) matters only to the labs that use it;
* **entry points**: an installed distribution adds one under the kind's group
  (``deeplabstream.cameras``, ``deeplabstream.devices``, ``deeplabstream.backends``,
  ``deeplabstream.model_formats``, ``deeplabstream.triggers``, ``deeplabstream.experiments``,
  ``deeplabstream.outputs``),
  ``name = "module:Class"`` in its ``pyproject.toml``, without a fork of this project;
* **the lab's folder** (cameras and experiments only): ``cameras/NAME.py`` or
  ``experiments/NAME.py`` beside the settings file, named ``NAME`` or ``NAME:Class``;
* **a file named explicitly**: ``PATH.py`` or ``PATH.py:Class``.

Python code is imported only from this package, from installed entry points, from the lab's
folder beside the settings file, or from a file path named explicitly: settings are data, and a
name in a settings file never reaches an arbitrary module. An unknown name is one
:class:`UnknownPluginError` for every kind, worded ``unknown camera 'x'; known: a, b, c``
followed by what to do. A plugin that fails to import is reported by its name, its
distribution (or file) and the error (:class:`PluginLoadError`, :class:`PluginFailure`), and never
stops the others from being listed (:meth:`Registry.load_all`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from deeplabstream.core.errors import DeepLabStreamError

T = TypeVar("T")

PACKAGE = "deeplabstream"
"""The one package whose modules a ``module:Class`` name may import."""

_PYTHON_FILE = re.compile(
    r"^(?P<path>.+\.py)(?::(?P<attr>[A-Za-z_][A-Za-z0-9_]*))?$", re.IGNORECASE
)
_MODULE_ATTR = re.compile(
    r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"(?::(?P<attr>[A-Za-z_][A-Za-z0-9_]*))?$"
)


class PluginError(DeepLabStreamError):
    """A plugin that cannot be found or loaded; the message names it and says what to do."""


class UnknownPluginError(PluginError, KeyError):
    """No plugin of that kind and name; the message lists the known ones.

    Also a ``KeyError``, which the registries of each kind raised before they were one.
    """

    def __str__(self) -> str:
        """Return the message as written (a ``KeyError`` would quote it)."""
        return str(self.args[0]) if self.args else ""


class PluginLoadError(PluginError, ImportError):
    """A plugin that is declared but cannot be imported, or is not what its kind expects."""


@dataclass(frozen=True)
class PluginSource:
    """Where a named plugin comes from, before it is imported.

    Attributes
    ----------
    name
        The name a settings file or config writes.
    target
        ``module:attribute`` (a built-in or an entry point) or ``/path/file.py:attribute``.
    origin
        For messages: ``built in``, ``distribution lab-cams 0.1``, or the file's path.
    """

    name: str
    target: str
    origin: str


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded while listing them all: its name, origin and error."""

    kind: str
    name: str
    origin: str
    error: str

    def __str__(self) -> str:
        """Return one line naming the plugin, where it comes from and why it failed."""
        return f"{self.kind} {self.name!r} ({self.origin}) cannot be loaded: {self.error}"


def error_text(error: BaseException) -> str:
    """Return ``Type: message`` of an exception, for a message about a plugin."""
    return f"{type(error).__name__}: {error}"


class Registry(Generic[T]):
    """The plugins of one kind: built-ins, entry points, and (optionally) the lab's folder.

    Parameters
    ----------
    kind
        The kind in words, singular (``camera``, ``stimulation device``): every message uses it.
    group
        The entry point group (``deeplabstream.cameras``).
    builtins
        ``name -> "module:attribute"`` of the plugins shipped with the package, in the order
        they are listed (and tried, for kinds that are probed in order).
    advice
        What to do about an unknown name, appended to the message (``Set SOURCE to one of
        them, ...``).
    check
        Called with each loaded object; raises TypeError or ValueError saying what the object
        should have been (a Camera subclass, ...). None: anything is accepted.
    lab_folder
        The folder beside the settings file where the lab keeps its own plugins of this kind
        (``cameras``), or None for kinds that come only as built-ins and entry points.
    normalise
        Turns a written name into a registered one (``str.lower``: ``SOURCE = Basler`` is
        ``basler``). Names in the lab's folder and file paths are taken as written.
    find_in_module
        For a file or lab module named without ``:attribute``: returns the plugins it defines
        (``{name: object}``); the name must then pick one, or the module must define exactly
        one. None: the attribute must always be named.
    select
        For a registered target that holds several plugins (a module's ``KINDS`` tuple of
        trigger kinds): ``select(obj, name)`` returns the one registered as ``name``, or raises
        TypeError or ValueError. None: the target is the plugin itself.
    """

    def __init__(
        self,
        kind: str,
        group: str,
        builtins: Mapping[str, str],
        *,
        advice: str,
        check: Callable[[Any], None] | None = None,
        lab_folder: str | None = None,
        normalise: Callable[[str], str] = str.strip,
        find_in_module: Callable[[ModuleType], Mapping[str, Any]] | None = None,
        select: Callable[[Any, str], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self.advice = advice
        self.lab_folder = lab_folder
        self._builtins = {
            name: PluginSource(name, target, "built in") for name, target in builtins.items()
        }
        self._check = check
        self._normalise = normalise
        self._find_in_module = find_in_module
        self._select = select
        self._entry_points: dict[str, PluginSource] | None = None
        self._entry_point_problems: list[PluginFailure] = []
        self._loaded: dict[str, Any] = {}

    # -- what there is -------------------------------------------------------------------------

    def sources(self) -> dict[str, PluginSource]:
        """Return every registered plugin by name: the built-ins in order, then entry points."""
        return {**self._builtins, **self._installed()}

    def builtin_names(self) -> tuple[str, ...]:
        """Return the names of the plugins shipped with the package, in their order."""
        return tuple(self._builtins)

    def names(self) -> tuple[str, ...]:
        """Return the registered names: built-ins in their order, then entry points sorted."""
        return tuple(self.sources())

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered (after normalising), without importing anything."""
        return isinstance(name, str) and self._normalise(name) in self.sources()

    def __iter__(self) -> Iterator[str]:
        """Iterate over the registered names."""
        return iter(self.names())

    def __len__(self) -> int:
        """Return how many plugins are registered."""
        return len(self.sources())

    def origin(self, name: str) -> str:
        """Return where the registered plugin ``name`` comes from, in words."""
        return self._source(name).origin

    def problems(self) -> list[PluginFailure]:
        """Return the entry points that cannot be used (a name taken by a built-in, a bad value)."""
        self._installed()
        return list(self._entry_point_problems)

    def refresh(self) -> None:
        """Forget the entry points and loaded plugins, so a package installed since is seen."""
        self._entry_points = None
        self._entry_point_problems = []
        self._loaded = {}

    def lab_modules(self, settings_folder: Path | None) -> list[Path]:
        """Return the lab's modules of this kind beside the settings file, sorted by name."""
        folder = self.lab_path(settings_folder)
        if folder is None or not folder.is_dir():
            return []
        return sorted(path for path in folder.glob("*.py") if not path.name.startswith("_"))

    def lab_path(self, settings_folder: Path | None) -> Path | None:
        """Return the lab's folder of this kind beside the settings file (None: it has none)."""
        if self.lab_folder is None or settings_folder is None:
            return None
        return Path(settings_folder) / self.lab_folder

    # -- getting one ---------------------------------------------------------------------------

    def get(self, name: str, settings_folder: Path | None = None) -> T:
        """Return the plugin ``name``, importing its module on first use.

        ``name`` is tried, in order, as a registered name (built-in or entry point), as a
        ``.py`` file path (``PATH.py`` or ``PATH.py:Class``; a relative path from the current
        folder, else from ``settings_folder``), as a module of the lab's folder beside the
        settings file (``NAME`` or ``NAME:Class``), and as ``module:Class`` of this package.

        Raises
        ------
        UnknownPluginError
            Nothing of that name: the message lists the known names and says what to do.
        PluginLoadError
            It exists but cannot be imported, or is not a plugin of this kind.
        """
        text = str(name).strip()
        key = self._normalise(text)
        if key in self.sources():
            return self._load_registered(key)
        python_file = _PYTHON_FILE.match(text)
        if python_file:
            path = self._file_path(python_file["path"], settings_folder)
            return self._from_file(path, python_file["attr"] or "", text)
        module_attr = _MODULE_ATTR.match(text)
        if module_attr:
            lab = self.lab_path(settings_folder)
            if lab is not None and "." not in module_attr["module"]:
                path = lab / f"{module_attr['module']}.py"
                if path.is_file():
                    return self._from_file(path, module_attr["attr"] or "", text)
            if module_attr["attr"] and module_attr["module"].split(".")[0] == PACKAGE:
                return self._from_package(module_attr["module"], module_attr["attr"], text)
        raise UnknownPluginError(self.unknown_message(text, settings_folder))

    def unknown_message(
        self,
        name: str,
        settings_folder: Path | None = None,
        *,
        also_known: tuple[str, ...] | list[str] = (),
        also_in_lab: tuple[str, ...] | list[str] = (),
    ) -> str:
        """Return the one wording of an unknown name: what is known, and what to do.

        ``also_known`` and ``also_in_lab`` add names the kind knows besides its plugins (an
        experiment's configs, shipped and in the lab's folder).
        """
        known = [*also_known, *sorted(self.names())]
        lab = self.lab_path(settings_folder)
        lab_names = [*also_in_lab, *(path.stem for path in self.lab_modules(settings_folder))]
        text = f"unknown {self.kind} {name!r}; known: {', '.join(known) or 'none'}"
        if lab is not None:
            text += f"; in {lab}: {', '.join(lab_names) or 'none'}"
        broken = [str(problem) for problem in self.problems()]
        if broken:
            text += f" (not usable: {'; '.join(broken)})"
        return f"{text}. {self.advice}"

    def load_all(self) -> tuple[dict[str, T], list[PluginFailure]]:
        """Import every registered plugin; return those that loaded and those that did not.

        A plugin that fails is reported by name, origin and error, never stopping the others.
        The lab's folder is not listed here (its modules are named by the lab;
        :meth:`lab_modules` lists the files).
        """
        loaded: dict[str, T] = {}
        failures = self.problems()
        for name, source in self.sources().items():
            try:
                loaded[name] = self._load_registered(name)
            except PluginError as error:
                failures.append(PluginFailure(self.kind, name, source.origin, _cause(error)))
        return loaded, failures

    # -- inside --------------------------------------------------------------------------------

    def _source(self, name: str) -> PluginSource:
        key = self._normalise(name)
        try:
            return self.sources()[key]
        except KeyError:
            raise UnknownPluginError(self.unknown_message(name)) from None

    def _installed(self) -> dict[str, PluginSource]:
        """Return the entry points of this kind's group (read once; :meth:`refresh` re-reads)."""
        if self._entry_points is not None:
            return self._entry_points
        found: dict[str, PluginSource] = {}
        problems: list[PluginFailure] = []
        points = importlib.metadata.entry_points(group=self.group)
        for point in sorted(points, key=lambda p: p.name):
            origin = _distribution_of(point)
            name = self._normalise(point.name)
            clash = ""
            if name in self._builtins:
                clash = f"the name is taken by the built-in {self.kind}; rename the entry point"
            elif name in found:
                clash = f"the name is also declared by {found[name].origin}; uninstall one"
            if clash:
                problems.append(PluginFailure(self.kind, name, origin, clash))
            else:
                found[name] = PluginSource(name, point.value, origin)
        self._entry_points, self._entry_point_problems = found, problems
        return found

    def _load_registered(self, key: str) -> T:
        if key in self._loaded:
            return self._loaded[key]
        source = self.sources()[key]
        module_name, _, attr = source.target.partition(":")
        where = f"{self.kind} {key!r} ({source.origin}, {source.target})"
        try:
            module = importlib.import_module(module_name.strip())
        except Exception as error:  # a plugin's import error of any kind is reported, not raised
            raise PluginLoadError(f"{where} cannot be loaded: {error_text(error)}") from error
        obj = _attribute(module, attr.strip(), where) if attr else module
        if self._select is not None:
            try:
                obj = self._select(obj, key)
            except (TypeError, ValueError) as error:
                raise PluginLoadError(f"{where} cannot be loaded: {error}") from None
        self._loaded[key] = self._checked(obj, where)
        return self._loaded[key]

    def _from_package(self, module_name: str, attr: str, text: str) -> T:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            raise UnknownPluginError(self.unknown_message(text)) from None
        where = f"{self.kind} {text!r}"
        return self._checked(_attribute(module, attr, where), where)

    def _file_path(self, text: str, settings_folder: Path | None) -> Path:
        path = Path(text).expanduser()
        if not path.is_absolute() and not path.is_file() and settings_folder is not None:
            path = Path(settings_folder) / path
        return path.resolve()

    def _from_file(self, path: Path, attr: str, text: str) -> T:
        """Import the lab's module or a named file (again when it changed) and pick the plugin."""
        where = f"{self.kind} {text!r} ({path})"
        if not path.is_file():
            raise UnknownPluginError(f"{self.kind} file not found: {path}. {self.advice}")
        module = import_file(path, where)
        # How the lab names one class of it: a file by its name, a lab module by its stem.
        named_as = f"{path.name if _PYTHON_FILE.match(text) else path.stem}:Class"
        if self._find_in_module is None:
            if not attr:
                raise PluginLoadError(f"{where}: name the class as {named_as}")
            return self._checked(_attribute(module, attr, where), where)
        candidates = dict(self._find_in_module(module))
        listed = ", ".join(candidates) or "none"
        if attr:
            if attr not in candidates:
                raise PluginLoadError(
                    f"{where} has no {self.kind} class {attr!r}; it has: {listed}"
                )
            return self._checked(candidates[attr], where)
        if len(candidates) != 1:
            raise PluginLoadError(
                f"{where} defines {len(candidates)} {self.kind} classes ({listed}); name one as "
                f"{named_as}"
            )
        return self._checked(next(iter(candidates.values())), where)

    def _checked(self, obj: Any, where: str) -> T:
        if self._check is not None:
            try:
                self._check(obj)
            except (TypeError, ValueError) as error:
                raise PluginLoadError(f"{where} is not a usable {self.kind}: {error}") from None
        return obj


def _attribute(module: ModuleType, attr: str, where: str) -> Any:
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PluginLoadError(
            f"{where} cannot be loaded: module {module.__name__} has no {attr!r}"
        ) from None


def _cause(error: PluginError) -> str:
    """Return the error behind a load failure, without the plugin's name (the failure has it)."""
    text = str(error)
    marker = "cannot be loaded: "
    return text.split(marker, 1)[1] if marker in text else text


def _distribution_of(point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    if dist is None:
        return "an installed package (entry point)"
    return f"distribution {dist.name} {dist.version}"


_FILE_MODULES: dict[Path, tuple[int, ModuleType]] = {}
_FILE_MODULE_PREFIX = "_dls_plugin_"


def imported_from_file(module_name: str) -> bool:
    """Whether ``module_name`` is a module :func:`import_file` made (unknown to other processes).

    Objects of its classes cannot be unpickled in another process, which imports modules by
    name: whoever sends them there sends their values and rebuilds them on the other side.
    """
    return module_name.startswith(_FILE_MODULE_PREFIX)


def import_file(path: Path, where: str = "") -> ModuleType:
    """Import the Python file ``path`` as a module of its own; again only when it has changed.

    The module is named after the file and its folder (``_dls_plugin_<stem>_<hash>``), so two
    files of one name never share a module; classes stay the same objects while the file is
    unchanged (its modification time), and a lab that edits the file gets the new code.

    Raises
    ------
    PluginLoadError
        When the file fails to import; the message names it and gives the error.
    """
    path = path.resolve()
    stamp = path.stat().st_mtime_ns
    cached = _FILE_MODULES.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"{_FILE_MODULE_PREFIX}{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise PluginLoadError(f"{where or path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the lab's code: any error is reported with the file's name
        sys.modules.pop(module_name, None)
        raise PluginLoadError(f"{where or path} cannot be loaded: {error_text(error)}") from error
    _FILE_MODULES[path] = (stamp, module)
    return module


def subclasses_in(module: ModuleType, base: type) -> dict[str, type]:
    """Return the concrete subclasses of ``base`` defined in ``module`` (not imported into it)."""
    return {
        name: cls
        for name, cls in vars(module).items()
        if inspect.isclass(cls)
        and issubclass(cls, base)
        and cls is not base
        and cls.__module__ == module.__name__
        and not inspect.isabstract(cls)
        and not name.startswith("_")
    }


def subclass_check(base: type) -> Callable[[Any], None]:
    """Return a ``check`` for :class:`Registry` that accepts subclasses of ``base`` only."""

    def check(obj: Any) -> None:
        if not (inspect.isclass(obj) and issubclass(obj, base)):
            raise TypeError(
                f"expected a subclass of {base.__module__}.{base.__qualname__}, not {obj!r}"
            )

    return check
