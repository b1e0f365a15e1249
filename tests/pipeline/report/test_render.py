import re
from importlib import resources

from rich.console import Console

from loes.pipeline.report import format_summary, render_html, render_markdown
from loes.pipeline.report.tables import mean_sd, number, tables


def test_report_html_is_self_contained(written):
    run_dir, _, _ = written
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6  # 4 plots, learning curves, trajectories
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "<link" not in page
    assert "Pooled out-of-fold MAE of the network" in page
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
    ratio = report["ratios"]["median"]["pooled_mae_ratio"]
    assert f"{ratio:.2f}" in text


def test_numbers_as_text():
    assert number(None) == "–"
    assert number(float("nan")) == "–"
    assert number(3) == "3"
    assert number(1.2345) == "1.23"
    assert mean_sd(1.0, None) == "1.00"
    assert mean_sd(1.0, 0.5) == "1.00 ± 0.50"
