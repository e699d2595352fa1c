"""``verify/report.html``: one page a reviewer reads in a minute, with its figures as PNG.

Design: docs/verify.md, "offline.verify.report".
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from deeplabstream.offline.verify.keypoints import CATEGORIES
from deeplabstream.offline.verify.verification import Verification

KEYPOINTS_FIGURE = "keypoints.png"
DECISIONS_FIGURE = "decisions.png"
STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.2em .5em;"
    "text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
    ".agrees{color:#176e2c}.differs{color:#b00020}.part{color:#8a5a00}img{max-width:100%}"
)
VERDICT_WORDS = {
    "agrees": "The session agrees with its recording.",
    "agrees in part": "Nothing differs, but not everything could be checked (below).",
    "differs": "The session differs from its recording (below: what, and where).",
}
CATEGORY_COLOURS = {
    "to_the_bit": "tab:green",
    "within_bound": "tab:olive",
    "explained": "tab:blue",
    "differs": "tab:red",
    "not_verifiable": "tab:gray",
}


def write_report(verification: Verification, target: Path) -> None:
    """Write the page and its figures into ``target``'s folder."""
    folder = target.parent
    figures = [
        _keypoint_figure(verification, folder / KEYPOINTS_FIGURE),
        _decision_figure(verification, folder / DECISIONS_FIGURE),
    ]
    summary = verification.summary
    verdict = summary["verdict"]
    css = {"agrees": "agrees", "differs": "differs"}.get(verdict, "part")
    name = html.escape(verification.folder.name)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Verification of {name}"
        f"</title><style>{STYLE}</style></head><body><h1>Verification of {name}</h1>",
        f"<p class='{css}'><b>Verdict: {html.escape(summary['verdict_line'])}.</b> "
        f"{VERDICT_WORDS[verdict]}</p>",
        _signature(summary.get("signature") or {}),
        _coverage_table(summary["coverage"]),
        _provenance(summary["provenance"]),
        _list("What differs", summary["reasons"]),
        _list("What could not be checked", summary["not_checked"]),
        _list(
            "What rests on the signature alone (no other check holds it)",
            summary.get("signature_alone") or [],
        ),
        _list("Notes", summary["notes"]),
        "<h2>Decisions: the experiment re-run on the live keypoints</h2>",
        _decision_table(summary["decisions"]),
        _differences(summary["decisions"]),
        "<h2>Keypoints: the recording analysed again on the live schedule</h2>",
        _keypoint_table(summary["keypoints"]),
        "<h2>Files</h2>",
        _files(summary["files"]),
        *[_image(figure) for figure in figures if figure is not None],
        "<p>Made by deeplabstream-verify (docs/verify.md): decisions re-derived by the session's "
        "recorded experiment from its recorded keypoints, keypoints re-derived by its model from "
        "its recording on the live schedule, every file taken against the digest recorded at "
        "the session's close.</p></body></html>",
    ]
    target.write_text("\n".join(part for part in parts if part), encoding="utf-8")


def _list(title: str, items: list[str]) -> str:
    if not items:
        return ""
    rows = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f"<h3>{title}</h3><ul>{rows}</ul>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return ""
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
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "-"
    return str(value)


def _coverage_table(coverage: dict[str, Any]) -> str:
    rows = []
    for camera, counts in coverage["keypoints"].items():
        row: list[Any] = [f"{camera}: frames"]
        for category in CATEGORIES:
            entry = counts[category]
            row.append(f"{entry['frames']} ({entry['share'] * 100:.1f} %)")
        rows.append(row)
    keypoints = _table(["", *[c.replace("_", " ") for c in CATEGORIES]], rows)
    decisions = _table(
        [
            "events file",
            "updates",
            "re-derived",
            "rows",
            "rows re-derived",
            "equal",
            "changed",
            "only in the file",
            "only re-derived",
        ],
        [
            [
                name,
                d["updates"],
                d["updates_re_derived"],
                d["rows"],
                d["rows_re_derived"],
                d["rows_equal"],
                d["rows_changed"],
                d["rows_only_live"],
                d["rows_only_re_derived"],
            ]
            for name, d in coverage["decisions"].items()
        ],
    )
    frames = coverage["frames"]
    checked = (
        f"<p>{frames['checked']} of {frames['analysed']} analysed frames checked against the "
        f"recording ({100 * frames['share']:.0f} %).</p>"
    )
    return f"<h2>Coverage</h2>{checked}{keypoints}{decisions}"


def _signature(signer: dict[str, Any]) -> str:
    """Say who signed session.json, or that nobody did (the reasons say what it means)."""
    status = signer.get("status")
    if status == "valid":
        text = (
            f"session.json is signed by key {signer.get('fingerprint')} (rig "
            f"{signer.get('rig')!r}, {signer.get('signed_at')})."
        )
    elif status == "unsigned":
        text = "session.json is not signed."
    else:
        text = f"session.json does not match its signature (key {signer.get('fingerprint')})."
    return f"<p>{html.escape(text)}</p>"


def _provenance(provenance: dict[str, Any]) -> str:
    rows: list[list[Any]] = [
        ["verified at", provenance["verified_at"]],
        ["verified with", provenance["verified_with"]],
        ["session started", provenance["session_started"]],
        ["session's software", provenance["session_software"]],
    ]
    signer = provenance.get("signed_by") or {}
    rows.append(["signed by", f"{signer.get('fingerprint')} (rig {signer.get('rig')!r})"])
    for camera, how in provenance["bounds"].items():
        rows.append([f"{camera}: bound per frame", how])
    for model in provenance["models"]:
        digest = (model.get("recorded_sha256") or "")[:16]
        rows.append(
            [f"{model['camera']}: model", f"{model.get('name')} {model.get('file')} {digest}"]
        )
        ran = model.get("re_derived_with")
        if ran is not None:  # the model the offline analysis loaded (its settings' MODEL_PATH)
            rows.append(
                [
                    f"{model['camera']}: re-derived with",
                    f"{ran.get('name')} {ran.get('file')} {(ran.get('sha256') or '')[:16]}",
                ]
            )
    for run in provenance["experiments"]:
        digest = (run.get("sha256") or "")[:16]
        rows.append(
            [
                f"experiment ({run.get('events_file')})",
                f"{run.get('name')} ({run.get('kind')}, {run.get('origin')}) {digest}",
            ]
        )
    for camera, parts in provenance["recordings"].items():
        words = [f"{p['video']} ({'lossless' if p['lossless'] else 'lossy'})" for p in parts]
        rows.append([f"{camera}: recording", ", ".join(words)])
    return "<h2>Provenance</h2>" + _table(["", "value"], rows)


def _decision_table(decisions: list[dict[str, Any]]) -> str:
    return _table(
        ["events file", "experiment", "agrees", "rows equal", "rows live", "re-derived", "note"],
        [
            [
                d["events_file"],
                d["experiment"],
                "yes" if d["agrees"] else "no",
                d["rows_equal"],
                d["rows_live"],
                d["rows_re_derived"],
                d["not_re_derived"] or "; ".join(d["explained"]) or "",
            ]
            for d in decisions
        ],
    )


def _differences(decisions: list[dict[str, Any]]) -> str:
    rows = []
    for run in decisions:
        for item in run["differences"]:
            live, again = item.get("live") or {}, item.get("re_derived") or {}
            columns = item.get("columns_differing") or []
            rows.append(
                [
                    run["events_file"],
                    item["change"],
                    item.get("frame_index"),
                    item.get("camera"),
                    f"{item.get('kind')} {item.get('name')} {item.get('detail')}",
                    ", ".join(columns),
                    _where(live),
                    _where(again),
                ]
            )
    return _table(
        ["events file", "what", "frame", "camera", "row", "columns", "live", "re-derived"],
        rows,
    )


def _where(row: dict[str, Any]) -> str:
    """Return the keypoint that decided a row and where it was, as one side gives it."""
    if not row:
        return "-"
    point = row.get("keypoint") or ""
    x, y = row.get("measured_x") or "", row.get("measured_y") or ""
    return f"{point} ({x}, {y}) t={row.get('time_s')}" if point else f"t={row.get('time_s')}"


def _keypoint_table(cameras: dict[str, Any]) -> str:
    rows = []
    for camera, data in cameras.items():
        stats = data["stats"]
        causes = ", ".join(f"{k} {v}" for k, v in data["by_cause"].items() if v) or "-"
        unverifiable = ", ".join(f"{k} {v}" for k, v in data["not_verifiable"].items()) or "-"
        rows.append(
            [
                camera,
                data["frames_analysed_live"],
                data["frames_compared"],
                "lossless" if data["lossless"] else _bound_text(data["bound_px"]),
                stats.get("median_px"),
                stats.get("p99_px"),
                stats.get("max_px"),
                causes,
                unverifiable,
                data["first_differing_frame"],
            ]
        )
    return _table(
        [
            "camera",
            "analysed live",
            "compared",
            "recording",
            "median px",
            "p99 px",
            "max px",
            "explained by",
            "not verifiable",
            "first differing frame",
        ],
        rows,
    )


def _bound_text(bound: float | None) -> str:
    return "lossy, no bound" if bound is None else f"lossy, {bound:.2f} px"


def _files(files: dict[str, Any]) -> str:
    proven, recorded = files["proven"], files["recorded"]
    text = f"<p>{proven} of {recorded} files recorded at the close are unchanged.</p>"
    return text + _list("Files that do not match", files["problems"])


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
        frames, largest = series.get("frame", []), series.get("max_px", [])
        for category in CATEGORIES:
            pick = [i for i, c in enumerate(series.get("category", [])) if c == category]
            if pick:
                axis.plot(
                    [frames[i] for i in pick],
                    [largest[i] for i in pick],
                    ".",
                    ms=3,
                    color=CATEGORY_COLOURS[category],
                    label=f"{category.replace('_', ' ')} ({camera.frames[category]})",
                )
        if camera.bound_px is not None:
            axis.axhline(camera.bound_px, color="tab:red", lw=0.6, ls="--", label="bound")
        axis.set_title(f"{camera.camera}: largest keypoint difference per frame")
        axis.set_xlabel("frame")
        axis.set_ylabel("px")
        axis.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    pyplot.close(figure)
    return target


def _decision_figure(verification: Verification, target: Path) -> Path | None:
    items = [(item, run.events_file) for run in verification.decisions for item in run.differences]
    counts = [
        (run.events_file, run.rows_equal, len(run.differences)) for run in verification.decisions
    ]
    if not counts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(9, 2.2))
    names = [name for name, _, _ in counts]
    axis.barh(names, [equal for _, equal, _ in counts], color="tab:green", label="rows equal")
    axis.barh(
        names,
        [differ for _, _, differ in counts],
        left=[equal for _, equal, _ in counts],
        color="tab:red",
        label="rows differing",
    )
    axis.set_xlabel(f"decision rows ({len(items)} differing)")
    axis.set_title("decisions: events.csv against the experiment re-run")
    axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    pyplot.close(figure)
    return target
