"""What the reader of a prediction must know of the run whose models made it: the data it learned
from (the built-in synthetic cohort or the lab's table), which run, when, with which loes, its
cross-validated MAE with the 95% subject-bootstrap interval beside the median baseline's, and
the warnings its own report gave (a smoke run, near-constant predictions, worse than the median
baseline, missing folds). Read from the run's ``report.json``, which ``loes cv`` writes when it
ends; carried into a bundle's ``ensemble.json``; shown on every prediction page, in the
predictions' sidecar and the bundle's documents, and each warning in every prediction's flags.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from loes.errors import LoesError
from loes.pipeline.run.predictions import NETWORK

__all__ = ["REPORT_FILE", "RunCard", "read_run_card"]

#: the run's report, written by ``loes cv`` and ``loes report``
REPORT_FILE = "report.json"
#: the baseline every MAE is shown beside (the training median predicted for everyone)
_BASELINE = "median"


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass(frozen=True)
class RunCard:
    """The provenance and quality of a run (see the module docstring).

    Attributes:
        run: the run folder's name.
        created: when its report was written (ISO 8601, UTC), or None.
        loes_version: the loes that trained it, or None.
        data_source: in words: ``"built-in synthetic cohort (66 subjects, seed 0)"`` or the
            lab's table.
        synthetic: whether the models learned from the built-in synthetic cohort.
        n_scans, n_subjects: the scans and subjects cross-validated.
        mae, mae_low, mae_high: the network's pooled out-of-fold MAE and its 95% interval,
            Loes points (None when undefined).
        baseline_mae: the median baseline's pooled MAE on the same folds, Loes points.
        warnings: the report's warnings, one short sentence each.
    """

    run: str
    created: str | None
    loes_version: str | None
    data_source: str | None
    synthetic: bool
    n_scans: int | None
    n_subjects: int | None
    mae: float | None
    mae_low: float | None
    mae_high: float | None
    baseline_mae: float | None
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_report(cls, report: Mapping, run: str) -> RunCard:
        """The card of the run named ``run`` from its ``report.json`` (as a dict)."""
        info = report.get("run") or {}
        metrics = report.get("metrics") or {}
        network = metrics.get(NETWORK) or {}
        pooled = network.get("pooled") or {}
        interval = (network.get("pooled_ci") or {}).get("mae") or {}
        mae = _finite(pooled.get("mae"))
        baseline = _finite(((metrics.get(_BASELINE) or {}).get("pooled") or {}).get("mae"))
        warnings = []
        if info.get("smoke"):
            warnings.append(
                f"{str(info.get('smoke_text')).split('. ')[0]}: its models have not learned to "
                "score scans"
            )
        completeness = report.get("completeness") or {}
        if completeness.get("partial"):
            warnings.append(
                f"a partial run ({completeness.get('n_reported')} of "
                f"{completeness.get('n_expected')} folds reported)"
            )
        for flag in report.get("flags") or []:
            if flag.get("kind") == "near_constant":
                warnings.append("its network predicts nearly the same score for every scan")
            elif flag.get("kind") == "worse_than_trivial":
                versus = f" (MAE {mae:.2f} against {baseline:.2f})" if mae and baseline else ""
                warnings.append(f"its network is worse than the median baseline{versus}")
        config_data = (report.get("config") or {}).get("data") or {}
        return cls(
            run=run,
            created=report.get("created"),
            loes_version=info.get("loes_version") or report.get("loes_version"),
            data_source=info.get("data_source"),
            synthetic=bool(config_data) and config_data.get("source") is None,
            n_scans=info.get("n_scans"),
            n_subjects=info.get("n_subjects"),
            mae=mae,
            mae_low=_finite(interval.get("low")),
            mae_high=_finite(interval.get("high")),
            baseline_mae=baseline,
            warnings=tuple(warnings),
        )

    def to_dict(self) -> dict:
        """Plain JSON types, read back by :meth:`from_dict`."""
        return {**asdict(self), "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, data: Mapping) -> RunCard:
        """The card :meth:`to_dict` wrote."""
        return cls(**{**data, "warnings": tuple(data.get("warnings", ()))})

    @property
    def accuracy(self) -> str:
        """The cross-validated MAE in words, beside the median baseline's."""
        if self.mae is None:
            return "cross-validated MAE unknown"
        text = f"cross-validated MAE {self.mae:.2f} Loes points"
        if self.mae_low is not None and self.mae_high is not None:
            text += f" (95% interval {self.mae_low:.2f}-{self.mae_high:.2f})"
        if self.baseline_mae is not None:
            text += f" against {self.baseline_mae:.2f} for the median baseline"
        return text

    @property
    def trained_on(self) -> str:
        """The data the models learned from, in words, saying when it is synthetic."""
        if self.synthetic:
            return (
                f"{self.data_source or 'the built-in synthetic cohort'}: synthetic scans, not "
                "patients, so not for real scans"
            )
        return f"{self.data_source or 'the lab table of the run'}"

    def describe(self) -> str:
        """One sentence: data, size, accuracy, run, date and loes version."""
        size = ""
        if self.n_scans is not None and self.n_subjects is not None:
            size = f", {self.n_scans} scans of {self.n_subjects} subjects"
        date = f" on {self.created[:10]}" if self.created else ""
        version = f" with loes {self.loes_version}" if self.loes_version else ""
        return f"trained on {self.trained_on}{size}; {self.accuracy}; run {self.run}{date}{version}"


def read_run_card(run_dir: str | Path) -> RunCard | None:
    """The card of a ``loes cv`` run folder from its ``report.json``; None without one.

    Raises:
        LoesError: when ``report.json`` is there but not valid JSON.
    """
    path = Path(run_dir) / REPORT_FILE
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise LoesError(
            f"{path} is not a readable report ({error}); `loes report` rewrites it."
        ) from None
    return RunCard.from_report(report, Path(run_dir).resolve().name)
