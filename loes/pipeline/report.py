"""The cross-validation report: ``predictions.csv``, ``report.json``, ``report.md``, ``.html``.

:func:`write_report` gathers the out-of-fold predictions of every fold (``fold_K/`` or
``repeat_R/fold_K/`` folders, each with ``predictions.csv`` and ``history.csv``), summarizes them
with :func:`loes.pipeline.metrics.summarize` and writes, atomically, into the run folder:

- ``predictions.csv``: one row per scan per repeat, columns ``repeat, fold, subject, session,
  loes_score, predicted, predicted_<baseline>...``: ``predicted`` is the network's out-of-fold
  prediction, ``predicted_median`` (etc.) the baselines' on the same folds. Every number in
  ``report.json`` can be recomputed from this file alone (:func:`read_predictions`).
- ``report.json``: the :func:`~loes.pipeline.metrics.summarize` dict (``null`` where a metric is
  undefined) plus ``created`` and the run's ``config``.
- ``report.md``: the tables in markdown.
- ``report.html``: one self-contained page (inline CSS, plots as base64 PNG): the page to open
  first.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from loes import __version__
from loes.errors import LoesError
from loes.io import jsonable, write_json, write_text
from loes.pipeline import plots
from loes.pipeline.metrics import (
    NETWORK,
    PREDICTION_COLUMNS,
    REGRESSION_METRICS,
    model_order,
    summarize,
)

__all__ = [
    "collect_histories",
    "collect_predictions",
    "format_summary",
    "read_predictions",
    "to_wide",
    "write_report",
]

PREDICTED_PREFIX = "predicted_"
ID_COLUMNS = ["repeat", "fold", "subject", "session"]
_FOLD_DIR = re.compile(r"^fold_(\d+)$")
_REPEAT_DIR = re.compile(r"^repeat_(\d+)$")


# --------------------------------------------------------------------------- predictions layout


def _column(model: str) -> str:
    return "predicted" if model == NETWORK else f"{PREDICTED_PREFIX}{model}"


def to_wide(predictions: pd.DataFrame) -> pd.DataFrame:
    """The long predictions table as ``predictions.csv``: one row per scan per repeat.

    Columns: ``repeat, fold, subject, session, loes_score, predicted`` (the network) and
    ``predicted_<model>`` for each baseline, the network first, baselines alphabetically.
    """
    long = predictions.loc[:, list(PREDICTION_COLUMNS)].dropna(subset=["predicted"])
    long = long.astype({"repeat": int, "fold": int, "subject": str, "session": str, "model": str})
    scans = long[["repeat", "subject", "session", "fold", "loes_score"]].drop_duplicates()
    conflict = scans.duplicated(["repeat", "subject", "session"], keep=False)
    if conflict.any():
        row = scans[conflict].iloc[0]
        raise LoesError(
            f"Scan {row['subject']}/{row['session']} in repeat {row['repeat']} has different folds "
            "or true scores for different models; baselines must use the network's folds."
        )
    wide = long.pivot(index=["repeat", "subject", "session"], columns="model", values="predicted")
    models = model_order(wide.columns)
    wide = wide[models].rename(columns={m: _column(m) for m in models}).reset_index()
    wide.columns.name = None
    wide = scans.merge(wide, on=["repeat", "subject", "session"], how="left")
    wide = wide[[*ID_COLUMNS, "loes_score", *[_column(m) for m in models]]]
    return wide.sort_values(["repeat", "fold", "subject", "session"], ignore_index=True)


def from_wide(wide: pd.DataFrame) -> pd.DataFrame:
    """The long table (``PREDICTION_COLUMNS``) from the wide ``predictions.csv`` layout."""
    columns = [c for c in wide.columns if c == "predicted" or c.startswith(PREDICTED_PREFIX)]
    missing = [c for c in [*ID_COLUMNS, "loes_score"] if c not in wide.columns]
    if missing or not columns:
        raise LoesError(
            f"predictions.csv lacks {', '.join(missing) or 'a predicted column'}; expected "
            "repeat, fold, subject, session, loes_score, predicted[, predicted_<baseline>...]."
        )
    renamed = wide.rename(columns={c: _model_of(c) for c in columns})
    long = renamed.melt(
        id_vars=[*ID_COLUMNS, "loes_score"],
        value_vars=[_model_of(c) for c in columns],
        var_name="model",
        value_name="predicted",
    )
    long = long.dropna(subset=["predicted"])
    return long[list(PREDICTION_COLUMNS)].reset_index(drop=True)


def _model_of(column: str) -> str:
    return NETWORK if column == "predicted" else column[len(PREDICTED_PREFIX) :]


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a report's ``predictions.csv`` back into the long table that ``summarize`` takes.

    Examples::

        >>> from loes.pipeline.metrics import summarize
        >>> report = summarize(read_predictions("runs/cv/predictions.csv"))  # doctest: +SKIP
    """
    return from_wide(pd.read_csv(path, dtype={"subject": str, "session": str}))


# --------------------------------------------------------------------------- collecting a run


def _fold_folders(run_dir: Path, filename: str) -> list[tuple[Path, int | None, int]]:
    """``(file, repeat or None, fold)`` for each ``[repeat_R/]fold_K/<filename>`` in the run."""
    found = []
    for path in sorted(run_dir.rglob(filename)):
        fold = _FOLD_DIR.match(path.parent.name)
        if not fold:
            continue
        repeat = _REPEAT_DIR.match(path.parent.parent.name)
        found.append((path, int(repeat.group(1)) if repeat else None, int(fold.group(1))))
    return found


def _check_run_dir(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LoesError(f"Run folder {run_dir} does not exist; pass the --out folder of `loes cv`.")
    return run_dir


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"subject": str, "session": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise LoesError(f"{path} is not a readable CSV file ({error}); re-run that fold.") from None


def collect_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The long out-of-fold predictions of every fold in ``run_dir``.

    Reads ``fold_K/predictions.csv`` or ``repeat_R/fold_K/predictions.csv`` (long format: columns
    ``repeat, fold, subject, session, loes_score, predicted, model``); a missing ``repeat`` or
    ``fold`` column is taken from the folder names. Without fold folders, falls back to the
    run's own wide ``predictions.csv``. Raises :class:`LoesError` if there are no predictions.
    """
    run_dir = _check_run_dir(run_dir)
    tables = []
    for path, repeat, fold in _fold_folders(run_dir, "predictions.csv"):
        table = _read_csv(path)
        if "fold" not in table:
            table["fold"] = fold
        if "repeat" not in table:
            table["repeat"] = repeat if repeat is not None else 0
        missing = [c for c in PREDICTION_COLUMNS if c not in table]
        if missing:
            raise LoesError(
                f"{path} lacks the column(s) {', '.join(missing)}; each fold's predictions.csv "
                f"needs {', '.join(PREDICTION_COLUMNS)}."
            )
        tables.append(table[list(PREDICTION_COLUMNS)])
    if tables:
        return pd.concat(tables, ignore_index=True)
    if (run_dir / "predictions.csv").is_file():
        return read_predictions(run_dir / "predictions.csv")
    raise LoesError(
        f"No predictions in {run_dir}: expected fold_K/predictions.csv (or "
        "repeat_R/fold_K/predictions.csv) from `loes cv`; has any fold finished?"
    )


def collect_histories(run_dir: str | os.PathLike) -> dict[tuple[int, int], pd.DataFrame]:
    """Training histories of every fold in ``run_dir``: ``{(repeat, fold): DataFrame}``.

    Reads ``[repeat_R/]fold_K/history.csv`` (columns ``epoch, train_loss, val_mae, lr``). Without
    a ``repeat_R`` folder the repeat comes from a ``repeat`` column in the history or in the
    fold's predictions, else 0.
    """
    run_dir = _check_run_dir(run_dir)
    histories = {}
    for path, repeat, fold in _fold_folders(run_dir, "history.csv"):
        history = _read_csv(path)
        if repeat is None:
            repeat = _repeat_of(history, path.parent / "predictions.csv")
        histories[(repeat, fold)] = history
    return histories


def _repeat_of(history: pd.DataFrame, predictions_path: Path) -> int:
    if "repeat" in history and history["repeat"].notna().any():
        return int(history["repeat"].dropna().iloc[0])
    if predictions_path.is_file():
        repeats = pd.read_csv(predictions_path, usecols=lambda c: c == "repeat")
        if "repeat" in repeats and repeats["repeat"].notna().any():
            return int(repeats["repeat"].dropna().iloc[0])
    return 0


def _normalise_histories(
    histories: dict[Any, pd.DataFrame] | None,
) -> dict[tuple[int, int], pd.DataFrame]:
    return {plots._history_key(k): v for k, v in (histories or {}).items()}


def _config_dict(config: Any) -> Any:
    if config is None or isinstance(config, dict):
        return config
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return vars(config)


def _read_saved_config(run_dir: Path) -> Any:
    """The resolved configuration ``loes cv`` saved in the run folder, if any."""
    for name in ("config.json", "config.yaml", "config.yml", "resolved_config.yaml"):
        path = run_dir / name
        if path.is_file():
            try:
                if path.suffix == ".json":
                    return json.loads(path.read_text())
                import yaml

                return yaml.safe_load(path.read_text())
            except (OSError, ValueError, ImportError):
                return None
    return None


# --------------------------------------------------------------------------- formatting

METRIC_LABELS = {
    "mae": "MAE",
    "rmse": "RMSE",
    "standardized_rmse": "sRMSE",
    "r2": "R²",
    "pearson_r": "Pearson r",
    "spearman_rho": "Spearman ρ",
    "lin_ccc": "Lin CCC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "roc_auc": "ROC AUC",
}


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _mean_sd(mean: Any, sd: Any, digits: int = 2) -> str:
    if _num(sd, digits) == "–":
        return _num(mean, digits)
    return f"{_num(mean, digits)} ± {_num(sd, digits)}"


def _fold_name(fold: dict[str, Any], n_repeats: int) -> str:
    return f"{fold['repeat']}/{fold['fold']}" if n_repeats > 1 else str(fold["fold"])


def _tables(report: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """Every table of the report as ``(title, note, header, rows)``, shared by markdown and HTML."""
    models, metrics, ratios = report["models"], report["metrics"], report["ratios"]
    n_repeats = report["n_repeats"]
    threshold = report["threshold"]
    repeats_note = (
        f" Pooled metrics are computed over all scans of a repeat, then averaged over the "
        f"{n_repeats} repeats."
        if n_repeats > 1
        else ""
    )
    tables = []

    header = ["model", "pooled MAE", "fold MAE (mean ± SD)"]
    header += [METRIC_LABELS[m] for m in REGRESSION_METRICS if m != "mae"]
    header += [f"AUC @{threshold:g}", "MAE ratio"]
    rows = []
    for model in models:
        pooled = metrics[model]["pooled"]
        row = [model, _num(pooled["mae"])]
        row.append(_mean_sd(metrics[model]["fold_mean"]["mae"], metrics[model]["fold_sd"]["mae"]))
        row += [_num(pooled[m]) for m in REGRESSION_METRICS if m != "mae"]
        row += [_num(pooled["roc_auc"]), _ratio_text(model, ratios)]
        rows.append(row)
    tables.append(
        (
            "Pooled out-of-fold metrics",
            "Every scan predicted once by a model that never saw its subject. sRMSE = RMSE / SD of "
            "the true scores (population SD); MAE ratio = network MAE / model MAE (below 1: the "
            "network is better)." + repeats_note,
            header,
            rows,
        )
    )

    header = ["fold", "scans", "subjects", *[f"MAE {m}" for m in models]]
    if NETWORK in models:
        header += [f"ratio vs {b}" for b in models if b != NETWORK]
    header += [f"{METRIC_LABELS[m]} {models[0]}" for m in ("pearson_r", "lin_ccc")]
    rows = []
    fold_maes = {m: {(f["repeat"], f["fold"]): f for f in metrics[m]["folds"]} for m in models}
    for fold in metrics[models[0]]["folds"]:
        key = (fold["repeat"], fold["fold"])
        row = [_fold_name(fold, n_repeats), str(fold["n_scans"]), str(fold["n_subjects"])]
        row += [_num(fold_maes[m].get(key, {}).get("mae")) for m in models]
        if NETWORK in models:
            for baseline in models:
                if baseline != NETWORK:
                    by_key = {
                        (f["repeat"], f["fold"]): f["mae_ratio"] for f in ratios[baseline]["folds"]
                    }
                    row.append(_num(by_key.get(key)))
        row += [_num(fold["pearson_r"]), _num(fold["lin_ccc"])]
        rows.append(row)
    tables.append(
        (
            "Per fold",
            "Fold = repeat/fold when repeated. MAE in Loes points on the fold's held-out subjects.",
            header,
            rows,
        )
    )

    header = [
        "model",
        *[METRIC_LABELS[m] for m in REGRESSION_METRICS],
        "sensitivity",
        "specificity",
        "ROC AUC",
    ]
    rows = []
    for model in models:
        mean, sd = metrics[model]["fold_mean"], metrics[model]["fold_sd"]
        names = [*REGRESSION_METRICS, "sensitivity", "specificity", "roc_auc"]
        rows.append([model, *[_mean_sd(mean[m], sd[m]) for m in names]])
    tables.append(
        (
            "Mean ± SD over folds",
            "Each metric computed within a fold, then averaged over the "
            f"{metrics[models[0]]['n_folds']} folds "
            "(sample SD). Small folds make correlations noisy; prefer the pooled table.",
            header,
            rows,
        )
    )

    labels = report["score_ranges"]
    counts = metrics[models[0]]["mae_by_range"]
    header = ["model", *[f"{label} (n={counts[label]['n']})" for label in labels]]
    rows = [
        [m, *[_num(metrics[m]["mae_by_range"][label]["mae"]) for label in labels]] for m in models
    ]
    tables.append(
        (
            "MAE by true-score range",
            "Pooled MAE of the scans whose true Loes score falls in each range. A model that "
            "predicts the median does well at 0 and badly above 9.",
            header,
            rows,
        )
    )

    header = [
        "model",
        f"positive (≥{threshold:g})",
        "negative",
        "sensitivity",
        "specificity",
        "ROC AUC",
    ]
    rows = []
    for model in models:
        t = metrics[model]["threshold"]
        rows.append(
            [model, _num(t["n_positive"]), _num(t["n_negative"])]
            + [_num(t[m]) for m in ("sensitivity", "specificity", "roc_auc")]
        )
    tables.append(
        (
            f"Transplant threshold (Loes ≥ {threshold:g}) as a classification",
            "A scan is positive when its true score is at or above the threshold and called "
            "positive when its predicted score is; ROC AUC ranks scans by the predicted score.",
            header,
            rows,
        )
    )

    if NETWORK in models and metrics[NETWORK].get("bland_altman"):
        ba = metrics[NETWORK]["bland_altman"]
        tables.append(
            (
                "Bland-Altman agreement (network)",
                "Difference = predicted - true. 95% limits of agreement = bias ± 1.96 SD.",
                ["bias", "SD of differences", "lower limit", "upper limit"],
                [[_num(ba[k]) for k in ("bias", "sd_difference", "loa_lower", "loa_upper")]],
            )
        )
    return tables


def _ratio_text(model: str, ratios: dict[str, Any]) -> str:
    if model not in ratios:
        return "–"
    return _num(ratios[model]["pooled_mae_ratio"])


def _headline(report: dict[str, Any]) -> tuple[str, list[str]]:
    """A one-sentence headline and the run's counts."""
    models, metrics = report["models"], report["metrics"]
    counts = [
        f"{report['n_scans']} scans",
        f"{report['n_subjects']} subjects",
        f"{report['n_folds']} folds",
    ]
    if report["n_repeats"] > 1:
        counts.append(f"{report['n_repeats']} repeats")
    main = NETWORK if NETWORK in models else models[0]
    text = (
        f"Pooled out-of-fold MAE of the {main}: {_num(metrics[main]['pooled']['mae'])} Loes points"
    )
    comparisons = [
        f"{_num(metrics[b]['pooled']['mae'])} for the {b} baseline "
        f"(ratio {_num(r['pooled_mae_ratio'])})"
        for b, r in report["ratios"].items()
    ]
    if comparisons:
        text += " vs " + "; ".join(comparisons)
    return text + ".", counts


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md``: the headline and every table."""
    headline, counts = _headline(report)
    lines = ["# Cross-validation report", "", f"**{headline}**", "", ", ".join(counts) + ".", ""]
    if report.get("created"):
        lines += [f"Created {report['created']} by loes {report.get('loes_version', '')}.", ""]
    for title, note, header, rows in _tables(report):
        lines += [f"## {title}", "", note, ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---", *["---:"] * (len(header) - 1)]) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += [
        "Undefined values (a correlation in a fold with constant scores, a sensitivity without "
        "positive scans) are shown as – and stored as null in report.json.",
        "",
    ]
    return "\n".join(lines)


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2733;
 margin:0;background:#f5f6f8;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:28px 32px 48px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:34px 0 8px;border-bottom:2px solid #e3e7ec;padding-bottom:4px}
.meta{color:#5b6775;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0 6px}
.card{border:1px solid #dfe4ea;border-radius:8px;padding:8px 14px;min-width:120px;
 background:#fafbfc}
.card .v{font-size:24px;font-weight:600}.card .l{font-size:12px;color:#5b6775}
.card.main{border-color:#1f4e9c;background:#eef3fb}.card.main .v{color:#1f4e9c}
.good{color:#1e7b3a}.bad{color:#b03a2e}
p.headline{font-size:16px;margin:10px 0}
p.note{color:#5b6775;font-size:13px;margin:2px 0 8px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 10px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #e3e7ec;text-align:right;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}th:first-child,td:first-child{text-align:left}
tr.network td{font-weight:600;background:#f3f7fd}
.scroll{overflow-x:auto}
figure{margin:16px 0}
figure img{max-width:100%;height:auto;border:1px solid #eceff3;border-radius:4px}
figcaption{color:#5b6775;font-size:13px;max-width:900px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:8px 24px}
details{margin-top:28px;font-size:13px}pre{background:#f5f6f8;padding:10px;overflow-x:auto}
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        css = ' class="network"' if row and row[0] == NETWORK else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _image(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _figures(
    report: dict[str, Any],
    predictions: pd.DataFrame,
    histories: dict[tuple[int, int], pd.DataFrame],
) -> list[str]:
    threshold = report["threshold"]
    repeat_note = " (first repeat)" if report["n_repeats"] > 1 else ""
    specs: list[tuple[Callable[[], Any], str, str]] = [
        (
            lambda: plots.plot_predicted_vs_true(predictions, threshold),
            "predicted vs true",
            f"Out-of-fold predictions{repeat_note}, one colour per fold. Points on the grey "
            f"identity line are exact; red dotted lines mark Loes {threshold:g}: points in the "
            "upper-left and lower-right quadrants are misclassified for transplant eligibility.",
        ),
        (
            lambda: plots.plot_bland_altman(predictions),
            "Bland-Altman",
            f"Prediction minus truth against their mean{repeat_note}. The solid line is the bias; "
            "95% of differences fall between the dashed limits of agreement. A downward slope "
            "means high scores are under-predicted (regression to the mean).",
        ),
        (
            lambda: plots.plot_fold_mae(report),
            "MAE per fold",
            "MAE of each model on each test fold; dashed lines are the pooled MAEs. The network "
            "should beat every baseline in every fold, not only on average.",
        ),
        (
            lambda: plots.plot_error_by_range(report),
            "error by score range",
            "Pooled MAE within each range of the true score (n = scans per range).",
        ),
    ]
    if histories:
        specs.append(
            (
                lambda: plots.plot_learning_curves(histories),
                "learning curves",
                "Training loss and MAE on each fold's inner validation subjects (never the test "
                "fold) by epoch; the dot marks each fold's lowest validation MAE. "
                "A rising validation curve with a falling training loss means overfitting.",
            )
        )
    trajectory = plots.plot_trajectories(predictions, threshold=threshold)
    parts, full_width = [], []
    for make, alt, caption in specs:
        figure = make()
        wide = figure.get_figwidth() > 7 or alt == "learning curves"
        (full_width if wide else parts).append(_image(plots.figure_to_png(figure), alt, caption))
    grid = '<div class="grid">' + "".join(parts) + "</div>" + "".join(full_width)
    if not histories:
        grid += '<p class="note">No history.csv found in the fold folders: no learning curves.</p>'
    if trajectory is not None:
        grid += _image(
            plots.figure_to_png(trajectory),
            "trajectories",
            f"True (black) and predicted (blue) scores over each subject's sessions{repeat_note}, "
            "for the subjects with the most sessions. A good model follows the rise of the disease "
            "within a subject, not just the cohort average.",
        )
    return [grid]


def render_html(
    report: dict[str, Any],
    predictions: pd.DataFrame,
    histories: dict[tuple[int, int], pd.DataFrame] | None = None,
) -> str:
    """``report.html``: headline, tables and embedded plots in one file with no external links."""
    headline, counts = _headline(report)
    models, metrics = report["models"], report["metrics"]
    main = NETWORK if NETWORK in models else models[0]
    cards = [
        f'<div class="card main"><div class="v">{_num(metrics[main]["pooled"]["mae"])}</div>'
        f'<div class="l">{html.escape(main)} pooled MAE</div></div>'
    ]
    for baseline, ratio in report["ratios"].items():
        value = ratio["pooled_mae_ratio"]
        css = "good" if value is not None and value < 1 else "bad"
        cards.append(
            f'<div class="card"><div class="v">{_num(metrics[baseline]["pooled"]["mae"])} '
            f'<span class="{css}" style="font-size:15px">× {_num(value)}</span></div>'
            f'<div class="l">{html.escape(baseline)} MAE · network ratio</div></div>'
        )
    for key in ("standardized_rmse", "lin_ccc", "roc_auc"):
        cards.append(
            f'<div class="card"><div class="v">{_num(metrics[main]["pooled"][key])}</div>'
            f'<div class="l">{METRIC_LABELS[key]}'
            f"{' @' + format(report['threshold'], 'g') if key == 'roc_auc' else ''}</div></div>"
        )
    created = html.escape(str(report.get("created", "")))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Loes score cross-validation report</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>Loes score cross-validation report</h1>",
        f'<div class="meta">{" · ".join(html.escape(c) for c in counts)} · subject-grouped · '
        f"created {created} · loes {html.escape(str(report.get('loes_version', '')))}</div>",
        f'<div class="cards">{"".join(cards)}</div>',
        f'<p class="headline">{html.escape(headline)}</p>',
    ]
    for title, note, header, rows in _tables(report):
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            f'<p class="note">{html.escape(note)}</p>',
            _html_table(header, rows),
        ]
    parts += ["<h2>Plots</h2>", *_figures(report, predictions, histories or {})]
    parts.append(
        '<p class="note">Undefined values (a correlation in a fold with constant scores, a '
        "sensitivity without positive scans) are shown as – and stored as null in report.json. "
        "Every number here can be recomputed from predictions.csv.</p>"
    )
    if report.get("config") is not None:
        config = html.escape(json.dumps(report["config"], indent=2, default=str))
        parts.append(
            f"<details><summary>Configuration of this run</summary><pre>{config}</pre></details>"
        )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def format_summary(report: dict[str, Any]) -> Any:
    """The terminal summary: a rich Table with one row per model.

    Columns: model, pooled MAE, fold MAE (mean ± SD), RMSE, sRMSE, Pearson r, Lin CCC, ROC AUC at
    the transplant threshold, and the network's MAE ratio to that model.
    """
    from rich import box
    from rich.table import Table

    headline, counts = _headline(report)
    table = Table(
        title="Cross-validation: " + ", ".join(counts),
        caption=headline,
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
            _num(pooled["mae"]),
            _mean_sd(m["fold_mean"]["mae"], m["fold_sd"]["mae"]).replace(" ± ", "±"),
            _num(pooled["rmse"]),
            _num(pooled["standardized_rmse"]),
            _num(pooled["pearson_r"]),
            _num(pooled["lin_ccc"]),
            _num(pooled["roc_auc"]),
            _ratio_text(model, report["ratios"]),
        )
    return table


# --------------------------------------------------------------------------- writing


def write_report(
    run_dir: str | os.PathLike,
    predictions: pd.DataFrame | None = None,
    histories: dict[Any, pd.DataFrame] | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Write ``predictions.csv`` and ``report.json``/``.md``/``.html`` into ``run_dir``.

    ``predictions`` is the long out-of-fold table (see :func:`loes.pipeline.metrics.summarize`);
    ``histories`` maps ``(repeat, fold)`` (or ``"R_K"``) to a DataFrame with ``epoch,
    train_loss, val_mae, lr``. Either, when ``None``, is collected from the fold folders of
    ``run_dir``; ``config`` (a dict, dataclass or pydantic model) defaults to the configuration
    saved there. Returns the report as written to ``report.json`` (``None`` for undefined values).

    Examples::

        >>> report = write_report("runs/cv")  # doctest: +SKIP
        >>> report["ratios"]["median"]["pooled_mae_ratio"]  # doctest: +SKIP
        0.52
    """
    run_dir = Path(run_dir)
    if predictions is None:
        predictions = collect_predictions(run_dir)
    if histories is None:
        histories = collect_histories(run_dir) if run_dir.is_dir() else {}
    histories = _normalise_histories(histories)
    if config is None and run_dir.is_dir():
        config = _read_saved_config(run_dir)

    wide = to_wide(predictions)
    long = from_wide(wide)  # exactly what predictions.csv holds, so report.json matches it
    report = jsonable(
        {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "loes_version": __version__,
            **summarize(long),
            "config": _config_dict(config),
        }
    )
    write_text(run_dir / "predictions.csv", wide.to_csv(index=False))
    write_json(run_dir / "report.json", report)
    write_text(run_dir / "report.md", render_markdown(report))
    write_text(run_dir / "report.html", render_html(report, long, histories))
    return report
