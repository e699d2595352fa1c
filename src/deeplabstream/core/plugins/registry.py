"""One registry for every kind of plugin: built-ins by name, entry points, the lab's own folder.

docs/architecture.md, "Plugins".
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from deeplabstream.core.plugins.errors import (
    PluginClashError,
    PluginError,
    PluginLoadError,
    PluginPathError,
    UnknownPluginError,
    error_text,
)
from deeplabstream.core.plugins.lab_files import (
    LAB_ORIGIN,
    LabFolder,
    import_file,
    import_recorded_file,
    note_link,
)
from deeplabstream.core.plugins.watchdog import import_watch

T = TypeVar("T")

_PYTHON_FILE = re.compile(
    r"^(?P<path>.+\.py)(?::(?P<attr>[A-Za-z_][A-Za-z0-9_]*))?$", re.IGNORECASE
)
_MODULE_ATTR = re.compile(
    r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"(?::(?P<attr>[A-Za-z_][A-Za-z0-9_]*))?$"
)


@dataclass(frozen=True)
class PluginSource:
    """Where a named plugin comes from, before it is imported.

    ``target`` is ``module:attribute`` or ``/path/file.py:attribute``; ``origin`` is for messages.
    """

    name: str
    target: str
    origin: str
    file: Path | None = None  # a module of the lab's folder: its file


@dataclass(frozen=True)
class DataFiles:
    """A kind's plugins written as data (``.ini`` configs), by stem; the lab's before shipped."""

    suffix: str
    shipped: Path
    noun: str

    def shipped_names(self) -> list[str]:
        """Return the stems of the files shipped in the package, sorted."""
        return sorted(path.stem for path in self.shipped.glob(f"*{self.suffix}"))

    def lab_names(self, lab: Path | None) -> list[str]:
        """Return the stems of the files in the lab's folder ``lab``, sorted ([]: none)."""
        if lab is None or not lab.is_dir():
            return []
        return sorted(path.stem for path in lab.glob(f"*{self.suffix}"))

    def names_path(self, name_or_path: str | Path) -> bool:
        """Whether ``name_or_path`` is a path of such a file (a :class:`Path`, or its suffix)."""
        return isinstance(name_or_path, Path) or str(name_or_path).strip().lower().endswith(
            self.suffix
        )

    def file_of(self, name_or_path: str | Path, lab: Path | None) -> Path | None:
        """Return the file a name (a stem) or path reads, or None."""
        text = str(name_or_path).strip()
        lower = text.lower()
        if lower.endswith(".py") or ".py:" in lower:
            return None
        if self.names_path(name_or_path):
            path = Path(text).expanduser()
            if not path.is_file() and path.name == text:  # "freezing_opto.ini": by its name
                path = self.named(path.stem, lab) or path
            return path.resolve() if path.is_file() else None
        if ":" in text or "/" in text or "\\" in text:
            return None
        return self.named(text, lab)

    def named(self, stem: str, lab: Path | None) -> Path | None:
        """Return the file ``stem``: the lab's (in ``lab``) before the shipped one, or None."""
        name = f"{stem}{self.suffix}"
        for candidate in (lab / name if lab else None, self.shipped / name):
            if candidate is not None and candidate.is_file():
                return candidate.resolve()
        return None


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


@dataclass(frozen=True)
class PluginPicker(Generic[T]):
    """What a plugin of one kind is: which one of a module a name picks, and its check.

    ``check``, ``select`` raise TypeError or ValueError; None in any field: no such step.
    """

    kind: str
    advice: str
    check: Callable[[Any], None] | None
    find_in_module: Callable[[ModuleType], Mapping[str, Any]] | None
    select: Callable[[Any, str], Any] | None

    def from_file(self, path: Path, attr: str, text: str, sha256: str | None = None) -> T:
        """Import the lab's module or a named file (again when changed) and pick the plugin.

        ``sha256``: only if the file's bytes still have that digest.
        """
        where = f"{self.kind} {text!r} ({path})"
        if sha256 is not None:
            module = import_recorded_file(path, sha256, where)
        elif not path.exists():
            raise UnknownPluginError(f"{self.kind} file not found: {path}. {self.advice}")
        else:
            module = import_file(path, where)
        # How the lab names one plugin of it: a file by its name, a lab module by its stem.
        named_as = f"{path.name if _PYTHON_FILE.match(text) else path.stem}:" + (
            "Class" if self.select is None else "name"
        )
        if self.find_in_module is None:
            if not attr:
                raise PluginLoadError(f"{where}: name the class as {named_as}")
            return self.accepted(_attribute(module, attr, where), where)
        candidates = dict(self.find_in_module(module))
        listed = ", ".join(candidates) or "none"
        by_case = [name for name in candidates if name.lower() == attr.lower()]
        if attr and attr not in candidates and len(by_case) == 1:  # a name lower-cased on the way
            attr = by_case[0]
        # What a module holds: classes (a camera class), or the kind's objects (trigger kinds).
        one = self.kind if self.select is not None else f"{self.kind} class"
        several = f"{self.kind}s" if self.select is not None else f"{self.kind} classes"
        if attr and attr not in candidates:
            raise PluginLoadError(f"{where} has no {one} {attr!r}; it has: {listed}")
        if not candidates:  # a module that is not a plugin of this kind (an empty one...)
            unfinished = _abstract_classes(module)
            if unfinished:  # a class of it that lacks a method the kind requires: say which
                raise PluginLoadError(f"{where}: {unfinished}, so it cannot be made: define them")
            raise PluginLoadError(f"{where} defines no {one}: {self.advice}")
        if not attr and len(candidates) != 1:
            raise PluginLoadError(
                f"{where} defines {len(candidates)} {several} ({listed}); name one as {named_as}"
            )
        chosen = candidates[attr] if attr else next(iter(candidates.values()))
        return self.accepted(chosen, where, f"{path.stem}:{attr}" if attr else path.stem)

    def all_in_file(self, path: Path) -> dict[str, T]:
        """Return every plugin of the lab module ``path``: by its stem, or ``stem:name`` each."""
        where = f"{self.kind} {path.stem!r} ({path})"
        if self.find_in_module is None:
            raise PluginLoadError(f"{where}: name the class as {path.stem}:Class")
        candidates = dict(self.find_in_module(import_file(path, where)))
        if len(candidates) <= 1:  # none: from_file says the module defines none (was: silent)
            return {path.stem: self.from_file(path, "", path.stem)}
        return {
            f"{path.stem}:{name}": self.from_file(path, name, f"{path.stem}:{name}")
            for name in candidates
        }

    def accepted(self, obj: Any, where: str, name: str | None = None) -> T:
        """Return ``obj`` once checked; first, for a kind that selects, the one ``name`` is."""
        try:
            if self.select is not None and name is not None:
                obj = self.select(obj, name)
        except (TypeError, ValueError) as error:
            raise PluginLoadError(f"{where} cannot be loaded: {error}") from None
        try:
            if self.check is not None:
                self.check(obj)
        except (TypeError, ValueError) as error:
            raise PluginLoadError(f"{where} is not a usable {self.kind}: {error}") from None
        return obj


class Registry(Generic[T]):
    """The plugins of one kind: built-ins, entry points, and (optionally) the lab's folder.

    ``kind`` is the kind in words (``camera``), used in every message; ``builtins`` maps names to
    ``"module:attribute"`` in the order tried; ``normalise`` turns a written name into a registered
    one; ``by_class_name``: a bare name also finds a registered ``module:Class``.
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
        data_files: DataFiles | None = None,
        by_class_name: bool = False,
    ) -> None:
        self.kind = kind
        self.group = group
        self.advice = advice
        self.lab = LabFolder(lab_folder)
        self._builtins = {
            name: PluginSource(name, target, "built in") for name, target in builtins.items()
        }
        self.picker: PluginPicker[T] = PluginPicker(kind, advice, check, find_in_module, select)
        self._normalise = normalise
        self.data_files = data_files
        self._by_class_name = by_class_name
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

    def settings_name(self, name: str) -> str:
        """Return the name as the settings keep it: registered ones normalised."""
        key = self._normalise(name)
        return key if key in self.sources() else name

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered or a module of the lab's folder, without importing."""
        if not isinstance(name, str):
            return False
        return self._normalise(name) in self.sources() or self.lab.module_file(name) is not None

    def __iter__(self) -> Iterator[str]:
        """Iterate over the registered names."""
        return iter(self.names())

    def __len__(self) -> int:
        """Return how many plugins are registered."""
        return len(self.sources())

    def origin(self, name: str, settings_folder: Path | None = None) -> str:
        """Return where the plugin ``name`` comes from (``built in``, ``lab folder: FILE``...)."""
        source = self._registered(str(name).strip(), settings_folder)
        if source is not None:
            return source.origin
        path = self.lab.module_file(name, settings_folder)
        if path is None:
            raise UnknownPluginError(self.unknown_message(name))
        return f"{LAB_ORIGIN}{path.resolve()}"

    def problems(self) -> list[PluginFailure]:
        """Return the entry points that cannot be used (a name taken by a built-in, a bad value)."""
        self._installed()
        return list(self._entry_point_problems)

    def refresh(self) -> None:
        """Forget the entry points and loaded plugins, so a package installed since is seen."""
        self._entry_points = None
        self._entry_point_problems = []
        self._loaded = {}

    # -- getting one ---------------------------------------------------------------------------

    def get(self, name: str, settings_folder: Path | None = None) -> T:
        """Return the plugin ``name`` (registered, else a lab folder's module), imported once.

        Raises :class:`PluginPathError` (a path), :class:`PluginClashError` (registered and in the
        lab's folder), :class:`UnknownPluginError`, :class:`PluginLoadError` (cannot import, wrong
        kind).
        """
        return self._get(str(name).strip(), settings_folder, with_data_files=False)

    def _get(self, text: str, settings_folder: Path | None, *, with_data_files: bool) -> T:
        """:meth:`get`; an unknown name's message lists the data files ``with_data_files``."""
        source = self._registered(text, settings_folder)
        if source is not None:
            return self._load_registered(source.name)
        self.refuse_code(text, settings_folder)
        module_attr = _MODULE_ATTR.match(text)
        if module_attr:
            path = self.lab.module_file(module_attr["module"], settings_folder)
            if path is not None:
                return self.picker.from_file(path, module_attr["attr"] or "", text)
        by_class = self._by_class_name_of(text)
        if by_class is not None:
            return self._load_registered(by_class)
        raise UnknownPluginError(self.unknown_message(text, settings_folder, with_data_files))

    def require(self, name: str, settings_folder: Path | None = None) -> None:
        """Check, without importing anything, that a settings file may name ``name``.

        Raises as :meth:`get` does, except :class:`PluginLoadError`.
        """
        registered = self._registered(str(name).strip(), settings_folder)
        self.refuse_code(name, settings_folder)
        if registered is None and self.lab.module_file(name, settings_folder) is None:
            raise UnknownPluginError(self.unknown_message(name, settings_folder))

    def get_file(self, path: Path | str, attr: str = "") -> T:
        """Return the plugin in the file ``path`` named on the command line (``attr``: which)."""
        return self.picker.from_file(note_link(Path(path).expanduser()), attr, f"{Path(path)}")

    def unknown_message(
        self, name: str, settings_folder: Path | None = None, with_data_files: bool = False
    ) -> str:
        """Return the one wording of an unknown name: what is known, and what to do."""
        lab = self.lab.path(settings_folder)
        data = self.data_files if with_data_files else None
        shipped, in_lab = (data.shipped_names(), data.lab_names(lab)) if data else ([], [])
        known = [*shipped, *sorted(self.names())]
        lab_names = [*in_lab, *(path.stem for path in self.lab.modules(settings_folder))]
        text = f"unknown {self.kind} {name!r}; known: {', '.join(known) or 'none'}"
        if lab is not None:
            text += f"; in {lab}: {', '.join(lab_names) or 'none'}"
        broken = [str(problem) for problem in self.problems()]
        if broken:
            text += f" (not usable: {'; '.join(broken)})"
        return f"{text}. {self.advice}"

    def load_all(
        self, settings_folder: Path | None = None, lab_names: Sequence[str] = ()
    ) -> tuple[dict[str, T], list[PluginFailure]]:
        """Import the registered plugins and the lab's ``lab_names``; return what loaded and not.

        No other file of the lab's folder is opened; a plugin that fails never stops the others.
        """
        loaded: dict[str, T] = {}
        failures = self.problems()
        for name, source in self.sources().items():
            try:
                loaded[name] = self._load_registered(name)
            except PluginError as error:
                failures.append(PluginFailure(self.kind, name, source.origin, _cause(error)))
        for name in lab_names:
            module, _, attr = name.strip().partition(":")
            path = self.lab.module_file(module, settings_folder)
            origin = str(path) if path is not None else str(self.lab.path(settings_folder))
            try:
                if path is None:
                    raise UnknownPluginError(self.unknown_message(name, settings_folder))
                found = (
                    {name.strip(): self.picker.from_file(path, attr.strip(), name.strip())}
                    if attr
                    else self.picker.all_in_file(path)
                )
                loaded.update(found)
            except PluginError as error:
                failures.append(PluginFailure(self.kind, name, origin, _cause(error)))
        return loaded, failures

    # -- names and paths of the command line, data files ----------------------------------------

    def find(self, name_or_path: str | Path, settings_folder: Path | None = None) -> T | Path:
        """Return what a command line's name or path names: data file, Python file or :meth:`get`.

        Raises :class:`UnknownPluginError` (the message lists what exists) or
        :class:`PluginLoadError`.
        """
        data = self.data_files
        data_file = data.file_of(name_or_path, self.lab.path(settings_folder)) if data else None
        if data_file is not None:
            return data_file
        text = str(name_or_path).strip()
        lower = text.lower()
        if data is not None and data.names_path(name_or_path):
            raise UnknownPluginError(
                f"{self.kind} {data.noun} file not found: {Path(text).expanduser().resolve()}"
            )
        if lower.endswith(".py") or ".py:" in lower:
            return self._command_line_file(text, settings_folder)
        if "/" in text or "\\" in text:
            endings = f"{data.suffix} or .py" if data is not None else ".py"
            article = "an" if self.kind[:1] in "aeiou" else "a"
            raise UnknownPluginError(
                f"{text!r} is not {article} {self.kind}: a path must end in {endings}"
            )
        return self._get(text, settings_folder, with_data_files=True)

    def source_of(self, name: str, settings_folder: Path | None = None) -> PluginSource | None:
        """Return where :meth:`get` would import ``name`` from, without importing; None: unknown."""
        text = str(name).strip()
        registered = self._registered(text, settings_folder)
        if registered is not None:
            return registered
        path = self.lab.module_file(text, settings_folder)
        if path is not None:
            return PluginSource(text, str(path), f"{LAB_ORIGIN}{path.resolve()}", path)
        by_class = self._by_class_name_of(text, quiet=True)
        return None if by_class is None else self.sources()[by_class]

    def available(self, settings_folder: Path | None = None) -> list[str]:
        """Return every name :meth:`find` accepts without a path, the lab's first."""
        data = self.data_files
        lab_data = data.lab_names(self.lab.path(settings_folder)) if data else []
        lab_modules = [path.stem for path in self.lab.modules(settings_folder)]
        shipped = [name for name in data.shipped_names() if name not in lab_data] if data else []
        return [*lab_data, *lab_modules, *shipped, *self.names()]

    def resolved_name(self, name: str, settings_folder: Path | None) -> str:
        """Return ``name`` as another process finds it without the settings folder (lab: a path)."""
        text = name.strip()
        folder = self.lab.path(settings_folder)
        suffixes = (".py", *((self.data_files.suffix,) if self.data_files else ()))
        if folder is None or "/" in text or "\\" in text or text.lower().endswith(suffixes):
            return name
        if self.data_files is not None and ":" not in text:
            data_file = folder / f"{text}{self.data_files.suffix}"
            if data_file.is_file():
                return str(data_file.resolve())
        module, _, attr = text.partition(":")
        path = folder / f"{module}.py"
        if "." not in module and path.is_file():
            # Absolute, a link kept: the other process records the lab's link too.
            found = os.path.abspath(path)
            return f"{found}:{attr}" if attr else found
        return name

    # -- inside --------------------------------------------------------------------------------

    def _command_line_file(self, text: str, settings_folder: Path | None) -> T:
        """Return the plugin of ``PATH.py[:Class]`` (from the current, else the settings folder)."""
        cut = text.lower().rindex(".py") + len(".py")
        path, attr = Path(text[:cut]).expanduser(), text[cut:].removeprefix(":")
        if not path.is_absolute() and not path.is_file() and settings_folder is not None:
            path = Path(settings_folder) / path
        return self.get_file(path, attr)

    def _by_class_name_of(self, text: str, quiet: bool = False) -> str | None:
        """Return the one registered ``module:Class`` whose class ``text`` names, else None."""
        if not self._by_class_name or ":" in text:
            return None
        matches = [name for name in self.names() if name.rpartition(":")[2] == text]
        if len(matches) > 1 and not quiet:
            raise UnknownPluginError(
                f"{text!r} names several {self.kind} classes: {', '.join(matches)}; "
                "give one of them"
            )
        return matches[0] if len(matches) == 1 else None

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
            with import_watch(where):
                module = importlib.import_module(module_name.strip())
        except Exception as error:  # a plugin's import error of any kind is reported, not raised
            raise PluginLoadError(f"{where} cannot be loaded: {error_text(error)}") from error
        obj = _attribute(module, attr.strip(), where) if attr else module
        self._loaded[key] = self.picker.accepted(obj, where, key)
        return self._loaded[key]

    def refuse_code(self, name: str, settings_folder: Path | None = None) -> None:
        """Raise :class:`PluginPathError` for a name that is code (a path, an import path)."""
        text = str(name).strip()
        python_file = _PYTHON_FILE.match(text)
        if python_file is not None:
            stem = Path(python_file["path"]).stem
            attr = python_file["attr"]
            lab = self.lab.path(settings_folder) or Path(self.lab.name or "the lab's folder")
            write = f"{stem}:{attr}" if attr else stem
            raise PluginPathError(
                f"{self.kind} {text!r} names a Python file, and settings are data: a settings "
                f"file or an experiment config never names code. Put the file in the lab's "
                f"folder {lab / (stem + '.py')} beside the settings file and write {write}"
            )
        module_attr = _MODULE_ATTR.match(text)
        data = self.data_files
        if (
            module_attr is not None
            and "." in module_attr["module"]
            and self._normalise(text) not in self.sources()
            and not (data is not None and data.names_path(text))
        ):
            raise PluginPathError(
                f"{self.kind} {text!r} is a module's import path, and settings are data: a "
                "settings file or an experiment config names plugins only (a registered name, "
                "a module of the lab's folder by its file's name, an installed package's entry "
                "point), never a module to import. "
                + self.unknown_message(text, settings_folder).partition("; ")[2]
            )

    def _registered(self, text: str, settings_folder: Path | None) -> PluginSource | None:
        """Return the registered plugin ``text`` names (None: none); refuse a lab module's name."""
        # A lab module named like it would be silently ignored; ``NAME:Class`` means the lab's.
        key = self._normalise(text)
        source = self.sources().get(key)
        path = None if source is None else self.lab.module_file(text, settings_folder)
        if source is None or path is None:
            return source
        stem = path.stem
        raise PluginClashError(
            f"{path} is named like the {source.origin} {self.kind} {key!r}, and both cannot "
            f"be meant by {text!r}. Rename the file (e.g. to lab_{stem}.py) and write "
            f"lab_{stem} where the lab's one is meant; {key!r} then stays the "
            f"{source.origin} one"
        )

    def get_recorded(self, name: str, file: Path | str, sha256: str) -> T:
        """Return the plugin ``name`` from the lab's file a session recorded, if unchanged.

        Raises :class:`PluginError` when the file is gone or changed, or does not define ``name``.
        """
        attr = name.partition(":")[2].strip() if ":" in name else ""
        return self.picker.from_file(Path(file), attr, name, sha256=sha256)


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


def _abstract_classes(module: ModuleType) -> str:
    """Say which classes defined in ``module`` are abstract, and what each lacks ("": none)."""
    said = [
        f"class {name} lacks {', '.join(sorted(cls.__abstractmethods__))}"
        for name, cls in vars(module).items()
        if inspect.isclass(cls)
        and cls.__module__ == module.__name__
        and inspect.isabstract(cls)
        and not name.startswith("_")
    ]
    return "; ".join(said)


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
