import re
from importlib import resources

import numpy as np
import pandas as pd
from rich.console import Console

from loes.pipeline.report import format_summary, plots, render_html, render_markdown, write_report
from loes.pipeline.report.numbers import mean_sd, number, signed
from loes.pipeline.report.summary import summarize
from loes.pipeline.report.tables import comparisons, headline, tables


def test_report_html_is_self_contained(written):
    run_dir, _, _ = written
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6  # 4 plots, learning curves, trajectories
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "<link" not in page
    assert "Network pooled MAE" in page
    assert "alexnet3d" in page  # the configuration is shown


def test_report_html_layout(written):
    run_dir, _, report = written
    page = (run_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</main></body></html>")
    assert "<style>" in page
    pooled = report["metrics"]["network"]["pooled"]["mae"]
    assert f'<div class="card main"><div class="v">{pooled:.2f}</div>' in page
    assert '<tr class="network"><td>network</td>' in page
    assert page.count("<h2>") == len(tables(report)) + 1  # every table and the plots
    assert "<details><summary>Configuration of this run</summary>" in page
    assert "No history.csv found" not in page


def test_report_html_escapes_every_value(written):
    _, table, report = written
    hostile = {**report, "config": {"note": "</pre><script>alert(1)</script>"}}
    page = render_html(hostile, table)
    assert "<script" not in page
    assert "&lt;/pre&gt;&lt;script&gt;" in page
    assert "No history.csv found in the fold folders" in page  # no histories given


def test_the_template_ships_inside_the_package():
    template = resources.files("loes.pipeline.report") / "templates" / "report.html.j2"
    assert template.is_file()


def test_report_md_has_every_table(written):
    run_dir, _, report = written
    text = (run_dir / "report.md").read_text()
    for heading in (
        "Pooled out-of-fold metrics",
        "Per fold",
        "Mean ± SD over folds",
        "MAE by true-score range",
        "Transplant threshold",
    ):
        assert f"## {heading}" in text
    pooled = report["metrics"]["network"]["pooled"]["mae"]
    assert f"| network | {pooled:.2f} |" in text
    assert "| 1/2 |" in text  # repeat 1, fold 2
    assert text == render_markdown(report)


def test_format_summary_lists_every_model(written):
    _, _, report = written
    console = Console(width=120, record=True)
    console.print(format_summary(report))
    text = console.export_text()
    for model in ("network", "median", "ridge"):
        assert model in text
    difference = report["differences"]["median"]
    assert f"{difference['mae_difference']:.2f}" in text
    assert f"{difference['low']:.2f} to {difference['high']:.2f}" in text


def test_numbers_as_text():
    assert number(None) == "–"
    assert number(float("nan")) == "–"
    assert number(3) == "3"
    assert number(1.2345) == "1.23"
    assert mean_sd(1.0, None) == "1.00"
    assert mean_sd(1.0, 0.5) == "1.00 ± 0.50"


NEGATIVE_ZERO = re.compile(r"-0\.0+(?![0-9])")


def test_negative_zero_is_never_printed(tmp_path, synthetic_predictions):
    table = synthetic_predictions(repeats=1)
    network = table["model"] == "network"
    # a bias of -0.001: every agreement figure rounds to zero from below
    table.loc[network, "predicted"] = table.loc[network, "loes_score"] - 0.001
    report = write_report(tmp_path, table, {})
    assert report["metrics"]["network"]["bland_altman"]["bias"] < 0
    console = Console(width=200, record=True)
    console.print(format_summary(report))
    pages = {
        "report.md": (tmp_path / "report.md").read_text(),
        "report.html": (tmp_path / "report.html").read_text(),
        "terminal": console.export_text(),
    }
    for name, text in pages.items():
        assert not NEGATIVE_ZERO.search(text), name
    assert "| 0.00 | 0.00 | 0.00 | 0.00 |" in pages["report.md"]  # Bland-Altman row
    labels = [t.get_text() for t in plots.plot_bland_altman(table).axes[0].texts]
    assert labels == ["bias 0.00", "+1.96 SD 0.00", "-1.96 SD 0.00"]
    assert (number(-0.004), signed(-0.004), signed(0.5)) == ("0.00", "0.00", "+0.50")


def test_headline_says_better_worse_or_unclear_with_intervals(written, synthetic_predictions):
    _, _, report = written
    text, _ = headline(report)
    median = report["differences"]["median"]
    assert median["excludes_zero"]
    assert median["mae_difference"] < 0
    assert (
        f"Better than the median baseline ({report['metrics']['median']['pooled']['mae']:.2f}) "
        f"by {-median['mae_difference']:.2f} points: difference {median['mae_difference']:.2f}, "
        f"95% CI {median['low']:.2f} to {median['high']:.2f}, which excludes 0."
    ) in text
    assert " x " not in text
    assert "×" not in text  # no ratio that reads like a product
    # a baseline as good as the network (its errors, dealt to other scans): no verdict
    table = synthetic_predictions(repeats=1)
    twin = table[table["model"] == "network"].assign(model="twin")
    errors = (twin["predicted"] - twin["loes_score"]).to_numpy()
    twin["predicted"] = twin["loes_score"] + np.random.default_rng(0).permutation(errors)
    both = summarize(pd.concat([table, twin], ignore_index=True))
    unclear = next(c for c in comparisons(both) if c["baseline"] == "twin")
    assert unclear["verdict"] == "unclear"
    assert unclear["sentence"].startswith("Not clearly better or worse than the twin baseline")
    assert "which includes 0" in unclear["sentence"]


def test_cards_give_the_difference_its_interval_and_the_verdict(written):
    run_dir, _, report = written
    page = (run_dir / "report.html").read_text()
    for baseline, difference in report["differences"].items():
        assert f'<div class="v">{difference["mae_difference"]:.2f}</div>' in page
        assert (
            f'<div class="d">95% CI {difference["low"]:.2f} to {difference["high"]:.2f}</div>'
            in page
        ), baseline
    assert '<div class="verdict good">network better: the interval excludes 0</div>' in page
    pooled_ci = report["metrics"]["network"]["pooled_ci"]["mae"]
    assert f"95% CI {pooled_ci['low']:.2f} to {pooled_ci['high']:.2f}" in page
    assert "How sure: pooled metrics with 95% intervals" in page


def test_every_page_starts_with_what_was_run(written):
    run_dir, _, report = written
    md = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    console = Console(width=120, record=True)
    console.print(format_summary(report))
    terminal = console.export_text()
    assert md.index("- **Scans**: 24 scans of 12 subjects") < md.index("## ")
    assert html.index("<caption>What was run</caption>") < html.index('<div class="cards">')
    assert "<tr><th>Folds</th><td>3 folds × 2 repeats, grouped by subject</td></tr>" in html
    assert terminal.index("Scans: 24 scans of 12 subjects") < terminal.index("Cross-validation:")
    # 24 scans: a smoke run, said on every page
    smoke = report["run"]["smoke_text"]
    assert smoke.startswith("Smoke run: 4 training epochs (under 10) and 24 scans (under 40)")
    assert f"> **Warning**: {smoke}" in md
    assert smoke in html
    assert "Smoke run" in terminal


def test_the_terminal_table_fits_80_columns_without_breaking_an_interval(written):
    _, _, report = written
    console = Console(width=80, record=True)
    console.print(format_summary(report))
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    for model in report["models"]:
        ci = report["metrics"][model]["pooled_ci"]["mae"]
        row = next(line for line in lines if line.lstrip().startswith(model + " "))
        assert f"{ci['low']:.2f} to {ci['high']:.2f}" in row, row
    for baseline, difference in report["differences"].items():
        row = next(line for line in lines if line.lstrip().startswith(baseline + " "))
        assert f"{difference['low']:.2f} to {difference['high']:.2f}" in row, row
