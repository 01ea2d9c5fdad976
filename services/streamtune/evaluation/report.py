"""Write an evaluation's outputs: ``results.json``, ``results.md`` and ``auc_over_time.png``."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.scoring import ContenderResult, is_defined

logger = logging.getLogger(__name__)

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
AUC_PLOT = "auc_over_time.png"
_FOOTNOTE = (
    "Scores are prequential: each event is scored before it is learned from. Chunk: events "
    "scored between two versions of the contender (1: it learns each event before the next is "
    "scored). Cold events: their item was seen fewer than 3 times before (warm-up included). "
    "AUC is undefined (—) for a window holding one class only; the last window may be short. "
    "wall s: seconds the contender kept the run busy (scoring, training, waiting for its versions)."
)


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` put each output."""

    json: Path
    markdown: Path
    plot: Path


def write_report(
    results: Sequence[ContenderResult],
    out_dir: str | Path,
    *,
    meta: Mapping[str, Any] | None = None,
) -> ReportFiles:
    """Write the three outputs for ``results`` into ``out_dir`` (created if missing).

    Parameters
    ----------
    results
        One entry per contender, in the order the table and legend should show them.
    out_dir
        Output directory.
    meta
        How the run was made (events file, window, seed, limit …); stored in the JSON and
        listed above the table.

    Raises
    ------
    EvaluationError
        If two contenders share a name, or matplotlib is not installed.
    """
    names = [result.name for result in results]
    if len(set(names)) != len(names):
        raise EvaluationError(f"contender names must be unique, got {names}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / RESULTS_JSON, out / RESULTS_MD, out / AUC_PLOT)
    document = results_document(results, meta)
    files.json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", "utf-8")
    files.markdown.write_text(results_markdown(results, meta), "utf-8")
    plot_auc_over_time(results, files.plot)
    logger.info("wrote evaluation report for %d contenders to %s", len(results), out)
    return files


def results_document(results: Sequence[ContenderResult], meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``results.json`` content: ``{"meta": …, "contenders": {name: result}}``."""
    return {
        "meta": dict(meta or {}),
        "contenders": {result.name: result.to_dict() for result in results},
    }


def results_markdown(results: Sequence[ContenderResult], meta: Mapping[str, Any] | None = None) -> str:
    """The ``results.md`` content: run details, then one table row per contender."""
    lines = ["# Prequential evaluation", ""]
    for key, value in (meta or {}).items():
        lines.append(f"- {key}: {value}")
    if meta:
        lines.append("")
    lines += [
        "| contender | chunk | events | AUC | log-loss | cold events | cold AUC | cold log-loss "
        "| AUC first window | AUC last window | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        first = result.windows[0].auc if result.windows else None
        last = result.windows[-1].auc if result.windows else None
        cold = result.cold
        cells = [
            result.name,
            str(result.params.get("chunk", "—")),
            str(result.n),
            _fmt(result.auc),
            _fmt(result.logloss),
            "—" if cold is None else str(cold.n),
            _fmt(None if cold is None else cold.auc),
            _fmt(None if cold is None else cold.logloss),
            _fmt(first),
            _fmt(last),
            _fmt(result.wall_seconds, digits=1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        _FOOTNOTE,
        "",
    ]
    return "\n".join(lines)


def plot_auc_over_time(results: Sequence[ContenderResult], path: str | Path) -> Path:
    """Draw one AUC line per contender over its event windows and save a PNG.

    The x axis is each window's last event time when every window has one, else the window
    index. Windows with undefined AUC leave a gap.
    """
    try:
        # Imported here: matplotlib is slow to import and only this function needs it.
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise EvaluationError("the AUC plot needs matplotlib; install it with `pip install matplotlib`") from exc

    windows = [window for result in results for window in result.windows]
    by_date = bool(windows) and all(window.last_ts is not None for window in windows)
    # Figure without pyplot: no global backend state, Agg rendering, safe in any thread.
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for result in results:
        xs: list[Any] = [
            datetime.fromtimestamp(window.last_ts / 1000, tz=UTC)
            if by_date and window.last_ts is not None
            else window.index
            for window in result.windows
        ]
        ys = [window.auc if is_defined(window.auc) else math.nan for window in result.windows]
        chunk = result.params.get("chunk")
        label = result.name if chunk is None else f"{result.name} (chunk {chunk})"
        axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.4, label=label)
    axes.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlabel("window end (UTC)" if by_date else "window")
    axes.set_ylabel("ROC AUC")
    axes.set_title("Prequential AUC per window")
    axes.grid(alpha=0.3)
    if results:
        axes.legend(loc="best", fontsize="small")
    target = Path(path)
    figure.savefig(target, dpi=120, format="png")
    return target


def _fmt(value: float | None, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if is_defined(value) else "—"
