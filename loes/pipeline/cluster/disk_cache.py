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
"""

from __future__ import annotations

from copy import deepcopy
from pickle import UnpicklingError

import torch
from monai.data import PersistentDataset
from monai.data.utils import SUPPORTED_PICKLE_MOD
from monai.utils import convert_to_tensor, look_up_option

from loes.io import atomic_path

__all__ = ["SharedPersistentDataset"]


class SharedPersistentDataset(PersistentDataset):
    """MONAI's ``PersistentDataset`` (same arguments, same file names, same hashing) whose
    cache files are written atomically beside their final name, so that processes sharing
    ``cache_dir`` never read a partial file.

    Examples::

        >>> cache = SharedPersistentDataset(items, preprocessing(), "cache")  # doctest: +SKIP
        >>> cache[0]["image"].shape  # doctest: +SKIP
        torch.Size([1, 72, 88, 72])
    """

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
