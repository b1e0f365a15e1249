"""The disk cache of preprocessed scans that several processes fill at once: fold jobs of a
cluster array and the ranks of a ``torchrun`` run share one cache folder.

MONAI's ``PersistentDataset`` writes each file into a ``tempfile.TemporaryDirectory`` (under
``$TMPDIR``) and then moves it into ``cache_dir``. Where the two lie on different file systems
(a node's local ``/tmp`` and a cluster's shared disk) that move is a copy under the final name,
which another process can find half-written; MONAI then deletes a file it cannot unpickle, and
may delete one that is still being copied. Here the temporary is written beside its final name
and renamed (:func:`loes.io.atomic_path`), which POSIX makes atomic: a cache file is whole or
absent. Two processes that miss the same scan at once both compute it and both rename an
identical file into place; every later process reads it.

A cache file is named by MONAI's hash of its item with, beside it, the size and modification
time of each file the item names (:func:`stamped_hash`): a scan replaced under the same name
is preprocessed again, where MONAI's hash of the path alone would read the old one back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path
from pickle import UnpicklingError

import torch
from monai.data import PersistentDataset
from monai.data.utils import SUPPORTED_PICKLE_MOD, pickle_hashing
from monai.utils import convert_to_tensor, look_up_option

from loes.io import atomic_path, remove_temporaries, write_error

__all__ = ["STALE_SECONDS", "SharedPersistentDataset", "stamped_hash"]

#: A temporary cache file untouched this long (seconds) was left by a killed process, and is
#: removed when a dataset opens the folder; younger ones may be another job's, being written.
STALE_SECONDS = 3600


def _stamp(path: str) -> tuple | None:
    """(size, modification time in ns) of a file; of each file in a folder (a DICOM series);
    None when there is nothing there (the preprocessing then names the missing file)."""
    if os.path.isfile(path):
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns
    if os.path.isdir(path):
        files = sorted(Path(root, name) for root, _, names in os.walk(path) for name in names)
        return tuple((f.name, *_stamp(str(f))) for f in files if f.is_file())
    return None


def stamped_hash(item: dict, file_keys: Sequence[str] = ("image",)) -> bytes:
    """MONAI's ``pickle_hashing`` (an MD5 hex digest, as bytes) of ``item`` together with the
    size and modification time of the file or folder each of ``file_keys`` names, so that a
    file replaced or rewritten under the same name gives another hash."""
    stamps = {key: _stamp(str(item[key])) for key in file_keys if key in item}
    return pickle_hashing({"item": item, "files": stamps})


class SharedPersistentDataset(PersistentDataset):
    """MONAI's ``PersistentDataset`` whose cache files are written atomically beside their
    final name, so that processes sharing ``cache_dir`` never read a partial file, and named
    by :func:`stamped_hash` of the files under ``file_keys`` (the items' image paths).

    Raises:
        WriteError: when ``cache_dir`` cannot be made (read-only, no space), naming it.

    Examples::

        >>> cache = SharedPersistentDataset(items, preprocessing(), "cache")  # doctest: +SKIP
        >>> cache[0]["image"].shape  # doctest: +SKIP
        torch.Size([1, 72, 88, 72])
    """

    def __init__(
        self, data, transform, cache_dir: str | os.PathLike, file_keys: Sequence[str] = ("image",)
    ) -> None:
        try:
            super().__init__(
                data, transform, cache_dir, hash_func=lambda i: stamped_hash(i, file_keys)
            )
        except OSError as error:  # MONAI makes the folder
            raise write_error(cache_dir, error) from None
        # a cache file is written in seconds: an hour-old temporary is a killed process's
        remove_temporaries(cache_dir, older_than=STALE_SECONDS)

    def _cachecheck(self, item_transformed):
        if self.cache_dir is None:
            return super()._cachecheck(item_transformed)
        name = self.hash_func(item_transformed).decode("utf-8") + self.transform_hash
        hashfile = self.cache_dir / f"{name}.pt"
        if hashfile.is_file():
            try:
                return torch.load(hashfile, weights_only=self.weights_only)
            except (UnpicklingError, RuntimeError, EOFError):
                pass  # written by something else than this class, and broken: computed again
        item = self._pre_transform(deepcopy(item_transformed))  # keep the original hashed
        with atomic_path(hashfile) as tmp:
            torch.save(
                obj=convert_to_tensor(item, convert_numeric=False, track_meta=self.track_meta),
                f=tmp,
                pickle_module=look_up_option(self.pickle_module, SUPPORTED_PICKLE_MOD),
                pickle_protocol=self.pickle_protocol,
            )
        return item
