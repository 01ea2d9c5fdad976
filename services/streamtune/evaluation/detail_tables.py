"""Markdown tables that go under the summary of ``results.md``: AUC and log-loss per window, in
how many windows each contender beats the baselines, and how fresh each contender's model was
when it scored."""

from __future__ import annotations

from collections.abc import Sequence

from streamtune.evaluation.scoring import ContenderResult, is_defined


def detail_markdown(results: Sequence[ContenderResult]) -> str:
    """The per-window and freshness sections, or an empty string when there is nothing to show."""
    if not results or not results[0].windows:
        return ""
    return "\n".join(
        [
            *_window_table(results, "auc", "AUC"),
            *_window_table(results, "logloss", "Log-loss"),
            *_wins_table(results),
            *_freshness_table(results),
        ]
    )


def _window_table(results: Sequence[ContenderResult], metric: str, title: str) -> list[str]:
    windows = results[0].windows
    lines = [f"## {title} per window", "", "| window | events | " + " | ".join(r.name for r in results) + " |"]
    lines.append("|---|---:|" + "---:|" * len(results))
    for index, window in enumerate(windows):
        cells = [_fmt(getattr(r.windows[index], metric)) if index < len(r.windows) else "—" for r in results]
        lines.append(f"| {window.label} | {window.n} | " + " | ".join(cells) + " |")
    return [*lines, ""]


# The baselines every learner must beat: the no-learning floor and River's best online model.
BASELINES = ("popularity", "river_fm")


def _wins_table(results: Sequence[ContenderResult]) -> list[str]:
    """Per contender, the windows where its AUC (and its log-loss) beats each baseline's."""
    by_name = {result.name: result for result in results}
    baselines = [name for name in BASELINES if name in by_name]
    if not baselines:
        return []
    lines = [
        "## Windows won against the baselines",
        "",
        "Windows where the contender's AUC is higher (log-loss lower) than the baseline's.",
        "",
        "| contender | " + " | ".join(f"AUC above {b} | log-loss below {b}" for b in baselines) + " |",
        "|---|" + "---:|---:|" * len(baselines),
    ]
    for result in results:
        cells = []
        for name in baselines:
            pairs = list(zip(result.windows, by_name[name].windows, strict=False))
            auc = sum(
                is_defined(ours.auc) and is_defined(theirs.auc) and ours.auc > theirs.auc for ours, theirs in pairs
            )
            loss = sum(ours.logloss is not None and theirs.logloss is not None and ours.logloss < theirs.logloss
                       for ours, theirs in pairs)  # fmt: skip
            cells += [f"{auc}/{len(pairs)}", f"{loss}/{len(pairs)}"]
        lines.append(f"| {result.name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _freshness_table(results: Sequence[ContenderResult]) -> list[str]:
    lines = [
        "## Freshness when scoring",
        "",
        "Lag in events: events between the last one the serving version was trained on and the "
        "event scored. Lag in hours: event time minus the version's data watermark.",
        "",
        "| contender | versions served | mean lag (events) | max lag (events) | median lag (hours) |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lag = result.params.get("freshness") or {}
        lines.append(
            f"| {result.name} | {lag.get('versions_served', '—')} | {_fmt(lag.get('lag_events_mean'), 1)} | "
            f"{lag.get('lag_events_max', '—')} | {_fmt(lag.get('lag_hours_median'), 1)} |"
        )
    return [*lines, ""]


def _fmt(value: float | None, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if is_defined(value) else "—"
