"""What ``loes explain`` prints once the maps are written: a line per method with how well its
maps point at the lesions beside a random map, then the files; and the scans that failed."""

from __future__ import annotations

import pandas as pd

from loes.data.problems import plural
from loes.errors import LoesError
from loes.pipeline.explain.explanations import EXPLANATIONS_FILE, PAGE_FILE

__all__ = ["print_summary", "raise_for_failures"]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def print_summary(table: pd.DataFrame) -> None:
    """One line per method of :func:`~loes.pipeline.explain.explanations.explain`'s summary
    (``table.attrs["summary"]``), then where the table and page are."""
    out, summary = table.attrs["out"], table.attrs["summary"]
    provenance = summary.get("provenance") or {}
    if provenance.get("trained"):
        print(f"models {provenance['trained']}")
    for warning in provenance.get("warnings") or []:
        print(f"warning: the run's own report: {warning}; read the maps in that light")
    for method, entry in summary["methods"].items():
        line = f"{method}: {plural(entry['scans'], 'scan')}"
        if entry["flat_maps"]:
            line += f" ({entry['flat_maps']} flat: no place stands out)"
        lesioned = entry.get("map")
        if lesioned:
            random = entry["baselines"]["random"]
            line += (
                f"; on {entry['scans_with_lesions']} with lesions, relevance mass accuracy "
                f"{_fmt(lesioned['relevance_mass_accuracy'])} (lesions' share of the brain "
                f"{_fmt(lesioned['lesion_share'])}, random map "
                f"{_fmt(random['relevance_mass_accuracy'])}), ROC AUC {_fmt(lesioned['auc'])} "
                f"(random {_fmt(random['auc'])}), pointing game {_fmt(lesioned['pointing'])}"
            )
        if entry.get("random_weights_rank_correlation") is not None:
            line += (
                "; rank correlation with randomised weights "
                f"{_fmt(entry['random_weights_rank_correlation'])}"
            )
        print(line)
    print(f"explanations: {out / EXPLANATIONS_FILE}; page: {out / PAGE_FILE}")


def raise_for_failures(table: pd.DataFrame) -> None:
    """Raise :class:`LoesError` naming up to three scans that could not be explained."""
    failed = table[table["error"] != ""]
    if len(failed):
        out = table.attrs["out"]
        failed = failed.drop_duplicates("image")
        shown = "; ".join(f"{r.image}: {r.error}" for r in failed.head(3).itertuples())
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise LoesError(
            f"{plural(len(failed), 'scan')} could not be explained ({shown}{more}); "
            f"their rows in {out / EXPLANATIONS_FILE} say why."
        )
