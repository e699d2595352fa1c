"""The latency self-test's histogram: the board's light-on -> command times, for a paper."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_histogram(figures: dict[str, Any], path: Path) -> Path:
    """Draw the board's and the app's figures per flash as histograms; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # a file only: no display needed
    import matplotlib.pyplot as plt

    events = figures["per_event"]
    board = [event["board_ms"] for event in events]
    app = [event["app_ms"] for event in events]
    camera = figures["camera"]
    figure, axis = plt.subplots(figsize=(6.4, 4.0), dpi=150)
    if board:
        low, high = min(board + app), max(board + app)
        bins = max(10, min(60, len(board) // 2))
        edges = [low + (high - low) * i / bins for i in range(bins + 1)] if high > low else bins
        axis.hist(
            board, bins=edges, color="#1f77b4", alpha=0.75, label="board: light on -> command"
        )
        axis.hist(
            app,
            bins=edges,
            histtype="step",
            color="#d62728",
            linewidth=1.5,
            label="app's own account",
        )
    stats = figures.get("board_ms") or {}
    agreement = figures.get("agreement_ms") or {}
    lines = [
        f"{figures['events']} flashes, camera {camera['name']}: "
        f"frame {camera['frame_interval_ms']:.2f} ms, exposure {camera['exposure_ms']:.2f} ms",
    ]
    if stats:
        lines.append(
            f"board p50 {stats['p50']:.2f}, p95 {stats['p95']:.2f}, p99 {stats['p99']:.2f}, "
            f"max {stats['max']:.2f} ms; |app - board| p99 "
            f"{agreement.get('p99', float('nan')):.3f} ms"
        )
    axis.set_title("\n".join(lines), fontsize=8)
    axis.set_xlabel("light on -> command received by the board (ms)")
    axis.set_ylabel("flashes")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
