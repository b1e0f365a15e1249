"""The data of a run, read again from its settings: where its scans live (the user's
``data.source`` or the built-in synthetic cohort), the validated table, the MONAI items and the
preprocessing every room applies to them."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd
from monai.transforms import Compose

from loes.data import validate_dataset
from loes.data.problems import plural, summarise
from loes.data.readers import read_table
from loes.errors import LoesError
from loes.pipeline.run.config import Config
from loes.pipeline.run.device import available_cpus
from loes.pipeline.run.folder import load_run_config
from loes.pipeline.run.messages import note
from loes.pipeline.run.set_aside import SET_ASIDE_ATTR
from loes.transforms import preprocessing

__all__ = ["load_table", "preprocessing_for", "run_table", "scan_items", "synthetic_cohort_dir"]


def preprocessing_for(config: Config) -> Compose:
    """:func:`loes.transforms.preprocessing` called with the ``preprocessing`` section.

    Raises:
        LoesError: naming the section when the preset refuses a value.
    """
    try:
        return preprocessing(keys="image", **config.preprocessing.preset_kwargs())
    except (ValueError, TypeError) as error:
        raise LoesError(f"preprocessing: {error}") from None


def synthetic_cohort_dir(config: Config) -> Path:
    """The folder of the built-in synthetic cohort a run with ``data.source: null`` uses, under
    ``data.cache_dir``, named after its generator version and parameters."""
    from loes.data.synthetic import GENERATOR_VERSION

    d = config.data
    return Path(d.cache_dir) / (  # a new generator version writes a new folder
        f"synthetic-v{GENERATOR_VERSION}-n{d.synthetic_subjects}-seed{d.synthetic_seed}"
        f"-{d.synthetic_contrast}-{d.synthetic_resolution:g}mm"
        f"{'-wholehead' if d.synthetic_whole_head else ''}"
    )


def load_table(config: Config) -> pd.DataFrame:
    """The validated scan table, one row per scan: the user's ``data.source``, or the built-in
    synthetic cohort, generated once into ``data.cache_dir``.

    The rows read but not used (post-contrast scans without ``data.include_gd``) are in
    ``table.attrs["set_aside"]`` (see :mod:`loes.pipeline.run.set_aside`), and said in one line.

    Raises:
        LoesError: listing every problem the validation finds.
    """
    d = config.data
    if d.source is None:
        from loes.data.synthetic import generate_cohort

        start = time.perf_counter()
        source = generate_cohort(
            synthetic_cohort_dir(config),
            subjects=d.synthetic_subjects,
            seed=d.synthetic_seed,
            contrast=d.synthetic_contrast,
            resolution=d.synthetic_resolution,
            whole_head=d.synthetic_whole_head,
            workers=available_cpus(),
            progress=sys.stderr.isatty(),
        )
        note(
            f"synthetic cohort ready in {source.parent} ({time.perf_counter() - start:.0f} s)",
        )
        options = {}
    else:
        source = d.source
        options = {
            "format": d.format,
            "images_dir": d.images_dir,
            "include_gd": d.include_gd,
            "suffix": d.suffix,
        }
    # the field-of-view check says what each scan becomes at the configured voxel size
    report = validate_dataset(source, pixdim=config.preprocessing.pixdim, **options)
    table = report.raise_for_errors()
    if table.empty:
        raise LoesError(
            f"{source} lists no scans to cross-validate (post-contrast scans count only "
            "with data.include_gd)."
        )
    for problem in summarise(report.warnings):  # what `loes validate` would warn about
        note(f"warning: {problem}")
    table = table.reset_index(drop=True)
    if report.set_aside is not None and len(report.set_aside):
        note(f"set aside: {_set_aside_text(report.set_aside, table)}")
    # the rows read but not used travel with the table into the run folder (set_aside.csv)
    table.attrs[SET_ASIDE_ATTR] = (
        [] if report.set_aside is None else report.set_aside.to_dict("records")
    )
    return table


def _set_aside_text(set_aside: pd.DataFrame, table: pd.DataFrame) -> str:
    """``"41 of 253 scans read: post-contrast scan (gd); left out unless ... (41). 5 subjects
    have no scan left and are not in the run: sub-003, ..."``"""
    reasons = set_aside["reason"].value_counts(sort=False)
    text = f"{len(set_aside)} of {len(set_aside) + len(table)} scans read: " + "; ".join(
        f"{reason} ({count})" for reason, count in reasons.items()
    )
    gone = sorted(set(set_aside["subject"]) - set(table["subject"]))
    if gone:
        text += (
            f". {plural(len(gone), 'subject')} {'has' if len(gone) == 1 else 'have'} no scan "
            f"left and {'is' if len(gone) == 1 else 'are'} not in the run: {', '.join(gone)}"
        )
    return text


def scan_items(table: pd.DataFrame) -> list[dict]:
    """The MONAI data dictionaries of a scan table: ``image`` (path), ``loes_score`` (a plain
    float, so disk caches load with ``weights_only``), ``subject``, ``session``."""
    return [
        {
            "image": row.image,
            "loes_score": float(row.loes_score),
            "subject": row.subject,
            "session": row.session,
        }
        for row in table.itertuples()
    ]


def run_table(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The table of the scans a run was made with (its ``data`` settings read again), or None
    when its source cannot be read here."""
    config = load_run_config(run_dir)
    d = config.data
    source = d.source if d.source is not None else synthetic_cohort_dir(config) / "manifest.csv"
    return read_table(source, d.format, d.images_dir, d.include_gd, d.suffix).table
