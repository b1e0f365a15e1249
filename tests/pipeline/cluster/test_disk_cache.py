"""The shared disk cache: its file names follow the files the items name, not only their paths,
and a cache folder that cannot be made is named."""

import os
import time

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import Compose, LoadImaged

from loes.errors import WriteError
from loes.pipeline.cluster.disk_cache import STALE_SECONDS, SharedPersistentDataset, stamped_hash


def _scan(path, value: float):
    nib.save(nib.Nifti1Image(np.full((4, 5, 6), value, np.float32), np.eye(4)), path)
    return str(path)


def test_a_file_replaced_under_the_same_name_is_read_again(tmp_path):
    path = _scan(tmp_path / "scan.nii.gz", 1.0)
    item = {"image": path, "subject": "s"}
    cache = SharedPersistentDataset([item], Compose([LoadImaged("image")]), tmp_path / "cache")
    assert float(cache[0]["image"].mean()) == 1.0
    first = stamped_hash(item)
    assert stamped_hash(dict(item)) == first  # the same file: the same name
    _scan(tmp_path / "other.nii.gz", 2.0)
    os.replace(tmp_path / "other.nii.gz", path)  # another scan under the same name
    assert stamped_hash(item) != first
    assert float(cache[0]["image"].mean()) == 2.0  # computed again, not the old file read back
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    # a pair names two files: either one replaced changes its name
    pair = {"earlier": path, "later": _scan(tmp_path / "later.nii.gz", 3.0)}
    before = stamped_hash(pair, ("earlier", "later"))
    _scan(tmp_path / "later.nii.gz", 4.0)
    os.utime(tmp_path / "later.nii.gz", ns=(1, 1))
    assert stamped_hash(pair, ("earlier", "later")) != before
    assert stamped_hash(pair, ("earlier",)) == stamped_hash(pair, ("earlier",))


def test_a_folder_of_files_is_stamped_file_by_file(tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    for i in range(3):
        (series / f"{i}.dcm").write_bytes(b"x" * (i + 1))
    item = {"image": str(series)}
    first = stamped_hash(item)
    (series / "1.dcm").write_bytes(b"yy")  # same size, later time
    os.utime(series / "1.dcm", ns=(10**18, 10**18))
    assert stamped_hash(item) != first
    missing = {"image": str(tmp_path / "gone.nii.gz")}
    assert stamped_hash(missing) == stamped_hash(dict(missing))  # no file: the path alone


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_cache_folder_that_cannot_be_made_is_named(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'cache'}: Permission"):
            SharedPersistentDataset([], Compose([]), tmp_path / "cache")
    finally:
        tmp_path.chmod(0o700)


def test_a_file_in_the_way_of_the_cache_folder_is_named(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'cache' / 'sub'}"):
        SharedPersistentDataset([], Compose([]), tmp_path / "cache" / "sub")


def test_a_temporary_left_by_a_killed_process_is_removed_and_a_fresh_one_kept(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".0123abcd.pt.1a2b3c4d.pt"  # atomic_path's temporary of 0123abcd.pt
    fresh = cache / ".4567ef01.pt.5e6f7a8b.pt"  # another job writing right now
    for path in (stale, fresh):
        path.write_bytes(b"")
    hour_ago = time.time() - STALE_SECONDS - 60
    os.utime(stale, (hour_ago, hour_ago))
    (cache / "0123abcd.pt").write_bytes(b"kept")  # finished files are never touched
    SharedPersistentDataset([], Compose([]), cache)
    assert sorted(p.name for p in cache.iterdir()) == [fresh.name, "0123abcd.pt"]
