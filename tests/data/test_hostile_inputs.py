"""Hostile or broken inputs end in a score or a located error, never a traceback, a hang or an
out-of-memory kill: property-based tests (``hypothesis``) that mutate a NIfTI header field by
field (dimensions, voxel sizes, data type, offset, qform/sform codes and rows, scaling, intent)
and a scan table (delimiters, encodings, quoting, truncation), and two hand-made attacks: a
header that asks for more memory than the machine has, and a gzip stream that inflates past
what its header declares.

``LOES_HOSTILE_CASES`` sets the cases per property (default 150: a few hundred in all, well
under a minute); ``make bench`` runs thousands (``benchmarks/bench_hostile_inputs.py``). The
number run is printed at the end of the test session."""

import gzip
import os
import struct
import time
from collections import Counter

import hypothesis
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import strategies as st

from loes.data import read_scans
from loes.data.validation import check_image
from loes.errors import LoesError
from loes.pipeline.predict.preprocessed import PreprocessedScans
from loes.transforms import preprocessing

#: cases per property
CASES = int(os.environ.get("LOES_HOSTILE_CASES", "150"))
#: seconds one case may take: reading, checking and preprocessing a 24x28x24 scan
CASE_SECONDS = 20.0
#: how many cases ran, by property (printed at the end of the session)
RAN: Counter = Counter()

#: NIfTI-1 header fields: byte offset and struct format (little-endian)
FIELDS = {
    "dim": (40, "8h"),
    "intent_p1": (56, "f"),
    "intent_code": (68, "h"),
    "datatype": (70, "h"),
    "bitpix": (72, "h"),
    "pixdim": (76, "8f"),
    "vox_offset": (108, "f"),
    "scl_slope": (112, "f"),
    "scl_inter": (116, "f"),
    "xyzt_units": (123, "B"),
    "qform_code": (252, "h"),
    "sform_code": (254, "h"),
    "quatern": (256, "3f"),
    "srow_x": (280, "4f"),
    "srow_z": (312, "4f"),
}
_ODD_FLOATS = [0.0, -1.0, 1e-6, 4.0, 1e6, 3e38, float("nan"), float("inf"), -float("inf")]
_SHORTS = st.integers(-(2**15), 2**15 - 1)


def _values(field: str):
    fmt = FIELDS[field][1]
    count = struct.calcsize("<" + fmt) // struct.calcsize("<" + fmt[-1])
    if fmt[-1] == "h":
        if field == "datatype":
            one = st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 2304, 999])
        elif field == "dim":
            one = st.sampled_from([-1, 0, 1, 3, 4, 5, 8, 9, 12, 24, 2049, 32767])
        else:
            one = _SHORTS
    elif fmt[-1] == "B":
        one = st.integers(0, 255)
    else:
        one = st.sampled_from(_ODD_FLOATS) | st.floats(-1e4, 1e4, width=32)
    return st.lists(one, min_size=count, max_size=count)


MUTATIONS = st.lists(
    st.sampled_from(sorted(FIELDS)).flatmap(lambda f: st.tuples(st.just(f), _values(f))),
    min_size=1,
    max_size=3,
)


def _head(shape=(24, 28, 24), voxel=4.0) -> bytes:
    """A valid single-file NIfTI-1 of a bright ellipsoid in noise, as bytes."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    data = (np.sum(grid**2, axis=0) < 0.7) * 100.0 + np.random.default_rng(0).random(shape)
    image = nib.Nifti1Image(data.astype(np.float32), np.diag([voxel, voxel, voxel, 1.0]))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    return image.to_bytes()


BASE = _head()


def _mutated(mutations: list, cut: int | None) -> bytes:
    raw = bytearray(BASE)
    for field, values in mutations:
        offset, fmt = FIELDS[field]
        struct.pack_into("<" + fmt, raw, offset, *values)
    return bytes(raw[:cut] if cut is not None else raw)


@pytest.fixture(scope="module")
def transform():
    return preprocessing(keys="image", spatial_size=(32, 32, 32), pixdim=(4.0, 4.0, 4.0))


def _scored_or_located(path, transform) -> None:
    """The predict path without the network: checked, read, preprocessed, or its reason."""
    start = time.perf_counter()
    item = PreprocessedScans(
        [{"image": str(path), "subject": "s", "session": "", "loes_score": np.nan}],
        transform,
        (4.0, 4.0, 4.0),
    )[0]
    assert time.perf_counter() - start < CASE_SECONDS
    if "error" in item:  # the scan's row says why (as in `loes predict`)
        assert isinstance(item["error"], str)
        assert item["error"].strip()
    else:
        assert item["input"].shape == (1, 32, 32, 32)
        assert bool(np.isfinite(item["input"].numpy()).all())


@hypothesis.settings(max_examples=CASES, deadline=None, derandomize=True)
@hypothesis.given(
    mutations=MUTATIONS,
    cut=st.none() | st.integers(0, len(BASE)),
    compressed=st.booleans(),
)
def test_a_mutated_header_ends_in_a_score_or_a_located_error(
    mutations, cut, compressed, transform, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("h")
    raw = _mutated(mutations, cut)
    path = folder / ("scan.nii.gz" if compressed else "scan.nii")
    path.write_bytes(gzip.compress(raw, mtime=0) if compressed else raw)
    _scored_or_located(path, transform)
    RAN["mutated NIfTI headers"] += 1


_TABLE = "subject,session,image,loes_score\nsub-01,ses-01,{image},3.5\nsub-02,ses-01,{image},0\n"


def _read_or_refused(table) -> pd.DataFrame | str:
    """The scans a table lists, or the message of the LoesError that refuses it."""
    try:
        return read_scans([table])
    except LoesError as error:
        return str(error)


@hypothesis.settings(max_examples=CASES, deadline=None, derandomize=True)
@hypothesis.given(
    delimiter=st.sampled_from([",", ";", "\t", "|", " "]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]),
    quote=st.sampled_from(["", '"', "'"]),
    extra=st.sampled_from(["", "é", "\x00", '"', "\r", "=1+1"]),
    cut=st.none() | st.integers(0, 120),
)
def test_a_mutated_table_is_read_or_refused_with_a_located_error(
    delimiter, encoding, quote, extra, cut, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("t")
    image = folder / "scan.nii"
    image.write_bytes(BASE)
    text = _TABLE.format(image=f"{quote}{image}{quote}").replace(",", delimiter) + extra
    data = text.encode(encoding, errors="replace")
    table = folder / "scores.csv"
    table.write_bytes(data[:cut] if cut is not None else data)
    start = time.perf_counter()
    read = _read_or_refused(table)
    assert time.perf_counter() - start < CASE_SECONDS
    if isinstance(read, str):
        assert "scores.csv" in read  # located: names the file
    else:
        assert {"subject", "session", "image", "loes_score"} <= set(read)
    RAN["mutated tables"] += 1


def test_a_header_that_asks_for_more_memory_than_the_machine_has_is_refused_unread(tmp_path):
    raw = bytearray(BASE)
    struct.pack_into("<8h", raw, 40, 3, 2000, 2000, 2000, 1, 1, 1, 1)
    struct.pack_into("<h", raw, 70, 64)  # float64: 64 GB of voxels
    path = tmp_path / "huge.nii"
    path.write_bytes(bytes(raw))
    start = time.perf_counter()
    problems = check_image(path)
    assert time.perf_counter() - start < 5
    assert problems[0][0] == "error"
    assert "2000x2000x2000 voxels of float64 need 96.0 GB" in problems[0][1]
    assert "GB are free" in problems[0][1]


@pytest.mark.parametrize("deep", [False, True])
def test_a_gzip_stream_that_inflates_past_its_header_is_stopped(tmp_path, deep):
    """A gzip bomb: the header declares 64 KB of voxels; the stream holds 512 MB more."""
    path = tmp_path / "bomb.nii.gz"
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(BASE)
        zeros = bytes(1 << 24)
        for _ in range(32):
            stream.write(zeros)
    assert path.stat().st_size < 2_000_000
    start = time.perf_counter()
    problems = check_image(path, deep=deep)
    assert time.perf_counter() - start < 10
    assert problems == [("error", problems[0][1])]
    assert problems[0][1].startswith("inflates past what its header declares (more than ")
