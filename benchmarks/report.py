"""Write ``docs/benchmarks.md`` from the JSON files the benchmarks saved in ``benchmarks/results``.

    python -m benchmarks.report          (run_all does it after the benchmarks)

Every table in the page comes from a results file, with the machine and the time it ran on; a
benchmark without a results file is listed as not run. The page is generated: edit this module,
not the page.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR
from deeplabstream.core.figures import format_number

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
ORDER = (
    "transport",
    "transport_doorbells",
    "inference",
    "converted_models",
    "dlc_model",
    "dynamic_crop",
    "two_stage",
    "sleap_single",
    "end_to_end",
    "high_rate",
    "closed_loop",
    "latency_test",
    "profile_session",
    "forward_prediction",
    "gpu",
    "recording",
    "replay",
    "verify",
    "lsl",
    "multi_animal",
    "ensembles",
    "behaviour_classifier",
    "triangulation",
    "soak",
)
TITLES = {
    "transport": "Frames between processes (shared-memory ring + pipe vs multiprocessing.Queue)",
    "transport_doorbells": "The two frame doorbells: POSIX pipe vs portable (multiprocessing "
    "connections), both with the shared-memory ring",
    "inference": "Pose inference: whole path in the app vs the naive loop",
    "converted_models": "DeepLabCut and Lightning Pose models: ONNX Runtime (and OpenVINO) vs "
    "PyTorch eager",
    "dlc_model": "A user's DeepLabCut 3.0 model (cspnext_s, 640x480): the project at fp32, fp16 "
    "and int8 vs DeepLabCut-Live 1.1",
    "dynamic_crop": "Dynamic cropping on the open-field video (DeepLabCut 3.0 cspnext_s)",
    "two_stage": "Two-stage models (sleap-nn top-down): the project's two stages vs sleap-nn's "
    "one graph, each stage's time",
    "sleap_single": "sleap-nn single-instance models: the project (whole frame, pool threads "
    "sleeping or spinning; dynamic crop) vs sleap-nn's own graph",
    "end_to_end": "End to end: the benchmark mode (`DeepLabStream.py --benchmark-enabled`)",
    "high_rate": "High camera rates (150-500 fps): the analysed rate against the model-bound "
    "limit (benchmark mode, simulated arena)",
    "closed_loop": "Closed loop to the stimulus firmware (simavr)",
    "latency_test": "Latency self-test: the board's light-on -> command beside the app's stages "
    "(`--latency-test --simulated-board`)",
    "profile_session": "Where the time goes: priorities and core placement vs none "
    "(docs/performance.md)",
    "forward_prediction": "Forward prediction: the nose at the moment of the command",
    "gpu": "Pose models on the GPU: the app's path beside the plain reference (640x480)",
    "recording": "Recording two cameras",
    "replay": "Replay throughput (`utils/VideoAnalyzer.py`)",
    "verify": "Verification (`deeplabstream-verify`) per minute of a lossless recording vs a "
    "plain `--fast` replay of it",
    "lsl": "Lab Streaming Layer outlets: the cost of a push in the loop (`[Output] LSL = on`)",
    "multi_animal": "Several animals: two mice through the multi-animal path (simulated arena, "
    "640x480)",
    "ensembles": "Ensembles: 3 and 5 models of the bundled size on every frame beside one model "
    "(models alone, and live at 30 fps with a rule gated on their spread)",
    "behaviour_classifier": "Behaviour classifier: the decision at every pose, and its scores "
    "(simulated arena, bundled pose model)",
    "triangulation": "Live 3D: triangulating a synchronised set, and the simulated rig's 3D error "
    "and calibration",
    "soak": "Soak: three cameras with pose, an experiment and recording (`python -m "
    "benchmarks.soak --minutes N`, not part of run_all)",
}
#: What a benchmark not run yet points to instead (a sentence after "Not run yet").
NOT_RUN = {
    "gpu": " What was measured on a GPU (the previous release, before its fixes) is in "
    "[gpu.md](gpu.md#measured-on-a-gpu).",
}
BASELINES = {
    "transport": ("ring+pipe", "mp.Queue"),
    "transport_doorbells": ("pipe", "portable"),
    "recording": ("app", "naive loop"),
    "converted_models": ("ONNX Runtime / OpenVINO", "PyTorch eager"),
    "dlc_model": ("DeepLabStream", "DeepLabCut-Live"),
    "dynamic_crop": ("dynamic crop", "full frame"),
    "closed_loop": ("app", "naive loop, recording"),
    "latency_test": ("app's own account", "board (independent)"),
    "two_stage": ("project", "sleap-nn graph"),
    "sleap_single": ("project", "sleap-nn graph"),
    "end_to_end": ("app", "naive loop, recording"),
    "high_rate": ("app", "naive loop"),
    "profile_session": ("with priorities", "none"),
    "forward_prediction": ("predicted", "measured"),
    "gpu": ("app", "plain reference"),
    "lsl": ("push", "loop without push"),
    "verify": ("deeplabstream-verify", "plain --fast replay"),
    "multi_animal": ("two mice", "motion only / one mouse"),
    "ensembles": ("ensemble", "one model"),
    "behaviour_classifier": ("incremental window", "window recomputed"),
    "triangulation": ("vectorised", "per keypoint"),
    "soak": ("measured", "-"),
}

INTRO = """\
# Benchmarks

Generated by `python -m benchmarks.run_all` (or `python -m benchmarks.report` from the files it
saved) from `benchmarks/results/*.json`: do not edit by hand. Each table puts the project beside
a baseline measured **in the same run, on the same machine**; **x better** is above 1 where the
project wins (baseline / project for times, project / baseline for rates). How each benchmark
measures is in [benchmarks/README.md](../benchmarks/README.md); the fields of the benchmark
mode's `benchmark.json` are in [outputs.md](outputs.md#benchmarkjson).

Figures on a shared or busy machine are disturbed by whatever else runs: the load average at the
start of each benchmark is given with it.
"""


def load_results(folder: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """Every results file in ``folder``, by benchmark name."""
    results = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        results[data.get("benchmark", path.stem)] = data
    return results


def previous_sections(page: str) -> dict[str, list[str]]:
    """The sections of a page this module wrote before, by title (the lines under each)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in page.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def render(results: dict[str, dict[str, Any]], previous: str = "") -> str:
    """The whole page; a benchmark without a results file keeps its section of ``previous``.

    The results folder is not kept in the repository, so a run of some benchmarks (``run_all
    --only``) on a fresh clone must not erase the figures of the others: their sections, each
    with the date it ran, are carried over from the page as it was.
    """
    lines = [INTRO]
    kept = previous_sections(previous)
    machines = {_machine_line(r["machine"]) for r in results.values()}
    if any(name not in results and TITLES[name] in kept for name in ORDER):
        machines |= {m[2:] for m in kept.get("Machine", []) if m.startswith("- ")}
    if machines:
        lines.append("## Machine\n")
        lines += [f"- {machine}" for machine in sorted(machines)]
        lines.append("")
    shown: set[str] = set()
    for name in ORDER:
        data = results.get(name)
        shown.add(name)
        lines.append(f"## {TITLES[name]}\n")
        if data is None and TITLES[name] in kept:
            lines += _kept_section(kept[TITLES[name]])
        elif data is None:
            lines.append(f"Not run yet: `python -m benchmarks.{name}`.{NOT_RUN.get(name, '')}\n")
        else:
            lines += _section(name, data)
        for variant in _variants(name, results, kept):  # other options, series of runs
            shown.add(variant)
            title = variant_title(name, variant)
            lines.append(f"## {title}\n")
            data = results.get(variant)
            if data is None:
                lines += _kept_section(kept[title])
            else:
                lines += [f"{MARKER}{variant} -->", *_section(variant, data)]
    for name in sorted(set(results) - shown):  # benchmarks added later: their figures
        data = results[name]
        lines += [f"## {name}\n", _run_line(data), *_figure_table(data, "project", "baseline")]
    return "\n".join(lines).rstrip() + "\n"


def _kept_section(section: list[str]) -> list[str]:
    while section and not section[0].strip():
        section = section[1:]
    return section


def _section(name: str, data: dict[str, Any]) -> list[str]:
    """One benchmark's results (or a series of its runs) below its title."""
    if "runs" in data:
        return series_section(data)
    base = next((b for b in ORDER if name == b or name.startswith(f"{b}_")), name)
    project, baseline = BASELINES.get(base, ("app", "naive loop"))
    if name.endswith("_vs_before"):  # the code now beside the code before a change
        project, baseline = ("now", "before")
    return [
        _run_line(data),
        *_figure_table(data, project, baseline),
        *EXTRA_SECTIONS.get(name, lambda _data: [])(data),
    ]


def _variants(name: str, results: dict[str, Any], kept: dict[str, list[str]]) -> list[str]:
    """The results of ``name`` run with other options (``<name>_<option>``) and its series
    (``series_<name>[_<label>]``), from this run's files or the page before."""
    found = {
        variant
        for variant in results
        if variant.startswith((f"{name}_", f"series_{name}"))
        and not any(variant.startswith(f"{other}") for other in ORDER if len(other) > len(name)
                    and other.startswith(name))
    }  # fmt: skip
    prefix = f"{TITLES[name]}: "
    for title, section in kept.items():
        if title.startswith(prefix):
            found |= {line[len(MARKER) : -4] for line in section if line.startswith(MARKER)}
    return sorted(found, key=lambda v: (v.startswith("series_"), v))


#: The first line of a variant's section names its results file, so that a later page keeps it.
MARKER = "<!-- results: "


def variant_title(name: str, variant: str) -> str:
    """The title of a variant's section: its base's title and what differs."""
    if variant.startswith("series_"):
        label = variant[len(f"series_{name}") :].strip("_").replace("_", " ")
        what = f"series of runs{f' ({label})' if label else ''}"
    else:
        what = variant[len(name) + 1 :].replace("_", " ")
    return f"{TITLES[name]}: {what}"


def series_section(data: dict[str, Any]) -> list[str]:
    """A series: each run's figures (app / baseline) in a column, then the goals per run."""
    runs = data["runs"]
    arguments = " ".join(data.get("arguments") or [])
    label = f" --label {data['label']}" if data.get("label") else ""
    options = f" -- {arguments}" if arguments else ""
    loads = ", ".join(str(run["machine"].get("load_average_1m_at_start")) for run in runs)
    lines = [
        f"Series started {data.get('started')}: `python -m benchmarks.series "
        f"{data['series_of']} --runs {len(runs)}{label}{options}`; load average at the start "
        f"of each run: {loads}.\n"
    ]
    names = BASELINES.get(data["series_of"], ("app", "baseline"))
    header = ["figure", *(f"run {i}" for i in range(1, len(runs) + 1))]
    rows = [header, ["---"] * len(header)]
    for figure in runs[0].get("figures", []):
        key = figure["key"]
        label = f"{figure['label']} ({figure['unit']})" if figure.get("unit") else figure["label"]
        cells = []
        for run in runs:
            mine, theirs = run["results"].get(key), run["baseline"].get(key)
            cell = format_number(mine)
            if theirs is not None:
                cell += f" / {format_number(theirs)}"
            cells.append(cell)
        rows.append([label, *cells])
    lines += [f"Each cell: {names[0]} / {names[1]} where both were measured.\n"]
    lines += [_markdown_row(row) for row in rows] + [""]
    goals = data.get("goals_met") or {}
    if goals:
        lines += [
            _markdown_row(["goal", *header[1:], "met"]),
            _markdown_row(["---"] * (len(runs) + 2)),
        ]
        for text, count in goals.items():
            marks = ["-" if ok is None else ("yes" if ok else "**no**") for ok in count["each"]]
            lines.append(_markdown_row([text, *marks, f"{count['met']} of {count['runs']}"]))
        lines.append("")
    return lines


def _run_line(data: dict[str, Any]) -> str:
    load = data["machine"].get("load_average_1m_at_start")
    return f"Run {data.get('started')}; load average at the start: {load}.\n"


def _machine_line(machine: dict[str, Any]) -> str:
    memory = f", {machine['memory_gb']} GB memory" if machine.get("memory_gb") else ""
    return (
        f"{machine.get('cpu')}, {machine.get('cores')} cores{memory}, {machine.get('os')}, "
        f"Python {machine.get('python')}, numpy {machine.get('numpy')}, av {machine.get('av')}"
    )


def _figure_table(data: dict[str, Any], project: str, baseline: str) -> list[str]:
    figures = data.get("figures") or [
        {"key": key, "label": key, "unit": "", "goal": ""}
        for key in data["results"]
        if key != "details"
    ]
    goals = any(f.get("goal") for f in figures)
    header = ["figure", project, baseline, "x better"] + (["goal"] if goals else [])
    rows = [header, ["---"] * len(header)]
    for figure in figures:
        key = figure["key"]
        label = f"{figure['label']} ({figure['unit']})" if figure.get("unit") else figure["label"]
        ratio = data["ratios"].get(key)
        row = [
            label,
            format_number(data["results"].get(key)),
            format_number(data["baseline"].get(key)),
            "-" if ratio is None else f"{ratio:.2f}",
        ]
        rows.append(row + ([figure.get("goal", "")] if goals else []))
    return [_markdown_row(row) for row in rows] + [""]


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def _inference_extra(data: dict[str, Any]) -> list[str]:
    details = data["results"].get("details") or {}
    lines = []
    if details.get("model_alone"):
        lines += [
            f"Model `{details.get('model')}` alone, per frame on 640x480 frames (ms):\n",
            _markdown_row(
                [
                    "backend",
                    "threads",
                    "batch",
                    "preprocess p50",
                    "inference p50",
                    "inference p99",
                    "decode p50",
                    "total p50",
                ]
            ),
            _markdown_row(["---"] * 8),
        ]
        for row in details["model_alone"]:
            lines.append(
                _markdown_row(
                    [
                        row["backend"],
                        row["threads"],
                        row["batch"],
                        row["preprocess"]["p50"],
                        row["inference"]["p50"],
                        row["inference"]["p99"],
                        row["decode"]["p50"],
                        row["total"]["p50"],
                    ]
                )
            )
        lines.append("")
    if details.get("by_size"):
        lines += [
            "The bundled network's architecture per backend and input size (1 thread, batch 1, "
            "inference only, ms):\n",
            _markdown_row(["backend", "input", "p50", "p95", "p99", "max"]),
            _markdown_row(["---"] * 6),
        ]
        for row in details["by_size"]:
            timing = row["inference_ms"]
            lines.append(
                _markdown_row(
                    [
                        row["backend"],
                        row["input"],
                        *(timing[s] for s in ("p50", "p95", "p99", "max")),
                    ]
                )
            )
        lines.append("")
    return lines


def _end_to_end_extra(data: dict[str, Any]) -> list[str]:
    details = data["results"].get("details") or {}
    latency = details.get("latency_ms") or {}
    if not latency:
        return []
    model = details.get("model") or {}
    lines = [
        f"Per stage, app (model `{model.get('name')}` on {model.get('provider')}, "
        f"{model.get('threads')} thread(s); `benchmark.json` of the run, ms):\n",
        _markdown_row(["stage", "p50", "p95", "p99", "max", "frames"]),
        _markdown_row(["---"] * 6),
    ]
    for stage, figures in latency.items():
        if figures is None:
            lines.append(_markdown_row([stage, "-", "-", "-", "-", "0"]))
        else:
            values = [figures[s] for s in ("p50", "p95", "p99", "max")]
            lines.append(_markdown_row([stage, *values, figures.get("count", "")]))
    cameras = details.get("cameras") or {}
    for name, camera in cameras.items():
        lost = camera["tracking_lost_fraction"]
        lines.append(
            f"\nCamera `{name}`: {camera['captured']} frames captured, {camera['analysed']} "
            f"analysed, {camera['skipped']} skipped, {camera['recorded']} recorded; tracking "
            f"lost on {'-' if lost is None else f'{lost:.1%}'} of the analysed frames."
        )
    return [*lines, ""]


def _sleap_single_extra(data: dict[str, Any]) -> list[str]:
    """How the frames came, and what the two thread settings mean."""
    details = data.get("results", {}).get("details", {})
    fps = details.get("fps")
    pace = f"paced at {fps:g} fps, as a camera delivers them" if fps else "back to back"
    return [
        f"{details.get('frames', '?')} frames, {pace}, {details.get('threads', '?')} threads. "
        "Sleeping: the project's ONNX Runtime pool threads sleep between layers and frames (a "
        "worker sharing its cores with capture and recording); spinning: they spin, as where "
        "the worker has cores of its own (`CPU_AFFINITY`) and as sleap-nn's session does. The "
        "CPU time is the process's, pacing waits included.",
        "",
    ]


EXTRA_SECTIONS = {
    "inference": _inference_extra,
    "end_to_end": _end_to_end_extra,
    "sleap_single": _sleap_single_extra,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--output", type=Path, default=DOCS_PAGE)
    args = parser.parse_args(argv)
    previous = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    args.output.write_text(render(load_results(args.results), previous), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
