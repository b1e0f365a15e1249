"""The Loes areas in MNI space: every area on both sides, looked up by millimetres, shares of a
map, and the check that a scan lies in MNI space."""

import nibabel as nib
import numpy as np
import pytest

from loes.data.loes_areas import (
    LOES_AREAS,
    MNI_OVERLAP,
    area_atlas,
    area_labels,
    area_shares,
    mni_overlap,
)
from loes.data.loes_items import AREAS
from loes.data.template import load_template


@pytest.fixture(scope="module")
def atlas():
    image = area_atlas()
    return np.asarray(image.dataobj), image.affine


def test_every_area_of_the_score_sheet_is_there_on_both_sides(atlas):
    data, affine = atlas
    assert set(np.unique(data)) == set(range(len(LOES_AREAS) + 1))
    # the score sheet's lesion areas, with the corpus callosum read as splenium and genu
    sheet = {a for a in AREAS if "atrophy" not in a} - {"corpus_callosum"}
    assert sheet | {"corpus_callosum_splenium", "corpus_callosum_genu"} == set(LOES_AREAS)
    x = nib.affines.apply_affine(affine, np.argwhere(data > 0))[:, 0]
    labels = data[data > 0]
    for label in range(1, len(LOES_AREAS) + 1):
        assert (x[labels == label] < 0).any(), label  # left
        assert (x[labels == label] > 0).any(), label  # right


@pytest.mark.parametrize(
    ("point", "area"),
    [
        ((-30.0, -70.0, 20.0), "parieto_occipital"),
        ((30.0, -70.0, 20.0), "parieto_occipital"),
        ((4.0, -35.0, 15.0), "corpus_callosum_splenium"),
        ((4.0, 24.0, 10.0), "corpus_callosum_genu"),
        ((-20.0, -50.0, -40.0), "cerebellum"),
    ],
)
def test_known_mni_points_fall_in_their_area(point, area):
    assert area_labels(np.array([point]))[0] == LOES_AREAS.index(area) + 1


def test_points_outside_the_atlas_have_no_area():
    assert area_labels(np.array([[500.0, 0.0, 0.0], [0.0, 0.0, -500.0]])).tolist() == [0, 0]


def test_a_map_inside_one_area_puts_all_its_mass_there(atlas):
    data, affine = atlas
    label = LOES_AREAS.index("frontal") + 1
    shares = area_shares((data == label).astype(np.float32) * 3.0, affine)
    assert shares["frontal"] == pytest.approx(1.0)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["elsewhere"] == 0.0


def test_shares_weigh_the_map_and_ignore_its_negative_part(atlas):
    data, affine = atlas
    saliency = np.zeros(data.shape, np.float32)
    saliency[data == LOES_AREAS.index("cerebellum") + 1] = -5.0  # counts as 0
    first = tuple(np.argwhere(data == LOES_AREAS.index("basal_ganglia") + 1)[0])
    second = tuple(np.argwhere(data == 0)[0])
    saliency[first], saliency[second] = 3.0, 1.0
    shares = area_shares(saliency, affine)
    assert shares["basal_ganglia"] == pytest.approx(0.75)
    assert shares["elsewhere"] == pytest.approx(0.25)
    assert shares["cerebellum"] == 0.0


def test_only_the_mass_in_the_brain_counts(atlas):
    data, affine = atlas
    saliency = (data == LOES_AREAS.index("cerebellum") + 1).astype(float)
    brain = np.ones(data.shape, bool)
    brain[data == LOES_AREAS.index("cerebellum") + 1] = False  # the map is all outside
    saliency[tuple(np.argwhere(data == LOES_AREAS.index("frontal") + 1)[0])] = 0.5
    shares = area_shares(saliency, affine, brain)
    assert shares["frontal"] == 1.0
    assert shares["cerebellum"] == 0.0


def test_a_map_without_mass_has_no_shares(atlas):
    data, affine = atlas
    shares = area_shares(np.zeros(data.shape), affine)
    assert all(np.isnan(v) for v in shares.values())


def test_the_template_brain_lies_in_mni_space_and_a_shifted_one_does_not():
    template = load_template("brain_mask", resolution=2)
    brain = np.asarray(template.dataobj) > 0.5
    assert mni_overlap(brain, template.affine) == pytest.approx(1.0)
    shifted = template.affine.copy()
    shifted[:3, 3] += [0.0, 60.0, 40.0]  # scanner coordinates, 7 cm off
    assert mni_overlap(brain, shifted) < MNI_OVERLAP
