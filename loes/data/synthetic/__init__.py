"""A realistic synthetic cerebral ALD cohort with its own ground truth (``loes synth``).

Real MNI anatomy (nilearn's ICBM152 2009 template) warped per subject, Loes-item lesions
and atrophy rendered from a disease course, and native-like acquisitions (orientations,
voxel sizes, bias, Rician noise, sites): skull-stripped brains, or whole heads (``head``).
Each scan's ``loes_score`` is the sum of the items rendered into it, and its lesion mask shows
exactly those items. The folder is a BIDS
dataset and comes with a manifest listing the same scans (``layout``).

Examples::

    >>> from loes.data.synthetic import draw_cohort_table, generate_cohort, make_tiny_cohort
    >>> table = draw_cohort_table(66, seed=0)  # the clinical table only, no images
    >>> manifest = generate_cohort("data/synth", workers=2)  # doctest: +SKIP
    >>> tiny = make_tiny_cohort(tmp_path)  # doctest: +SKIP
    >>> heads = make_tiny_cohort(tmp_path / "heads", whole_head=True)  # doctest: +SKIP
"""

from loes.data.synthetic.anatomy import Anatomy, anatomy_for, load_anatomy
from loes.data.synthetic.cohort import GENERATOR_VERSION, generate_cohort, make_tiny_cohort
from loes.data.synthetic.disease import PATTERNS, SITES, draw_cohort_table, draw_tiny_table
from loes.data.synthetic.head import load_head
from loes.data.synthetic.layout import (
    BRAIN_MASK_COLUMN,
    BRAIN_MASK_DERIVATIVE,
    CONTRAST_ENTITY,
    LESION_DERIVATIVE,
    MANIFEST_COLUMNS,
)

__all__ = [
    "BRAIN_MASK_COLUMN",
    "BRAIN_MASK_DERIVATIVE",
    "CONTRAST_ENTITY",
    "GENERATOR_VERSION",
    "LESION_DERIVATIVE",
    "MANIFEST_COLUMNS",
    "PATTERNS",
    "SITES",
    "Anatomy",
    "anatomy_for",
    "draw_cohort_table",
    "draw_tiny_table",
    "generate_cohort",
    "load_anatomy",
    "load_head",
    "make_tiny_cohort",
]
