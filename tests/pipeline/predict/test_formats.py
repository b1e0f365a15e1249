"""A scan scores the same whatever format the lab holds it in: DICOM series, FreeSurfer .mgz,
a NIfTI pair and a (X, Y, Z, 1) copy, each written from the scan's NIfTI, score within 0.01
Loes points of it with a run's fold ensemble; a file that is no image is its own row."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from loes.pipeline import load_ensemble
from tests.data._scan_copies import write_4d, write_dicom, write_mgz, write_nifti, write_pair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def copies(tiny_manifest, tmp_path_factory):
    """Per format, the copies of two tiny-cohort scans (one RAS, one LPS acquisition), int16 as
    DICOM stores them, so every copy holds the same voxels."""
    folder = tmp_path_factory.mktemp("formats")
    table = pd.read_csv(tiny_manifest)
    sources: dict[str, list[str]] = {}
    for i in (1, 5):
        scan = nib.load(tiny_manifest.parent / table.loc[i, "image"])
        data = np.asarray(scan.dataobj, dtype=np.float64)
        data = np.round(data / np.percentile(data, 99.5) * 1000).astype(np.int16)
        base = folder / f"scan{i}"
        base.mkdir()
        written = {
            "nifti": write_nifti(base / "scan.nii.gz", data, scan.affine),
            "dicom": write_dicom(base / "dicom", data, scan.affine),
            "dicom .dcm": write_dicom(base / "dicom_dcm", data, scan.affine, suffix=".dcm"),
            "mgz": write_mgz(base / "orig.mgz", data, scan.affine),
            "hdr/img": write_pair(base / "pair.hdr", data, scan.affine),
            "(X, Y, Z, 1)": write_4d(base / "four_d.nii.gz", data, scan.affine),
        }
        for kind, path in written.items():
            sources.setdefault(kind, []).append(str(path))
    return sources


def test_every_format_scores_as_its_nifti(tiny_run, copies, tmp_path):
    junk = tmp_path / "notes"  # no extension, not an image: its own row, the rest still scored
    junk.write_bytes(b"\0\1binary")
    kinds = list(copies)
    sources = [path for kind in kinds for path in copies[kind]] + [str(junk)]
    table = load_ensemble(tiny_run).predict(sources, device="cpu")
    assert len(table) == len(sources)
    assert table["error"].iloc[-1] != ""
    scored = table.iloc[:-1]
    assert (scored["error"] == "").all(), scored.loc[scored["error"] != "", "error"].tolist()
    predicted = scored["predicted"].to_numpy().reshape(len(kinds), 2)
    for kind, row in zip(kinds, predicted, strict=True):
        assert np.abs(row - predicted[0]).max() < 0.01, kind
