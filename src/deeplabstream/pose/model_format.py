"""What a model format is, the registry of formats, and the checks formats share.

Design: docs/pose-internals.md, "pose.model_format".
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from deeplabstream.core.plugins import (
    LAB_ORIGIN,
    PluginFailure,
    Registry,
    plugin_call_watch,
    settings_folder_in_use,
    subclass_check,
    subclasses_in,
)
from deeplabstream.pose.model import ModelDescription, ModelError

Precision = Literal["fp32", "fp16"]

log = logging.getLogger(__name__)


class ModelFormat:
    """One kind of model on disk: how to recognise its path and load it into a description.

    A format writes :attr:`name`, :meth:`recognises` and :meth:`load` (docs/plugins.md, "Model
    formats"); ``load`` sets ``framework=self.name``, reads files, never runs a network, and
    raises :class:`~pose.model.ModelError` naming the file. Formats are probed built-ins first: a
    lab's must recognise only its own. Formats converted here also override :meth:`check`,
    :meth:`keypoints`, :meth:`build_module`, :meth:`comparison` and the ``*_text`` methods.
    """

    #: Short name for messages; by default also the ``framework`` its descriptions carry.
    name: ClassVar[str]
    #: Rebuilt from another framework's file and converted to ONNX here: ``precision`` applies,
    #: the description has a ``source_file``, and :meth:`build_module` rebuilds the network.
    converted: ClassVar[bool] = False

    # -- the core: what every format writes --------------------------------------------------

    def recognises(self, path: Path) -> bool:
        """Return True when ``path`` (an existing file or folder) is a model of this format."""
        raise NotImplementedError(f"{type(self).__name__} does not define recognises(path)")

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Return the description of the model at ``path`` (see :func:`pose.loading.load_model`).

        ``frame_size`` (height, width) is the camera's when known (None: the model's own);
        ``precision`` is what ``[Pose] PRECISION`` asks of a converted model.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define load(path, ...)")

    # -- defaults ------------------------------------------------------------------------------

    def check(self, path: Path) -> None:
        """Check cheaply that ``path`` loads; by default by loading it (no conversion here)."""
        self.load(path, None, "fp32")

    def describes(self, description: ModelDescription) -> bool:
        """Return True when ``description`` was loaded by this format.

        By default when its ``framework`` is this format's :attr:`name`.
        """
        return description.framework == self.name

    def keypoints(self, path: Path) -> tuple[str, ...]:
        """Return the model's keypoint names without converting or running it.

        By default from :meth:`load`; formats converted here read them from their file's config.
        """
        return self.load(path, None, "fp32").keypoints

    # -- for [Pose] BACKEND = pytorch and dynamic cropping ---------------------------------

    def pytorch_problem(self, path: Path) -> str | None:
        """Return why the pytorch backend cannot run the model at ``path``; None when it can.

        By default it cannot (an ONNX graph); formats converted here are rebuilt from their file.
        """
        if self.converted:
            return None
        return (
            f"{path} is a {self.name} model, an ONNX graph only, which [Pose] BACKEND = pytorch "
            "cannot run: set BACKEND = onnxruntime (or openvino)"
        )

    def torchscript_file(self, description: ModelDescription) -> Path | None:
        """Return the TorchScript file the pytorch backend loads for ``description``, if any."""
        return None

    def input_multiple(self, description: ModelDescription) -> int | None:
        """Return the network's total down-sampling for dynamic cropping; None: its stride's."""
        return None

    # -- for deeplabstream-inspect ---------------------------------------------------------

    def model_text(self, description: ModelDescription) -> str:
        """Return the file the user named: the source of a converted model, else the graph."""
        return str(description.source_file or description.model_file)

    def framework_text(self, description: ModelDescription) -> str:
        """Return the framework and its version, in words."""
        return description.framework

    def network_text(self, description: ModelDescription) -> str:
        """Return what the network is, in words."""
        return f"ONNX graph, outputs {', '.join(description.output_names)}"

    def decoding_text(self, description: ModelDescription) -> str:
        """Return how keypoints are read from the outputs, in words."""
        return f"{description.decoder} on {description.output_kind}"

    def build_module(self, source: Path) -> Any:
        """Return the PyTorch module rebuilt from ``source`` (converted formats only)."""
        raise ModelError(f"{source}: no rebuilt network for format {self.name!r}")

    def comparison(self, description: ModelDescription) -> tuple[Any, dict[str, float]]:
        """Return the comparison of graph and network, and its limits at the model's precision."""
        raise ModelError(f"{description.model_file}: not a converted model (nothing to compare)")


MODEL_FORMATS: Registry[type[ModelFormat]] = Registry(
    "model format",
    "deeplabstream.model_formats",
    {
        # The order a path is tried in: an export wins over its folder's checkpoint; a
        # crop-zoom pair (cropzoom.yaml) first, as its description is a Lightning Pose one too.
        "lightning-pose-cropzoom": (
            "deeplabstream.pose.formats.lightning_cropzoom:LightningPoseCropZoom"
        ),
        "lightning-pose-export": "deeplabstream.pose.formats.lightning:LightningPoseExport",
        "lightning-pose-checkpoint": (
            "deeplabstream.pose.formats.lightning_ckpt:LightningPoseCheckpoint"
        ),
        "deeplabstream": "deeplabstream.pose.formats.own_model:OwnModel",
        "deeplabcut-3": "deeplabstream.pose.formats.dlc3:DeepLabCutExport",
        "sleap-nn": "deeplabstream.pose.formats.sleap:SleapExport",
    },
    advice="Put the lab's own format in the formats/ folder beside the settings file, or install "
    "the package that reads that format (its entry point in the group "
    "deeplabstream.model_formats; docs/plugins.md).",
    check=subclass_check(ModelFormat),
    lab_folder="formats",
    find_in_module=lambda module: subclasses_in(module, ModelFormat),
)
"""Every format by name, in the order a path is tried: the built-ins (in this order), then the
installed ones (sorted by name), then the lab's ``formats/`` modules that ``[Pose]
MODEL_FORMATS`` names (in its order), so a lab's format never changes how a built-in one reads
its models."""

#: The key that names the lab's formats, for messages.
LAB_FORMATS_KEY = "[Pose] MODEL_FORMATS"

# The lab's formats named, and the settings folder they were named for.
_lab_formats: tuple[Path | None, tuple[str, ...]] = (None, ())


def use_lab_formats(names: Sequence[str]) -> None:
    """Make the lab's formats ``names`` (``[Pose] MODEL_FORMATS``) the ones this process tries.

    Modules of the settings folder's ``formats/`` (set first: ``use_settings_folder``), tried after
    the built-in and installed formats while that folder is the process's.
    """
    global _lab_formats
    _lab_formats = (
        settings_folder_in_use(),
        tuple(name.strip() for name in names if name.strip()),
    )


def lab_formats_in_use() -> tuple[str, ...]:
    """Return the lab's formats this process tries now (none once its settings folder changed)."""
    folder, names = _lab_formats
    return names if folder is not None and folder == settings_folder_in_use() else ()


def model_formats() -> tuple[list[ModelFormat], list[PluginFailure]]:
    """Return one instance of every format that loads, in order, and those that do not."""
    loaded, failures = MODEL_FORMATS.load_all(lab_names=lab_formats_in_use())
    for failure in failures:
        if str(failure) not in _WARNED:
            _WARNED.add(str(failure))
            log.warning("%s", failure)
    built_in = set(MODEL_FORMATS.builtin_names())
    made = [cls() if name in built_in else watched(cls(), name) for name, cls in loaded.items()]
    return made, failures


_WARNED: set[str] = set()

#: The calls of a format the start waits on: a lab's or an installed package's are watched.
_WATCHED_CALLS = ("recognises", "load", "check", "keypoints", "describes")


def watched(model_format: ModelFormat, name: str) -> ModelFormat:
    """Return ``model_format`` (a lab's or an installed one) with its calls watched and checked.

    A slow call is named and abandoned by Ctrl-C or SIGTERM; what it raises other than a ModelError,
    and a ``load`` that returns no ModelDescription, become a ModelError.
    """
    origin = MODEL_FORMATS.origin(name).removeprefix(LAB_ORIGIN)
    label = f"model format {name!r} ({origin})"
    for method in _WATCHED_CALLS:
        call = _watched_call(label, method, getattr(model_format, method))
        try:
            setattr(model_format, method, call)
        except AttributeError:  # a class with __slots__: its calls run unwatched
            break
    return model_format


def _watched_call(label: str, method: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        shown = f"{method}({args[0] if args else ''})"
        with plugin_call_watch(label, shown):
            try:
                result = call(*args, **kwargs)
            except (ModelError, ModuleNotFoundError):
                raise  # its own words, or an extra to install (named by the caller)
            except Exception as error:
                raise ModelError(
                    f"{label}: its {shown} raised {type(error).__name__}: {error}"
                ) from error
        if method == "load" and not isinstance(result, ModelDescription):
            raise ModelError(
                f"{label}: its {shown} returned {result!r}, not a ModelDescription: a format's "
                "load returns the description of the model (docs/plugins.md, Model formats)"
            )
        return result

    return run


def format_of(path: Path) -> ModelFormat | None:
    """Return the format of the existing ``path``, or None when no format recognises it."""
    formats, _ = model_formats()
    return next((f for f in formats if f.recognises(path)), None)


def format_of_description(description: ModelDescription) -> ModelFormat | None:
    """Return the format that loaded ``description``, or None for one built elsewhere."""
    formats, _ = model_formats()
    return next((f for f in formats if f.describes(description)), None)


def format_entry(description: ModelDescription) -> dict[str, str]:
    """Return ``{registered name: origin}`` of the format that loaded ``description`` (or none).

    Ask where the model was loaded (the inference worker): elsewhere it costs the imports.
    """
    found = format_of_description(description)
    if found is None:
        return {}
    loaded, _ = MODEL_FORMATS.load_all(lab_names=lab_formats_in_use())  # by their files' names
    for name, cls in loaded.items():
        if type(found) is cls:
            return {name: MODEL_FORMATS.origin(name)}
    return {found.name: "unknown"}


def build_torch_module(description: ModelDescription) -> Any:
    """Return the PyTorch module of a converted model, rebuilt from ``description.source_file``.

    In eval mode on the CPU, returning the graph's outputs in order in float32. Raises ModelError
    without a source file or a rebuilt network for its framework.
    """
    source = description.source_file
    if source is None:
        raise ModelError(f"{description.model_file}: not a converted model (no source file)")
    model_format = format_of_description(description)
    if model_format is None or not model_format.converted:
        raise ModelError(f"{source}: no rebuilt network for framework {description.framework!r}")
    return model_format.build_module(source)


def unusable_formats() -> list[PluginFailure]:
    """Return the installed formats that cannot be loaded (for a message on an unknown model)."""
    return model_formats()[1]


def untried_lab_formats() -> list[str]:
    """Return the ``formats/`` modules beside the settings file that no setting names (stems)."""
    named = {name.partition(":")[0] for name in lab_formats_in_use()}
    return [path.stem for path in MODEL_FORMATS.lab.modules() if path.stem not in named]


# --- what the formats share ---------------------------------------------------------------------


def source_file(description: ModelDescription) -> Path:
    """Return the file a converted model came from; ModelError for a model not converted here."""
    if description.source_file is None:
        raise ModelError(f"{description.model_file}: not a converted model (no source file)")
    return Path(description.source_file)


def unreadable(path: Path, advice: tuple[str, str], reason: str) -> ModelError:
    """Return the error for a model file that cannot be read: what it is not, why, what to do."""
    what, to_do = advice
    return ModelError(f"{path}: {what} ({reason}). {to_do}")


def check_torch_file(path: Path, advice: tuple[str, str]) -> None:
    """Raise a ModelError unless ``path`` looks like a file of ``torch.save`` (torch not needed)."""
    try:
        if path.stat().st_size == 0:
            raise unreadable(path, advice, "the file is empty")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if any(name.rsplit("/", 1)[-1] == "data.pkl" for name in archive.namelist()):
                    return
        else:
            with path.open("rb") as file:
                if file.read(1) == b"\x80":  # torch's legacy format starts with a pickle
                    return
    except (OSError, zipfile.BadZipFile) as error:
        raise unreadable(path, advice, f"cannot be read: {error}") from error
    raise unreadable(path, advice, "not a file written by torch.save")


def unreadable_reason(error: BaseException) -> str:
    """Return why ``torch.load(weights_only=True)`` refused a file, without PyTorch's advice."""
    if isinstance(error, pickle.UnpicklingError):
        return "it holds objects other than weights and settings, or is not a PyTorch file"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if not first or "weights_only" in first:
        return f"PyTorch could not read it: {type(error).__name__}"
    return f"PyTorch could not read it: {type(error).__name__}: {first}"
