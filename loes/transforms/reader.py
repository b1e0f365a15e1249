"""A MONAI NIfTI reader keeping nibabel's affine: preprocessing uses what `loes validate` checks."""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
from monai.config import PathLike
from monai.data import NibabelReader
from monai.utils import ensure_tuple

__all__ = ["NiftiReader"]


class NiftiReader(NibabelReader):
    """MONAI's ``NibabelReader`` without its header "correction": the affine is ``img.affine``.

    nibabel's ``img.affine`` is the sform when ``sform_code > 0``, else the qform, else the voxel
    sizes alone (`nibabel's NIfTI docs <https://nipy.org/nibabel/nifti_images.html>`_); it is
    the affine ``loes validate`` checks. MONAI's reader calls
    ``monai.data.correct_nifti_header_if_necessary`` first, which, when the sform's voxel
    sizes differ from ``pixdim``, replaces the sform by the qform. A qform holds only a
    rotation, so a sheared sform (a gantry tilt) was silently dropped and every voxel moved,
    up to centimetres. This reader reads the same file without that step; everything else
    (metadata, ``original_affine``, ``kwargs`` given to ``nibabel.load``) is
    ``NibabelReader``'s.

    Examples::

        >>> from monai.transforms import LoadImaged
        >>> load = LoadImaged("image", reader=NiftiReader(), image_only=True)
        >>> load({"image": "t1.nii.gz"})["image"].affine  # doctest: +SKIP
    """

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs):
        """Load each file with ``nibabel.load`` (``kwargs`` override the reader's), as is."""
        filenames: Sequence[PathLike] = ensure_tuple(data)
        self.filenames = filenames
        images = [nib.load(name, **{**self.kwargs, **kwargs}) for name in filenames]
        return images if len(filenames) > 1 else images[0]
