"""Outward-rounded interval arithmetic on arrays of lower and upper ends.

Every function takes and returns a pair ``(lo, hi)`` of arrays from the backend
``xp`` (NumPy or CuPy).  Each IEEE operation is correctly rounded to nearest, so
one ``nextafter`` step outward encloses the exact real result; library functions
(``exp``) are widened by a measured ulp margin (see ``EXP_ULPS``), validated
against mpmath in the tests.  A NaN end never turns into a number: callers check
``isfinite`` on the final bound.
"""
from __future__ import annotations

import numpy as np

# glibc documents < 1 ulp for exp; CUDA documents 2 ulp for double exp.  We widen
# by 4 steps each way, which the tests check against mpmath at many points.
EXP_ULPS = 4


def down(x, xp=np):
    """The next float below ``x`` (the rounded result of one operation)."""
    return xp.nextafter(x, -xp.inf)


def up(x, xp=np):
    """The next float above ``x``."""
    return xp.nextafter(x, xp.inf)


def down_n(x, n, xp=np):
    for _ in range(n):
        x = xp.nextafter(x, -xp.inf)
    return x


def up_n(x, n, xp=np):
    for _ in range(n):
        x = xp.nextafter(x, xp.inf)
    return x


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
