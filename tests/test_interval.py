"""The outward steps of verify/enclose/interval.py reach at least as far as repeated nextafter."""
import math

import mpmath
import numpy as np
import pytest

from verify.enclose import interval as iv

TINY = 2.0 ** -1074
MAX = float(np.finfo(np.float64).max)


def _edge_values():
    rng = np.random.default_rng(3)
    specials = [0.0, -0.0, TINY, -TINY, 3 * TINY, 2.0 ** -1022, -(2.0 ** -1022), 2.0 ** -1022 - TINY,
                2.0 ** -970, 2.0 ** -1000, 1.0, -1.0, 2.0, 0.5, math.nextafter(1.0, 0.0),
                math.nextafter(2.0, 0.0), -math.nextafter(2.0, 0.0), 1e308, -1e308, MAX / 2]
    pows = [s * 2.0 ** e for e in range(-1074, 1023, 7) for s in (1.0, -1.0)]
    near = [math.nextafter(v, d) for v in pows for d in (0.0, math.inf, -math.inf)]
    rand = list(rng.standard_normal(2000) * 10.0 ** rng.integers(-300, 300, 2000))
    return np.array(specials + pows + near + rand, dtype=np.float64)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
def test_steps_reach_at_least_k_nextafters(k):
    x = _edge_values()
    lo, hi = x.copy(), x.copy()
    for _ in range(k):
        lo, hi = np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)
    d, u = iv.down_n(x, k), iv.up_n(x, k)
    fin_d, fin_u = np.isfinite(lo), np.isfinite(hi)
    assert np.all(d[fin_d] <= lo[fin_d]) and np.all(u[fin_u] >= hi[fin_u])
    # and not absurdly far: a few ulps (the step, plus the final rounding), plus a few subnormals
    j = 2 ** math.ceil(math.log2(k)) if k > 1 else 1
    gap = np.abs(x) * 2.0 ** -52 * (2 * j + 1) + 4 * j * TINY
    ok = np.isfinite(d) & np.isfinite(u)
    assert np.all((x - d)[ok] <= gap[ok]) and np.all((u - x)[ok] <= gap[ok])
    # x itself is left alone (the steps write into a fresh array)
    assert np.array_equal(x, _edge_values())


def test_scalar_steps_match_array_steps():
    for v in (1.0, -3.5, TINY, 0.0, 1e-310, np.float64(7.25)):
        assert iv.down(v) == iv.down(np.array([v]))[0] and iv.up(v) == iv.up(np.array([v]))[0]


def test_overflow_steps_back_to_the_largest_float_and_nan_stays_nan():
    """An overflowed lower end is still above max float (as with nextafter); NaN is never a number."""
    a = np.array([np.inf, -np.inf, np.nan])
    d, u = iv.down(a), iv.up(a)
    assert d[0] < MAX and d[0] > MAX * (1 - 2.0 ** -50) and d[1] == -np.inf and np.isnan(d[2])
    assert u[0] == np.inf and -MAX < u[1] < -MAX * (1 - 2.0 ** -50) and np.isnan(u[2])
    assert iv.down(np.inf) < MAX and np.isnan(iv.up(np.nan))
    lo, hi = iv.exp((np.array([710.0, -800.0]), np.array([710.0, -800.0])))
    assert lo[0] <= MAX and hi[0] == np.inf and lo[1] == 0.0 and hi[1] > 0.0


def test_exp_encloses_mpmath_on_many_points():
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(-745.0, 709.7, 3000), rng.uniform(-40.0, 40.0, 3000),
                        rng.normal(0.0, 1e-3, 1000)])
    lo, hi = iv.exp((x, x))
    with mpmath.workprec(120):
        for xi, l, h in zip(x.tolist(), lo.tolist(), hi.tolist()):
            e = mpmath.exp(xi)
            assert mpmath.mpf(l) <= e <= mpmath.mpf(h), (xi, l, h)
