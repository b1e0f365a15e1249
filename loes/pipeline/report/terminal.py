"""The summary ``loes cv`` and ``loes report`` print: a ``rich`` table, one row per model."""

from __future__ import annotations

from typing import Any

from loes.pipeline.metrics import NETWORK
from loes.pipeline.report.tables import headline, mean_sd, number, ratio_text

__all__ = ["format_summary"]


def format_summary(report: dict[str, Any]) -> Any:
    """The terminal summary of ``report`` (the dict written to ``report.json``): a rich Table.

    One row per model, the network in bold. Columns: model, pooled MAE, fold MAE (mean ± SD),
    RMSE, sRMSE, Pearson r, Lin CCC, ROC AUC at the transplant threshold, and the network's MAE
    ratio to that model (below 1: the network is better). MAEs and RMSEs are in Loes points;
    undefined values are ``–``. The title gives the counts, the caption the headline.
    """
    from rich import box
    from rich.table import Table

    text, counts = headline(report)
    table = Table(
        title="Cross-validation: " + ", ".join(counts),
        caption=text,
        box=box.SIMPLE_HEAD,
        caption_justify="left",
    )
    threshold = f"AUC@{report['threshold']:g}"
    columns = ["model", "MAE", "fold MAE", "RMSE", "sRMSE", "r", "CCC", threshold, "ratio"]
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    for model in report["models"]:
        m = report["metrics"][model]
        pooled = m["pooled"]
        table.add_row(
            f"[bold]{model}[/bold]" if model == NETWORK else model,
            number(pooled["mae"]),
            mean_sd(m["fold_mean"]["mae"], m["fold_sd"]["mae"]).replace(" ± ", "±"),
            number(pooled["rmse"]),
            number(pooled["standardized_rmse"]),
            number(pooled["pearson_r"]),
            number(pooled["lin_ccc"]),
            number(pooled["roc_auc"]),
            ratio_text(model, report["ratios"]),
        )
    return table
