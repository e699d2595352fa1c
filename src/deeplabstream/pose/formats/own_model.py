"""The project's own model format: a folder with ``model.onnx`` and ``model.json``.

Design: docs/pose-models.md, "The project's own model format".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Final

from deeplabstream.pose.decoding.bottomup import OUTPUT_NAMES, PafDecoding
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import ModelFormat, Precision

FORMAT_TAG = "deeplabstream-model/1"
JSON_NAME = "model.json"
ONNX_NAME = "model.onnx"
TORCHSCRIPT_NAME = "model.pt"
FRAMEWORK = "deeplabstream"
PAF_DECODER: Final = "paf-bottomup"


def model_folder(path: str | Path) -> Path:
    """Find the model folder for a path to the folder, its ``model.json`` or its ``.onnx`` file."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.name == JSON_NAME or path.suffix in (".onnx", ".pt"):
        return path.parent
    raise ModelError(f"{path}: not a model folder, nor its {JSON_NAME} or .onnx file")


def read_model_json(path: str | Path) -> dict[str, Any]:
    """Parse a model folder's ``model.json``; ModelError if missing, not JSON or without the tag."""
    json_path = model_folder(path) / JSON_NAME
    if not json_path.is_file():
        raise ModelError(f"{json_path}: missing; a model folder needs {JSON_NAME} and {ONNX_NAME}")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{json_path}: not readable JSON: {error}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{json_path}: expected a JSON object at the top")
    if data.get("format") != FORMAT_TAG:
        raise ModelError(
            f"{json_path}: 'format' is {data.get('format')!r}, expected {FORMAT_TAG!r}"
        )
    return data


def load_own_model(path: str | Path) -> ModelDescription:
    """Describe one of the project's own models (its folder, ``model.json`` or ``.onnx``).

    Raises ModelError for a missing file, a missing or wrong key (named), or outputs without one
    heatmap per keypoint.
    """
    folder = model_folder(path)
    json_path = folder / JSON_NAME
    data = read_model_json(folder)
    files = _section(data, "files", json_path)
    onnx_path = folder / _get(files, "onnx", str, json_path, "files.")
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: missing (named by {json_path} files.onnx)")
    description = _description(data, onnx_path, json_path)
    _check_graph(description, onnx_path)
    return description


def torchscript_file(path: str | Path) -> Path | None:
    """Return the TorchScript file of a model folder, or None when it has none."""
    folder = model_folder(path)
    name = read_model_json(folder).get("files", {}).get("torchscript")
    if not name:
        return None
    file = folder / name
    return file if file.is_file() else None


def _section(data: dict[str, Any], key: str, json_path: Path) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ModelError(f"{json_path}: '{key}' is missing or not an object")
    return value


def _get(section: dict[str, Any], key: str, kind: type, json_path: Path, prefix: str = "") -> Any:
    """Get a value of the expected type, or raise a ModelError naming the key."""
    if key not in section:
        raise ModelError(f"{json_path}: key '{prefix}{key}' is missing")
    value = section[key]
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ModelError(
            f"{json_path}: key '{prefix}{key}' should be {kind.__name__}, got {value!r}"
        )
    return value


def _description(data: dict[str, Any], onnx_path: Path, json_path: Path) -> ModelDescription:
    """ModelDescription from the parsed JSON; type errors name the key."""
    inputs = _section(data, "input", json_path)
    output = _section(data, "output", json_path)
    keypoints = _get(data, "keypoints", list, json_path)
    skeleton = data.get("skeleton", [])
    if not all(isinstance(k, str) for k in keypoints):
        raise ModelError(f"{json_path}: key 'keypoints' should be a list of names")
    if not isinstance(skeleton, list) or not all(
        isinstance(pair, list) and len(pair) == 2 for pair in skeleton
    ):
        raise ModelError(f"{json_path}: key 'skeleton' should be a list of [name, name] pairs")
    names = output.get("names", ["heatmaps", "locref"])
    try:
        return ModelDescription(
            name=_get(data, "name", str, json_path),
            framework=FRAMEWORK,
            model_file=onnx_path,
            keypoints=tuple(keypoints),
            input_height=_get(inputs, "height", int, json_path, "input."),
            input_width=_get(inputs, "width", int, json_path, "input."),
            color_order=_choice(inputs, "color_order", ("rgb", "bgr", "gray"), json_path, "input."),
            mean=tuple(float(v) for v in _get(inputs, "mean", list, json_path, "input.")),
            std=tuple(float(v) for v in _get(inputs, "std", list, json_path, "input.")),
            resize=_choice(
                inputs, "resize", ("area", "bilinear-float", "bicubic-uint8"), json_path, "input."
            ),
            output_kind=_choice(
                output, "kind", ("heatmaps", "heatmaps+locref"), json_path, "output."
            ),
            stride=float(_get(output, "stride", float, json_path, "output.")),
            decoder=_choice(output, "decoder", ("argmax", PAF_DECODER), json_path, "output."),
            heatmaps_are_probabilities=_get(
                output, "heatmaps_are_probabilities", bool, json_path, "output."
            ),
            locref_std=float(output.get("locref_std", 7.2801)),
            input_name=str(inputs.get("name", "images")),
            output_names=tuple(str(n) for n in names),
            batch_size=None,
            skeleton=tuple((str(a), str(b)) for a, b in skeleton),
            **_input_format(inputs, json_path),
            **_multi_animal(data, output, json_path),
        )
    except ModelError:
        raise
    except (TypeError, ValueError) as error:  # e.g. a mean value that is not a number
        raise ModelError(f"{json_path}: {error}") from None


def _multi_animal(data: dict[str, Any], output: dict[str, Any], json_path: Path) -> dict[str, Any]:
    """Read ``max_animals`` and the paf-bottomup settings (nothing for a single-animal model)."""
    if output.get("decoder") != PAF_DECODER:
        return {}
    names = tuple(output.get("names", ()))
    if names != OUTPUT_NAMES:
        raise ModelError(
            f"{json_path}: key 'output.names' of a {PAF_DECODER} model should be "
            f"{list(OUTPUT_NAMES)}, got {list(names)}"
        )
    max_animals = _get(data, "max_animals", int, json_path)
    if max_animals < 1:
        raise ModelError(f"{json_path}: key 'max_animals' should be at least 1, got {max_animals}")
    settings = _section(output, "paf", json_path)
    try:
        decoding = PafDecoding.from_dict(settings)
    except ModelError as error:
        raise ModelError(f"{json_path}: {error}") from None
    k = len(data.get("keypoints", []))
    if any(not (0 <= s < k and 0 <= d < k) for s, d in decoding.edges):
        raise ModelError(
            f"{json_path}: key 'output.paf.edges' names keypoints outside 0..{k - 1}: "
            f"{[list(e) for e in decoding.edges]}"
        )
    return {"max_animals": max_animals, "decoding": decoding}


def _input_format(inputs: dict[str, Any], json_path: Path) -> dict[str, Any]:
    """Read the input's type, layout, normalisation and letterbox (defaults for older files)."""
    defaults = {"type": "float", "layout": "nchw", "normalization": "outside", "letterbox": False}
    present = {key: inputs.get(key, default) for key, default in defaults.items()}
    allowed = {
        "type": ("float", "uint8"),
        "layout": ("nchw", "nhwc"),
        "normalization": ("outside", "in-graph"),
    }
    for key, values in allowed.items():
        _choice(present, key, values, json_path, "input.")
    letterbox = _get(present, "letterbox", bool, json_path, "input.")
    return {
        "input_type": present["type"],
        "input_layout": present["layout"],
        "normalization": present["normalization"],
        "letterbox": letterbox,
    }


def _choice(
    section: dict[str, Any], key: str, allowed: tuple[str, ...], json_path: Path, prefix: str
) -> Any:
    value = _get(section, key, str, json_path, prefix)
    if value not in allowed:
        raise ModelError(
            f"{json_path}: key '{prefix}{key}' is {value!r}; allowed: {', '.join(allowed)}"
        )
    return value


def _check_graph(description: ModelDescription, onnx_path: Path) -> None:
    """Compare the graph's input and output shapes with the description (without running it)."""
    import onnx  # heavy: imported when a graph is checked

    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as error:  # onnx raises several unrelated types for a damaged file
        raise ModelError(f"{onnx_path}: not a readable ONNX model: {error}") from None
    for initializer in graph.initializer:
        if initializer.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in initializer.external_data}.get("location", "")
            if not (onnx_path.parent / location).is_file():
                raise ModelError(
                    f"{onnx_path}: its weights are in a separate file '{location}', which is "
                    "missing; copy it beside the .onnx"
                )
    outputs = {o.name: _dims(o) for o in graph.output}
    inputs = {i.name: _dims(i) for i in graph.input}
    if description.input_name not in inputs:
        raise ModelError(
            f"{onnx_path}: no input named {description.input_name!r}; it has {sorted(inputs)}"
        )
    _check_input(description, onnx_path, graph)
    k = len(description.keypoints)
    wanted = {description.output_names[0]: k}
    if description.output_kind == "heatmaps+locref":
        if len(description.output_names) < 2:
            raise ModelError(f"{onnx_path}: heatmaps+locref needs two output names")
        wanted[description.output_names[1]] = 2 * k
    if isinstance(description.decoding, PafDecoding):  # a multi-animal model: its PAF output
        wanted[description.output_names[1]] = 2 * len(description.decoding.edges)
    for name, channels_wanted in wanted.items():
        if name not in outputs:
            raise ModelError(f"{onnx_path}: no output named {name!r}; it has {sorted(outputs)}")
        dims = outputs[name]
        got = dims[1] if len(dims) > 1 else None
        if got is not None and got != channels_wanted:
            raise ModelError(
                f"{onnx_path}: output {name!r} has {got} channels but model.json names {k} "
                f"keypoints and {len(description.skeleton)} edges (expected {channels_wanted})"
            )


def _check_input(description: ModelDescription, onnx_path: Path, graph: Any) -> None:
    """Check that the graph's input has the described layout, size and element type."""
    import onnx  # heavy: imported when a graph is checked

    value = next(i for i in graph.input if i.name == description.input_name)
    dims = (_dims(value) + [None] * 4)[:4]
    if description.input_layout == "nhwc":
        _, height, width, channels = dims
    else:
        _, channels, height, width = dims
    expected_input = (description.channels, description.input_height, description.input_width)
    for got, want, what in zip(
        (channels, height, width), expected_input, ("channels", "height", "width"), strict=True
    ):
        if got is not None and got != want:
            raise ModelError(
                f"{onnx_path}: the graph's input {what} is {got}, model.json says {want} "
                f"(layout {description.input_layout})"
            )
    element = value.type.tensor_type.elem_type
    wanted = {
        "uint8": (onnx.TensorProto.UINT8,),
        "float": (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16),
    }[description.input_type]
    if element not in wanted:
        name = onnx.TensorProto.DataType.Name(element).lower()
        raise ModelError(
            f"{onnx_path}: the graph's input is {name}, model.json says "
            f"{description.input_type} (input.type)"
        )


def _dims(value_info: Any) -> list[int | None]:
    """Return the static dimensions of a graph input or output (None where symbolic)."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def save_own_model(
    folder: str | Path,
    description: ModelDescription,
    *,
    onnx_file: str | Path,
    torchscript: str | Path | None = None,
    network: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder (the network files and ``model.json``) and return its ``model.json``.

    ``description.model_file`` is ignored: ``onnx_file`` is copied to ``folder/model.onnx``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _copy_into(Path(onnx_file), folder / ONNX_NAME)
    if torchscript is not None:
        _copy_into(Path(torchscript), folder / TORCHSCRIPT_NAME)
    elif (folder / TORCHSCRIPT_NAME).exists():
        (folder / TORCHSCRIPT_NAME).unlink()  # a stale TorchScript of another network
    data = model_json(description, torchscript is not None, network, training)
    json_path = folder / JSON_NAME
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    load_own_model(folder)  # what we wrote must load: fail here, not in a live session
    return json_path


def model_json(
    description: ModelDescription,
    has_torchscript: bool,
    network: dict[str, Any] | None,
    training: dict[str, Any] | None,
) -> dict[str, Any]:
    """Return the content of ``model.json`` for a description."""
    data: dict[str, Any] = {
        "format": FORMAT_TAG,
        "name": description.name,
        "keypoints": list(description.keypoints),
        "skeleton": [list(pair) for pair in description.skeleton],
        "files": {
            "onnx": ONNX_NAME,
            "torchscript": TORCHSCRIPT_NAME if has_torchscript else None,
        },
        "input": {
            "name": description.input_name,
            "height": description.input_height,
            "width": description.input_width,
            "color_order": description.color_order,
            "mean": list(description.mean),
            "std": list(description.std),
            "resize": description.resize,
            "type": description.input_type,
            "layout": description.input_layout,
            "normalization": description.normalization,
            "letterbox": description.letterbox,
        },
        "output": {
            "kind": description.output_kind,
            "names": list(description.output_names),
            "stride": description.stride,
            "locref_std": description.locref_std,
            "decoder": description.decoder,
            "heatmaps_are_probabilities": description.heatmaps_are_probabilities,
        },
        "network": network or {},
        "training": training or {},
    }
    if isinstance(description.decoding, PafDecoding):
        # Only multi-animal files get the new keys: single-animal files stay as they were.
        data["max_animals"] = description.max_animals
        data["output"]["paf"] = description.decoding.to_dict()
    return data


def _copy_into(source: Path, target: Path) -> None:
    if not source.is_file():
        raise ModelError(f"{source}: missing")
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)


# --- the format ---------------------------------------------------------------------------------


class OwnModel(ModelFormat):
    """The project's own format: a folder with ``model.json``, that file, or a file beside it."""

    name = "this project's model"

    def recognises(self, path: Path) -> bool:
        """Return True for a folder with model.json, that file, or a file beside it."""
        if path.is_dir():
            return (path / JSON_NAME).is_file()
        return path.name == JSON_NAME or (path.parent / JSON_NAME).is_file()

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Read model.json and check the graph it names."""
        return load_own_model(path)

    def pytorch_problem(self, path: Path) -> str | None:
        """None when model.json names a TorchScript file that is there; else what to do."""
        if torchscript_file(path) is not None:
            return None
        folder = model_folder(path)
        return (
            f"{folder} has no TorchScript file (its {JSON_NAME} names none in "
            "files.torchscript, or the file is missing), and [Pose] BACKEND = pytorch runs a "
            "model of this project from its TorchScript file: set BACKEND = onnxruntime (or "
            "openvino), or train the model again without --no-torchscript so that it gets "
            "model.pt"
        )

    def torchscript_file(self, description: ModelDescription) -> Path | None:
        """Return the model folder's TorchScript file (``files.torchscript``), if it has one."""
        if not (Path(description.model_file).parent / JSON_NAME).is_file():
            return None  # a description made in code around a bare file
        return torchscript_file(description.model_file)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a model described by a model.json."""
        return description.framework == FRAMEWORK

    def framework_text(self, description: ModelDescription) -> str:
        """Return the framework named in model.json."""
        return f"{description.framework} (this project's format)"
