"""Aperture kernels: normalisation, area, polygon symmetry, validation."""
from __future__ import annotations

import math

import numpy as np
import pytest

import refocus
from refocus import aperture


def _grid(radius, step=0.05):
    # an irrational offset keeps grid points off the polygon edges
    c = np.arange(-radius - 1, radius + 1, step) + 0.0123456
    return np.meshgrid(c, c)


def _rotate(x, y, degrees):
    a = math.radians(degrees)
    return x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)


@pytest.mark.parametrize("shape,blades", [("circle", 6), ("polygon", 3), ("polygon", 5), ("polygon", 6),
                                          ("polygon", 9), ("polygon", 16)])
@pytest.mark.parametrize("radius", [0.0, 0.3, 1.0, 2.5, 5.0, 8.0, 13.7])
def test_kernel_is_normalised_odd_and_nonnegative(shape, blades, radius):
    k = aperture.kernel(radius, shape, blades, 17.0)
    assert k.dtype == np.float32
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.shape[0] == 2 * math.ceil(radius + 0.5) + 1
    assert (k >= 0).all()
    assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5


def test_negative_radius_is_the_same_kernel():
    np.testing.assert_array_equal(aperture.kernel(-4.5), aperture.kernel(4.5))


@pytest.mark.parametrize("radius", [3.0, 4.5, 5.0, 8.0, 12.0])
def test_circle_kernel_covers_pi_r_squared(radius):
    k = aperture.kernel(radius, "circle")
    coverage = k / k.max()                  # fully covered taps have coverage 1
    # (at integer radii the taps at (+-r, 0) are covered exactly half: count them in)
    taps = int((coverage >= 0.5 - 1e-6).sum())
    area = math.pi * radius ** 2
    assert abs(taps - area) <= 0.10 * area, (taps, area)
    # the anti-aliased coverage integrates to the exact area much more closely
    assert abs(float(coverage.sum()) - area) <= 0.02 * area
    # centred: the centre of mass is the middle tap
    h = k.shape[0] // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    assert abs(float((k * xx).sum())) < 1e-5 and abs(float((k * yy).sum())) < 1e-5


@pytest.mark.parametrize("blades", [3, 5, 6, 7, 9])
def test_polygon_has_n_fold_rotational_symmetry(blades):
    r = 6.0
    x, y = _grid(r)
    base = aperture.inside(x, y, r, "polygon", blades, 10.0)
    xr, yr = _rotate(x, y, 360.0 / blades)
    turned = aperture.inside(xr, yr, r, "polygon", blades, 10.0)
    assert base.sum() > 1000
    assert (base != turned).mean() < 1e-3
    # ... and is not symmetric under a rotation that is not a multiple of 360/N
    xr, yr = _rotate(x, y, 180.0 / blades)
    other = aperture.inside(xr, yr, r, "polygon", blades, 10.0)
    assert (base != other).mean() > 5e-3


@pytest.mark.parametrize("blades", [3, 5, 6, 8])
def test_polygon_area_is_that_of_the_inscribed_polygon(blades):
    r = 6.0
    step = 0.02
    x, y = _grid(r, step)
    poly = aperture.inside(x, y, r, "polygon", blades).sum() * step * step
    circ = aperture.inside(x, y, r, "circle").sum() * step * step
    exact = 0.5 * blades * r * r * math.sin(2 * math.pi / blades)
    assert poly < circ
    assert abs(poly - exact) < 0.01 * exact
    assert abs(circ - math.pi * r * r) < 0.01 * math.pi * r * r
    # the kernel's coverage agrees
    k = aperture.kernel(r, "polygon", blades)
    kc = aperture.kernel(r, "circle")
    assert (k / k.max()).sum() < (kc / kc.max()).sum()
    assert abs(float((k / k.max()).sum()) - exact) < 0.03 * exact


def test_polygon_vertex_points_up_at_rotation_zero():
    r = 5.0
    # y points down: "up" is negative y
    assert aperture.inside(0.0, -0.98 * r, r, "polygon", 5, 0.0)
    assert not aperture.inside(0.0, 0.98 * r, r, "polygon", 5, 0.0)
    # turned by half a sector, the vertex points down
    assert aperture.inside(0.0, 0.98 * r, r, "polygon", 5, 36.0)
    k = aperture.kernel(r, "polygon", 5, 0.0)
    h = k.shape[0] // 2
    assert k[h - 5, h] > 0 and k[h + 5, h] == 0


def test_rotation_by_one_sector_gives_the_same_kernel():
    cov = lambda rot: (lambda k: k / k.max())(aperture.kernel(7.0, "polygon", 6, rot))
    a, b, c = cov(0.0), cov(60.0), cov(30.0)
    assert np.abs(a - b).max() < 0.05          # same shape up to supersampling noise
    assert np.abs(a - c).max() > 0.3           # a vertex where there was an edge


@pytest.mark.parametrize("shape,blades,rotation", [
    ("polygon", 2, 0.0), ("polygon", 17, 0.0), ("polygon", 0, 0.0), ("polygon", -5, 0.0),
    ("square", 6, 0.0), ("", 6, 0.0), ("Circle", 6, 0.0),
    ("polygon", 6, float("nan")), ("circle", 6, float("inf")),
])
def test_bad_aperture_raises_badinputerror(shape, blades, rotation):
    with pytest.raises(refocus.BadInputError):
        aperture.validate(shape, blades, rotation)


def test_bad_aperture_message_names_parameter():
    with pytest.raises(refocus.BadInputError, match="--blades"):
        aperture.validate("polygon", 2, 0.0)
    with pytest.raises(refocus.BadInputError, match="--aperture"):
        aperture.validate("hexagon", 6, 0.0)


@pytest.mark.parametrize("shape,blades", [("circle", 6), ("polygon", 3), ("polygon", 16)])
def test_good_aperture_is_accepted(shape, blades):
    aperture.validate(shape, blades, 12.5)


@pytest.mark.parametrize("kw", [dict(aperture="polygon", blades=2), dict(aperture="polygon", blades=40),
                                dict(aperture="star")])
def test_render_linear_rejects_bad_aperture(kw):
    img = np.zeros((8, 8, 3), np.float32)
    d = np.zeros((8, 8), np.float32)
    with pytest.raises(refocus.BadInputError):
        refocus.render_linear(img, d, 0.5, 4.0, **kw)
