"""load_template / template_grid: nilearn's MNI ICBM152 2009 template, no download."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from loes.data.template import load_template, template_grid


def test_template_is_the_mni_grid_and_cached():
    image = load_template("t1", 1)
    assert image.shape == (197, 233, 189)
    assert_allclose(image.affine[:3, 3], [-98, -134, -72])
    assert (
        0.0 <= float(np.asarray(image.dataobj).min()) < float(np.asarray(image.dataobj).max()) <= 1
    )
    assert np.shares_memory(np.asarray(image.dataobj), np.asarray(load_template("t1", 1).dataobj))


def test_template_grid_keeps_origin_and_extent():
    affine, shape = template_grid(2.0)
    assert shape == (99, 117, 95)
    assert_allclose(
        affine, np.diag([2.0, 2.0, 2.0, 1.0]) + np.c_[np.zeros((4, 3)), [-98, -134, -72, 0]]
    )
    assert template_grid()[1] == (197, 233, 189)


@pytest.mark.parametrize(("kind", "resolution"), [("skull", 1), ("t1", 0), ("t1", 1.5)])
def test_bad_template_arguments(kind, resolution):
    with pytest.raises(ValueError, match="template"):
        load_template(kind, resolution)
