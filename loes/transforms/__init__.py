"""MONAI transforms for brain MRI, reusable in any MONAI pipeline.

A reader for NIfTI, ``.hdr``/``.img`` pairs, FreeSurfer MGH and DICOM series that keeps
nibabel's affine (:class:`ScanReader`, also importable by its old name ``NiftiReader``),
array/dictionary pairs in MONAI's conventions (:class:`N4BiasFieldCorrection`,
:class:`RegisterToTemplate`, :class:`SkullStrip`, each dictionary version also as ``...D`` and
``...Dict``), the decision whether a scan is already skull-stripped (:func:`is_skull_stripped`),
the MNI template nilearn ships
(:func:`load_template`), and the project's presets (:func:`preprocessing`,
:func:`augmentation`), plain ``monai.transforms.Compose``, with the same augmentation for a
whole batch on its device (:class:`RandBatchAugmentation`). Bad arguments raise ``ValueError``
or ``TypeError``, as MONAI's transforms do.
"""

from loes.data.template import load_template, template_grid
from loes.transforms.batch_augmentation import RandBatchAugmentation
from loes.transforms.bias import (
    N4BiasFieldCorrection,
    N4BiasFieldCorrectionD,
    N4BiasFieldCorrectiond,
    N4BiasFieldCorrectionDict,
)
from loes.transforms.foreground import BrainForeground
from loes.transforms.presets import NORMALIZE_MODES, augmentation, preprocessing
from loes.transforms.reader import NiftiReader, ScanReader
from loes.transforms.registration import (
    TEMPLATE_TRANSFORM_KEY,
    RegisterToTemplate,
    RegisterToTemplateD,
    RegisterToTemplated,
    RegisterToTemplateDict,
)
from loes.transforms.skull_strip import (
    MAX_BRAIN_ML,
    SkullStrip,
    SkullStripD,
    SkullStripd,
    SkullStripDict,
    is_skull_stripped,
)
from loes.transforms.subtraction import (
    SESSION_TRANSFORM_KEY,
    RegisteredSubtractionD,
    RegisteredSubtractiond,
    RegisteredSubtractionDict,
    registered_subtraction,
)

__all__ = [
    "MAX_BRAIN_ML",
    "NORMALIZE_MODES",
    "SESSION_TRANSFORM_KEY",
    "TEMPLATE_TRANSFORM_KEY",
    "BrainForeground",
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectionD",
    "N4BiasFieldCorrectionDict",
    "N4BiasFieldCorrectiond",
    "NiftiReader",
    "RandBatchAugmentation",
    "RegisterToTemplate",
    "RegisterToTemplateD",
    "RegisterToTemplateDict",
    "RegisterToTemplated",
    "RegisteredSubtractionD",
    "RegisteredSubtractionDict",
    "RegisteredSubtractiond",
    "ScanReader",
    "SkullStrip",
    "SkullStripD",
    "SkullStripDict",
    "SkullStripd",
    "augmentation",
    "is_skull_stripped",
    "load_template",
    "preprocessing",
    "registered_subtraction",
    "template_grid",
]
