"""Verify a session: its files proven, its decisions re-derived, its keypoints re-analysed.

Design: docs/verify.md, "offline.verify.verification".
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream import __version__
from deeplabstream.core.plugins import only_recorded_code
from deeplabstream.offline.replay.job import ProgressSink
from deeplabstream.offline.verify.codec_bound import CodecBound, measure_bound
from deeplabstream.offline.verify.decisions import RunCheck, check_decisions, exact_rows_of
from deeplabstream.offline.verify.files_proof import FileProof, code_problems, prove_files
from deeplabstream.offline.verify.frames import ExactRows, PoseSeries, merge, place_offline
from deeplabstream.offline.verify.frames import live_poses as read_live_poses
from deeplabstream.offline.verify.keypoints import (
    CATEGORIES,
    RARE_TAIL,
    CameraFacts,
    KeypointComparison,
    compare_keypoints,
)
from deeplabstream.offline.verify.reanalysis import OfflineRun, analyse_offline
from deeplabstream.offline.verify.record_proof import (
    RecordProof,
    prove_record,
    recorded_code_of,
    signature_alone,
    signer_words,
)
from deeplabstream.offline.verify.session_files import (
    CameraFiles,
    SessionFiles,
    VerifyError,
    read_record,
    read_session,
)
from deeplabstream.outputs.pose.files import POSE_EXACT_SUFFIX, POSE_TIMING_SUFFIX
from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.outputs.signature import trusted_signers

VERIFY_FOLDER = "verify"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
CPU_PROVIDERS = ("CPUExecutionProvider", "cpu", None)
VERDICTS = ("agrees", "agrees in part", "differs")
DECISION_KINDS = ("trigger", "trial_start", "trial_end", "action")
#: "agrees" needs at least this share of the analysed frames checked against the recording.
MOST_FRAMES_UNCHECKED = 0.5
#: Fewer of the live keypoints than this share at the recorded likelihood threshold: the
#: threshold (the settings), not the recording, is why frames go unchecked.
THRESHOLD_BLAME_SHARE = 0.05


@dataclass
class Verification:
    """What verify found: the summary written to ``summary.json`` and what it was made from."""

    folder: Path
    summary: dict[str, Any]
    keypoints: list[KeypointComparison]
    decisions: list[RunCheck]
    files: FileProof

    @property
    def verdict(self) -> str:
        """``agrees``, ``agrees in part`` or ``differs``."""
        return str(self.summary["verdict"])

    @property
    def agrees(self) -> bool:
        """True when everything agrees and was checked (exit code 0)."""
        return self.verdict == "agrees"


def verify_session(
    folder: Path,
    bound_px: float | None = None,
    progress: ProgressSink | None = None,
    keypoints: bool = True,
    trusted: tuple[str, ...] = (),
    unsigned: bool = False,
    settings_file: Path | None = None,
) -> Verification:
    """Verify the session in ``folder``; raises VerifyError when it cannot be verified at all.

    First ``session.json`` itself: its signature (``trusted``: the fingerprints of the keys a
    reviewer trusts; ``unsigned``: an unsigned record is accepted, said) and its fields. Then,
    running only the lab code it recorded, the files, the decisions and the keypoints.
    ``bound_px``: a lossy recording's bound per frame, instead of the one measured from it.
    ``keypoints`` False: the files and the decisions only (seconds for an hour), the recording
    not analysed again; the verdict is then at best "agrees in part".
    ``settings_file``: the lab's, beside which its list of trusted signers is
    (``allowed_signers``); the user's list and this installation's key are trusted too.
    """
    folder = folder.expanduser().resolve()
    record = read_record(folder)
    signers = trusted_signers(settings_file, own=not trusted)
    proof = prove_record(folder, record, trusted, unsigned, signers)
    with only_recorded_code(recorded_code_of(folder, record)):
        return _verify(folder, proof, bound_px, progress, keypoints)


def _verify(
    folder: Path,
    proof: RecordProof,
    bound_px: float | None,
    progress: ProgressSink | None,
    keypoints: bool,
) -> Verification:
    began = time.monotonic()
    session = read_session(folder)
    unavailable = code_problems(session)
    if unavailable and proof.trusted and not session.problems:
        raise VerifyError(
            f"{session.folder}: the code or model the session ran is not here as it ran, so "
            "what it did cannot be re-derived: " + "; ".join(unavailable) + ". Put back the "
            "files the session ran (session.json names them with their SHA-256)"
            + _settings_file_named(session.record)
        )
    target = session.folder / VERIFY_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    live = exact_rows_of(session)
    files = prove_files(session, live)
    decided = time.monotonic()
    decisions = check_decisions(session, live)
    decisions_s = time.monotonic() - decided
    reanalyse = keypoints and not unavailable
    runs = analyse_offline(session, target, live, progress) if reanalyse else []
    failed = [run for run in runs if not run.result.ok and not run.result.frames_analysed]
    if failed:
        raise VerifyError(
            f"{session.folder}: the offline analysis failed: "
            + "; ".join(e for run in failed for e in run.result.errors)
        )
    measured = time.monotonic()
    bounds = _bounds(session, runs, bound_px)
    bounds_s = time.monotonic() - measured
    comparisons = [
        comparison
        for camera in session.cameras
        if (comparison := _compare_camera(session, camera, runs, bounds)) is not None
    ]
    cuts = _cut_videos(session, runs)
    summary = _summary(session, proof, runs, comparisons, decisions, files, cuts, bounds, live)
    if not reanalyse:
        why = "--decisions-only" if not keypoints else "; ".join(unavailable)
        _add_not_checked(summary, f"the keypoints were not re-derived from the recording ({why})")
    summary["verdict_line"] = verdict_line(summary)
    summary["elapsed_s"] = round(time.monotonic() - began, 3)
    summary["decisions_elapsed_s"] = round(decisions_s, 3)
    summary["bounds_elapsed_s"] = round(bounds_s, 3)
    (target / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return Verification(session.folder, summary, comparisons, decisions, files)


def _settings_file_named(record: dict[str, Any]) -> str:
    """Name the settings file session.json records: the lab's plugins are looked for beside it."""
    # A record rewritten to run a lab format ([Pose] MODEL_FORMATS) from another folder names that
    # folder's settings file here: the reviewer sees where verify looked.
    file = (record.get("settings") or {}).get("file")
    if not file:
        return ""
    return (
        f". session.json's settings.file is {file}: the lab's plugin files (formats/, "
        "devices/, ...) are those beside it; if that is not the lab's settings file, "
        "session.json was rewritten"
    )


def _add_not_checked(summary: dict[str, Any], item: str) -> None:
    summary["not_checked"].append(item)
    if summary["verdict"] == "agrees":
        summary["verdict"] = "agrees in part"


def verdict_line(summary: dict[str, Any]) -> str:
    """Return the verdict with its coverage and signer.

    ``agrees in part: 58 of 905 analysed frames checked (6 %); signed by SHA256:... (rig3),
    trusted: the lab list /lab/allowed_signers``.
    """
    frames = summary["coverage"]["frames"]
    checked, analysed = frames["checked"], frames["analysed"]
    share = f" ({100 * checked / analysed:.0f} %)" if analysed else ""
    line = f"{summary['verdict']}: {checked} of {analysed} analysed frames checked{share}"
    signer = signer_words(summary.get("signature") or {})
    return f"{line}; {signer}" if signer else line


def _bounds(
    session: SessionFiles, runs: list[OfflineRun], given: float | None
) -> dict[str, CodecBound]:
    """Return each lossy camera's bound per frame: ``given``, else measured from its recording."""
    bounds = {}
    for camera in session.cameras:
        if all(part.lossless for part in camera.videos) or not camera.videos:
            continue
        if given is not None:
            bounds[camera.name] = CodecBound(given, given=True)
            continue
        run = next((r for r in runs if r.part == 0), None)
        if run is None:
            continue
        effective = next((c for c in run.plan.cameras if c.name == camera.name), None)
        part = camera.videos[0]
        analysed = run.schedule.get(camera.name, ())
        bounds[camera.name] = measure_bound(
            part.video,
            analysed if analysed else range(run.scheduled.get(camera.name, 0)),
            session.settings.recording,
            effective.model if effective else next(iter(session.settings.pose.model_path), None),
            effective.likelihood_threshold if effective else 0.5,
            session.settings.pose.max_animals,
        )
    return bounds


# --- keypoints ------------------------------------------------------------------------------------


def _compare_camera(
    session: SessionFiles,
    camera: CameraFiles,
    runs: list[OfflineRun],
    bounds: dict[str, CodecBound],
) -> KeypointComparison | None:
    keypoints = tuple(session.model_record(camera.name).get("keypoints") or ())
    live = read_live_poses(camera.pose_exact, camera.pose_csv, camera.pose_timing, keypoints)
    offline = _offline_poses(camera, runs, keypoints)
    if live is None or offline is None:
        return None
    recorded = _recorded_frames(camera)
    truth, truth_frames = _truth(camera)
    bound = bounds.get(camera.name)
    comparison = compare_keypoints(
        camera.name,
        live,
        offline,
        recorded,
        min(recorded) if recorded else None,
        _camera_facts(session, camera, runs, bound),
        truth,
        truth_frames,
    )
    if bound is not None:
        comparison.bound = bound.summary()
    return comparison


def _camera_facts(
    session: SessionFiles, camera: CameraFiles, runs: list[OfflineRun], bound: CodecBound | None
) -> CameraFacts:
    """Return what decides the causes of a camera's differences, and its lossy bound."""
    # The reference runs the session's settings of each camera (its own threshold and dynamic crop,
    # else [Pose]'s), resolved in its plan: they are read there, not derived again.
    effective = next((c for run in runs for c in run.plan.cameras if c.name == camera.name), None)
    settings = session.settings
    model = session.model_record(camera.name)
    threshold = effective.likelihood_threshold if effective else settings.pose.likelihood_threshold
    return CameraFacts(
        lossless=all(part.lossless for part in camera.videos),
        context_model="context" in model,
        crop_from_previous=settings.pose.crop_from == "previous_frame",
        dynamic_crop=bool(effective and effective.dynamic_crop.enabled),
        animals=int(model.get("max_animals") or 1),
        gpu=model.get("provider") not in CPU_PROVIDERS,
        likelihood_threshold=float(threshold),
        bound_px=bound.bound_px if bound is not None else None,
    )


def _offline_poses(
    camera: CameraFiles, runs: list[OfflineRun], keypoints: tuple[str, ...]
) -> PoseSeries | None:
    parts = []
    for run in runs:
        folder = run.result.session_dir or run.folder
        exact = folder / f"{camera.name}{POSE_EXACT_SUFFIX}"
        if run.part >= len(camera.videos) or not exact.is_file():
            continue
        live_index = camera.videos[run.part].live_index()  # None: frame i was live frame i
        timing = folder / f"{camera.name}{POSE_TIMING_SUFFIX}"
        series = read_live_poses(exact, None, timing, keypoints)
        if series is not None:
            parts.append(place_offline(series, live_index) if live_index is not None else series)
    return merge(parts)


def _recorded_frames(camera: CameraFiles) -> set[int]:
    """Return the live frame indices the camera's recordings hold (their frames tables)."""
    # A replay's own video (no table) holds every frame the replay analysed.
    found: set[int] = set()
    for part in camera.videos:
        index = part.live_index()
        if index is None:
            return _analysed_frames(camera)
        found.update(int(f) for f in index.tolist())
    return found


def _analysed_frames(camera: CameraFiles) -> set[int]:
    if camera.pose_exact is None:
        return set()
    data = np.genfromtxt(camera.pose_exact, delimiter=",", skip_header=1, usecols=(0,), ndmin=1)
    return {int(f) for f in np.atleast_1d(data).tolist()}


def _truth(camera: CameraFiles) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Return the simulated animal's true keypoints (N, A, K, 3) and their frame indices."""
    if camera.truth is None:
        return None, None
    try:
        table = read_pose_table(camera.truth)
    except ValueError:
        return None, None
    return table.points, table.frames.astype(np.int64)


def _cut_videos(session: SessionFiles, runs: list[OfflineRun]) -> list[str]:
    """Name each recording that ends before the frames its table lists (a cut video)."""
    problems = []
    for run in runs:
        for camera in session.cameras:
            scheduled = run.scheduled.get(camera.name)
            if not scheduled or run.part >= len(camera.videos):
                continue
            delivered = _delivered(run, camera.name)
            if delivered is not None and delivered < scheduled:
                part = camera.videos[run.part]
                index = part.live_index()
                rows = len(index) if index is not None else None
                problems.append(
                    f"{part.video.name}: the video ends after {delivered} of the {scheduled} "
                    f"frames the live loop analysed in it (its frames table lists {rows} "
                    "frames): the video was cut"
                )
    return problems


#: A recording part whose frames differ from the live loop's on at least this share (and
#: :data:`SWAPPED_LEAST_FRAMES` frames) is named as not this part's recording.
SWAPPED_SHARE = 0.5
SWAPPED_LEAST_FRAMES = 10


def _swapped_parts(session: SessionFiles, comparisons: list[KeypointComparison]) -> list[str]:
    """Name each recording part whose frames mostly differ from what the live loop saw."""
    # A part swapped for another video (another part, another session's) with its digests written
    # again reads as many differing frames; said of the part, so that the reviewer reads
    # "arena.part2.mkv is not the recording of its part", not only frame numbers.
    found = []
    compared = {c.camera: c for c in comparisons}
    for camera in session.cameras:
        comparison = compared.get(camera.name)
        if comparison is None or not comparison.differing_frames:
            continue
        differing = set(comparison.differing_frames)
        unchecked = set(comparison.unverifiable_frames)
        for part in camera.videos:
            index = part.live_index()
            if index is None:
                continue
            frames = set(index.tolist()) - unchecked
            wrong = len(frames & differing)
            if wrong >= SWAPPED_LEAST_FRAMES and wrong >= SWAPPED_SHARE * len(frames):
                found.append(
                    f"{part.video.name}: {wrong} of the {len(frames)} frames it holds differ "
                    "from what the live loop analysed: this part's video is not the one the "
                    "live loop recorded (swapped for another video or re-encoded, its digest "
                    "written again), or its live keypoints were rewritten"
                )
    return found


def _delivered(run: OfflineRun, camera: str) -> int | None:
    """How many frames the reference's camera delivered (its pose_exact rows)."""
    folder = run.result.session_dir or run.folder
    exact = folder / f"{camera}{POSE_EXACT_SUFFIX}"
    if not exact.is_file():
        return None
    with exact.open(encoding="utf-8") as file:
        return max(0, sum(1 for _ in file) - 1)


# --- the verdict ----------------------------------------------------------------------------------


def _summary(
    session: SessionFiles,
    proof: RecordProof,
    runs: list[OfflineRun],
    comparisons: list[KeypointComparison],
    decisions: list[RunCheck],
    files: FileProof,
    cuts: list[str],
    bounds: dict[str, CodecBound],
    live: dict[str, ExactRows],
) -> dict[str, Any]:
    models = _models_re_derived_with(files.model.get("cameras", []), runs)
    reasons = (
        proof.problems
        + list(session.problems)
        + files.problems
        + _model_claims(models)
        + cuts
        + [r for check in decisions for r in check.reasons()]
        + [r for comparison in comparisons for r in comparison.reasons()]
        + _swapped_parts(session, comparisons)
    )
    coverage = _coverage(session, comparisons, decisions, live)
    blamed = {
        c.camera: why
        for c in comparisons
        if c.not_verifiable and c.camera in live
        if (why := threshold_blame(session.record, c.camera, live[c.camera].points)) is not None
    }
    partial = (
        proof.not_checked
        + list(blamed.values())
        + _what_was_not_checked(session, comparisons, decisions, coverage, set(blamed))
    )
    verdict = "differs" if reasons else ("agrees in part" if partial else "agrees")
    return {
        "session": str(session.folder),
        "verdict": verdict,
        "reasons": reasons,
        "not_checked": partial,
        "coverage": coverage,
        "provenance": {**_provenance(session, proof, files, comparisons, bounds), "models": models},
        "notes": proof.notes + list(session.notes) + files.notes + _notes(session, comparisons),
        "report": REPORT_FILE,
        "signature": proof.signer,
        "signature_alone": signature_alone(
            session.record,
            any(not part.lossless for camera in session.cameras for part in camera.videos),
        ),
        "files": {
            "recorded": files.files_recorded,
            "proven": files.files_proven,
            "problems": files.problems,
            "model": files.model,
            "experiments": files.experiments,
        },
        "decisions": [_run_summary(check) for check in decisions],
        "keypoints": {c.camera: _camera_summary(c) for c in comparisons},
        "offline": [
            {
                "folder": str((run.result.session_dir or run.folder).relative_to(session.folder)),
                "videos": [
                    str(c.videos[run.part].video)
                    for c in session.cameras
                    if run.part < len(c.videos)
                ],
                "frames_scheduled": run.scheduled,
                "frames_analysed": run.result.frames_analysed,
                "elapsed_s": round(run.result.elapsed_s, 3),
            }
            for run in runs
        ],
    }


def _what_was_not_checked(
    session: SessionFiles,
    comparisons: list[KeypointComparison],
    decisions: list[RunCheck],
    coverage: dict[str, Any],
    threshold_blamed: Collection[str] = (),
) -> list[str]:
    """Return what could not be checked and may hide a decision (then: "agrees in part")."""
    # threshold_blamed: cameras whose frames go unchecked for their likelihood threshold
    # (threshold_blame), so named instead of the recording.
    found = []
    for check in decisions:
        if check.not_re_derived is not None:
            found.append(f"{check.events_file}: decisions not re-derived: {check.not_re_derived}")
        found += [f"{check.events_file}: {text}" for text in check.explained]
    if not session.record.get("files"):
        found.append("no digests of the session's files were recorded: none is proven unchanged")
    unverifiable = {c.camera: set(_unverifiable_frames(c)) for c in comparisons}
    for check in decisions:
        on_unchecked = _decisions_on(session, check, unverifiable)
        if on_unchecked:
            found.append(
                f"{check.events_file}: {on_unchecked} decision(s) rest on frames the recording "
                "does not check (not recorded, or no keypoint seen on a lossy recording)"
            )
    for comparison in comparisons:
        if comparison.frames_compared == 0 and comparison.frames_analysed_live:
            found.append(f"{comparison.camera}: no analysed frame could be checked")
        rare = comparison.not_verifiable.get(RARE_TAIL)
        if rare:
            found.append(
                f"{comparison.camera}: {rare} frame(s) {RARE_TAIL}: not held against the "
                "session, and not checked either (record FFV1 to prove every frame)"
            )
    frames = coverage["frames"]
    if comparisons and frames["checked"] < MOST_FRAMES_UNCHECKED * frames["analysed"]:
        why = "; ".join(
            f"{c.camera}: "
            + (
                "the likelihood threshold session.json records, which its live keypoints "
                "do not reach (above)"
                if c.camera in threshold_blamed
                else ", ".join(f"{n} {what}" for what, n in c.not_verifiable.items())
            )
            for c in comparisons
            if c.not_verifiable
        )
        found.append(
            f"only {frames['checked']} of {frames['analysed']} analysed frames could be checked "
            f"against the recording ({100 * frames['share']:.0f} %, less than half); the others "
            f"are not verifiable ({why or 'no reason recorded'})"
        )
    return found


def threshold_blame(record: dict[str, Any], camera: str, points: np.ndarray) -> str | None:
    """Say that a camera's likelihood threshold, not its recording, leaves frames unchecked.

    ``points``: the live keypoints (N, A, K, 3). A keypoint below the threshold is "not seen":
    when almost none of the live keypoints reach the threshold ``session.json`` records, no
    lossy bound can be measured and no frame compared. That is the settings' doing (a
    threshold rewritten after the session, the record signed again, reads so), never the
    recording's. None when enough keypoints reach it.
    """
    settings = record.get("settings") or {}
    own = ((settings.get("cameras") or {}).get(camera) or {}).get("LIKELIHOOD_THRESHOLD")
    path = f"settings.cameras.{camera}.LIKELIHOOD_THRESHOLD"
    if own is None:
        own = (settings.get("Pose") or {}).get("LIKELIHOOD_THRESHOLD")
        path = "settings.Pose.LIKELIHOOD_THRESHOLD"
    if not isinstance(own, int | float):
        return None
    likelihood = np.asarray(points, dtype=np.float64)[..., 2].ravel()
    likelihood = likelihood[np.isfinite(likelihood)]
    if not likelihood.size:
        return None
    reaching = int((likelihood >= own).sum())
    if reaching >= THRESHOLD_BLAME_SHARE * likelihood.size:
        return None
    return (
        f"{camera}: the likelihood threshold in the settings, not the recording, is why its "
        f"frames are not checked: {path} is {own:g} in session.json, but only {reaching} of "
        f"{likelihood.size} live keypoints reach it (their median likelihood "
        f"{float(np.median(likelihood)):.2f}); a keypoint below it is not seen, so no bound is "
        "measured and no frame compared. A threshold changed after the session reads so: the "
        "model's likelihoods on this recording show what ran"
    )


def _unverifiable_frames(comparison: KeypointComparison) -> list[int]:
    return comparison.unverifiable_frames


def _decisions_on(session: SessionFiles, check: RunCheck, unverifiable: dict[str, set[int]]) -> int:
    path = session.folder / check.events_file
    if not path.is_file() or not unverifiable:
        return 0
    count = 0
    with path.open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            frame = row.get("frame_index")
            camera = row.get("camera") or ""
            if row.get("kind") in DECISION_KINDS and frame:
                count += int(frame) in unverifiable.get(camera, set())
    return count


def _coverage(
    session: SessionFiles,
    comparisons: list[KeypointComparison],
    decisions: list[RunCheck],
    live: dict[str, ExactRows],
) -> dict[str, Any]:
    """Every analysed frame once, by category, with its share; the decisions re-derived."""
    cameras = {}
    for c in comparisons:
        total = c.frames_analysed_live or 1
        cameras[c.camera] = {
            category: {"frames": c.frames[category], "share": round(c.frames[category] / total, 4)}
            for category in CATEGORIES
        } | {"not_verifiable_why": c.not_verifiable, "explained_by": c.by_cause}
    compared = {c.camera: c for c in comparisons}
    analysed = sum(
        compared[camera.name].frames_analysed_live
        if camera.name in compared
        else len(live[camera.name].frames)
        if camera.name in live
        else 0
        for camera in session.cameras
    )
    checked = sum(c.frames_compared for c in comparisons)
    return {
        "frames": {
            "checked": checked,
            "analysed": analysed,
            "share": round(checked / analysed, 4) if analysed else 0.0,
        },
        "keypoints": cameras,
        "decisions": {
            check.events_file: {
                "updates": check.updates_live,
                "updates_re_derived": check.updates_rederived,
                "rows": check.rows_live,
                "rows_re_derived": check.rows_rederived,
                "rows_equal": check.rows_equal,
                "rows_changed": check.rows_changed,
                "rows_only_live": check.rows_only_live,
                "rows_only_re_derived": check.rows_only_rederived,
                "re_derived": check.not_re_derived is None,
            }
            for check in decisions
        },
    }


def _models_re_derived_with(
    claimed: list[dict[str, Any]], runs: list[OfflineRun]
) -> list[dict[str, Any]]:
    """Return each camera's model as session.json's ``pose`` names it, and the one run again."""
    # The offline analysis loads the model the recorded settings name (their MODEL_PATH, else the
    # bundled one); its own session.json says which (re_derived_with): a summary names both, never
    # only the claim.
    ran: dict[str, dict[str, Any]] = {}
    for run in runs:
        try:
            pose = json.loads((run.folder / "session.json").read_text(encoding="utf-8"))["pose"]
        except (OSError, ValueError, KeyError, TypeError):  # no record of it: nothing to add
            continue
        for camera in run.plan.cameras:
            model = ((pose or {}).get("camera_models") or {}).get(camera.name) or (
                (pose or {}).get("model") or {}
            )
            if model and camera.name not in ran:
                ran[camera.name] = {
                    "name": model.get("name"),
                    "file": model.get("source_file") or model.get("file"),
                    "sha256": model.get("source_sha256") or model.get("sha256"),
                }
    return [
        {**entry, "re_derived_with": ran[entry["camera"]]} if entry.get("camera") in ran else entry
        for entry in claimed
    ]


def _model_claims(models: list[dict[str, Any]]) -> list[str]:
    """Name each camera whose session.json names another model than its settings load."""
    reasons = []
    for entry in models:
        ran = entry.get("re_derived_with")
        claimed_sha = entry.get("recorded_sha256")
        if ran is None or not claimed_sha or not ran.get("sha256") or ran["sha256"] == claimed_sha:
            continue
        reasons.append(
            f"{entry['camera']}: session.json's pose names the model {entry.get('name')!r} "
            f"({entry.get('file')}, SHA-256 {claimed_sha[:12]}...), but its settings load "
            f"{ran.get('name')!r} ({ran.get('file')}, SHA-256 {ran['sha256'][:12]}...), which "
            "re-derived the keypoints: the record contradicts itself"
        )
    return reasons


def _provenance(
    session: SessionFiles,
    proof: RecordProof,
    files: FileProof,
    comparisons: list[KeypointComparison],
    bounds: dict[str, CodecBound],
) -> dict[str, Any]:
    record = session.record
    return {
        "verified_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "verified_with": f"deeplabstream {__version__}",
        "signed_by": proof.signer,
        "session_started": record.get("started"),
        "session_software": (record.get("versions") or {}).get("deeplabstream"),
        "models": files.model.get("cameras", []),
        "experiments": files.experiments,
        "recordings": {
            camera.name: [
                {"video": part.video.name, "lossless": part.lossless} for part in camera.videos
            ]
            for camera in session.cameras
        },
        "bounds_px": {c.camera: c.bound_px for c in comparisons if c.bound_px is not None},
        "bounds": {name: bound.describe() for name, bound in bounds.items()},
    }


def _run_summary(check: RunCheck) -> dict[str, Any]:
    return {
        "events_file": check.events_file,
        "experiment": check.name,
        "agrees": check.agrees,
        "not_re_derived": check.not_re_derived,
        "updates_live": check.updates_live,
        "updates_re_derived": check.updates_rederived,
        "rows_live": check.rows_live,
        "rows_re_derived": check.rows_rederived,
        "rows_equal": check.rows_equal,
        "commands_not_sent_live": check.not_sent,
        "explained": check.explained,
        "differences": check.differences,
    }


def _camera_summary(comparison: KeypointComparison) -> dict[str, Any]:
    data = asdict(comparison)
    data.pop("series")
    data.pop("camera")
    data["frames_compared"] = comparison.frames_compared
    return data


def _notes(session: SessionFiles, comparisons: list[KeypointComparison]) -> list[str]:
    """Return what a reader must know to read the figures (not failures)."""
    notes = []
    for camera in session.cameras:
        if camera.videos and not all(part.lossless for part in camera.videos):
            how = next((c.bound.get("how") for c in comparisons if c.camera == camera.name), None)
            notes.append(
                f"{camera.name}: recorded with a lossy codec (H.264): its keypoints are checked "
                f"within a bound, not to the bit ({how or 'none measured'}); record with "
                "[Recording] CODEC = ffv1 to verify to the bit"
            )
        if camera.pose_exact is None:
            notes.append(
                f"{camera.name}: no {camera.name}{POSE_EXACT_SUFFIX} (a session from before it "
                "was written): keypoints are compared at the pose CSV's 0.001 px and decisions "
                "are not re-derived"
            )
    return notes


__all__ = [
    "REPORT_FILE",
    "SUMMARY_FILE",
    "VERDICTS",
    "VERIFY_FOLDER",
    "ExactRows",
    "Verification",
    "verdict_line",
    "verify_session",
]
