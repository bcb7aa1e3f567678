"""Outward-rounded interval arithmetic on arrays of lower and upper ends.

Every function takes and returns a pair ``(lo, hi)`` of arrays from the backend
``xp`` (NumPy or CuPy).  Each IEEE operation is correctly rounded to nearest, so
one step outward (at least one ulp, see ``down``) encloses the exact real result;
library functions (``exp``) are widened by a documented ulp margin (``EXP_ULPS``),
validated against mpmath in the tests.  A NaN end never turns into a number:
callers check ``isfinite`` on the final bound.
"""
from __future__ import annotations

import math

import numpy as np

# glibc documents < 1 ulp for exp and CUDA's Programming Guide 1 ulp for double exp, a figure
# it says comes from extensive but not exhaustive tests.  So we widen by 4 ulps each way, and
# the tests check that margin against mpmath at many points (on the device too).
EXP_ULPS = 4

_ETA = 2.0 ** -1074          # the smallest subnormal
_MAX = float(np.finfo(np.float64).max)


def _step(x, k, sign, xp):
    """x moved outward by at least k ulps: x + sign * (|x| * 2^(j-52) + 2^j * eta), 2^j >= k.

    Why this bounds pred^k / succ^k: for normal x, |x| * 2^-52 >= ulp(x) and the scaling by a
    power of two is exact, so the exact value is at least k ulps away, and rounding to
    nearest is monotone, so the float result is too (crossing a binade only shortens the
    steps on the way to zero and lengthens them by less than |x| * 2^-52 away from it).
    Where |x| * 2^(j-52) underflows, the added 2^j * eta covers the lost half ulp and the
    subnormal spacing.  An infinite x stepped towards zero first becomes the largest float,
    as with ``nextafter``: an overflowed result still has that as a true bound.  Five array
    passes, about 3 times cheaper than one ``nextafter`` pass in NumPy, and no
    directed-rounding mode is needed on either backend.  NaN stays NaN.
    """
    j = max(0, math.ceil(math.log2(k)))
    c, e = 2.0 ** (j - 52), 2.0 ** j * _ETA
    x = xp.maximum(x, -_MAX) if sign > 0 else xp.minimum(x, _MAX)
    t = xp.abs(x)
    if getattr(t, "ndim", 0) == 0:          # Python or NumPy scalar: plain float arithmetic
        t = float(t) * c + e
        return x + t if sign > 0 else x - t
    t *= c
    t += e
    return xp.add(x, t, out=t) if sign > 0 else xp.subtract(x, t, out=t)


def down(x, xp=np):
    """A float at or below the next float under ``x`` (encloses one rounded operation)."""
    return _step(x, 1, -1, xp)


def up(x, xp=np):
    """A float at or above the next float over ``x``."""
    return _step(x, 1, 1, xp)


def down_n(x, n, xp=np):
    """At least ``n`` floats below ``x``."""
    return _step(x, n, -1, xp)


def up_n(x, n, xp=np):
    """At least ``n`` floats above ``x``."""
    return _step(x, n, 1, xp)


def point(x, xp=np):
    """Degenerate interval of an exactly representable array."""
    return x, x


def add(a, b, xp=np):
    return down(a[0] + b[0], xp), up(a[1] + b[1], xp)


def sub(a, b, xp=np):
    return down(a[0] - b[1], xp), up(a[1] - b[0], xp)


def neg(a, xp=np):
    return -a[1], -a[0]


def mul(a, b, xp=np):
    """Product of intervals: min/max of the four end products, rounded outward.

    ``0 * inf`` gives NaN, which propagates and fails the final finiteness check.
    """
    p = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    lo = xp.minimum(xp.minimum(p[0], p[1]), xp.minimum(p[2], p[3]))
    hi = xp.maximum(xp.maximum(p[0], p[1]), xp.maximum(p[2], p[3]))
    return down(lo, xp), up(hi, xp)


def scale(a, c, xp=np):
    """Interval times an exact float array ``c`` (c may be negative)."""
    p0, p1 = a[0] * c, a[1] * c
    return down(xp.minimum(p0, p1), xp), up(xp.maximum(p0, p1), xp)


def exp(a, xp=np):
    """exp is increasing: widen each end by EXP_ULPS.  Lower end clamps at 0."""
    lo = xp.maximum(down_n(xp.exp(a[0]), EXP_ULPS, xp), 0.0)
    return lo, up_n(xp.exp(a[1]), EXP_ULPS, xp)


def hull(a, b, xp=np):
    return xp.minimum(a[0], b[0]), xp.maximum(a[1], b[1])


def finite(a, xp=np):
    """True where both ends are finite numbers (NaN and inf count as failure)."""
    return xp.isfinite(a[0]) & xp.isfinite(a[1])


def centre_box(xl, xh, xp=np):
    """The centred form's centre and radii over float boxes (N, D): an interval [cl, ch] around the
    float midpoint, inside the box, and r with max over x in the box of |x - c'| <= r for every c'
    in [cl, ch].  The exact centre of the exact box (which the float box encloses within a few
    ulps) may lie just outside [cl, ch]; the bound E(c') + sum_i slope_i r_i holds whichever c' is
    meant, since |c_exact - c'| + r_exact <= max(xh - cl, ch - xl)."""
    with np.errstate(over="ignore", invalid="ignore"):
        xm = 0.5 * (xl + xh)
        cl = xp.maximum(down(xm, xp), xl)
        ch = xp.minimum(up(xm, xp), xh)
        r = xp.maximum(up(xh - cl, xp), up(ch - xl, xp))
    return cl, ch, r


def mean_value_bound(Ec, slopes, r, xp=np):
    """E_c + sum_i slope_i r_i rounded up, per box; inf where anything is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        C = Ec
        for i in range(slopes.shape[1]):
            C = up(C + up(slopes[:, i] * r[:, i], xp), xp)
    ok = xp.isfinite(C) & xp.all(xp.isfinite(slopes), axis=1) & xp.all(xp.isfinite(r), axis=1)
    return xp.where(ok, C, xp.inf)


def slope_bound(a, xp=np):
    """sup |v| over the enclosure a = (lo, hi): a slope bound; inf where an end is NaN or infinite
    (no slope is proved there, so no centred bound)."""
    m = xp.maximum(xp.abs(a[0]), xp.abs(a[1]))
    return xp.where(xp.isfinite(m), m, xp.inf)
