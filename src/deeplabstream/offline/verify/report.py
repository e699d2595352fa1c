"""``verify/report.html``: one page a lab attaches to its methods, with its two figures as PNG.

The page holds the verdict and its reasons, the summary table per camera, the split of keypoint
differences by cause, the events table, each action's latency beside the frames it lagged, and
two figures (also written beside it, ``keypoints.png`` and ``events.png``): the keypoint
difference over time with the frames live skipped, and the event raster live against offline.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from deeplabstream.offline.verify.verification import Verification

KEYPOINTS_FIGURE = "keypoints.png"
EVENTS_FIGURE = "events.png"
STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.2em .5em;"
    "text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
    ".agrees{color:#176e2c}.differs{color:#b00020}img{max-width:100%}"
)


def write_report(verification: Verification, target: Path) -> None:
    """Write the page and its figures into ``target``'s folder."""
    folder = target.parent
    figures = [
        _keypoint_figure(verification, folder / KEYPOINTS_FIGURE),
        _event_figure(verification, folder / EVENTS_FIGURE),
    ]
    summary = verification.summary
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Verification of "
        f"{html.escape(verification.folder.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Verification of {html.escape(verification.folder.name)}</h1>",
        f"<p class='{summary['verdict']}'><b>The live session {summary['verdict']} with the "
        "offline analysis of its recording.</b></p>",
        _list("Why", summary["reasons"]),
        _list("Notes", summary["notes"]),
        "<h2>Keypoints</h2>",
        _camera_table(summary["cameras"]),
        _cause_table(summary["cameras"]),
        "<h2>Triggers, trials and actions</h2>",
        _event_table(summary["events"]),
        "<h2>Actions: latency and lag</h2>",
        _action_table(summary["actions"]),
        *[_image(figure) for figure in figures if figure is not None],
        "<p>Made by deeplabstream-verify: every frame of the recording analysed again with the "
        "session's model, settings and experiment (devices as log, forward prediction off), "
        "compared frame by frame with what the live loop saw and decided.</p></body></html>",
    ]
    target.write_text("\n".join(parts), encoding="utf-8")


def _list(title: str, items: list[str]) -> str:
    if not items:
        return ""
    rows = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f"<h3>{title}</h3><ul>{rows}</ul>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th class='l'>{html.escape(h)}</th>" for h in header[:1])
    head += "".join(f"<th>{html.escape(h)}</th>" for h in header[1:])
    body = ""
    for row in rows:
        cells = f"<td class='l'>{html.escape(_text(row[0]))}</td>"
        cells += "".join(f"<td>{html.escape(_text(v))}</td>" for v in row[1:])
        body += f"<tr>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _camera_table(cameras: dict[str, Any]) -> str:
    rows = [
        [
            name,
            c["frames_analysed_live"],
            c["frames_skipped_live"],
            c["frames_not_in_recording"],
            c["frames_compared"],
            c["frames_equal_to_the_bit"],
            c["unexplained_frames"],
            c["identity_swaps"],
            c["frames_animal_only_live"],
            c["frames_animal_only_offline"],
            (c.get("truth") or {}).get("live", {}).get("median_px"),
            (c.get("truth") or {}).get("offline", {}).get("median_px"),
        ]
        for name, c in cameras.items()
    ]
    return _table(
        [
            "camera",
            "analysed live",
            "skipped live",
            "not in recording",
            "compared",
            "equal to the bit",
            "unexplained",
            "identity swaps",
            "frames with an animal seen live only",
            "offline only",
            "live vs truth, median px",
            "offline vs truth, median px",
        ],
        rows,
    )


def _cause_table(cameras: dict[str, Any]) -> str:
    rows = [
        [
            f"{name}: {cause}",
            figures["frames"],
            figures["frames_equal_to_the_bit"],
            figures["median_px"],
            figures["p99_px"],
            figures["max_px"],
        ]
        for name, c in cameras.items()
        for cause, figures in c["by_cause"].items()
    ]
    return _table(
        ["camera: cause", "frames", "equal to the bit", "median px", "p99 px", "max px"], rows
    )


def _event_table(events: dict[str, Any]) -> str:
    rows = [
        [kind, c["matched"], c["exact"], c["live_only"], c["offline_only"]]
        for kind, c in events["counts"].items()
    ]
    table = _table(["kind", "matched", "same frame", "live only", "offline only"], rows)
    return table + (
        f"<p>Offline decisions that fell on frames live skipped: "
        f"{events['offline_decisions_on_frames_skipped_live']}. Switch-offs at the session's "
        f"end (not compared): {events['closing_switch_offs_not_compared']}.</p>"
    )


def _action_table(actions: list[dict[str, Any]]) -> str:
    rows = [
        [a["detail"], a["frame"], a["frames_late"], a["latency_ms"], a["explained_by"]]
        for a in actions
    ]
    return _table(
        ["action", "live frame", "frames late", "frame -> command, ms", "explained by"], rows
    )


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<p><img alt='{path.stem}' src='data:image/png;base64,{encoded}'></p>"


def _keypoint_figure(verification: Verification, target: Path) -> Path | None:
    if not verification.keypoints:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    count = len(verification.keypoints)
    figure, axes = pyplot.subplots(count, 1, figsize=(9, 2.6 * count), squeeze=False)
    for axis, camera in zip(axes[:, 0], verification.keypoints, strict=True):
        series = camera.series
        axis.plot(series.get("frame", []), series.get("max_px", []), lw=0.8, label="live - offline")
        skipped = series.get("skipped", [])
        if skipped:
            axis.plot(skipped, [0] * len(skipped), "|", color="tab:red", label="skipped live")
        axis.set_title(f"{camera.camera}: largest keypoint difference per frame")
        axis.set_xlabel("frame")
        axis.set_ylabel("px")
        axis.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    pyplot.close(figure)
    return target


def _event_figure(verification: Verification, target: Path) -> Path | None:
    events = verification.events
    items = [
        *[(m["frame"], m["offline_frame"], m) for m in events.matched],
        *[(m["frame"], None, m) for m in events.live_only],
        *[(None, m["frame"], m) for m in events.offline_only],
    ]
    if not items:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = sorted({f"{m['kind']} {m['name']}" for _, _, m in items})
    row = {name: i for i, name in enumerate(names)}
    figure, axis = pyplot.subplots(figsize=(9, 0.5 + 0.45 * len(names)))
    for live, offline, m in items:
        y = row[f"{m['kind']} {m['name']}"]
        if offline is not None:
            axis.plot([offline], [y - 0.15], "v", color="tab:blue", ms=5)
        if live is not None:
            colour = "tab:green" if m.get("explained_by") else "tab:red"
            axis.plot([live], [y + 0.15], "^", color=colour, ms=5)
    axis.set_yticks(range(len(names)), names, fontsize="small")
    axis.set_xlabel("frame (blue: offline decision; green/red: live, explained/unexplained)")
    axis.set_title("events: live against offline")
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    pyplot.close(figure)
    return target
