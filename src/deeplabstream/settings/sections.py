"""The sections of settings.ini besides cameras (cameras declare their keys themselves)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deeplabstream.core.pinhole import CalibrationError, read_calibration
from deeplabstream.core.plugins import PluginError, values_if_from_file
from deeplabstream.core.schema import setting
from deeplabstream.experiments.registry import EXPERIMENTS
from deeplabstream.hardware.cameras import Camera, camera_class
from deeplabstream.hardware.stimulation import (
    StimulationDevice,
    device_class,
    device_from_settings,
)
from deeplabstream.outputs.interface import ChosenOutput
from deeplabstream.outputs.nwb_forms import (
    check_age,
    check_date_of_birth,
    check_one_line,
    check_species,
)
from deeplabstream.pose.ensemble.members import KEYPOINT_MAP_SYNTAX, parse_keypoint_map
from deeplabstream.pose.model_format import MODEL_FORMATS
from deeplabstream.pose.runtime.backends import BACKENDS
from deeplabstream.spatial.triangulation.live import TriangulationSpec


@dataclass(frozen=True)
class StreamingSettings:
    """``[Streaming]``: how frames travel from the cameras to their readers."""

    buffer_seconds: float = setting(
        2.0,
        doc="Length of each camera's shared-memory ring, in seconds of frames at its nominal rate "
        "(at least 8 frames). A reader (the recorder) may fall this far behind before frames are "
        "lost; lost frames are counted and reported.",
        minimum=0.1,
        maximum=60,
        unit="s",
    )
    display_rate: float = setting(
        30.0,
        doc="Highest refresh rate of the live view; the view always shows the newest frame.",
        minimum=1,
        maximum=120,
        unit="Hz",
    )
    on_camera_lost: Literal["stop", "continue"] = setting(
        "stop",
        doc="What a lost device camera (Basler, RealSense, OpenCV device: unplugged, no frames, "
        "failed) does to the session: `stop` ends it cleanly (every file finalised); `continue` "
        "reports it and lets the other cameras go on. Files and simulations are not watched: "
        "they end on their own.",
    )
    camera_lost_after: float = setting(
        0.5,
        doc="A device camera that delivers no frame for this long (or for 3 frame intervals, if "
        "longer) is reported lost. Waiting for the first frame (a hardware trigger) does not "
        "count.",
        minimum=0.1,
        maximum=3600,
        unit="s",
    )
    cpu_affinity: Literal["auto", "on", "off"] = setting(
        "auto",
        doc="Core placement. Pinned, the inference worker gets cores of its own (one per "
        "inference thread) and capture, recording and the main process share the rest, so side "
        "work never pre-empts a pose estimate, but is confined to those cores. `auto` pins when "
        "at least two cores remain for the side work (machines with 3 or more cores); `on` pins "
        "on 2 cores too (one core each: enough for one camera at 30 fps, not for a 150 Hz "
        "camera's recording); `off`: the operating system places every process. Pinned, the "
        "worker's ONNX Runtime threads also spin between frames instead of sleeping (lower "
        "latency where waking a core is slow, at the cost of keeping the worker's cores busy). "
        "`session.json` → `priority` says what was applied (docs/performance.md).",
    )
    side_niceness: int = setting(
        0,
        doc="Niceness added to the recorders of a live session, so that a pose estimate or a "
        "device write that becomes ready pre-empts encoding at once (5 weighs about a third of "
        "a normal process). Off (0) by default: when the CPU is saturated (fast cameras, other "
        "programs), niced recorders fall behind and lose frames (docs/performance.md); raise it "
        "only where the recorders keep up with room to spare. Offline sessions (videos replayed "
        "as fast as they are analysed) always record at normal priority.",
        minimum=0,
        maximum=19,
    )
    doorbell: Literal["auto", "pipe", "portable"] = setting(
        "auto",
        doc="How a camera's process tells its readers that a frame is in shared memory. `pipe`: "
        "raw records on non-blocking POSIX pipes (Linux, macOS; the faster one); `portable`: "
        "Python's multiprocessing connections and a sending thread (every platform, Windows "
        "included); `auto`: `pipe` on Linux and macOS, `portable` elsewhere. Either way a reader "
        "that falls behind never slows capture. The environment variable "
        "`DEEPLABSTREAM_DOORBELL` overrides this key.",
    )


@dataclass(frozen=True)
class RecordingSettings:
    """``[Recording]``: how raw frames are written to disk."""

    codec: Literal["h264", "ffv1"] = setting(
        "h264",
        doc="Video codec. `h264` (libx264, lossy, small files, `.mp4`) or `ffv1` (lossless, "
        "pixel-exact, large files, `.mkv`).",
    )
    crf: int = setting(
        18,
        doc="H.264 quality (constant rate factor): 0 is lossless, 18 visually lossless, 23 "
        "libx264's default; larger is smaller and worse. Ignored for FFV1.",
        minimum=0,
        maximum=51,
    )
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = (
        setting(
            "ultrafast",
            doc="H.264 speed/size trade-off. Slower presets make smaller files but need more CPU, "
            "which the live loop may need. Ignored for FFV1.",
        )
    )
    encoder_threads: int = setting(
        1,
        doc="Threads per camera's encoder (0 lets the encoder choose). One thread keeps cores "
        "free for capture and analysis.",
        minimum=0,
        maximum=64,
    )
    flush_interval: float = setting(
        1.0,
        doc="How often the frames table is flushed and a new video fragment is started, in "
        "seconds: the most a killed process can lose.",
        minimum=0.1,
        maximum=60,
        unit="s",
    )
    min_free_space: float = setting(
        1.0,
        doc="Recording does not start, and stops cleanly, when the output disk has less free "
        "space than this.",
        minimum=0,
        unit="GB",
    )
    warn_free_space: float = setting(
        5.0,
        doc="A warning is shown when the output disk's free space falls below this while "
        "recording.",
        minimum=0,
        unit="GB",
    )

    def __post_init__(self) -> None:
        """Check keys that depend on each other."""
        if self.warn_free_space < self.min_free_space:
            raise ValueError(
                f"WARN_FREE_SPACE ({self.warn_free_space:g} GB) must be at least MIN_FREE_SPACE "
                f"({self.min_free_space:g} GB)"
            )


@dataclass(frozen=True)
class OutputSettings:
    """``[Output]``: where sessions are written."""

    directory: Path = setting(
        Path("sessions"),
        doc="Folder that receives one session folder per run (`YYYY-mm-dd_HH-MM-SS`); "
        "relative to the settings file. `--output-dir` overrides it.",
    )
    naming: Literal["standard", "ibl"] = setting(
        "standard",
        doc="`ibl`: pose tables are also named as the International Brain Laboratory's pipeline "
        "names them, `_ibl_<camera>Camera.dlc.pqt` with `_ibl_<camera>Camera.times.npy` (one "
        "host time per row, seconds; NaN for frames the camera dropped), so IBL tools read "
        "them as they are. Name the "
        "cameras `left`, `right` and `body`. `standard`: only `<camera>.pose.pqt`.",
    )
    nwb: Literal["off", "on"] = setting(
        "off",
        doc="`on`: when the session stops, after every file is final, also write "
        "`session.nwb` (Neurodata Without Borders, with the ndx-pose extension): per camera "
        "the keypoints, skeleton, model and camera, the video as an external file with its "
        "frames' times, the experiment's trials and events, the `[Session]` metadata and these "
        "settings, on one clock from the session's start. Takes a few seconds; a failure is "
        "reported in `session.json` and never loses the other files. `deeplabstream-nwb "
        "SESSION_FOLDER` writes it after the fact. See docs/outputs.md.",
    )
    slp: Literal["off", "on"] = setting(
        "off",
        doc="`on`: when the session stops, also write `<camera>.slp` beside each pose file "
        "(SLEAP's format, with sleap-io): the video, the skeleton and every analysed frame's "
        "animals, a multi-animal model's identities as SLEAP tracks. `python -m "
        "deeplabstream.outputs.slp SESSION_FOLDER` writes them after the fact. See "
        "docs/outputs.md.",
    )
    lsl: Literal["off", "on"] = setting(
        "off",
        doc="`on`: send every pose (one `MoCap` stream per camera: x, y, likelihood per "
        "keypoint) and every experiment event (one `Markers` stream) on Lab Streaming Layer "
        "outlets, stamped on LSL's clock, so LabRecorder records them beside an ephys stream. "
        "Any machine on the network can then find and read them. `off`: no outlet, nothing "
        "listens. See docs/outputs.md.",
    )
    lsl_wait: float = setting(
        0.0,
        doc="With `LSL = on`: at Start Analysis, wait up to this many seconds for a consumer "
        "(LabRecorder, a script) to connect to every outlet before the first pose is sent. LSL "
        "keeps no history: a pose sent before an inlet connects is not received. 0: no wait.",
        minimum=0,
        maximum=120,
        unit="s",
    )


def _right_angle(value: int) -> None:
    if value not in (0, 90, 180, 270):
        raise ValueError("must be 0, 90, 180 or 270")


def _no_line_break(value: str) -> None:
    if any(c in value for c in "\r\n"):
        raise ValueError("must be one line")


@dataclass(frozen=True)
class SessionSettings:
    """``[Session]``: who and what a session is about, written to ``session.json``.

    The animal's name is also in the session folder's name.
    """

    animal: str = setting(
        "",
        doc="The animal's identifier (e.g. `mouse12`). It ends the session folder's name "
        "(`YYYY-mm-dd_HH-MM-SS_mouse12`, characters other than letters, digits, `-` and `_` "
        "replaced by `-`) and is written to `session.json`. Empty: the folder has no suffix.",
        check=_no_line_break,
    )
    experimenter: str = setting(
        "",
        doc="Who runs the session (`session.json`, `session.nwb`). With `[Output] NWB = on` it "
        "must be 'Last, First' (`Doe, Jane`; several separated by `;`), the form NWB and DANDI "
        "ask for; without an NWB output any one line is taken.",
        check=check_one_line,
        allowed="one line; 'Last, First' (several separated by `;`) when NWB is written",
    )
    notes: str = setting("", doc="Free text about the session, one line (`session.json`).")
    # -- the subject and the lab, for session.nwb (settings/subject.py checks their forms) --
    species: str = setting(
        "",
        doc="The animal's species as a Latin binomial (`Mus musculus`) or an NCBI taxonomy "
        "link (`http://purl.obolibrary.org/obo/NCBITaxon_10090`): NWB's subject species.",
        check=check_species,
        allowed="a Latin binomial or an NCBI taxonomy link, or empty",
    )
    age: str = setting(
        "",
        doc="The animal's age at the session as an ISO 8601 duration: `P90D` (90 days), `P12W`, "
        "or a range `P8W/P10W`. Give it or `DATE_OF_BIRTH` (NWB's subject age).",
        check=check_age,
        allowed="an ISO 8601 duration or range, or empty",
    )
    date_of_birth: str = setting(
        "",
        doc="The animal's date of birth, ISO 8601 (`2026-08-01`; the computer's time zone "
        "unless one is given). Give it or `AGE`.",
        check=check_date_of_birth,
        allowed="an ISO 8601 date, or empty",
    )
    sex: Literal["U", "M", "F", "O", "XX", "XO"] = setting(
        "U",
        doc="The animal's sex: `M`, `F`, `O` (other), `U` (unknown); `XX` or `XO` for C. "
        "elegans (NWB's subject sex).",
    )
    strain: str = setting("", doc="The animal's strain or line (`C57BL/6J`).", check=check_one_line)
    institution: str = setting(
        "", doc="The institution where the session ran (NWB's institution).", check=check_one_line
    )
    lab: str = setting("", doc="The lab that ran the session (NWB's lab).", check=check_one_line)
    experiment_description: str = setting(
        "",
        doc="What the experiment is about, one line (NWB's experiment description; empty: the "
        "experiment's name and its own description).",
        check=check_one_line,
    )
    planned_duration: float | None = setting(
        None,
        doc="Stop the stream (and so recording, analysis and the experiment, with every file "
        "finalised) after this many seconds of streaming. Empty: run until stopped. "
        "`--duration` overrides it.",
        minimum=1,
        unit="s",
    )
    verify: Literal["off", "after"] = setting(
        "off",
        doc="`after`: verify each recorded session when it ends (`deeplabstream-verify`: its "
        "files, its decisions re-derived, its keypoints re-analysed from its recording), the "
        "verdict written to `verify/` beside `session.json` and shown (the window: in the "
        "background, and in the console when the window closes before it ended; "
        "`DeepLabStream.py`: after the session's summary). Ctrl-C or SIGTERM stops it, saying "
        "how to run it later. docs/verify.md.",
    )


def _lab_format_names(text: str) -> tuple[str, ...]:
    """``[Pose] MODEL_FORMATS``: modules of the lab's ``formats/`` folder (nothing imported)."""
    names = tuple(item.strip() for item in text.split(",") if item.strip())
    for name in names:
        if MODEL_FORMATS.settings_name(name) in MODEL_FORMATS.names():
            raise ValueError(
                f"{name!r} is a format of the program or an installed package, tried on every "
                "model already: MODEL_FORMATS names the lab's own formats (modules of the "
                "formats/ folder beside this file)"
            )
        try:  # a module of the lab's formats/ folder (a path or import path is refused)
            MODEL_FORMATS.require(name)
        except PluginError as error:
            raise ValueError(str(error)) from None
    return names


def parse_smooth_param(text: str) -> tuple[float, ...]:
    """Parse ``EKS_SMOOTH_PARAM``: one number > 0, or several, comma-separated."""
    values = tuple(float(word) for word in text.split(",") if word.strip())
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError
    return values


def _backend_name(text: str) -> str:
    """``[Pose] BACKEND``: a name of the backends' registry (lower case), else what is known."""
    try:  # registered, or a module of the lab's backends/ folder (a path is refused)
        BACKENDS.require(text)
    except PluginError as error:
        raise ValueError(str(error)) from None
    return BACKENDS.settings_name(text.strip())


@dataclass(frozen=True)
class PoseSettings:
    """``[Pose]``: the pose-estimation model and how it runs (with `--pose-enabled`)."""

    model_path: tuple[Path, ...] = setting(
        (),
        doc="Pose model: this project's model folder (with `model.json`); a DeepLabCut 3.0 "
        "export (the `.pt` file of `deeplabcut.export_model`); a Lightning Pose model folder "
        "(`config.yaml` with its `tb_logs/.../*.ckpt` checkpoint, or with `exports_onnx/`), a "
        "`.ckpt` file, or one exported `.onnx` file. The kind is detected; DeepLabCut and "
        "checkpoint models are converted to ONNX once and cached (docs/pose-models.md). Empty: "
        "the bundled model of the simulated arena. `--model` overrides it. Several models of the "
        "same keypoints (separated by `;`, or one per line) run as an ensemble: on every frame, "
        "their median is the keypoints and their spread a confidence (docs/ensembles.md).",
    )
    keypoint_map: tuple[tuple[str, str], ...] = setting(
        (),
        parse=parse_keypoint_map,
        allowed=KEYPOINT_MAP_SYNTAX,
        doc="An ensemble's models named the same body part differently: `snout=nose` reads a "
        "model's `snout` as the ensemble's `nose` (the ensemble's keypoints are the first "
        "model's). Empty: every model names them as the first does.",
    )
    ensemble_smoothing: Literal["off", "causal"] = setting(
        "off",
        doc="An ensemble: `causal` runs the Ensemble Kalman Smoother's forward filter live on "
        "each camera (the model of the `ensemble-kalman-smoother` package, `EKS_SMOOTH_PARAM`, "
        "`EKS_VAR_MODE`): its positions go to `<camera>.eks_causal.csv` and to rules that read "
        "`SMOOTHED = true`. See docs/ensembles.md for how far it lags behind the offline "
        "smoother.",
    )
    eks_smooth_param: tuple[float, ...] = setting(
        (10.0,),
        parse=parse_smooth_param,
        allowed="a number > 0 (px² per frame), or one per keypoint of the ensemble, "
        "comma-separated",
        doc="`ENSEMBLE_SMOOTHING = causal`: EKS's smoothing parameter `s`, how far a keypoint may "
        "move from one analysed frame to the next (the random walk's variance): smaller "
        "smooths more and lags more. `deeplabstream-eks` fits it on a recorded session and "
        "prints the line to paste here.",
    )
    eks_var_mode: Literal["confidence_weighted_var", "var"] = setting(
        "confidence_weighted_var",
        doc="`ENSEMBLE_SMOOTHING = causal` (and `deeplabstream-eks`): EKS's observation noise, "
        "the models' variance divided by their mean likelihood (`confidence_weighted_var`, the "
        "package's default) or the plain variance (`var`).",
    )
    model_formats: tuple[str, ...] = setting(
        (),
        parse=_lab_format_names,
        allowed="modules of the formats/ folder beside this file, by name, comma-separated",
        doc="The lab's own model formats, tried on MODEL_PATH (and each camera's own) after the "
        "built-in and installed ones: modules of the `formats/` folder beside this settings "
        "file, by their file's name (`my_format`, or `my_format:MyFormat` for one class of "
        "several), comma-separated. Only the formats named here are imported; empty: none of "
        "the lab's. See docs/plugins.md, Model formats.",
    )
    precision: Literal["fp32", "tf32", "fp16", "int8"] = setting(
        "fp32",
        doc="`fp32` is IEEE fp32 on every device (TensorFloat-32 off on NVIDIA GPUs); `tf32` "
        "runs the same graph with TensorFloat-32 math on an NVIDIA GPU (DEVICE = cuda or "
        "tensorrt: faster, keypoints move; docs/gpu.md). `fp16` converts DeepLabCut and "
        "Lightning Pose checkpoint models to half precision (faster on GPUs; keypoints move, "
        "see docs/pose-models.md for how much). A Lightning "
        "Pose export picks its precision by the `.onnx` file MODEL_PATH names. `int8` runs the "
        "model quantized beforehand, calibrated on your own video, by `python -m "
        "deeplabstream.pose.quantize MODEL VIDEO` (onnxruntime backend only; the command "
        "measures how far keypoints move and `deeplabstream-inspect --precision int8` shows "
        "it); without that file the session is refused before the start.",
    )
    backend: str = setting(
        "onnxruntime",
        parse=_backend_name,
        allowed="one of onnxruntime, pytorch, openvino, a module of the backends/ folder beside "
        "this file, or the name of an installed package's backend (entry point group "
        "deeplabstream.backends)",
        doc="Inference library. `pytorch` runs a model of this project from its TorchScript file "
        "(`model.pt`, named in `model.json`), and DeepLabCut exports and Lightning Pose "
        "checkpoints as the network rebuilt from their file; an ONNX graph only (the bundled "
        "model, a Lightning Pose or sleap-nn export) is refused before the start. "
        "`openvino` runs the ONNX graph with Intel's OpenVINO on the CPU (the optional package: "
        "`pip install -r requirements-openvino.txt`); see docs/pose-models.md for which is "
        "fastest.",
    )
    device: Literal["cpu", "cuda", "tensorrt", "directml", "coreml"] = setting(
        "cpu",
        doc="Where the network runs: ONNX Runtime's CPU, CUDA, TensorRT, DirectML (Windows) or "
        "CoreML (macOS) execution provider (PyTorch: cpu or cuda). Asking for one that is not "
        "installed, or whose CUDA/cuDNN libraries are missing, stops before the start with a "
        "message naming what is available and the command that installs it; it never falls "
        "back to the CPU. Options and the TensorRT engine cache: docs/gpu.md.",
    )
    input_on_device: Literal["auto", "off"] = setting(
        "auto",
        doc="`auto`: on an NVIDIA GPU (DEVICE = cuda or tensorrt, BACKEND = onnxruntime) a "
        "model that takes the normalised image at the frame's own size gets the frame's bytes "
        "and normalises them in its graph on the GPU, instead of on the CPU (the same numbers; "
        "session.json says where each model's input was prepared, and why not on the GPU). "
        "`off`: always on the CPU. See docs/gpu.md.",
    )
    cuda_graph: Literal["off", "on"] = setting(
        "off",
        doc="`on`: on an NVIDIA GPU (DEVICE = cuda, BACKEND = onnxruntime or pytorch) the "
        "network's kernels are captured once per input size as a CUDA graph and replayed, "
        "which saves their launch time. Each graph is used only after it gave the plain run's "
        "outputs on two inputs; a graph that does not is left off for that size, and "
        "session.json says why. Off by default (docs/gpu.md says what was measured).",
    )
    threads: int = setting(
        0,
        doc="CPU threads for inference (0: one less than the number of cores, at least 1 and at "
        "most 4, leaving a core to capture and recording).",
        minimum=0,
        maximum=64,
    )
    wait: Literal["auto", "block", "spin"] = setting(
        "auto",
        doc="How the inference worker waits for the next frame: `block` sleeps until a frame "
        "wakes it (the least CPU); `spin` sleeps until shortly before the next frame is due and "
        "then stays awake for it, so no wake-up delays the frame (0.1-0.5 ms on virtual "
        "machines; about a tenth of a core at 200 fps); `auto` spins for cameras at 100 fps or "
        "more. See docs/performance.md.",
    )
    max_batch: int = setting(
        8,
        doc="Most frames analysed in one batch (the newest frame of each camera of the same "
        "size goes in one batch).",
        minimum=1,
        maximum=64,
    )
    max_animals: int = setting(
        2,
        doc="Multi-animal models (SLEAP bottom-up exports): the most animals reported per frame; "
        "the best-scoring ones are kept. Each keeps its identity across frames (the tracker, "
        "TRACK_MAX_DISTANCE). Single-animal models ignore it.",
        minimum=1,
        maximum=16,
    )
    track_max_distance: float = setting(
        100.0,
        doc="Multi-animal models: the farthest an animal may move between two analysed frames "
        "(mean over its keypoints) and keep its identity; farther, it counts as another animal.",
        minimum=1,
        maximum=10000,
        unit="px",
    )
    track_max_gap: float = setting(
        1.0,
        doc="Multi-animal models: seconds an animal may go unseen before its identity is "
        "released (a later animal may then take it; counted as re-acquired in session.json).",
        minimum=0,
        maximum=3600,
        unit="s",
    )
    appearance_identity: Literal["on", "off"] = setting(
        "on",
        doc="Multi-animal models: `on`: each camera learns the animals' looks while they are "
        "apart (in a process of its own, never on the frame's path) and names them by their "
        "looks after they lay on each other; `off`: identities from motion only, no learning "
        "(the identity confidence is still written, and animals in contact that it is unsure "
        "of are still left unnamed). See docs/sleap-models.md, Identities.",
    )
    merged_instance_repair: Literal["off", "on"] = setting(
        "off",
        doc="Multi-animal models: `off`: the pose files hold the model's animals exactly as its "
        "framework assembled them, each whole under its identity (nothing moved between "
        "animals, dropped or added). `on`: where animals touch, the tracker re-assigns "
        "keypoints between them one keypoint type at a time (repairing a bottom-up decoder's "
        "merged instances: the front of one animal grouped with the back of the other); what it "
        "moved is counted in session.json and named in the pose table. See docs/pose-models.md, "
        "Several animals.",
    )
    likelihood_threshold: float = setting(
        0.5,
        doc="Keypoints with a lower likelihood count as not seen: hidden in the live view and "
        "counted as lost tracking.",
        minimum=0,
        maximum=1,
    )
    dynamic_crop: Literal["off", "on"] = setting(
        "off",
        doc="`on`: analyse only the region around the last confident pose (plus "
        "DYNAMIC_CROP_MARGIN), and the whole frame whenever tracking is lost: several times "
        "faster for small animals in large frames (DeepLabCut-Live's `dynamic`). Needs a model "
        "that runs at any input size (DeepLabCut 3.0 exports); this project's own models and "
        "Lightning Pose run at their fixed input size and stop with a message. Each camera may "
        "override it. See docs/pose-models.md.",
    )
    dynamic_crop_margin: int = setting(
        128,
        doc="Dynamic cropping: pixels added on every side of the confident keypoints' bounding "
        "box. It must cover the animal's movement between two analysed frames and give the "
        "network enough context: smaller margins are faster and move keypoints further from the "
        "full frame's (docs/pose-models.md).",
        minimum=0,
        maximum=4096,
        unit="px",
    )
    dynamic_crop_likelihood: float | None = setting(
        None,
        doc="Dynamic cropping: keypoints at or above this likelihood are confident. Empty: "
        "LIKELIHOOD_THRESHOLD (the camera's, if it sets one).",
        minimum=0,
        maximum=1,
    )
    dynamic_crop_min_keypoints: int | None = setting(
        None,
        doc="Dynamic cropping: confident keypoints needed to crop the next frame; with fewer, "
        "tracking is lost and the next frame is analysed whole. Empty: all the model's "
        "keypoints. `1` is DeepLabCut-Live's rule.",
        minimum=1,
        maximum=1000,
    )
    dynamic_crop_size_step: int = setting(
        64,
        doc="Dynamic cropping: crop widths and heights are rounded up to a multiple of this (and "
        "of the network's down-sampling, 32 for CSPNeXt), so that only a few input shapes exist.",
        minimum=1,
        maximum=4096,
        unit="px",
    )
    dynamic_crop_refresh: int = setting(
        30,
        doc="Dynamic cropping: after this many cropped frames in a row, one frame is analysed "
        "whole: it renews the full frame's channel statistics that crops of CSPNeXt networks "
        "are given (docs/pose-models.md). 0: only when tracking is lost.",
        minimum=0,
        maximum=100_000,
        unit="frames",
    )
    crop_from: Literal["same_frame", "previous_frame"] = setting(
        "same_frame",
        doc="Two-stage models (a SLEAP top-down model, a DeepLabCut 3.0 top-down or RTMPose "
        "model, a Lightning Pose crop-zoom pair: a detector, then the pose model on crops): "
        "`same_frame` cuts each frame's crops "
        "around what the detector found on that frame (the frameworks' own way); "
        "`previous_frame` cuts them around the camera's previous frame's detections, and runs "
        "the detector on the frame after its keypoints are out, so frame -> keypoints does not "
        "wait for it (the worker's time per frame stays the same). A camera's first frame, and "
        "a frame whose animal left its crop, use their own detections. Other models ignore it. "
        "See docs/performance.md.",
    )


#: ``DEADLINE_MS = auto``: a frame may take this many frame intervals of its camera: one waiting
#: for the worker (it takes the newest frame), one for the loop's own work (which must fit in an
#: interval to keep up), and one of slack for a loaded machine (docs/performance.md) ...
AUTO_DEADLINE_INTERVALS = 3
#: ... and at least this long (fast cameras): a loaded 2-core machine still meets it with a
#: few-ms model.
MIN_AUTO_DEADLINE_MS = 20.0


def parse_deadline(text: str) -> float | Literal["auto", "off"]:
    """Parse ``DEADLINE_MS``: ``auto`` (also empty), ``off``, or milliseconds > 0."""
    word = text.strip().lower()
    if word in ("", "auto"):
        return "auto"
    if word == "off":
        return "off"
    value = float(word.removesuffix("ms").strip())
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value


def deadline_option(text: str) -> float | Literal["auto", "off"]:
    """``--deadline`` of the commands: :func:`parse_deadline`, with argparse's error."""
    try:
        return parse_deadline(text)
    except ValueError:
        message = f"{text!r}: give a number of ms > 0, auto or off"
        raise argparse.ArgumentTypeError(message) from None


def parse_percent(text: str) -> float:
    """Parse a percentage from 0 to 100, with or without its ``%`` sign."""
    value = float(text.strip().removesuffix("%").strip())
    if not 0 <= value <= 100:
        raise ValueError
    return value


def _experiment_name(text: str) -> str:
    """``[Experiment] NAME``: a name or an ``.ini`` path, never code (nothing imported here)."""
    # A .py file or an import path such as package.module:Class is refused: settings are data.
    name = text.strip()
    try:
        EXPERIMENTS.refuse_code(name)
    except PluginError as error:
        raise ValueError(str(error)) from None
    return name


@dataclass(frozen=True)
class ExperimentSettings:
    """``[Experiment]``: the closed-loop protocol run with `--experiment-enabled`."""

    name: str = setting(
        "ExampleExperiment",
        doc="The experiment: a config or module of the `experiments/` folder beside this "
        "settings file (`my_config` for `experiments/my_config.ini`, `my_module` or "
        "`my_module:MyClass`), a shipped config by name (`freezing_opto`), a shipped or "
        "installed class (`examples:AlternatingReward`), or the path of an `.ini` file. Never a "
        "`.py` file: settings are data, so the lab's Python goes in the `experiments/` folder and "
        "is named by its module (`--experiment` may name a `.py` file). See docs/experiments.md. "
        "`--experiment` overrides it.",
        parse=_experiment_name,
        allowed="a name, or the path of an `.ini` file",
    )
    deadline_ms: float | Literal["auto", "off"] = setting(
        "auto",
        doc="The loop's deadline: every analysed frame's frame -> command (frames with an "
        "action), frame -> decision (with an experiment) or frame -> pose ready (without one) is "
        "compared with it, and a miss is counted per camera and attributed to the stage that "
        "took the time (`session.json` -> `health`). `auto`: three frame intervals of the "
        "camera, at least 20 ms (100 ms at 30 fps, 50 ms at 60 fps, 20 ms from 150 fps). `off`: "
        "no deadline (a stall is then a warning, not an error). Live sessions only: replays "
        "(`PACING = free` or `lockstep`) have none. docs/performance.md explains the choice.",
        parse=parse_deadline,
        allowed="`auto`, `off`, or a number of ms > 0",
    )
    deadline_miss_tolerance: float = setting(
        1.0,
        doc="Share of analysed frames that may miss the deadline. A session above it (and at "
        "least 3 misses) ends with an error naming the stage and the figure (exit code 1) when "
        "an experiment ran or DEADLINE_MS is a number; pose estimation alone on the `auto` "
        "deadline (the experiment's) gets a warning instead.",
        parse=parse_percent,
        allowed="a percentage from 0 to 100 (`1` or `1 %`)",
        unit="%",
    )

    def deadline_ns(self, nominal_fps: float | None) -> int | None:
        """Return the deadline of a camera running at ``nominal_fps``, in ns; None when off.

        ``auto``: :data:`AUTO_DEADLINE_INTERVALS` frame intervals, at least
        :data:`MIN_AUTO_DEADLINE_MS`; an unknown rate counts as 30 fps.
        """
        if self.deadline_ms == "off":
            return None
        if self.deadline_ms == "auto":
            fps = nominal_fps if nominal_fps and nominal_fps > 0 else 30.0
            return round(max(AUTO_DEADLINE_INTERVALS * 1e9 / fps, MIN_AUTO_DEADLINE_MS * 1e6))
        return round(float(self.deadline_ms) * 1e6)


@dataclass(frozen=True)
class LatencyTestSettings:
    """``[LatencyTest]``: the latency self-test (`DeepLabStream.py --latency-test`).

    docs/latency-test.md.
    """

    device: str = setting(
        "",
        doc="The `[Device NAME]` that is the stimulus board (TYPE = serial, firmware 1.1 or "
        "later). Empty: the only serial device. `--simulated-board` provides one.",
    )
    camera: str = setting("", doc="The camera that sees the LED. Empty: the first camera.")
    channel: int = setting(2, doc="The board channel the LED is wired to.", minimum=0, maximum=11)
    answer_channel: int = setting(
        11,
        doc="The app answers each flash with `OFF` on this channel: a channel with nothing "
        "wired to it (any command on a channel other than the LED's answers a flash).",
        minimum=0,
        maximum=11,
    )
    min_interval: float = setting(
        0.3, doc="Shortest random wait between flashes.", minimum=0.001, maximum=60, unit="s"
    )
    max_interval: float = setting(
        0.7, doc="Longest random wait between flashes.", minimum=0.001, maximum=60, unit="s"
    )
    on_time: float = setting(
        0.0,
        doc="How long each flash stays on. 0: two frame intervals, at least 0.1 s, so that one "
        "frame sees the LED fully on.",
        minimum=0,
        maximum=10,
        unit="s",
    )
    region: tuple[str, ...] = setting(
        (),
        doc="The LED's region in the image: `X_MIN, Y_MIN, X_MAX, Y_MAX` (pixels). Empty: found "
        "from the first flashes (the region that switches between two steady levels).",
    )
    threshold: float = setting(
        0.1,
        doc="The lit fraction of a frame at which the LED counts as seen (0 < t <= 1).",
        minimum=0.001,
        maximum=1.0,
    )
    search: float = setting(
        3.0,
        doc="Seconds at the start spent learning the LED's off and on levels (and finding its "
        "region); flashes then are not answered.",
        minimum=0.1,
        maximum=120,
        unit="s",
    )
    duration: float = setting(
        30.0, doc="Length of the test without `--duration`.", minimum=1, maximum=86400, unit="s"
    )
    seed: int = setting(
        0, doc="The board's random seed for the flash times; 0: a new one per run.", minimum=0
    )

    def __post_init__(self) -> None:
        """Check the pairs of keys that depend on each other."""
        if self.min_interval > self.max_interval:
            raise ValueError(
                f"MIN_INTERVAL {self.min_interval} s is longer than MAX_INTERVAL "
                f"{self.max_interval} s"
            )
        if self.answer_channel == self.channel:
            raise ValueError(
                f"ANSWER_CHANNEL is the LED's CHANNEL {self.channel}: a command on the LED's "
                "channel ends the test; choose a free channel"
            )
        if self.region:
            try:
                box = [float(value) for value in self.region]
            except ValueError:
                box = []
            if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
                raise ValueError(
                    f"REGION = {', '.join(self.region)}: expected 4 numbers X_MIN, Y_MIN, X_MAX, "
                    "Y_MAX with X_MIN < X_MAX and Y_MIN < Y_MAX (pixels), or nothing"
                )

    def region_box(self) -> tuple[float, float, float, float] | None:
        """REGION as numbers (x_min, y_min, x_max, y_max), or None when it is to be found."""
        if not self.region:
            return None
        x_min, y_min, x_max, y_max = (float(value) for value in self.region)
        return x_min, y_min, x_max, y_max


@dataclass(frozen=True)
class DeviceSettings:
    """One ``[Device NAME]`` section: the device's TYPE and its own typed keys.

    ``options`` is the device's ``settings_class`` instance; None: that type's defaults.
    """

    type: str = "log"
    options: Any = None
    # The settings file's folder, where the lab's own devices/ folder is (None: the process's);
    # the worker that opens the device finds a lab's device through it.
    settings_folder: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        """Fill in the type's default options, so that ``options`` is always its dataclass."""
        if self.options is None:
            options = device_class(self.type, self.settings_folder).settings_class()
            object.__setattr__(self, "options", options)

    def create(self) -> StimulationDevice:
        """Return the device these settings describe, not yet opened."""
        return device_from_settings(self.type, self.options, self.settings_folder)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle a lab device's options by value (their class is unknown to other processes)."""
        values = values_if_from_file(self.options)
        options = None if values is not None else self.options
        return (_device_settings, (self.type, options, self.settings_folder, values))


def _device_settings(
    kind: str, options: Any, settings_folder: Path | None, values: dict[str, Any] | None
) -> DeviceSettings:
    """Rebuild pickled :class:`DeviceSettings` (its options from ``values`` when given)."""
    if values is not None:
        options = device_class(kind, settings_folder).settings_class(**values)
    return DeviceSettings(kind, options, settings_folder)


@dataclass(frozen=True)
class CameraCommonSettings:
    """Keys every ``[Camera NAME]`` section accepts, whatever its source."""

    flip: bool = setting(
        False,
        doc="Mirror the frames left-right before pose estimation, so that a network trained on "
        "one side serves the other (IBL's right camera). Keypoints are mapped back to this "
        "camera's own pixels; recorded video is never flipped.",
    )
    rotate: int = setting(
        0,
        doc="Turn the frames clockwise by 0, 90, 180 or 270 degrees in the capture process, "
        "before they are recorded, analysed or shown (a camera mounted sideways or upside "
        "down); 90 and 270 swap WIDTH and HEIGHT. One frame copy per frame when not 0. Not "
        "with a RealSense's DEPTH or INFRARED images.",
        check=_right_angle,
        unit="degrees",
    )
    mirror: Literal["off", "horizontal", "vertical", "both"] = setting(
        "off",
        doc="Mirror the frames (after ROTATE) in the capture process: `horizontal` swaps left "
        "and right, `vertical` top and bottom. Unlike FLIP (pose estimation only), the "
        "recording, the regions and the live view all see the mirrored frames. The Camera tab "
        "changes it while streaming.",
    )
    pixels_per_mm: float | None = setting(
        None,
        doc="This camera's calibration: image pixels per millimetre on the floor (measure a "
        "known length in a frame). Behaviour classifiers compute their distances, speeds and "
        "accelerations in mm with it, so a classifier trained on one camera works on another. "
        "Empty: a classifier uses the calibration it was trained with.",
        minimum=0.001,
        maximum=10000,
        unit="px/mm",
    )
    record: bool = setting(
        True,
        doc="Record this camera at Start Recording (`false`: it is streamed, shown and analysed "
        "but no video is written).",
    )
    model_path: tuple[Path, ...] = setting(
        (),
        doc="This camera's own pose model (any kind `[Pose] MODEL_PATH` takes, or several: an "
        "ensemble), for rigs whose cameras see different views. Empty: the shared model of "
        "`[Pose] MODEL_PATH`. Each model is loaded once, however many cameras use it.",
    )
    keypoint_map: tuple[tuple[str, str], ...] | None = setting(
        None,
        parse=parse_keypoint_map,
        allowed=KEYPOINT_MAP_SYNTAX,
        doc="This camera's ensemble: its models' keypoint names mapped onto the first model's "
        "(as `[Pose] KEYPOINT_MAP`). Empty: `[Pose] KEYPOINT_MAP`.",
    )
    likelihood_threshold: float | None = setting(
        None,
        doc="This camera's likelihood threshold for the live view and the share of frames with "
        "tracking lost. Empty: `[Pose] LIKELIHOOD_THRESHOLD`.",
        minimum=0,
        maximum=1,
    )
    dynamic_crop: Literal["off", "on"] | None = setting(
        None,
        doc="This camera's dynamic cropping (`on` or `off`). Empty: `[Pose] DYNAMIC_CROP`.",
    )
    dynamic_crop_margin: int | None = setting(
        None,
        doc="This camera's crop margin. Empty: `[Pose] DYNAMIC_CROP_MARGIN`.",
        minimum=0,
        maximum=4096,
        unit="px",
    )
    dynamic_crop_likelihood: float | None = setting(
        None,
        doc="This camera's likelihood for cropping. Empty: `[Pose] DYNAMIC_CROP_LIKELIHOOD`, "
        "else this camera's LIKELIHOOD_THRESHOLD.",
        minimum=0,
        maximum=1,
    )
    dynamic_crop_min_keypoints: int | None = setting(
        None,
        doc="This camera's confident keypoints needed to crop. Empty: `[Pose] "
        "DYNAMIC_CROP_MIN_KEYPOINTS`.",
        minimum=1,
        maximum=1000,
    )
    dynamic_crop_size_step: int | None = setting(
        None,
        doc="This camera's crop size step. Empty: `[Pose] DYNAMIC_CROP_SIZE_STEP`.",
        minimum=1,
        maximum=4096,
        unit="px",
    )
    dynamic_crop_refresh: int | None = setting(
        None,
        doc="This camera's whole-frame refresh interval. Empty: `[Pose] DYNAMIC_CROP_REFRESH`.",
        minimum=0,
        maximum=100_000,
        unit="frames",
    )


@dataclass(frozen=True)
class TriangulationSettings:
    """``[Triangulation]``: live 3D keypoints from several calibrated cameras (docs/3d.md)."""

    calibration: Path | None = setting(
        None,
        doc="Anipose's `calibration.toml` of the cameras (relative to the settings file; "
        "`deeplabstream-calibrate` makes one). With it, the poses of the calibrated "
        "cameras are triangulated live into `points3d.csv` and offered to experiments (3D "
        "triggers). Empty: no triangulation.",
    )
    cameras: tuple[str, ...] = setting(
        (),
        doc="The cameras to triangulate, comma-separated (at least two; each must be in the "
        "calibration and declared as `[Camera NAME]`). Empty: every declared camera that the "
        "calibration names.",
    )
    min_likelihood: float = setting(
        0.5,
        doc="A camera's keypoint below this likelihood is not used for that keypoint; a "
        "keypoint seen well by fewer than two cameras is not triangulated.",
        minimum=0.0,
        maximum=1.0,
    )
    max_pairing_ms: float = setting(
        20.0,
        doc="Sets whose cameras' frame times spread more than this are not triangulated (counted "
        "in `session.json` as `sets_skipped_pairing`).",
        minimum=0.0,
        unit="ms",
    )

    def spec(self, declared: Sequence[str], where: str) -> TriangulationSpec | None:
        """Return what the inference worker triangulates; None without a calibration.

        Raises :class:`CalibrationError` when the file is missing or malformed, or a camera is in
        only one of calibration and settings.
        """
        if self.calibration is None:
            return None
        key = f"[Triangulation] CALIBRATION in {where}"
        try:
            calibrated = read_calibration(self.calibration)
        except CalibrationError as error:
            raise CalibrationError(f"{key}: {error}") from None
        chosen = self.cameras or tuple(name for name in declared if name in calibrated)
        for name in chosen:
            if name not in declared:
                raise CalibrationError(
                    f"[Triangulation] CAMERAS in {where} names {name!r}, which the settings do "
                    f"not declare (cameras: {', '.join(declared)}): fix CAMERAS"
                )
            if name not in calibrated:
                raise CalibrationError(
                    f"[Triangulation] CAMERAS in {where} names {name!r}, which "
                    f"{self.calibration} does not calibrate (it has {', '.join(calibrated)}): "
                    "fix CAMERAS or recalibrate with this camera"
                )
        if len(chosen) < 2:
            raise CalibrationError(
                f"{key}: triangulation needs two calibrated cameras, and only "
                f"{', '.join(chosen) or 'none'} of the declared cameras ({', '.join(declared)}) "
                f"are in {self.calibration} (it has {', '.join(calibrated)}): name the cameras "
                "as the calibration does, or recalibrate"
            )
        return TriangulationSpec(
            self.calibration, tuple(chosen), self.min_likelihood, self.max_pairing_ms
        )


@dataclass(frozen=True)
class CameraSettings:
    """One ``[Camera NAME]`` section: the source's name and its own typed keys."""

    name: str
    source: str
    options: Any  # the source's settings dataclass (cameras.<source>.<Class>.settings_class)
    common: CameraCommonSettings = CameraCommonSettings()
    # The settings file's folder, where the lab's own cameras/ folder is (None: settings made
    # in code); a process that opens the camera finds a lab's camera through it.
    settings_folder: Path | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the options by value when their class comes from a lab's module.

        A capture process does not know a lab module's private name; the camera's settings class
        rebuilds them there.
        """
        values = values_if_from_file(self.options)
        options = None if values is not None else self.options
        fields = (self.name, self.source, options, self.common, self.settings_folder, values)
        return (_camera_settings, fields)

    def camera_class(self) -> type[Camera]:
        """Return the camera class ``SOURCE`` names (a lab's camera found beside the settings)."""
        return camera_class(self.source, self.settings_folder)


def _camera_settings(
    name: str,
    source: str,
    options: Any,
    common: CameraCommonSettings,
    settings_folder: Path | None,
    values: dict[str, Any] | None,
) -> CameraSettings:
    """Rebuild pickled :class:`CameraSettings` (its options from ``values`` when given)."""
    if values is not None:
        options = camera_class(source, settings_folder).settings_class(**values)
    return CameraSettings(name, source, options, common, settings_folder)


@dataclass(frozen=True)
class Settings:
    """Everything read from one settings file, typed and validated."""

    source_file: Path
    streaming: StreamingSettings
    cameras: tuple[CameraSettings, ...]
    recording: RecordingSettings
    output: OutputSettings
    pose: PoseSettings
    experiment: ExperimentSettings
    devices: dict[str, DeviceSettings] = field(default_factory=dict)
    latency_test: LatencyTestSettings = field(default_factory=LatencyTestSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    triangulation: TriangulationSettings = field(default_factory=TriangulationSettings)
    #: The file's [Output NAME] sections, in order: each output plugin and its settings
    #: (settings/outputs.py chooses the outputs from these and the [Output] keys).
    outputs: tuple[ChosenOutput, ...] = ()
    experiment_named: bool = False  # the file's [Experiment] has a NAME

    @property
    def experiment_chosen(self) -> bool:
        """Whether the file names an experiment (only ``DEADLINE_MS`` or its tolerance: none)."""
        return self.experiment_named

    def camera(self, name: str) -> CameraSettings:
        """Return the camera called ``name``."""
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(name)
