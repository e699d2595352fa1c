"""Importing a lab's Python file: where the lab's folders are, which files may run, what ran.

docs/plugins.md.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from deeplabstream.core.digest import file_sha256
from deeplabstream.core.plugins.errors import PluginError, PluginLoadError, error_text
from deeplabstream.core.plugins.permissions import check_who_may_write
from deeplabstream.core.plugins.watchdog import import_watch
from deeplabstream.core.regular_files import SpecialFileError, kind_of, open_regular

_settings_folder: Path | None = None
# A folder used inside a ``with using_settings_folder(...)`` block, by this thread only (the
# window checks an edited settings file on a thread of its own).
_this_thread = threading.local()


def use_settings_folder(settings_folder: Path | str | None) -> None:
    """Make ``settings_folder`` where this process finds lab plugins (None: no lab folders).

    Set when a settings file loads; a child process sets it before it loads any plugin.
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


#: Set while only recorded code may run: a JSON object ``{file: sha256}``. An environment
#: variable, so that every process this one starts (a replay's inference worker) keeps the rule.
RECORDED_CODE_VARIABLE = "DEEPLABSTREAM_RECORDED_CODE"
_recorded_cache: tuple[str, dict[Path, str]] = ("", {})


def recorded_code() -> dict[Path, str] | None:
    """Return the lab files that may run (path -> SHA-256), or None when any lab file may."""
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
    """Inside the block, a lab plugin is only a file ``files`` names, checked by its SHA-256.

    Any other lab file is refused unopened; processes started meanwhile keep the rule.
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
class LabFolder:
    """A kind's folder of the lab's own modules beside the settings file (``devices/``).

    ``settings_folder`` None in its methods: the process's (:func:`use_settings_folder`).
    """

    name: str | None

    def path(self, settings_folder: Path | None = None) -> Path | None:
        """Return the folder beside the settings file (None: the kind has none)."""
        folder = settings_folder if settings_folder is not None else settings_folder_in_use()
        if self.name is None or folder is None:
            return None
        return Path(folder) / self.name

    def modules(self, settings_folder: Path | None = None) -> list[Path]:
        """Return the lab's modules of the folder, sorted by name."""
        recorded = recorded_code()
        if recorded is not None:  # only what a session recorded, wherever it was
            return sorted(
                path for path in recorded if path.parent.name == self.name and path.suffix == ".py"
            )
        folder = self.path(settings_folder)
        if folder is None or not folder.is_dir():
            return []
        return sorted(path for path in folder.glob("*.py") if not path.name.startswith("_"))

    def module_file(self, module: str, settings_folder: Path | None = None) -> Path | None:
        """Return the lab's module file ``module`` (``NAME`` or ``NAME:Class``), or None.

        The stem as written, else the one stem equal to it ignoring case.
        """
        stem = module.partition(":")[0].strip()
        if not stem or not stem.isidentifier():
            return None
        modules = self.modules(settings_folder)
        exact = [path for path in modules if path.stem == stem]
        found = exact or [path for path in modules if path.stem.lower() == stem.lower()]
        if len(found) != 1:
            return None
        note_link(found[0])
        return found[0]


#: How an origin names a file of the lab's (``lab folder: /lab/devices/x.py``).
LAB_ORIGIN = "lab folder: "

PACKAGE = "deeplabstream"
"""This project's package: code of it is ``built in``."""


@dataclass(frozen=True)
class LabFile:
    """A lab's Python file as this process imported it (``sha256``: of the bytes that ran)."""

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


def imported_from_file(module_name: str) -> bool:
    """Whether :func:`import_file` made ``module_name`` (other processes cannot unpickle it)."""
    return module_name in _LAB_MODULE_NAMES


def values_if_from_file(options: Any) -> dict[str, Any] | None:
    """Return the field values of a dataclass whose class a lab module defines, else None.

    Such settings are sent to another process as values and rebuilt there by the plugin's name.
    """
    if not (is_dataclass(options) and imported_from_file(type(options).__module__)):
        return None
    return {field.name: getattr(options, field.name) for field in fields(options)}


def import_file(path: Path, where: str = "") -> ModuleType:
    """Import the Python file ``path`` as a module of its own; again only when it has changed.

    Raises :class:`PluginLoadError` when the file is no regular file, cannot be read, is writable by
    others in a root process, or fails to import; :class:`ImportStopped` on Ctrl-C or SIGTERM.
    """
    path = note_link(path)
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

    Raises :class:`PluginError` when the file is gone, special or changed (nothing of it ran), and
    :class:`PluginLoadError` as :func:`import_file`.
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


def note_link(path: Path) -> Path:
    """Return the real file of ``path``; remember the path when it is a symbolic link to it."""
    named = Path(os.path.abspath(path))
    try:
        real = named.resolve()
    # A chain of links that comes back to itself: Python 3.11 raises RuntimeError, 3.13
    # OSError (ELOOP). Said in one line naming the file, as any plugin that cannot be loaded.
    except (RuntimeError, OSError) as error:
        raise PluginError(
            f"{named}: a symbolic link that leads back to itself ({_link_text(named)}), so no "
            f"module is there ({error}). Remove the link, or point it at the module's file"
        ) from None
    if named != real:
        _LINKS[real] = named
    return real


def _link_text(path: Path) -> str:
    """Return where the link ``path`` points, in words ("to x.py")."""
    try:
        return f"to {os.readlink(path)}"
    except OSError:
        return "its target cannot be read"


def imported_lab_files() -> list[LabFile]:
    """Return every lab file this process imported, as it was last imported, by path."""
    return [_FILE_MODULES[path].record for path in sorted(_FILE_MODULES)]


def _stamp_of(path: Path, where: str) -> tuple[int, int, int]:
    """Return what tells a file's change cheaply (inode, size, mtime); refuse a special file."""
    try:
        status = path.stat()
    except OSError as error:
        raise _unreadable(path, where, error) from None
    kind = kind_of(status.st_mode)
    if kind is not None:
        raise _not_regular(path, where, kind)
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def _read_source(path: Path, where: str) -> bytes:
    """Return the bytes of the regular file ``path``; a FIFO put in its place is never waited on."""
    try:
        with open_regular(path, "rb") as file:
            return file.read()
    except SpecialFileError as error:
        raise _not_regular(path, where, error.kind) from None
    except OSError as error:
        raise _unreadable(path, where, error) from None


def _unreadable(path: Path, where: str, error: OSError) -> PluginLoadError:
    return PluginLoadError(f"{where or path}: {path} cannot be read: {error.strerror or error}")


def _not_regular(path: Path, where: str, kind: str) -> PluginLoadError:
    """Say what a file that is not a regular file is, and that it is never opened as code."""
    return PluginLoadError(
        f"{where or path}: {path} is {kind}, not a Python file: it is never opened as code. "
        "Replace it with the module"
    )


def _module_from(path: Path, source: bytes, where: str) -> ModuleType:
    """Run ``source`` (the bytes of the file ``path``) as a new module; record what ran."""
    what = where or str(path)
    check_who_may_write(path, what)
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
    """Return ``lab.<folder>.<stem>`` for ``path`` (with a short hash if taken), once per file."""
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


def plugin_files_entry(
    plugins: Mapping[str, Mapping[str, str]], reported: Mapping[str, str] | None = None
) -> list[dict[str, str | None]]:
    """Return the lab's files among ``plugins``' origins with their SHA-256 (``plugin_files``).

    ``plugins`` is ``{kind: {name: origin}}``; the digest is of the bytes that ran (``reported`` by
    another process, else imported here, else read now; None when unreadable).
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
                except OSError:
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
    """Return where a plugin's class or function comes from, worded as :meth:`Registry.origin`."""
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
