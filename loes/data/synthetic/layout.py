"""The cohort's folder: a BIDS dataset that is also described by a flat manifest.

Every file name and every table of the cohort is decided here, so that the two readings
loes accepts (``loes validate OUT_DIR`` as BIDS, ``loes validate OUT_DIR/manifest.csv``)
list the same scans with the same scores::

    OUT_DIR/
      dataset_description.json, README.md, .bidsignore
      participants.tsv + .json       sex, age at the first session, course pattern
      sessions.json                  describes the columns of every sessions.tsv
      sub-001/sub-001_sessions.tsv   per session: Loes score, item subscores, age, site
      sub-001/ses-01/anat/sub-001_ses-01_T1w.nii.gz + .json
      sub-002/ses-02/anat/sub-002_ses-02_ce-gadolinium_T1w.nii.gz + .json (post-contrast)
      derivatives/lesions/                                 a BIDS derivative dataset
        dataset_description.json, desc-lesion_dseg.tsv     label -> item and side
        sub-001/ses-01/anat/sub-001_ses-01_desc-lesion_dseg.nii.gz
      derivatives/brainmask/                               whole heads only: the brain masks
        sub-001/ses-01/anat/sub-001_ses-01_desc-brain_mask.nii.gz
      manifest.csv, cohort.json, preview.png               not BIDS: listed in .bidsignore
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from loes import __version__
from loes.data.loes_items import ITEM_COLUMNS, ITEMS, lesion_label_names
from loes.errors import LoesError
from loes.io import write_json, write_text

__all__ = [
    "BIDS_VERSION",
    "BRAIN_MASK_COLUMN",
    "BRAIN_MASK_DERIVATIVE",
    "CONTRAST_ENTITY",
    "LESION_DERIVATIVE",
    "MANIFEST_COLUMNS",
    "SUFFIXES",
    "prepare_folder",
    "scan_files",
    "write_tables",
]

BIDS_VERSION = "1.10.0"
CONTRAST_ENTITY = "ce-gadolinium"
"""Marks post-contrast scans; the BIDS reading leaves them out unless ``include_gd``."""
LESION_DERIVATIVE = "derivatives/lesions"
"""Where the lesion label maps live: a BIDS derivative, ignored by raw-data readers."""
BRAIN_MASK_DERIVATIVE = "derivatives/brainmask"
"""Where the brain masks of whole-head scans live (``desc-brain_mask``), a BIDS derivative."""
BRAIN_MASK_COLUMN = "brain_mask"
"""The manifest column listing them; after :data:`MANIFEST_COLUMNS`, in whole-head cohorts only."""
MANIFEST_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
    "image",
    "loes_score",
    *ITEM_COLUMNS,
    "pattern",
    "age",
    "site",
    "gd",
    "lesion_mask",
)
SUFFIXES = {"t1w": "T1w", "t2w": "T2w", "flair": "FLAIR"}
"""The BIDS suffix of each contrast ``loes synth`` writes."""
_NOT_BIDS = ("cohort.json", "manifest.csv", "preview.png")


def scan_files(
    subject: str, session: str, suffix: str, gd: bool, whole_head: bool = False
) -> dict[str, str]:
    """The paths (relative to the cohort folder) of one scan's ``image``, ``sidecar`` and
    ``lesion_mask`` (and ``brain_mask`` for a whole head), named as BIDS names them.

    Examples::

        >>> scan_files("sub-002", "ses-02", "T1w", gd=True)["image"]
        'sub-002/ses-02/anat/sub-002_ses-02_ce-gadolinium_T1w.nii.gz'
    """
    stem = f"{subject}_{session}" + (f"_{CONTRAST_ENTITY}" if gd else "")
    anat = f"{subject}/{session}/anat"
    files = {
        "image": f"{anat}/{stem}_{suffix}.nii.gz",
        "sidecar": f"{anat}/{stem}_{suffix}.json",
        "lesion_mask": f"{LESION_DERIVATIVE}/{anat}/{stem}_desc-lesion_dseg.nii.gz",
    }
    if whole_head:
        files[BRAIN_MASK_COLUMN] = f"{BRAIN_MASK_DERIVATIVE}/{anat}/{stem}_desc-brain_mask.nii.gz"
    return files


def write_tables(out: Path, table: pd.DataFrame, params: dict) -> Path:
    """Write every table of the cohort in ``out`` (the scans are already there); return the
    manifest's path. ``table`` is the clinical table with ``image`` and ``lesion_mask`` (and
    ``brain_mask`` for whole heads)."""
    manifest = out / "manifest.csv"
    whole_head = BRAIN_MASK_COLUMN in table
    columns = [*MANIFEST_COLUMNS, *([BRAIN_MASK_COLUMN] if whole_head else [])]
    write_text(manifest, _tsv(table[columns], sep=","))
    _write_dataset_files(out, table, params)
    _write_participants(out, table)
    _write_sessions(out, table)
    _write_lesion_derivative(out, params)
    if whole_head:
        _write_brain_mask_derivative(out, params)
    return manifest


def _tsv(frame: pd.DataFrame, sep: str = "\t") -> str:
    return frame.to_csv(sep=sep, index=False, lineterminator="\n")


def _generated_by(params: dict) -> list[dict]:
    return [
        {
            "Name": "loes synth",
            "Version": __version__,
            "Description": (
                f"loes.data.synthetic v{params['version']}: {params['subjects']} subjects, "
                f"seed {params['seed']}, {params['contrast']}, {params['resolution']:g} mm"
                + (", whole head" if params.get("whole_head") else "")
            ),
        }
    ]


def _write_dataset_files(out: Path, table: pd.DataFrame, params: dict) -> None:
    write_json(
        out / "dataset_description.json",
        {
            "Name": f"Synthetic cerebral ALD cohort (loes synth, seed {params['seed']})",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "GeneratedBy": _generated_by(params),
            "ReferencesAndLinks": [
                "Loes et al. 1994, AJNR 15:1761-1766 (the Loes score)",
                "Fonov et al. 2011, NeuroImage 54:313-327 (MNI ICBM152 2009 template)",
            ],
        },
    )
    n_gd = int(table["gd"].sum())
    head = (
        "The scans show the whole head (skull, scalp, eyes, neck: pydeface's mean head, MIT "
        "licence, registered to the template) around the brain, with scanner noise in the air; "
        f"`{BRAIN_MASK_DERIVATIVE}/` holds each scan's brain mask "
        "(`manifest.csv` column `brain_mask`).\n\n"
        if params.get("whole_head")
        else ""
    )
    write_text(
        out / "README.md",
        f"# Synthetic cerebral ALD cohort\n\n"
        f"Written by `loes synth` (seed {params['seed']}): {table['subject'].nunique()} "
        f"synthetic boys with cerebral X-linked adrenoleukodystrophy, {len(table)} MRI "
        f"sessions, one {SUFFIXES[params['contrast']]} scan each. No patient data: each scan "
        "is the MNI ICBM152 2009 template, warped per subject, with the lesions and atrophy of "
        "a drawn disease course.\n\n"
        f"{head}"
        "- `sub-*/sub-*_sessions.tsv`: the Loes score of each session and its item "
        "subscores; the score is the sum of the items rendered into the scan.\n"
        f"- `*_{CONTRAST_ENTITY}_*`: the {n_gd} post-contrast scans (enhancing lesion rims); "
        "loes leaves them out unless `--include-gd`.\n"
        f"- `{LESION_DERIVATIVE}/`: one lesion label map per scan "
        "(`desc-lesion_dseg.tsv` names the labels).\n"
        "- `manifest.csv`: the same scans as one table (`loes validate manifest.csv`).\n",
    )
    write_text(out / ".bidsignore", "".join(f"/{name}\n" for name in _NOT_BIDS))


def _write_participants(out: Path, table: pd.DataFrame) -> None:
    first = table.groupby("subject", sort=True).first()
    participants = pd.DataFrame(
        {
            "participant_id": first.index,
            "sex": "M",
            "age": first["age"].to_numpy(),
            "pattern": first["pattern"].to_numpy(),
        }
    )
    write_text(out / "participants.tsv", _tsv(participants))
    write_json(
        out / "participants.json",
        {
            "sex": {"Description": "sex of the participant", "Levels": {"M": "male"}},
            "age": {
                "Description": "age at the first session; each session's age is in "
                "sub-*/sub-*_sessions.tsv",
                "Units": "year",
            },
            "pattern": {
                "Description": "where the lesions start and how they spread",
                "Levels": {
                    "posterior": "parieto-occipital white matter and splenium first",
                    "anterior": "frontal white matter and genu first",
                    "projection": "projection fibres (internal capsule, brainstem) first",
                },
            },
        },
    )


def _write_sessions(out: Path, table: pd.DataFrame) -> None:
    """Per-session values, scores included, in each subject's sessions.tsv: BIDS indexes
    phenotype/ files by participant alone, so that one row per session there is invalid."""
    columns = ["loes_score", *ITEM_COLUMNS, "age", "site"]
    for subject, rows in table.groupby("subject", sort=True):
        sessions = rows[["session", *columns]].rename(columns={"session": "session_id"})
        write_text(out / subject / f"{subject}_sessions.tsv", _tsv(sessions))
    described = {
        "loes_score": {
            "LongName": "Loes score",
            "Description": "total Loes score of the session's MRI (0-34): the sum of the item "
            "columns, which are the items rendered into the synthetic scan",
        },
    }
    for item in ITEMS:
        scale = "0 normal, 0.5 one side, 1 both sides" if item.sided else f"0-{item.max:g}"
        described[item.column] = {
            "Description": f"Loes item {item.area} / {item.name} ({item.kind}): {scale}"
        }
    described["age"] = {"Description": "age at the session", "Units": "year"}
    described["site"] = {"Description": "the (synthetic) scanner the session was acquired on"}
    write_json(out / "sessions.json", described)  # inherited by every sub-*_sessions.tsv


def _write_derivative_description(root: Path, name: str, params: dict) -> None:
    """A BIDS derivative's ``dataset_description.json``: its name and what generated it."""
    write_json(
        root / "dataset_description.json",
        {
            "Name": name,
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": _generated_by(params),
        },
    )


def _write_lesion_derivative(out: Path, params: dict) -> None:
    root = out / LESION_DERIVATIVE
    _write_derivative_description(
        root, "Lesion label maps of the synthetic cerebral ALD cohort", params
    )
    names = lesion_label_names()
    labels = pd.DataFrame(
        {
            "index": list(names),
            "name": list(names.values()),
            "item": [n.rsplit("_", 1)[0] for n in names.values()],
            "side": [n.rsplit("_", 1)[1] for n in names.values()],
        }
    )
    write_text(root / "desc-lesion_dseg.tsv", _tsv(labels))
    write_json(
        root / "desc-lesion_dseg.json",  # inherited by every label map, and by the table
        {
            "Description": "lesion label map: one label per Loes lesion item and side, in the "
            "voxels of the raw scan of the same name; atrophy items show as volume loss only",
            "item": {"Description": "the Loes item (a column of sub-*/sub-*_sessions.tsv)"},
            "side": {"Description": "the hemisphere", "Levels": {"left": "left", "right": "right"}},
        },
    )
    write_text(
        root / "README.md",
        "# Lesion label maps of the synthetic cerebral ALD cohort\n\n"
        "One label map per raw scan, on the scan's own voxel grid; `desc-lesion_dseg.tsv` "
        "names the labels (one per Loes lesion item and side).\n",
    )


def _write_brain_mask_derivative(out: Path, params: dict) -> None:
    root = out / BRAIN_MASK_DERIVATIVE
    _write_derivative_description(
        root, "Brain masks of the synthetic cerebral ALD cohort (whole heads)", params
    )
    write_json(
        root / "desc-brain_mask.json",  # inherited by every mask
        {
            "Type": "Brain",
            "Description": "the brain the synthetic scan shows (MNI ICBM152 2009 brain mask "
            "through the subject's warp, on the raw scan's voxel grid): the truth for brain "
            "extraction; 1 brain, 0 skull, scalp, eyes, neck and air",
        },
    )
    write_text(
        root / "README.md",
        "# Brain masks of the synthetic cerebral ALD cohort\n\n"
        "One binary mask per raw whole-head scan, on the scan's own voxel grid: the voxels "
        "that show the synthetic brain, the rest being pydeface's mean head.\n",
    )


def prepare_folder(out: Path, params: dict) -> None:
    """Create ``out`` and record ``params`` in its ``cohort.json``; refuse to mix two cohorts
    in one folder.

    Raises:
        LoesError: when ``out`` holds a cohort made with other parameters, holds files that no
            cohort wrote, or cannot be written.
    """
    record = out / "cohort.json"
    try:
        out.mkdir(parents=True, exist_ok=True)
        if record.exists():
            previous = json.loads(record.read_text())
            if previous != params:
                diff = ", ".join(
                    f"{k}: {_recorded(previous, k)!r} there vs {_recorded(params, k)!r} now"
                    for k in sorted(set(previous) | set(params))
                    if previous.get(k) != params.get(k)
                )
                raise LoesError(
                    f"{out} already holds a synthetic cohort made with other parameters ({diff}); "
                    "re-run with the same parameters to resume, or choose an empty folder."
                )
            return
        if any(out.iterdir()):  # never overwrite a user's own files
            raise LoesError(
                f"{out} is not empty and holds no cohort.json, so it is not a cohort this "
                "command wrote; choose a new or empty folder."
            )
        write_json(record, params)
    except PermissionError as error:
        raise LoesError(
            f"cannot write to {out}: {error.strerror}; choose a folder you can write to."
        ) from None
    except OSError as error:
        if isinstance(error, LoesError):
            raise
        raise LoesError(
            f"cannot write to {out}: {error.strerror or error}; choose another folder."
        ) from None


def _recorded(params: dict, key: str) -> object:
    """A cohort.json value; ``whole_head`` is recorded only when true."""
    return params.get(key, False if key == "whole_head" else None)
