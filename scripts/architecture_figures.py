r"""Measure the figures of docs/architecture.md ("The house before and after") on a checkout.

    python scripts/architecture_figures.py                 this checkout
    python scripts/architecture_figures.py --root OTHER    another checkout (a `git worktree`)
    python scripts/architecture_figures.py --json out.json --verbose

Every figure is of ``src/deeplabstream/`` of the checkout (``--root``, default: the one this
script is in), so that an older commit checked out beside this one (``git worktree add
../before <commit>``) is measured by the same script as this one:

1. **modules, lines**: the ``.py`` files under ``src/deeplabstream/`` (``__pycache__`` and hidden
   folders left out) and their physical lines, as ``wc -l`` counts them: blank lines, comments
   and docstrings included.
2. **the largest classes**: every class statement (nested ones too, named ``Outer.Inner``), read
   with :mod:`ast`: its lines (the ``class`` line to its last line, decorators left out), its
   methods (the ``def`` statements of its own body, those inside its ``if``/``try`` blocks too;
   a property's getter and setter are two) and its public names (the distinct names its body
   defines that do not start with ``_``: methods, properties, class attributes, nested
   classes). The ten largest are printed, and every class
   over :data:`CLASS_LINES_LIMIT` lines is flagged.
3. **the Experiment class** a lab subclasses: the class named :data:`EXPERIMENT_CLASS`, found by
   name anywhere in the package, measured as in 2.
4. **files one decision runs through**: a real decision, run in this process. The example
   experiment (:data:`TRACE_EXPERIMENT`, with a log device) is opened the way the worker opens
   it, given a few poses (a warm-up, so that lazy imports and first-use set-ups are done), then
   one more update in which the nose enters a region and a pulse is sent; that one call of the
   worker's experiment step (``on_poses``) is recorded with :func:`sys.setprofile`, and every
   file of the package a Python function ran in, in this thread, from its start to its return
   is counted, with the files' physical lines. Threads the call wakes (a device's timer) are not
   part of it. :func:`open_decision` says how the entry point is found and is the one place to
   adapt when the code moves; when it finds nothing the figure is not measured, the message
   names what is missing, and the exit status is 1.
5. **pairs of places sharing 6 or more lines**: this script's own deterministic duplicate
   finder (:func:`duplicate_pairs`): every line is stripped, blank and comment-only lines are
   dropped, and each window of 6 consecutive remaining lines of a file is hashed; two windows
   with the same text in different files, or in the same file without overlapping, are a match;
   matches of the same two files whose windows overlap in both are merged into one pair. Its
   count is its own: other duplicate finders (token-based ones, ones that ignore names) count
   differently, so compare it only with its own output on another commit.

``--json OUT`` writes every figure as JSON; ``--verbose`` also lists the traced files and the
largest duplicate pairs. Standard library only, apart from the traced package itself; no network.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import inspect
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "deeplabstream"
CLASS_LINES_LIMIT = 500
LARGEST_SHOWN = 10
EXPERIMENT_CLASS = "Experiment"
WINDOW = 6  # lines two places must share to be a duplicate pair
PAIRS_SHOWN = 20

# The decision that is traced (item 4 of the docstring). The example experiment counts the nose's
# entries into two circles (x 160 and 480, y 240, radius 60, in frame pixels) and pulses its
# device at each entry. The warm-up walks the nose centre -> left -> centre -> left -> centre
# (two pulses); the traced update moves it into the right circle (a pulse of its own).
TRACE_EXPERIMENT = "ExampleExperiment"
TRACE_DEVICE = "stimulus_box"
TRACE_DEVICE_TYPE = "log"
TRACE_KEYPOINT = "nose"
TRACE_CAMERA = "arena"
WARM_UP_X = (320.0, 160.0, 320.0, 160.0, 320.0)
TRACED_X = 480.0
NOSE_Y = 240.0
FRAME_RATE = 30.0

#: What opens the experiment with its devices as the worker does and returns the object whose
#: ``on_poses(observations, pose_ready_ns)`` is the worker's experiment step, newest first: a
#: module-level function, or ``Class.method`` (a classmethod), each found by name anywhere in
#: the package. Each is called ``(name, {device: settings}, session_dir)``, plus
#: ``settings_folder=`` where it takes one. Add the new name here when the code moves.
OPENERS = ("open_experiment_run", "ExperimentRun.open")
#: The worker's experiment step, called on the object an opener returns.
ENTRY_METHOD = "on_poses"
#: The classes the trace builds its inputs with, found by name anywhere in the package:
#: a camera's pose (time_s, camera, frame_index, keypoints (K, 3), names, host_time_s) and a
#: device's settings (its TYPE).
OBSERVATION_CLASS = "Observation"
DEVICE_SETTINGS_CLASS = "DeviceSettings"


class NotMeasuredError(Exception):
    """A figure could not be measured on this checkout; the message says what was missing."""


@dataclass(frozen=True)
class SourceSize:
    """The package's modules and their physical lines."""

    modules: int
    lines: int


@dataclass(frozen=True)
class ClassFigure:
    """One class statement: where it is and how big."""

    module: str  # its file, relative to the package's folder (posix)
    name: str  # Outer.Inner for a nested class
    line: int
    lines: int
    methods: int
    public_names: int


@dataclass(frozen=True)
class DuplicatePair:
    """Two places sharing at least :data:`WINDOW` normalised lines (first and last lines)."""

    first: str  # module:first-last (physical lines)
    second: str
    shared_lines: int  # normalised lines (blank and comment-only lines dropped)


@dataclass(frozen=True)
class DecisionTrace:
    """The package's files one traced decision ran in, with their physical lines."""

    experiment: str
    entry: str  # module:qualified name of the traced call
    files: dict[str, int] = field(default_factory=dict)  # module -> physical lines

    @property
    def lines(self) -> int:
        """The traced files' physical lines, together."""
        return sum(self.files.values())


# ---------------------------------------------------------------------------- reading the tree


def package_folder(root: Path) -> Path:
    """Return ``src/deeplabstream`` of checkout ``root``; NotMeasuredError when it has none."""
    folder = root / "src" / PACKAGE
    if not (folder / "__init__.py").is_file():
        raise NotMeasuredError(f"{folder} is not a package folder: give --root a checkout")
    return folder


def python_files(package: Path) -> list[Path]:
    """Return the package's ``.py`` files, sorted (``__pycache__`` and hidden folders left out)."""
    found = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).parts[:-1]
        if any(part == "__pycache__" or part.startswith(".") for part in parts):
            continue
        found.append(path)
    return sorted(found)


def physical_lines(text: str) -> int:
    """Return the lines of ``text`` as ``wc -l`` counts them (plus an unterminated last one)."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def read_text(path: Path) -> str:
    """Return a source file's text (UTF-8, as Python reads source)."""
    return path.read_text(encoding="utf-8")


def module_name(package: Path, path: Path) -> str:
    """Return ``path`` relative to the package's folder, with ``/`` on every platform."""
    return path.relative_to(package).as_posix()


def source_size(package: Path) -> SourceSize:
    """Return the modules and physical lines of the package (item 1)."""
    files = python_files(package)
    return SourceSize(len(files), sum(physical_lines(read_text(path)) for path in files))


# ------------------------------------------------------------------------------------- classes


def class_figures(package: Path) -> list[ClassFigure]:
    """Return every class statement of the package, largest first (item 2)."""
    figures = []
    for path in python_files(package):
        tree = ast.parse(read_text(path), filename=str(path))
        for qualname, node in _classes(tree.body, ""):
            figures.append(_class_figure(module_name(package, path), qualname, node))
    return sorted(figures, key=lambda figure: (-figure.lines, figure.module, figure.name))


def _classes(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.ClassDef]]:
    """Yield ``(qualified name, node)`` of the classes in ``body``, nested ones and in functions."""
    for node in body:
        if isinstance(node, ast.ClassDef):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _classes(node.body, f"{name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _classes(node.body, f"{prefix}{node.name}.<locals>.")
        else:  # if/try/with blocks at module or class level
            for inner in _statement_bodies(node):
                yield from _classes(inner, prefix)


def _statement_bodies(node: ast.stmt) -> Iterator[list[ast.stmt]]:
    """Yield the statement lists directly inside a compound statement (if, try, with, for...)."""
    for name in ("body", "orelse", "finalbody"):
        inner = getattr(node, name, None)
        if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
            yield inner
    for handler in getattr(node, "handlers", []):
        yield handler.body
    for case in getattr(node, "cases", []):
        yield case.body


def _class_figure(module: str, name: str, node: ast.ClassDef) -> ClassFigure:
    methods = 0
    names: set[str] = set()
    for statement in _flat_body(node.body):
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            methods += 1
            names.add(statement.name)
        elif isinstance(statement, ast.ClassDef):
            names.add(statement.name)
        elif isinstance(statement, ast.Assign):
            names.update(_assigned(statement.targets))
        elif isinstance(statement, ast.AnnAssign):
            names.update(_assigned([statement.target]))
    end = node.end_lineno if node.end_lineno is not None else node.lineno
    public = {defined for defined in names if not defined.startswith("_")}
    return ClassFigure(module, name, node.lineno, end - node.lineno + 1, methods, len(public))


def _flat_body(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Yield a class body's statements, those inside its if/try blocks too."""
    for statement in body:
        if isinstance(statement, ast.If | ast.Try):
            for inner in _statement_bodies(statement):
                yield from _flat_body(inner)
        else:
            yield statement


def _assigned(targets: list[ast.expr]) -> Iterator[str]:
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id
        elif isinstance(target, ast.Tuple | ast.List):
            yield from _assigned(list(target.elts))


def experiment_class(classes: list[ClassFigure]) -> ClassFigure:
    """Return the class named :data:`EXPERIMENT_CLASS` (item 3); NotMeasuredError if not one."""
    found = [figure for figure in classes if figure.name == EXPERIMENT_CLASS]
    if len(found) != 1:
        where = ", ".join(figure.module for figure in found) or "no module"
        raise NotMeasuredError(
            f"the package defines {len(found)} classes named {EXPERIMENT_CLASS!r} ({where}), "
            "not one: set EXPERIMENT_CLASS in scripts/architecture_figures.py"
        )
    return found[0]


# ---------------------------------------------------------------------------------- duplicates


def normalised_lines(text: str) -> list[tuple[int, str]]:
    """Return ``(physical line number, stripped text)`` of the lines that are not blank/comments."""
    kept = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            kept.append((number, stripped))
    return kept


def duplicate_pairs(package: Path, window: int = WINDOW) -> list[DuplicatePair]:
    """Return the pairs of places sharing ``window`` or more normalised lines, largest first.

    Item 5 of the module's docstring. Deterministic: the same tree gives the same pairs.
    """
    lines: dict[str, list[tuple[int, str]]] = {}
    places: dict[bytes, list[tuple[str, int]]] = defaultdict(list)
    for path in python_files(package):
        module = module_name(package, path)
        kept = lines[module] = normalised_lines(read_text(path))
        texts = [text for _, text in kept]
        for start in range(len(texts) - window + 1):
            digest = hashlib.blake2b("\n".join(texts[start : start + window]).encode()).digest()
            places[digest].append((module, start))
    matches: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for found in places.values():
        for index, (module_a, start_a) in enumerate(found):
            for module_b, start_b in found[index + 1 :]:
                if module_a == module_b and abs(start_a - start_b) < window:
                    continue  # one run of repeated lines, not two places
                matches[(module_a, module_b)].append((start_a, start_b))
    pairs = []
    for (module_a, module_b), starts in sorted(matches.items()):
        for run_a, run_b in _merged(starts, window):
            pairs.append(
                DuplicatePair(
                    _place(module_a, lines[module_a], run_a),
                    _place(module_b, lines[module_b], run_b),
                    run_a[1] - run_a[0],
                )
            )
    return sorted(pairs, key=lambda pair: (-pair.shared_lines, pair.first, pair.second))


def _merged(
    starts: list[tuple[int, int]], window: int
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Merge matches whose windows overlap in both files; return each group's two line ranges.

    ``starts``: the matches' first normalised lines in the two files. A range is ``(first,
    end)`` in normalised lines, end excluded.
    """
    done: list[list[int]] = []
    open_groups: list[list[int]] = []  # [first_a, end_a, first_b, end_b], end_a still reachable
    for start_a, start_b in sorted(starts):
        # Sorted by start_a: a group whose range in the first file ends here is complete.
        done.extend(group for group in open_groups if group[1] <= start_a)
        open_groups = [group for group in open_groups if group[1] > start_a]
        merged = [start_a, start_a + window, start_b, start_b + window]
        kept = []
        for group in open_groups:
            if start_b < group[3] and start_b + window > group[2]:  # overlaps in both files
                merged = [
                    min(merged[0], group[0]),
                    max(merged[1], group[1]),
                    min(merged[2], group[2]),
                    max(merged[3], group[3]),
                ]
            else:
                kept.append(group)
        open_groups = [*kept, merged]
    return [((a0, a1), (b0, b1)) for a0, a1, b0, b1 in sorted(done + open_groups)]


def _place(module: str, kept: list[tuple[int, str]], run: tuple[int, int]) -> str:
    return f"{module}:{kept[run[0]][0]}-{kept[run[1] - 1][0]}"


# ------------------------------------------------------------------------------ decision trace


def definitions(package: Path, name: str) -> list[str]:
    """Return the dotted modules defining ``name`` at their top level (``Class.method`` too)."""
    outer, _, method = name.partition(".")
    found = []
    for path in python_files(package):
        text = read_text(path)
        if f"def {outer}" not in text and f"class {outer}" not in text:
            continue  # parse only the files that may define it: seconds less for the trace
        tree = ast.parse(text, filename=str(path))
        for node in tree.body:
            if getattr(node, "name", None) != outer:
                continue
            if not method or any(
                getattr(inner, "name", None) == method for inner in getattr(node, "body", [])
            ):
                parts = path.relative_to(package).with_suffix("").parts
                dotted = ".".join((PACKAGE, *parts))
                found.append(dotted.removesuffix(".__init__"))
    return found


def find_one(package: Path, names: tuple[str, ...], what: str) -> tuple[str, Any]:
    """Return ``(name, object)`` of the first of ``names`` defined in exactly one module.

    NotMeasuredError names what was looked for when none is, or one is defined in several.
    """
    for name in names:
        modules = definitions(package, name)
        if len(modules) > 1:
            raise NotMeasuredError(
                f"{what}: {name!r} is defined in {', '.join(modules)}; name the one in "
                "scripts/architecture_figures.py"
            )
        if modules:
            found: Any = importlib.import_module(modules[0])
            for part in name.split("."):
                found = getattr(found, part)
            return f"{modules[0]}:{name}", found
    raise NotMeasuredError(
        f"{what}: none of {', '.join(names)} is defined in {package}; "
        "adapt open_decision in scripts/architecture_figures.py to where it moved"
    )


def import_package(package: Path) -> None:
    """Import the package from ``package`` (not from wherever else it is installed)."""
    source = package.parent.resolve()
    if PACKAGE not in sys.modules:
        sys.path.insert(0, str(source))
    imported = importlib.import_module(PACKAGE)
    where = Path(imported.__file__ or "").resolve().parent
    if where != package.resolve():
        raise NotMeasuredError(
            f"{PACKAGE} is imported from {where}, not from {package}: run this script in a "
            "process of its own with --root"
        )


@dataclass
class Decision:
    """An opened experiment run, what feeds it, and how to close it (:func:`open_decision`)."""

    entry: str
    run: Any
    observation: Callable[[int, float], Any]
    device: Any


def open_decision(package: Path, session_dir: Path) -> Decision:
    """Open the example experiment with a log device the way the worker does.

    The one place to adapt when the code moves: the opener is the first of :data:`OPENERS`
    defined in the package (found by name with ast, then imported), and the pose and device
    settings classes are :data:`OBSERVATION_CLASS` and :data:`DEVICE_SETTINGS_CLASS`.
    NotMeasuredError names what is missing.
    """
    import_package(package)
    opener_name, opener = find_one(package, OPENERS, "the worker's experiment opener")
    _, observation_class = find_one(package, (OBSERVATION_CLASS,), "the pose class")
    _, settings_class = find_one(package, (DEVICE_SETTINGS_CLASS,), "the device settings")
    import numpy as np  # the package's own dependency, imported with it

    keywords = {}
    if "settings_folder" in inspect.signature(opener).parameters:
        keywords["settings_folder"] = session_dir  # no lab's experiments/ folder shadows it
    devices = {TRACE_DEVICE: settings_class(TRACE_DEVICE_TYPE)}
    try:
        run = opener(TRACE_EXPERIMENT, devices, session_dir, **keywords)
    except Exception as error:  # whatever the opener raises, the figure is not measured
        raise NotMeasuredError(
            f"{opener_name} could not open {TRACE_EXPERIMENT} with a {TRACE_DEVICE_TYPE} device "
            f"{TRACE_DEVICE!r}: {error}"
        ) from error
    step = getattr(run, ENTRY_METHOD, None)
    if step is None:
        raise NotMeasuredError(
            f"{opener_name} returned a {type(run).__name__} without {ENTRY_METHOD!r}: set "
            "ENTRY_METHOD in scripts/architecture_figures.py"
        )

    def observation(frame_index: int, x: float) -> Any:
        return observation_class(
            time_s=frame_index / FRAME_RATE,
            camera=TRACE_CAMERA,
            frame_index=frame_index,
            keypoints=np.array([[x, NOSE_Y, 0.99]]),
            names=(TRACE_KEYPOINT,),
            host_time_s=time.perf_counter_ns() / 1e9,  # the host clock (core/timing.py)
        )

    entry = f"{type(run).__module__}:{type(run).__qualname__}.{ENTRY_METHOD}"
    return Decision(entry, run, observation, run.devices[TRACE_DEVICE])


def decision_trace(package: Path) -> DecisionTrace:
    """Run the example experiment's decision and return the files it ran in (item 4)."""
    with tempfile.TemporaryDirectory(prefix="architecture-figures-") as folder:
        decision = open_decision(package, Path(folder))
        try:
            for index, x in enumerate(WARM_UP_X):
                decision.run.on_poses([decision.observation(index, x)], time.perf_counter_ns())
            sent_before = len(decision.device.records)
            poses = [decision.observation(len(WARM_UP_X), TRACED_X)]
            ran = traced_files(lambda: decision.run.on_poses(poses, time.perf_counter_ns()))
            if decision.run.error is not None or len(decision.device.records) <= sent_before:
                raise NotMeasuredError(
                    f"the traced update of {TRACE_EXPERIMENT} sent no command "
                    f"({decision.run.error or 'no error'}): the trace would not be a decision"
                )
        finally:
            decision.run.stop()
            close_devices = getattr(decision.run, "close_devices", None)  # stop() did it once
            if close_devices is not None:
                close_devices()
    inside = package.resolve()
    files = {}
    for name in sorted(ran):
        path = Path(name).resolve()
        if path.is_relative_to(inside) and path.suffix == ".py":
            files[module_name(inside, path)] = physical_lines(read_text(path))
    return DecisionTrace(TRACE_EXPERIMENT, decision.entry, files)


def traced_files(call: Callable[[], object]) -> set[str]:
    """Return the files of every Python function that ran in this thread during ``call()``."""
    seen: set[str] = set()

    def on_event(frame: Any, event: str, _arg: object) -> None:
        if event == "call":
            seen.add(frame.f_code.co_filename)

    previous = sys.getprofile()
    sys.setprofile(on_event)
    try:
        call()
    finally:
        sys.setprofile(previous)
    return seen


# ------------------------------------------------------------------------------------- output


def commit_of(root: Path) -> str | None:
    """Return the checkout's commit (short), or None when it is not a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def measure(root: Path) -> dict[str, Any]:
    """Return every figure of checkout ``root`` as JSON-ready data (failures as ``error``)."""
    package = package_folder(root)
    size = source_size(package)
    classes = class_figures(package)
    pairs = duplicate_pairs(package)
    figures: dict[str, Any] = {
        "commit": commit_of(root),
        "modules": size.modules,
        "lines": size.lines,
        "largest_classes": [asdict(figure) for figure in classes[:LARGEST_SHOWN]],
        "classes_over_limit": [
            asdict(figure) for figure in classes if figure.lines > CLASS_LINES_LIMIT
        ],
        "class_lines_limit": CLASS_LINES_LIMIT,
        "duplicate_pairs": len(pairs),
        "duplicate_window": WINDOW,
        "largest_duplicate_pairs": [asdict(pair) for pair in pairs[:PAIRS_SHOWN]],
    }
    try:
        figures["experiment_class"] = asdict(experiment_class(classes))
    except NotMeasuredError as error:
        figures["experiment_class"] = {"error": str(error)}
    try:
        found = decision_trace(package)
        figures["decision_trace"] = {
            "experiment": found.experiment,
            "entry": found.entry,
            "file_count": len(found.files),
            "lines": found.lines,
            "files": found.files,
        }
    except NotMeasuredError as error:
        figures["decision_trace"] = {"error": str(error)}
    return figures


def report(figures: dict[str, Any], verbose: bool) -> list[str]:
    """Return the printed lines of ``figures``."""
    out = [
        f"src/{PACKAGE}/ at commit {figures['commit'] or 'unknown (not a git checkout)'}",
        f"modules, lines: {figures['modules']:,} modules, {figures['lines']:,} lines "
        "(every .py file; physical lines, blank, comment and docstring lines included)",
    ]
    experiment = figures["experiment_class"]
    if "error" in experiment:
        out.append(f"the {EXPERIMENT_CLASS} class: not measured: {experiment['error']}")
    else:
        out.append(
            f"the {EXPERIMENT_CLASS} class ({experiment['module']}): {experiment['lines']} "
            f"lines, {experiment['methods']} methods, {experiment['public_names']} public names"
        )
    out.append("largest classes (lines, methods, public names):")
    for figure in figures["largest_classes"]:
        flag = f"  over {CLASS_LINES_LIMIT} lines" if figure["lines"] > CLASS_LINES_LIMIT else ""
        out.append(
            f"  {figure['lines']:5d} {figure['methods']:4d} {figure['public_names']:4d}  "
            f"{figure['name']} ({figure['module']}){flag}"
        )
    over = figures["classes_over_limit"]
    names = ", ".join(f"{figure['name']} {figure['lines']}" for figure in over)
    out.append(
        f"classes over {CLASS_LINES_LIMIT} lines: {len(over)}" + (f" ({names})" if over else "")
    )
    trace = figures["decision_trace"]
    if "error" in trace:
        out.append(f"files one decision runs through: not measured: {trace['error']}")
    else:
        out.append(
            f"files one decision runs through: {trace['file_count']} files, "
            f"{trace['lines']:,} lines (one traced {trace['entry']} of {trace['experiment']} "
            f"sending a pulse to a {TRACE_DEVICE_TYPE} device, after a warm-up)"
        )
        if verbose:
            out.extend(f"  {lines:5d}  {module}" for module, lines in trace["files"].items())
    out.append(
        f"pairs of places sharing {figures['duplicate_window']} or more lines: "
        f"{figures['duplicate_pairs']} (this script's own finder: normalised lines, blank and "
        "comment lines dropped; other duplicate finders count differently)"
    )
    if verbose:
        for pair in figures["largest_duplicate_pairs"]:
            out.append(f"  {pair['shared_lines']:4d}  {pair['first']}  {pair['second']}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the figures (and write them as JSON); 1 when one could not be measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="list traced files and pairs")
    arguments = parser.parse_args(argv)
    try:
        figures = measure(arguments.root.resolve())
    except NotMeasuredError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(report(figures, arguments.verbose)))
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    failed = [key for key in ("experiment_class", "decision_trace") if "error" in figures[key]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
