"""One registry for every kind of plugin: built-ins by name, entry points, the lab's own folder.

DeepLabStream has seven kinds of plugin, each with one small interface (docs/architecture.md,
"Plugins"): cameras, stimulation devices, inference backends, model formats, triggers,
experiments and outputs. Each kind has one :class:`Registry`, made where the kind's interface
lives (``settings/plugin_kinds.py`` names all seven), and every registry works the same way:

* **built-ins by name**: ``name -> "module:Class"`` strings, imported on first use, so a
  missing optional library (pypylon, nidaqmx, torch) matters only to the labs that use it;
* **entry points**: an installed distribution adds one under the kind's group
  (``deeplabstream.cameras``, ``deeplabstream.devices``, ``deeplabstream.backends``,
  ``deeplabstream.model_formats``, ``deeplabstream.triggers``, ``deeplabstream.experiments``,
  ``deeplabstream.outputs``),
  ``name = "module:Class"`` in its ``pyproject.toml``, without a fork of this project;
* **the lab's folders**: one folder per kind beside the settings file (``cameras/``,
  ``devices/``, ``triggers/``, ``outputs/``, ``backends/``, ``formats/``, ``experiments/``); the
  module ``devices/NAME.py`` is the plugin ``NAME`` (or ``NAME:Class`` when it defines several).

Python code is imported only from this package, from installed entry points and from the lab's
folders: settings are data, and a name in a settings file or an experiment config never reaches
an arbitrary module. A ``.py`` path or a module's import path (``package.module:Class``) there
is refused (:class:`PluginPathError`), saying which lab folder the file belongs in; only the
command line may name a file (:meth:`Registry.get_file`, ``--experiment path.py``,
:meth:`Registry.find`). A lab module named like a registered plugin (``cameras/synthetic.py``)
is refused when that name is used (:class:`PluginClashError`), saying what to rename. A kind may
also have plugins written as data (:class:`DataFiles`: an experiment's ``.ini`` configs),
found by their stem in the lab's folder before the package's own. An unknown name is one
:class:`UnknownPluginError` for every kind, worded ``unknown camera 'x'; known: a, b, c; in
/lab/cameras: d, e`` followed by what to do. A plugin that fails to import is reported by its
name, its distribution (or file) and the error (:class:`PluginLoadError`,
:class:`PluginFailure`), and never stops the others from being listed
(:meth:`Registry.load_all`).

**Every process finds the same lab folders.** The folder of the settings file is the process's
*settings folder* (:func:`use_settings_folder`; loading a settings file sets it). A process that
another one starts (the inference worker, a capture process; spawned on every platform) is given
it by name and sets it first thing, so it imports a lab module from the same file, under the same
module name (:func:`import_file`). Objects of a lab module's classes never cross between
processes: their plugin's name and their field values do, and the other side rebuilds them
(:func:`values_if_from_file`).

**Importing a lab's file** (:func:`import_file`): only a regular file is opened (a FIFO, a device
or a socket is refused unopened); its bytes are read once, hashed (SHA-256) and compiled, so what
ran is what the record says (:func:`imported_lab_files`, ``session.json`` -> ``plugin_files``) and
:func:`import_recorded_file` can import the same file again later only while its hash matches.
The import runs under a watch: a module still importing after :data:`SLOW_IMPORT_S` is named in a
warning, and in a command's main process Ctrl-C or SIGTERM abandons it
(:class:`ImportStopped`). A file or folder other users may write to is said
(:func:`plugin_notices`), and refused in a process running as root. Its module is named
``lab.<folder>.<stem>`` (``lab.devices.tcp_stim``), which its logger takes.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import re
import signal
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Generic, TypeVar

from deeplabstream.core.errors import DeepLabStreamError

T = TypeVar("T")

log = logging.getLogger(__name__)

#: How an origin names a file of the lab's (``lab folder: /lab/devices/x.py``).
LAB_ORIGIN = "lab folder: "

PACKAGE = "deeplabstream"
"""This project's package: code of it is ``built in``."""

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


class PluginPathError(UnknownPluginError):
    """A name that is a path to Python code or a module's import path: settings never name code.

    An :class:`UnknownPluginError` (and so a ``KeyError``), so every caller that reports an
    unknown name reports this one the same way, with its file, section and key.
    """


class PluginClashError(PluginError):
    """A lab module named like a registered plugin: which one is meant cannot be told.

    ``cameras/synthetic.py`` beside a settings file naming ``SOURCE = synthetic``: the message
    names the file and says what to rename it to.
    """


# -- the process's settings folder ------------------------------------------------------------

_settings_folder: Path | None = None
# A folder used inside a ``with using_settings_folder(...)`` block, by this thread only (the
# window checks an edited settings file on a thread of its own).
_this_thread = threading.local()


def use_settings_folder(settings_folder: Path | str | None) -> None:
    """Make ``settings_folder`` (the settings file's folder) where this process finds lab plugins.

    Every registry looks for the lab's modules in its folder there (``devices/`` ...) when a
    lookup names no folder of its own. Loading a settings file sets it; a process started by
    another one sets it from what it was given, before it loads any plugin. None: no lab folders.
    """
    global _settings_folder
    _settings_folder = None if settings_folder is None else Path(settings_folder).resolve()


def settings_folder_in_use() -> Path | None:
    """Return this thread's folder of :func:`using_settings_folder`, else the process's."""
    scoped: list[Path | None] = getattr(_this_thread, "folders", [])
    return scoped[-1] if scoped else _settings_folder


@contextmanager
def using_settings_folder(settings_folder: Path | str | None) -> Iterator[None]:
    """Use ``settings_folder`` for lab plugins inside the ``with`` block, in this thread only."""
    if not hasattr(_this_thread, "folders"):
        _this_thread.folders = []
    folder = None if settings_folder is None else Path(settings_folder).resolve()
    _this_thread.folders.append(folder)
    try:
        yield
    finally:
        _this_thread.folders.pop()


# -- only the code a session recorded ----------------------------------------------------------

#: Set while only recorded code may run: a JSON object ``{file: sha256}``. An environment
#: variable, so that every process this one starts (a replay's inference worker) keeps the rule.
RECORDED_CODE_VARIABLE = "DEEPLABSTREAM_RECORDED_CODE"
_recorded_cache: tuple[str, dict[Path, str]] = ("", {})


def recorded_code() -> dict[Path, str] | None:
    """Return the lab files that may run (path -> SHA-256), or None when any lab file may.

    Set by :func:`only_recorded_code` (``deeplabstream-verify``): the lab's files a session
    recorded in ``session.json`` -> ``plugin_files``, and no other.
    """
    global _recorded_cache
    text = os.environ.get(RECORDED_CODE_VARIABLE)
    if text is None:
        return None
    if _recorded_cache[0] != text:
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        files = data if isinstance(data, dict) else {}
        _recorded_cache = (
            text,
            {Path(str(f)): str(d).strip().lower() for f, d in files.items() if f and d},
        )
    return _recorded_cache[1]


@contextmanager
def only_recorded_code(files: Mapping[Path, str]) -> Iterator[None]:
    """Inside the block, a lab plugin is the file ``files`` names, checked by its SHA-256.

    For whoever repeats what a session did (``deeplabstream-verify``): a lab module is found
    by its folder and stem among ``files`` (``devices/flaky.py`` is the device ``flaky``),
    never in a folder by name, and imported only while its bytes have the digest recorded
    (:func:`import_recorded_file`). Any other lab file is refused unopened. The processes
    started meanwhile keep the rule (:data:`RECORDED_CODE_VARIABLE`).
    """
    previous = os.environ.get(RECORDED_CODE_VARIABLE)
    os.environ[RECORDED_CODE_VARIABLE] = json.dumps(
        {str(Path(path).resolve()): digest for path, digest in files.items()}
    )
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RECORDED_CODE_VARIABLE, None)
        else:
            os.environ[RECORDED_CODE_VARIABLE] = previous


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
    file: Path | None = None  # a module of the lab's folder: its file


@dataclass(frozen=True)
class DataFiles:
    """A kind's plugins written as data, not code: files named by their stem (``.ini`` configs).

    A name finds the lab's file (in the kind's lab folder) before the one shipped in the
    package; both are listed as known names and in the unknown-name message.

    Attributes
    ----------
    suffix
        The files' suffix, lower case (``.ini``).
    shipped
        The package's folder of them (examples a lab copies into its own folder).
    noun
        The files in words, for messages (``config``: ``experiment config file not found``).
    """

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
        """Return the file a name or path reads, or None (a plugin's name, or nothing).

        A name is a stem: the lab's file (in ``lab``) before the shipped one. A path is taken
        as it is, else by its file's name.
        """
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
        (``cameras``), or None for a kind without one.
    normalise
        Turns a written name into a registered one (``str.lower``: ``SOURCE = Basler`` is
        ``basler``). A lab module is found by its file's stem as written, else by the one stem
        that matches it ignoring case.
    find_in_module
        For a lab module (or a file named on the command line) named without ``:attribute``:
        returns the plugins it defines (``{name: object}``); the name must then pick one, or
        the module must define exactly one. None: the attribute must always be named.
    select
        For a registered target that holds several plugins (a module's ``KINDS`` tuple of
        trigger kinds): ``select(obj, name)`` returns the one registered as ``name``, or raises
        TypeError or ValueError. None: the target is the plugin itself.
    data_files
        The kind's plugins written as data (an experiment's configs), or None.
    by_class_name
        Whether a bare name also finds the one registered ``module:Class`` whose class it names
        (``AlternatingReward`` for ``examples:AlternatingReward``).
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
        self.lab_folder = lab_folder
        self._builtins = {
            name: PluginSource(name, target, "built in") for name, target in builtins.items()
        }
        self._check = check
        self._normalise = normalise
        self._find_in_module = find_in_module
        self._select = select
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
        """Return the name as the settings keep it: registered ones normalised, others as written.

        ``SOURCE = Basler`` is the registered ``basler``; a module of the lab's folder keeps the
        case of its file's name.
        """
        key = self._normalise(name)
        return key if key in self.sources() else name

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered or a module of the lab's folder, without importing."""
        if not isinstance(name, str):
            return False
        return self._normalise(name) in self.sources() or self._lab_file(name) is not None

    def __iter__(self) -> Iterator[str]:
        """Iterate over the registered names."""
        return iter(self.names())

    def __len__(self) -> int:
        """Return how many plugins are registered."""
        return len(self.sources())

    def origin(self, name: str, settings_folder: Path | None = None) -> str:
        """Return where the plugin ``name`` comes from, in words.

        ``built in``, ``distribution lab-cams 0.1``, or for a module of the lab's folder
        ``lab folder: /rig/devices/lab_led.py`` (``settings_folder`` None: the process's).
        """
        key = self._normalise(name)
        self._refuse_clash(str(name).strip(), settings_folder)
        if key in self._builtins:  # no entry point may take a built-in's name: none read
            return self._builtins[key].origin
        if key not in self.sources():
            path = self._lab_file(name, settings_folder)
            if path is not None:
                return f"{LAB_ORIGIN}{path.resolve()}"
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

    def lab_modules(self, settings_folder: Path | None = None) -> list[Path]:
        """Return the lab's modules of this kind beside the settings file, sorted by name.

        ``settings_folder`` None: the process's (:func:`use_settings_folder`).
        """
        recorded = recorded_code()
        if recorded is not None:  # only what a session recorded, wherever it was
            return sorted(
                path
                for path in recorded
                if path.parent.name == self.lab_folder and path.suffix == ".py"
            )
        folder = self.lab_path(settings_folder)
        if folder is None or not folder.is_dir():
            return []
        return sorted(path for path in folder.glob("*.py") if not path.name.startswith("_"))

    def lab_path(self, settings_folder: Path | None = None) -> Path | None:
        """Return the lab's folder of this kind beside the settings file (None: it has none).

        ``settings_folder`` None: the process's (:func:`use_settings_folder`).
        """
        folder = settings_folder if settings_folder is not None else settings_folder_in_use()
        if self.lab_folder is None or folder is None:
            return None
        return Path(folder) / self.lab_folder

    # -- getting one ---------------------------------------------------------------------------

    def get(self, name: str, settings_folder: Path | None = None) -> T:
        """Return the plugin ``name``, importing its module on first use.

        ``name`` is tried, in order, as a registered name (built-in or entry point) and as a
        module of the lab's folder beside the settings file (``NAME`` or ``NAME:Class``;
        ``settings_folder`` None: the process's). It comes from a settings file or an
        experiment config, so it never names a file or a module to import.

        Raises
        ------
        PluginPathError
            ``name`` is a path (``x.py``, ``lab/x.py:Class``) or an import path
            (``package.module:Class``): the message says to put the file in the lab's folder
            and write its name.
        PluginClashError
            ``name`` is registered and the lab's folder has a module of that name too.
        UnknownPluginError
            Nothing of that name: the message lists the known names and says what to do.
        PluginLoadError
            It exists but cannot be imported, or is not a plugin of this kind.
        """
        return self._get(str(name).strip(), settings_folder, with_data_files=False)

    def _get(self, text: str, settings_folder: Path | None, *, with_data_files: bool) -> T:
        """:meth:`get`; an unknown name's message lists the data files ``with_data_files``."""
        key = self._normalise(text)
        self._refuse_clash(text, settings_folder)
        if key in self.sources():
            return self._load_registered(key)
        self._refuse_path(text, settings_folder)
        module_attr = _MODULE_ATTR.match(text)
        if module_attr:
            path = self._lab_file(module_attr["module"], settings_folder)
            if path is not None:
                return self._from_file(path, module_attr["attr"] or "", text)
        by_class = self._by_class_name_of(text)
        if by_class is not None:
            return self._load_registered(by_class)
        raise UnknownPluginError(self.unknown_message(text, settings_folder, with_data_files))

    def require(self, name: str, settings_folder: Path | None = None) -> None:
        """Check, without importing anything, that a settings file may name ``name``.

        Raises
        ------
        PluginPathError
            ``name`` is a path to a Python file or a module's import path.
        PluginClashError
            ``name`` is registered and the lab's folder has a module of that name too.
        UnknownPluginError
            ``name`` is neither registered nor a module of the lab's folder.
        """
        self._refuse_clash(str(name).strip(), settings_folder)
        self._refuse_path(str(name).strip(), settings_folder)
        if (
            self._normalise(name) not in self.sources()
            and self._lab_file(name, settings_folder) is None
        ):
            raise UnknownPluginError(self.unknown_message(name, settings_folder))

    def get_file(self, path: Path | str, attr: str = "") -> T:
        """Return the plugin in the Python file ``path`` that a person named on the command line.

        Only the command line names files (``--experiment my_protocol.py``): a settings file or
        an experiment config names plugins (:meth:`get`). ``attr`` picks one class of several.
        """
        return self._from_file(_note_link(Path(path).expanduser()), attr, f"{Path(path)}")

    def unknown_message(
        self, name: str, settings_folder: Path | None = None, with_data_files: bool = False
    ) -> str:
        """Return the one wording of an unknown name: what is known, and what to do.

        ``with_data_files``: the data files (:class:`DataFiles`, shipped and in the lab's
        folder) are listed first, as :meth:`find`, which reads them, says.
        """
        lab = self.lab_path(settings_folder)
        data = self.data_files if with_data_files else None
        shipped, in_lab = (data.shipped_names(), data.lab_names(lab)) if data else ([], [])
        known = [*shipped, *sorted(self.names())]
        lab_names = [*in_lab, *(path.stem for path in self.lab_modules(settings_folder))]
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
        """Import every registered plugin and the lab's named ones; return what loaded and not.

        In order: the registered ones (built-ins in their order, then entry points), then the
        modules of the lab's folder beside the settings file (``settings_folder`` None: the
        process's) that ``lab_names`` names (``stem``, or ``stem:Class`` for one plugin of a
        module), in that order, each by its stem (``stem:Class`` for each plugin of a module
        that defines several). No other file of the lab's folder is opened: only the plugins a
        session names run. A plugin that fails is reported by name, origin and error, never
        stopping the others.
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
            path = self._lab_file(module, settings_folder)
            origin = str(path) if path is not None else str(self.lab_path(settings_folder))
            try:
                if path is None:
                    raise UnknownPluginError(self.unknown_message(name, settings_folder))
                found = (
                    {name.strip(): self._from_file(path, attr.strip(), name.strip())}
                    if attr
                    else self._all_in_file(path)
                )
                loaded.update(found)
            except PluginError as error:
                failures.append(PluginFailure(self.kind, name, origin, _cause(error)))
        return loaded, failures

    # -- names and paths of the command line, data files ----------------------------------------

    def find(self, name_or_path: str | Path, settings_folder: Path | None = None) -> T | Path:
        """Return what a name or a path of the command line names: a data file, else the plugin.

        Tried in order: a data file (:meth:`DataFiles.file_of`: a name or a path); a Python file
        (``PATH.py`` or ``PATH.py:Class``, relative to the current folder, else to the settings
        folder; only the command line names one, the settings refuse it); a name (:meth:`get`).

        Raises
        ------
        UnknownPluginError
            A data file's path that is not a file, a path that is neither kind of file, an
            unknown name (the message lists what exists).
        PluginLoadError
            A plugin that cannot be imported, or is not of this kind.
        """
        data = self.data_files
        data_file = data.file_of(name_or_path, self.lab_path(settings_folder)) if data else None
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
        """Return where :meth:`get` would import ``name`` from, without importing; None: unknown.

        A module of the lab's folder has its :attr:`PluginSource.file`.
        """
        text = str(name).strip()
        key = self._normalise(text)
        self._refuse_clash(text, settings_folder)
        if key in self.sources():
            return self.sources()[key]
        path = self._lab_file(text, settings_folder)
        if path is not None:
            return PluginSource(text, str(path), f"{LAB_ORIGIN}{path.resolve()}", path)
        by_class = self._by_class_name_of(text, quiet=True)
        return None if by_class is None else self.sources()[by_class]

    def available(self, settings_folder: Path | None = None) -> list[str]:
        """Return every name :meth:`find` accepts without a path.

        The lab's data files and modules first (``settings_folder`` None: the process's), then
        the shipped data files the lab's do not hide, then the registered names.
        """
        data = self.data_files
        lab_data = data.lab_names(self.lab_path(settings_folder)) if data else []
        lab_modules = [path.stem for path in self.lab_modules(settings_folder)]
        shipped = [name for name in data.shipped_names() if name not in lab_data] if data else []
        return [*lab_data, *lab_modules, *shipped, *self.names()]

    def resolved_name(self, name: str, settings_folder: Path | None) -> str:
        """Return ``name`` as another process finds it without the settings file's folder.

        A data file or module of the lab's folder becomes its path (``/lab/experiments/x.ini``,
        ``/lab/experiments/m.py:Class``); any other name is returned unchanged.
        """
        text = name.strip()
        folder = self.lab_path(settings_folder)
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
        """Return the plugin of ``PATH.py`` or ``PATH.py:Class``, named on the command line.

        A relative path is taken from the current folder, else from the settings file's folder.
        """
        cut = text.lower().rindex(".py") + len(".py")
        path, attr = Path(text[:cut]).expanduser(), text[cut:].removeprefix(":")
        if not path.is_absolute() and not path.is_file() and settings_folder is not None:
            path = Path(settings_folder) / path
        return self.get_file(path, attr)

    def _by_class_name_of(self, text: str, quiet: bool = False) -> str | None:
        """Return the one registered ``module:Class`` whose class ``text`` names, else None.

        Only for a kind made ``by_class_name``. Several: raises :class:`UnknownPluginError`
        saying which (``quiet``: None).
        """
        if not self._by_class_name or ":" in text:
            return None
        matches = [name for name in self.names() if name.rpartition(":")[2] == text]
        if len(matches) > 1 and not quiet:
            raise UnknownPluginError(
                f"{text!r} names several {self.kind} classes: {', '.join(matches)}; "
                "give one of them"
            )
        return matches[0] if len(matches) == 1 else None

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
            with import_watch(where):
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

    def _lab_file(self, module: str, settings_folder: Path | None = None) -> Path | None:
        """Return the lab's module file ``module`` (``NAME`` or ``NAME:Class``), or None.

        The stem as written, else the one stem equal to it ignoring case (a section name the
        settings lower-cased, ``[Output MyRows]``).
        """
        stem = module.partition(":")[0].strip()
        if not stem or not stem.isidentifier():
            return None
        modules = self.lab_modules(settings_folder)
        exact = [path for path in modules if path.stem == stem]
        by_case = [path for path in modules if path.stem.lower() == stem.lower()]
        found = exact or by_case
        if len(found) != 1:
            return None
        _note_link(found[0])
        return found[0]

    def refuse_code(self, name: str, settings_folder: Path | None = None) -> None:
        """Refuse a name that is no plugin's name but code to import; nothing is imported.

        For names checked as text where the settings are read (``[Experiment] NAME``): a path
        to a Python file, or a module's import path (``package.module:Class``) that is not
        registered. Raises :class:`PluginPathError` saying what to write instead.
        """
        self._refuse_path(str(name).strip(), settings_folder)

    def _refuse_path(self, text: str, settings_folder: Path | None) -> None:
        """Refuse a path to Python code or a module's import path, saying what to write."""
        python_file = _PYTHON_FILE.match(text)
        if python_file is not None:
            stem = Path(python_file["path"]).stem
            attr = python_file["attr"]
            lab = self.lab_path(settings_folder) or Path(self.lab_folder or "the lab's folder")
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

    def _refuse_clash(self, text: str, settings_folder: Path | None) -> None:
        """Refuse a registered name that a module of the lab's folder also has.

        The lab's file would be ignored (the registered plugin is found first): the lab could
        not tell which one ran. Named ``NAME:Class``, a lab module is meant and is used.
        """
        key = self._normalise(text)
        source = self.sources().get(key)
        if source is None:
            return
        path = self._lab_file(text, settings_folder)
        if path is None:
            return
        stem = path.stem
        raise PluginClashError(
            f"{path} is named like the {source.origin} {self.kind} {key!r}, and both cannot "
            f"be meant by {text!r}. Rename the file (e.g. to lab_{stem}.py) and write "
            f"lab_{stem} where the lab's one is meant; {key!r} then stays the "
            f"{source.origin} one"
        )

    def get_recorded(self, name: str, file: Path | str, sha256: str) -> T:
        """Return the plugin ``name`` from the lab's file a session recorded, if unchanged.

        ``name`` as ``session.json`` -> ``plugin_files`` has it (``stem`` or ``stem:Class``),
        ``file`` and ``sha256`` its file and digest there. Only that file is imported
        (:func:`import_recorded_file`), never another of its folder, and only while its
        SHA-256 is the one recorded.

        Raises
        ------
        PluginError
            The file is gone or changed (the message names it and both digests), or it does
            not define ``name`` as a plugin of this kind.
        """
        attr = name.partition(":")[2].strip() if ":" in name else ""
        return self._from_file(Path(file), attr, name, sha256=sha256)

    def _from_file(self, path: Path, attr: str, text: str, sha256: str | None = None) -> T:
        """Import the lab's module or a named file (again when it changed) and pick the plugin.

        A kind that selects (a trigger kind) gets the chosen object renamed to how it was
        found: ``stem``, or ``stem:name`` for one of several. ``sha256``: only if the file's
        bytes still have that digest (:func:`import_recorded_file`).
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
            "Class" if self._select is None else "name"
        )
        if self._find_in_module is None:
            if not attr:
                raise PluginLoadError(f"{where}: name the class as {named_as}")
            return self._checked(_attribute(module, attr, where), where)
        candidates = dict(self._find_in_module(module))
        listed = ", ".join(candidates) or "none"
        by_case = [name for name in candidates if name.lower() == attr.lower()]
        if attr and attr not in candidates and len(by_case) == 1:  # a name lower-cased on the way
            attr = by_case[0]
        # What a module holds: classes (a camera class), or the kind's objects (trigger kinds).
        one = self.kind if self._select is not None else f"{self.kind} class"
        several = f"{self.kind}s" if self._select is not None else f"{self.kind} classes"
        if attr and attr not in candidates:
            raise PluginLoadError(f"{where} has no {one} {attr!r}; it has: {listed}")
        if not candidates:  # a module that is not a plugin of this kind (an empty one...)
            raise PluginLoadError(f"{where} defines no {one}: {self.advice}")
        if not attr and len(candidates) != 1:
            raise PluginLoadError(
                f"{where} defines {len(candidates)} {several} ({listed}); name one as {named_as}"
            )
        chosen = candidates[attr] if attr else next(iter(candidates.values()))
        if self._select is not None:
            try:
                chosen = self._select(chosen, f"{path.stem}:{attr}" if attr else path.stem)
            except (TypeError, ValueError) as error:
                raise PluginLoadError(f"{where} cannot be loaded: {error}") from None
        return self._checked(chosen, where)

    def _all_in_file(self, path: Path) -> dict[str, T]:
        """Return every plugin of the lab module ``path``: by its stem, or ``stem:name`` each."""
        where = f"{self.kind} {path.stem!r} ({path})"
        if self._find_in_module is None:
            raise PluginLoadError(f"{where}: name the class as {path.stem}:Class")
        candidates = dict(self._find_in_module(import_file(path, where)))
        if len(candidates) == 1:
            return {path.stem: self._from_file(path, "", path.stem)}
        return {
            f"{path.stem}:{name}": self._from_file(path, name, f"{path.stem}:{name}")
            for name in candidates
        }

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


# -- importing a lab's file --------------------------------------------------------------------


@dataclass(frozen=True)
class LabFile:
    """A lab's Python file as this process imported it.

    Attributes
    ----------
    path
        The file (absolute, symbolic links resolved).
    sha256
        The SHA-256 of the bytes that were compiled and ran (hexadecimal).
    module
        Its module's name (``lab.devices.tcp_stim``), which its logger takes.
    """

    path: Path
    sha256: str
    module: str


@dataclass
class _Imported:
    stamp: tuple[int, int, int]  # the file's (inode, size, mtime) when read
    module: ModuleType
    record: LabFile


#: The lab's files imported in this process, by path: the same module while the file is unchanged.
_FILE_MODULES: dict[Path, _Imported] = {}
#: A lab's file reached through a symbolic link (the real file -> the path the folder gives).
_LINKS: dict[Path, Path] = {}
#: Module name -> the lab's file it was made from (a name taken stays that file's).
_LAB_MODULE_NAMES: dict[str, Path] = {}
#: The readable names of the lab's modules: ``lab.<folder>.<stem>``.
LAB_MODULE_PREFIX = "lab."

#: A lab's module still importing after this long is named in a warning: a module that loops or
#: waits at import holds whatever imports it (Ctrl-C stops it, in a command's main process).
SLOW_IMPORT_S = 5.0


class PluginStopped(BaseException):
    """Ctrl-C or SIGTERM came while a plugin's code held the start: that code was abandoned.

    Its import (:class:`ImportStopped`), or a call the start waits on (a lab model format's
    ``recognises``). A ``BaseException``: neither the plugin's own ``except Exception`` nor a
    caller's turns it into a plugin's failure, and the command ends on it (exit 128 +
    :attr:`signum`).
    """

    def __init__(self, doing: str, signum: int, elapsed_s: float, into: str = "it") -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        super().__init__(
            f"{name} received while {doing} ({elapsed_s:.1f} s into {into}); it was abandoned"
        )
        self.signum = signum


class ImportStopped(PluginStopped):
    """Ctrl-C or SIGTERM came while a plugin's module was imported: the import was abandoned."""

    def __init__(self, what: str, signum: int, elapsed_s: float) -> None:
        super().__init__(f"importing {what}", signum, elapsed_s, "its import")
        self.args = (str(self).replace("; it was abandoned", "; the import was abandoned"),)


def imported_from_file(module_name: str) -> bool:
    """Whether ``module_name`` is a module :func:`import_file` made (unknown to other processes).

    Objects of its classes cannot be unpickled in another process, which imports modules by
    name: whoever sends them there sends their values and rebuilds them on the other side.
    """
    return module_name in _LAB_MODULE_NAMES


def values_if_from_file(options: Any) -> dict[str, Any] | None:
    """Return the field values of a dataclass whose class a lab module defines, else None.

    A plugin's settings (a lab device's, output's or camera's ``settings_class`` instance)
    cannot be unpickled in another process as an object: whoever sends them sends these values
    with the plugin's name and the settings folder, and the other side rebuilds them with the
    plugin's own settings class, found there by name.
    """
    if not (is_dataclass(options) and imported_from_file(type(options).__module__)):
        return None
    return {field.name: getattr(options, field.name) for field in fields(options)}


def import_file(path: Path, where: str = "") -> ModuleType:
    """Import the Python file ``path`` as a module of its own; again only when it has changed.

    Only a regular file is opened (a FIFO, device or socket would hang or act when opened: it
    is refused unopened). Its bytes are read once, hashed and compiled (:func:`imported_lab_files`
    records what ran). The module is named ``lab.<folder>.<stem>`` (the folder it is in: a
    kind's lab folder, ``lab.devices.tcp_stim``), with a suffix only when another file of
    this process took that name; its classes stay the same objects while the file is unchanged,
    and a lab that edits the file gets the new code. The import runs under a watch
    (:data:`SLOW_IMPORT_S`, :class:`ImportStopped`).

    Raises
    ------
    PluginLoadError
        When the file is no regular file, cannot be read, is writable by other users in a
        process running as root, or fails to import; the message names it and says why.
    ImportStopped
        Ctrl-C or SIGTERM came during the import (a command's main process).
    """
    path = _note_link(path)
    recorded = recorded_code()
    if recorded is not None:  # only the files a session recorded, unchanged
        if path not in recorded:
            raise PluginError(
                f"{where or path}: {path} is not among the files the session recorded "
                "(session.json -> plugin_files): only the code that ran is run again; it was "
                "not imported"
            )
        return import_recorded_file(path, recorded[path], where)
    stamp = _stamp_of(path, where)
    cached = _FILE_MODULES.get(path)
    if cached is not None and cached.stamp == stamp:
        return cached.module
    source = _read_source(path, where)
    return _module_from(path, source, where)


def import_recorded_file(path: Path | str, sha256: str, where: str = "") -> ModuleType:
    """Import the lab's file ``path`` only if its bytes still have the SHA-256 ``sha256``.

    For whoever repeats what a session did (``deeplabstream-verify``): the file a session
    recorded (``session.json`` -> ``plugin_files``) is imported from where it was, alone (no
    other file of its folder is read), and only unchanged. The bytes hashed are the bytes run.

    Raises
    ------
    PluginError
        The file is gone, is no regular file, or its content changed since (both digests
        given); nothing of it was run.
    PluginLoadError
        As :func:`import_file`, when the unchanged file fails to import.
    """
    path = Path(path).expanduser().resolve()
    what = where or str(path)
    if not path.exists():
        raise PluginError(f"{what}: the recorded file {path} is gone; nothing was imported")
    stamp = _stamp_of(path, where)
    cached = _FILE_MODULES.get(path)
    if cached is not None and cached.stamp == stamp and cached.record.sha256 == sha256:
        return cached.module
    source = _read_source(path, where)
    digest = hashlib.sha256(source).hexdigest()
    if digest != sha256.strip().lower():
        raise PluginError(
            f"{what}: {path} has changed since it was recorded (SHA-256 now {digest}, recorded "
            f"{sha256}); it was not imported. Put back the file the session ran, or use one "
            "whose record names this file"
        )
    return _module_from(path, source, where)


def _note_link(path: Path) -> Path:
    """Return the real file of ``path``; remember the path when it is a symbolic link to it.

    A lab may keep its plugins in a repository of shared code and link them into the rig's
    folder: they run, and ``plugin_files`` records the real file and the link.
    """
    named = Path(os.path.abspath(path))
    real = named.resolve()
    if named != real:
        _LINKS[real] = named
    return real


def imported_lab_files() -> list[LabFile]:
    """Return every lab file this process imported, as it was last imported, by path."""
    return [_FILE_MODULES[path].record for path in sorted(_FILE_MODULES)]


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a regular file's bytes (a data file's, a lab module's)."""
    return hashlib.sha256(_read_source(Path(path).resolve(), "")).hexdigest()


def _stamp_of(path: Path, where: str) -> tuple[int, int, int]:
    """Return what tells a file's change cheaply (inode, size, mtime); refuse a special file."""
    what = where or str(path)
    try:
        status = path.stat()
    except OSError as error:
        raise PluginLoadError(f"{what}: {path} cannot be read: {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        raise PluginLoadError(f"{what}: {path} {_not_regular(status.st_mode)}")
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def _not_regular(mode: int) -> str:
    """Say what a file that is not a regular file is, and that it is never opened as code."""
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    kind = next((text for test, text in kinds if test(mode)), "not a regular file")
    return f"is {kind}, not a Python file: it is never opened as code. Replace it with the module"


def _read_source(path: Path, where: str) -> bytes:
    """Return the bytes of the regular file ``path``, opened so that nothing else can block.

    Opened without waiting (``O_NONBLOCK`` where it exists: a FIFO put in the file's place since
    its check opens at once) and checked again on the open file before it is read.
    """
    what = where or str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise PluginLoadError(f"{what}: {path} cannot be read: {error.strerror or error}") from None
    with os.fdopen(descriptor, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise PluginLoadError(f"{what}: {path} {_not_regular(mode)}")
        return file.read()


def _module_from(path: Path, source: bytes, where: str) -> ModuleType:
    """Run ``source`` (the bytes of the file ``path``) as a new module; record what ran."""
    what = where or str(path)
    _check_who_may_write(path, what)
    digest = hashlib.sha256(source).hexdigest()
    module_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:  # pragma: no cover - a .py path always has a spec
        raise PluginLoadError(f"{what}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
        with import_watch(what):
            exec(code, module.__dict__)  # the lab's own module, named by the lab
    except Exception as error:  # the lab's code: any error is reported with the file's name
        _restore_module(module_name, previous)
        raise PluginLoadError(f"{what} cannot be loaded: {error_text(error)}") from error
    except BaseException:  # a stop (ImportStopped, KeyboardInterrupt): nothing kept of it
        _restore_module(module_name, previous)
        raise
    _LAB_MODULE_NAMES[module_name] = path
    record = LabFile(path, digest, module_name)
    _FILE_MODULES[path] = _Imported(_stamp_of(path, where), module, record)
    return module


def _restore_module(name: str, previous: ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def _module_name(path: Path) -> str:
    """Return ``lab.<folder>.<stem>`` for ``path``; with a short hash when another file has it.

    The folder is the one the file is in (``devices``), so its logger reads
    ``lab.devices.tcp_stim``. A file imported before keeps the name it had.
    """
    for name, owner in _LAB_MODULE_NAMES.items():
        if owner == path:
            return name
    readable = LAB_MODULE_PREFIX + ".".join(
        re.sub(r"\W", "_", part) or "_" for part in (path.parent.name, path.stem)
    )
    if readable not in _LAB_MODULE_NAMES and readable not in sys.modules:
        return readable
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{readable}_{digest}"


# -- who may change a lab's code ---------------------------------------------------------------

_NOTICES: list[str] = []


def plugin_notices() -> list[str]:
    """Return what this process's plugins gave a lab to read, once each, in order.

    A lab file or folder others may write to (:func:`import_file`), a plugin written for an
    interface that changed (:func:`notice`): a session says them in the console and in
    ``session.json`` -> ``warnings``.
    """
    return list(_NOTICES)


def notice(text: str) -> None:
    """Keep ``text`` about a plugin, once, for whoever says it (:func:`plugin_notices`).

    A session says them once in the console and in ``session.json`` (its start warnings); a
    command without a session prints them itself. Logged here at debug level only, so that the
    console does not hear each twice.
    """
    if text not in _NOTICES:
        _NOTICES.append(text)
        log.debug("plugin notice: %s", text)


def deprecated(text: str, *, removed_in: str, stacklevel: int = 2) -> None:
    """Say that a plugin uses an interface that changed: once, in the console and the session.

    ``text`` says what the plugin does and what to write instead; the release that removes the
    old form (``removed_in``, as CHANGELOG.md lists it under "Deprecated") is added to it.
    Python's default filter hides a ``DeprecationWarning`` outside ``__main__``, so a lab would
    never read it: it is a :func:`notice` too (``session.json`` -> ``warnings``), and still a
    ``DeprecationWarning`` for tools that look for one (``stacklevel`` as for
    :func:`warnings.warn`, from the caller).
    """
    text = f"{text}. It works until release {removed_in}, which removes it (CHANGELOG.md)"
    notice(text)
    warnings.warn(text, DeprecationWarning, stacklevel=stacklevel + 1)


def _running_as_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def writers_problem(path: Path, as_root: bool) -> tuple[str, bool] | None:
    """Return what to say of a lab file users other than its owner and root may change.

    ``(text, refused)``, or None when nothing is to be said. POSIX permissions only: a file,
    or a folder it is in (up to the root), that every user may write to (a folder with the
    sticky bit, such as /tmp, lets them add files but not replace this one) lets anyone on the
    machine run code in this process: in a process running as root (``as_root``) that is
    refused, otherwise said. A file of another user imported by root is said too. Windows
    keeps its permissions in access lists, which are not read here (None).
    """
    if os.name == "nt":
        return None
    writable = _writable_by_everyone(path)
    if writable is not None:
        fix = f"chmod o-w {writable}"
        if as_root:
            return (
                f"refused: {writable} may be written by every user of this machine, and this "
                f"process runs as root: anyone could run code as root through {path.name}. "
                f"Run `{fix}`, or run as a normal user",
                True,
            )
        return (
            f"{path}: {writable} may be written by every user of this machine: anyone can run "
            f"code in this program through it. Run `{fix}`",
            False,
        )
    owner = path.stat().st_uid
    if as_root and owner != 0:
        return (
            f"{path} belongs to user id {owner} and is run by root: that user can run code as "
            "root through it. Keep root's plugins in folders only root can write",
            False,
        )
    return None


def _check_who_may_write(path: Path, what: str) -> None:
    """Refuse or say a lab file others may change (:func:`writers_problem`)."""
    problem = writers_problem(path, _running_as_root())
    if problem is None:
        return
    text, refused = problem
    if refused:
        raise PluginLoadError(f"{what}: {text}")
    notice(text)


def _writable_by_everyone(path: Path) -> Path | None:
    """Return the first of ``path`` and its folders that every user may write to, or None."""
    for place in (path, *path.parents):
        try:
            mode = place.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IWOTH:
            continue
        if place != path and mode & stat.S_ISVTX:  # sticky: others cannot replace what is here
            continue
        return place
    return None


# -- a watch over an import ------------------------------------------------------------------


@contextmanager
def import_watch(what: str) -> Iterator[None]:
    """Watch an import of a plugin's module: name it when slow, and let a stop abandon it.

    After :data:`SLOW_IMPORT_S` a warning names ``what``. In the main thread of a command that
    asked for it (:func:`abandon_imports_on_stop`), Ctrl-C and SIGTERM, whose handlers only note
    a stop there, also raise :class:`ImportStopped` inside the import: a module that loops or
    waits at import never holds the command past the stop. (A child process leaves both to its
    parent, which ends it.) The handlers are put back when the import ends.
    """
    slow = (
        f"still importing {what} after {SLOW_IMPORT_S:.0f} s: a module that never finishes "
        "importing holds the start (Ctrl-C stops it)"
    )
    with _watched(slow, lambda signum, took: ImportStopped(what, signum, took)):
        yield


@contextmanager
def plugin_call_watch(what: str, call: str) -> Iterator[None]:
    """Watch a call of a plugin's code the start waits on, as :func:`import_watch` an import.

    ``what`` names the plugin and its file (``model format 'x' (/rig/formats/x.py)``), ``call``
    the call (``recognises(/rig/mouse.onnx)``). After :data:`SLOW_IMPORT_S` a warning names
    both; a stop raises :class:`PluginStopped` inside the call where imports are abandoned.
    """
    slow = (
        f"still waiting for {what}: its {call} has not returned after {SLOW_IMPORT_S:.0f} s, "
        "and the start waits on it (Ctrl-C stops it)"
    )
    doing = f"{what} ran its {call}"
    with _watched(slow, lambda signum, took: PluginStopped(doing, signum, took)):
        yield


@contextmanager
def _watched(slow: str, stopped: Callable[[int, float], PluginStopped]) -> Iterator[None]:
    """Say ``slow`` after :data:`SLOW_IMPORT_S`; let a stop raise ``stopped(signum, seconds)``."""
    started = time.monotonic()
    finished = threading.Event()

    def warn_when_slow() -> None:
        # The stop signals are the main thread's to take: one this thread took would wake
        # nothing, and the main thread would sleep on inside the lab's code.
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        if not finished.wait(SLOW_IMPORT_S):
            log.warning("%s", slow)

    watcher = threading.Thread(target=warn_when_slow, name="plugin-watch", daemon=True)
    watcher.start()
    replaced = _stops_abandon(lambda signum: stopped(signum, time.monotonic() - started))
    try:
        yield
    finally:
        finished.set()
        for signum, handler in replaced.items():
            signal.signal(signum, handler)


_abandon_on_stop = False


def abandon_imports_on_stop(enabled: bool = True) -> None:
    """Let Ctrl-C and SIGTERM abandon a plugin's import in this process (:func:`import_watch`).

    For a command whose handlers only note a stop (``app.stop_requests``), called once they are
    taken: the headless command and the replay. A stop then ends the command with
    :class:`ImportStopped`, which its entry reports (``core.optional.exit_with``).
    """
    global _abandon_on_stop
    _abandon_on_stop = enabled


def _stops_abandon(stopped: Callable[[int], PluginStopped]) -> dict[int, Any]:
    """Make Ctrl-C and SIGTERM raise ``stopped(signum)`` here; return the handlers they had."""
    if not _abandon_on_stop or threading.current_thread() is not threading.main_thread():
        return {}
    replaced: dict[int, Any] = {}
    raised: list[int] = []  # once: a second signal while the first unwinds is only noted
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if not callable(handler) or handler is signal.default_int_handler:
            continue  # ignored, the default, or KeyboardInterrupt: nothing held back

        def abandon(number: int, frame: FrameType | None, noted: Any = handler) -> None:
            noted(number, frame)  # the command notes its stop as it always does
            if not raised:
                raised.append(number)
                raise stopped(number)

        replaced[signum] = signal.signal(signum, abandon)
    return replaced


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


def plugin_files_entry(
    plugins: Mapping[str, Mapping[str, str]], reported: Mapping[str, str] | None = None
) -> list[dict[str, str | None]]:
    """Return the lab's files among ``plugins``' origins, with their SHA-256 (``plugin_files``).

    ``plugins`` is ``{kind: {name: origin}}`` (``session.json`` -> ``plugins``, an experiment
    run's ``plugins``); each name whose origin is ``lab folder: FILE`` gives ``{kind, name,
    file, sha256}`` (``file`` the real file; with ``link``, the path in the lab's folder, when
    that is a symbolic link to it). The digest is of the bytes that ran: as another process
    reported them (``reported``: path -> SHA-256), else as this process imported them, else the
    file's now (a data file, such as an experiment's config); None when it cannot be read.
    :func:`import_recorded_file` imports such a file again only while its digest matches.
    """
    ran = {str(record.path): record.sha256 for record in imported_lab_files()}
    entries: list[dict[str, str | None]] = []
    for kind, names in plugins.items():
        for name, origin in names.items():
            if not origin.startswith(LAB_ORIGIN):
                continue
            file = origin.removeprefix(LAB_ORIGIN)
            digest = (reported or {}).get(file) or ran.get(file)
            if digest is None:
                try:
                    digest = file_sha256(Path(file))
                except PluginError:
                    digest = None
            entry: dict[str, str | None] = {
                "kind": kind, "name": name, "file": file, "sha256": digest
            }  # fmt: skip
            link = _LINKS.get(Path(file))
            if link is not None:  # the lab's folder holds a link to it: both are recorded
                entry["link"] = str(link)
            entries.append(entry)
    return entries


def code_origin(obj: Any) -> str:
    """Return where a plugin's class (or function) comes from, worded as :meth:`Registry.origin`.

    ``built in`` (this package), ``lab folder: FILE`` (a module of a lab's folder, or a file
    named on the command line), ``distribution NAME VERSION`` (an installed package), else
    ``module NAME``.
    """
    module_name = getattr(obj, "__module__", None) or ""
    if imported_from_file(module_name):
        return f"{LAB_ORIGIN}{_LAB_MODULE_NAMES[module_name]}"
    top = module_name.split(".")[0]
    if top == PACKAGE:
        return "built in"
    distributions = importlib.metadata.packages_distributions().get(top, [])
    if distributions:
        name = distributions[0]
        return f"distribution {name} {importlib.metadata.version(name)}"
    return f"module {module_name}"
