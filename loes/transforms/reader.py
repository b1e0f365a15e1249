"""A MONAI reader for every scan format ``loes`` takes, keeping nibabel's affine: preprocessing
uses what ``loes validate`` checks."""

from __future__ import annotations

from collections.abc import Sequence

from monai.config import PathLike
from monai.data import NibabelReader
from monai.utils import ensure_tuple

from loes.data.readers.scans import as_nifti, load_scan, scan_format

__all__ = ["NiftiReader", "ScanReader"]


class ScanReader(NibabelReader):
    """MONAI's ``NibabelReader`` for NIfTI, ``.hdr``/``.img`` pairs, FreeSurfer MGH and DICOM,
    with the affine nibabel gives (no header "correction").

    Each path is opened by :func:`loes.data.readers.scans.load_scan`: ``nibabel.load`` for
    NIfTI (``.nii``, ``.nii.gz``), NIfTI and ANALYZE 7.5 pairs (``.hdr``/``.img``) and MGH
    (``.mgz``, ``.mgh``); SimpleITK (GDCM) for a folder holding one DICOM series or a
    multi-frame DICOM file, whose LPS geometry becomes a RAS affine. A (X, Y, Z, 1) volume is
    squeezed to (X, Y, Z). Every format but NIfTI is handed to ``NibabelReader.get_data`` as a
    ``Nifti1Image`` (``Nifti1Image.from_image``), so the MetaTensor's ``affine``,
    ``original_affine``, ``spatial_shape`` and ``pixdim`` mean the same for all; ``LoadImage``
    sets ``filename_or_obj`` to the path given (the folder, for a DICOM series).

    The affine is ``image.affine``: for NIfTI the sform when ``sform_code > 0``, else the
    qform, else the voxel sizes alone (`nibabel's NIfTI docs
    <https://nipy.org/nibabel/nifti_images.html>`_); it is the affine ``loes validate``
    checks. MONAI's reader calls ``monai.data.correct_nifti_header_if_necessary`` first,
    which, when the sform's voxel sizes differ from ``pixdim``, replaces the sform by the
    qform. A qform holds only a rotation, so a sheared sform (a gantry tilt) was silently
    dropped and every voxel moved, up to centimetres. This reader skips that step; everything
    else (metadata, ``kwargs`` given to ``nibabel.load``) is ``NibabelReader``'s.

    Raises (from ``read``):
        loes.data.readers.scans.ScanError: a path that is no scan or cannot be read, with
            the reason (``loes validate`` reports the same).

    Examples::

        >>> from monai.transforms import LoadImaged
        >>> load = LoadImaged("image", reader=ScanReader(), image_only=True)
        >>> load({"image": "dicom/t1_mprage/"})["image"].affine  # doctest: +SKIP
    """

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether every path is a scan this reader opens (by its name; a folder or a file
        without extension when it holds DICOM)."""
        return all(scan_format(name) is not None for name in ensure_tuple(filename))

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs):
        """Open each path with ``load_scan`` (``kwargs`` override the reader's and go to
        ``nibabel.load``; a DICOM scan takes none), as a ``Nifti1Image``."""
        filenames: Sequence[PathLike] = ensure_tuple(data)
        self.filenames = filenames
        options = {**self.kwargs, **kwargs}
        images = [as_nifti(load_scan(name, **options)) for name in filenames]
        return images if len(filenames) > 1 else images[0]


NiftiReader = ScanReader
"""The name this reader had when it read NIfTI alone; it reads every format now."""
