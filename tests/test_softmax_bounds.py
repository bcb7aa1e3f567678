"""The softmax weight bounds and the knapsack bound against exact values, and their NaN behaviour."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from verify.enclose.softmax import head_output_bounds, knapsack_upper, weight_bounds

mpmath.mp.dps = 40


def _softmax(s):
    e = [mpmath.exp(mpmath.mpf(x)) for x in s]
    z = mpmath.fsum(e)
    return [x / z for x in e]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 7), st.floats(0.0, 60.0), st.integers(0, 2 ** 31 - 1))
def test_weight_bounds_contain_softmax_at_points_of_the_logit_box(p, spread, seed):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-spread, spread, size=p)
    width = rng.uniform(0.0, 3.0, size=p) * rng.integers(0, 2, size=p)
    sl, sh = (centre - width)[None, :], (centre + width)[None, :]
    l, u = weight_bounds(sl, sh)
    for _ in range(25):
        s = sl[0] + rng.uniform(0, 1, size=p) * (sh[0] - sl[0])
        for j, a in enumerate(_softmax(s)):
            assert mpmath.mpf(l[0, j]) <= a <= mpmath.mpf(u[0, j])


def _lp_max(l, u, v):
    """Exact fractional-knapsack optimum in rationals: fill the largest values first."""
    l, u, v = ([Fraction(x) for x in row] for row in (l, u, v))
    a = list(l)
    mass = 1 - sum(l)
    for j in sorted(range(len(v)), key=lambda j: -v[j]):
        take = min(u[j] - l[j], mass)
        a[j] += take
        mass -= take
    return sum(x * y for x, y in zip(a, v))


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 8), st.integers(0, 2 ** 31 - 1))
def test_knapsack_bound_is_at_least_the_exact_lp_optimum(p, seed):
    rng = np.random.default_rng(seed)
    l = rng.uniform(0, 1.0 / p, size=p)
    u = np.minimum(l + rng.uniform(0, 1, size=p), 1.0)
    if u.sum() < 1.0:
        u[0] = 1.0
    v = rng.normal(scale=10.0, size=p)
    got = knapsack_upper(l[None, :], u[None, :], v[None, :])[0]
    assert Fraction(got) >= _lp_max(l, u, v)
    # and it is tight to rounding: the dual at the greedy t is the optimum
    assert float(got) - float(_lp_max(l, u, v)) <= 1e-12 * (1 + np.abs(v).max())


def test_nan_logits_give_the_trivial_weight_bounds():
    sl = np.array([[0.0, np.nan, -1.0], [0.0, -1.0, -2.0]])
    sh = np.array([[0.0, np.nan, 1.0], [0.0, -1.0, -2.0]])
    l, u = weight_bounds(sl, sh)
    assert (l[0] == 0).all() and (u[0] == 1).all()
    # the row without NaN keeps informative bounds
    assert l[1, 0] > 0.5 and u[1, 2] < 0.5


def test_a_nan_value_makes_the_head_bound_nan_not_a_smaller_number():
    l = np.array([[0.2, 0.2, 0.2]])
    u = np.array([[0.5, 0.5, 0.5]])
    assert np.isnan(knapsack_upper(l, u, np.array([1.0, np.nan, 2.0]))).all()
    lo, hi = head_output_bounds(l, u, np.array([[1.0, 0.0, 2.0]]), np.array([[1.0, np.nan, 2.0]]))
    assert np.isnan(hi).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_error_bound_is_infinite_when_an_output_end_is_not_finite(bad):
    from verify.enclose.affine import error_from_outputs
    from constructions.expr import parse
    xl, xh = np.array([[0.0]]), np.array([[0.5]])
    err = error_from_outputs([(np.array([0.0]), np.array([bad]))], [parse("x0")], ["x0"], xl, xh)
    assert np.isinf(err).all()
