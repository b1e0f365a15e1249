"""The summary ``loes cv`` and ``loes report`` print: what was run, warnings, table, verdict."""

from __future__ import annotations

from typing import Any

from loes.pipeline.report.change_text import change_sentence
from loes.pipeline.report.numbers import interval_text, number
from loes.pipeline.report.tables import comparisons, headline, notices, what_was_run
from loes.pipeline.run.predictions import NETWORK

__all__ = ["format_summary"]


def format_summary(report: dict[str, Any]) -> Any:
    """The terminal summary of ``report`` (the dict written to ``report.json``): a rich renderable.

    From top to bottom: what was run (model, data, scans and subjects, folds x repeats, epochs,
    resolution, device, loes version); the warnings in plain words (a partial run naming its
    missing folds, a smoke run, near-constant predictions, a network worse than the median
    baseline); a table with one row per model, the network in bold (pooled MAE with its 95%
    subject-bootstrap interval, sRMSE, Lin CCC, ROC AUC at the transplant threshold, and the
    network's MAE minus that model's with its paired interval; it fits 80 columns); and the
    headline: the network against each baseline, in words. MAEs are in Loes points; undefined
    values are ``–``; then the three worst-predicted scans (the report lists more) and the
    change between consecutive sessions in one sentence
    (:func:`~loes.pipeline.report.change_text.change_sentence`). Print it with
    ``rich.console.Console().print``.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    text, counts = headline(report)
    about = Text("What was run\n", style="bold")
    for label, value in what_was_run(report):
        about.append(f"  {label}: ", style="dim")
        about.append(f"{value}\n")
    parts: list[Any] = [about]
    for notice in notices(report):
        parts.append(Text(f"! {notice}", style="bold yellow"))

    table = Table(
        title="Cross-validation: " + ", ".join(counts),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = ["model", "MAE", "95% CI", "sRMSE", "CCC", f"AUC@{report['threshold']:g}"]
    columns += ["net-model", "95% CI"]
    for column in columns:
        interval = column.startswith("95%")
        justify = "left" if column == "model" else "right"
        table.add_column(column, justify=justify, no_wrap=not interval)
    versus = {c["baseline"]: c for c in comparisons(report)}
    for model in report["models"]:
        m = report["metrics"][model]
        pooled = m["pooled"]
        against = versus.get(model, {})
        table.add_row(
            f"[bold]{model}[/bold]" if model == NETWORK else model,
            number(pooled["mae"]),
            interval_text(m.get("pooled_ci", {}).get("mae")),
            number(pooled["standardized_rmse"]),
            number(pooled["lin_ccc"]),
            number(pooled["roc_auc"]),
            against.get("difference", "–"),
            against.get("interval", "–"),
        )
    parts += [table, Text(text, style="bold")]
    worst = report.get("worst") or []
    if worst:
        repeated = report["n_repeats"] > 1
        shown = []
        for w in worst[:3]:
            fold = f"{w['repeat']}/{w['fold']}" if repeated else str(w["fold"])
            call = f", {w['call']}" if w["call"] else ""
            shown.append(
                f"{w['subject']} {w['session']} (fold {fold}): {number(w['loes_score'], 1)} "
                f"predicted {number(w['predicted'], 1)}{call}"
            )
        parts.append(Text(f"Worst predicted: {'; '.join(shown)} (the report lists {len(worst)})."))
    if "change" in report:
        parts.append(Text(f"Change between sessions: {change_sentence(report['change'])}"))
    return Group(*parts)
