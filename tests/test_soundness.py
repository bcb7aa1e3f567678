"""Soundness: no dense high-precision sample of any box exceeds that box's proved bound."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from verify.search.certify import certify
from verify.forward import float_weights, forward_float, forward_mp
from verify.search.paving import Domain


def _leaf_boxes(c, res):
    dom = Domain(c.domain)
    return [(dom.exact_box(l.i, l.k)[0], l.bound) for l in res.leaves]


def _random_params(rng):
    a = Fraction(int(rng.integers(-8, 0)), int(rng.integers(1, 5)))
    b = a + Fraction(int(rng.integers(1, 9)), int(rng.integers(1, 4)))
    p = int(rng.integers(2, 30))
    kappa = Fraction(int(rng.integers(1, 400)), 20)
    lo = a - Fraction(int(rng.integers(0, 5)), 3)
    hi = b + Fraction(int(rng.integers(0, 5)), 4)
    return dict(a=a, b=b, p=p, kappa=kappa, lo=lo, hi=hi)


@pytest.mark.parametrize("seed", range(8))
def test_boxes_dominate_dense_float_sample(seed):
    """Every leaf, sampled at 33 points (ends included) in float64: sample <= bound (+1e-12)."""
    rng = np.random.default_rng(seed)
    c = constructions.build("ramp", **_random_params(rng))
    res = certify(c, repr(float(c.apriori_float()) * 0.6 + 1e-6), max_boxes=200_000, progress=False)
    if res.status != "CERTIFIED":  # then certify at a comfortable eps
        res = certify(c, repr(float(c.apriori_float()) * 1.01), progress=False)
    assert res.status == "CERTIFIED"
    boxes = _leaf_boxes(c, res)
    t = np.linspace(0, 1, 33)
    lo = np.array([float(b[0][0]) for b in boxes])
    hi = np.array([float(b[0][1]) for b in boxes])
    X = (lo[:, None] + (hi - lo)[:, None] * t[None, :]).ravel()
    w = float_weights(c.network)
    y = forward_float(c.network, X[:, None], np, w)[:, 0]
    a, b = float(c.param_dict()["a"]), float(c.param_dict()["b"])
    err = np.abs(y - np.clip(X, a, b)).reshape(len(boxes), -1).max(axis=1)
    bounds = np.array([bd for _, bd in boxes])
    assert np.all(err <= bounds + 1e-12), np.max(err - bounds)


@pytest.mark.parametrize("seed", range(3))
def test_tightest_boxes_dominate_mpmath_sample(seed):
    """The boxes whose bound is closest to the sampled error, checked at 40 digits."""
    rng = np.random.default_rng(100 + seed)
    c = constructions.build("ramp", **_random_params(rng))
    res = certify(c, repr(float(c.apriori_float()) * 1.01), progress=False)
    assert res.status == "CERTIFIED"
    boxes = sorted(_leaf_boxes(c, res), key=lambda bb: -bb[1])[:12]
    a, b = Fraction(c.param_dict()["a"]), Fraction(c.param_dict()["b"])
    with mpmath.workdps(40):
        for (lo, hi), bound in boxes:
            for k in range(9):
                x = lo + (hi - lo) * Fraction(k, 8)
                y = forward_mp(c.network, [x], 40)[0]
                f = min(max(x, a), b)
                err = abs(y - mpmath.mpf(f.numerator) / f.denominator)
                assert err <= mpmath.mpf(bound), (x, err, bound)
