"""MONAI transforms for brain MRI, reusable in any MONAI pipeline.

A reader for NIfTI, ``.hdr``/``.img`` pairs, FreeSurfer MGH and DICOM series that keeps
nibabel's affine (:class:`ScanReader`, also importable by its old name ``NiftiReader``),
array/dictionary pairs in MONAI's conventions (:class:`N4BiasFieldCorrection`,
:class:`RegisterToTemplate`, each dictionary version also as ``...D`` and ``...Dict``), the
MNI template nilearn ships
(:func:`load_template`), and the project's presets (:func:`preprocessing`,
:func:`augmentation`), plain ``monai.transforms.Compose``. Bad arguments raise ``ValueError``
or ``TypeError``, as MONAI's transforms do.
"""

from loes.data.template import load_template, template_grid
from loes.transforms.bias import (
    N4BiasFieldCorrection,
    N4BiasFieldCorrectionD,
    N4BiasFieldCorrectiond,
    N4BiasFieldCorrectionDict,
)
from loes.transforms.presets import NORMALIZE_MODES, BrainForeground, augmentation, preprocessing
from loes.transforms.reader import NiftiReader, ScanReader
from loes.transforms.registration import (
    TEMPLATE_TRANSFORM_KEY,
    RegisterToTemplate,
    RegisterToTemplateD,
    RegisterToTemplated,
    RegisterToTemplateDict,
)

__all__ = [
    "NORMALIZE_MODES",
    "TEMPLATE_TRANSFORM_KEY",
    "BrainForeground",
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectionD",
    "N4BiasFieldCorrectionDict",
    "N4BiasFieldCorrectiond",
    "NiftiReader",
    "RegisterToTemplate",
    "RegisterToTemplateD",
    "RegisterToTemplateDict",
    "RegisterToTemplated",
    "ScanReader",
    "augmentation",
    "load_template",
    "preprocessing",
    "template_grid",
]
