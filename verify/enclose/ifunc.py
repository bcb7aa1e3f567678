"""Outward-rounded interval versions of the target functions beyond + - * exp.

Same conventions as ``verify.enclose.interval``: pairs ``(lo, hi)`` of ``xp`` arrays, every
correctly rounded IEEE operation (+ - * / sqrt) is widened one ``nextafter`` step,
and library functions (sin, cos, tanh, log) by ``LIB_ULPS`` steps, a margin the
tests check against mpmath.  Domain errors (log of x <= 0, sqrt of x < 0, division
by an interval containing 0) give NaN ends, and a NaN end never turns into a number.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .interval import down, down_n, up, up_n

# glibc documents <= 1-2 ulp for sin/cos/tanh/log in double; CUDA documents <= 2 ulp.
# We widen by 4 steps each way, as for exp (interval.EXP_ULPS).
LIB_ULPS = 4
# IEEE 754 requires sqrt correctly rounded (CUDA's double sqrt is IEEE-compliant),
# so one step outward encloses the exact root.
SQRT_ULPS = 1
# Beyond this |argument| sin/cos return [-1, 1] without range reduction.
TRIG_MAX_ARG = 2.0 ** 24
# Relative slack on the reduced argument t = (x - phase)/(2 pi): its float error is
# below 2^-51 |t| + 2^-54 (three roundings plus the error of float pi), so 2^-46
# (|t| + 1) leaves a factor of 32.
_TRIG_SLACK = 2.0 ** -46
_INV_2PI = 1.0 / (2.0 * math.pi)
_PI = math.pi


def _nan_like(x, xp):
    return xp.full(x.shape, xp.nan)


def keep_nan(out, *inputs, xp=np):
    """Set both ends of ``out`` to NaN wherever any end of any input interval is NaN.

    Needed after ``where``/comparisons, which would otherwise turn NaN into a number.
    """
    bad = None
    for a in inputs:
        b = xp.isnan(a[0]) | xp.isnan(a[1])
        bad = b if bad is None else bad | b
    if bad is None:
        return out
    return xp.where(bad, xp.nan, out[0]), xp.where(bad, xp.nan, out[1])


def const(q: Fraction, shape=(), xp=np):
    """Tightest float interval enclosing the exact rational ``q``, filled to ``shape``."""
    q = Fraction(q)
    try:
        f = float(q)  # correctly rounded in CPython; checked exactly below anyway
    except OverflowError:
        f = math.inf if q > 0 else -math.inf
    lo = hi = f
    # widen until the exact comparison holds (one step when float() rounds correctly)
    while math.isfinite(lo) and Fraction(lo) > q:
        lo = math.nextafter(lo, -math.inf)
    while math.isfinite(hi) and Fraction(hi) < q:
        hi = math.nextafter(hi, math.inf)
    if lo == math.inf:
        lo = math.nextafter(math.inf, 0.0)   # huge positive: [max float, inf]
    if hi == -math.inf:
        hi = math.nextafter(-math.inf, 0.0)
    return xp.full(shape, lo, dtype=xp.float64), xp.full(shape, hi, dtype=xp.float64)


def pi(shape=(), xp=np):
    """An interval enclosing pi: float(pi) is 1.2e-16 below pi, so [fl(pi), next up]."""
    return xp.full(shape, _PI, dtype=xp.float64), xp.full(shape, math.nextafter(_PI, 4.0), dtype=xp.float64)


def div(a, b, xp=np):
    """Quotient; NaN where the divisor contains 0 (the quotient is unbounded or undefined)."""
    bad = (b[0] <= 0) & (b[1] >= 0)
    with np.errstate(divide="ignore", invalid="ignore"):  # those entries become NaN below
        q = (a[0] / b[0], a[0] / b[1], a[1] / b[0], a[1] / b[1])
    lo = xp.minimum(xp.minimum(q[0], q[1]), xp.minimum(q[2], q[3]))
    hi = xp.maximum(xp.maximum(q[0], q[1]), xp.maximum(q[2], q[3]))
    lo = xp.where(bad, xp.nan, down(lo, xp))
    hi = xp.where(bad, xp.nan, up(hi, xp))
    return keep_nan((lo, hi), a, b, xp=xp)


def _pow_nonneg(m, n: int, rounder, xp):
    """m^n for m >= 0 by binary powering, each product rounded by ``rounder``."""
    result = None  # starting from m itself keeps x^1 exact
    base = m
    while n:
        if n & 1:
            result = base if result is None else xp.maximum(rounder(result * base, xp), 0.0)
        n >>= 1
        if n:
            base = xp.maximum(rounder(base * base, xp), 0.0)
    return result


def pow_int(a, n: int, xp=np):
    """a^n for an integer n: even powers are >= 0 and handle intervals containing 0."""
    n = int(n)
    if n == 0:  # x^0 = 1 for every real x, but NaN stays NaN
        one = xp.ones_like(a[0])
        return keep_nan((one, one.copy()), a, xp=xp)
    if n < 0:
        return div((xp.ones_like(a[0]), xp.ones_like(a[0])), pow_int(a, -n, xp), xp)
    lo, hi = a
    if n % 2 == 1:  # increasing: bound each end, using x^n = -(|x|^n) for x < 0
        rlo = xp.where(lo >= 0, _pow_nonneg(xp.abs(lo), n, down, xp), -_pow_nonneg(xp.abs(lo), n, up, xp))
        rhi = xp.where(hi >= 0, _pow_nonneg(xp.abs(hi), n, up, xp), -_pow_nonneg(xp.abs(hi), n, down, xp))
    else:  # even: x^n = |x|^n, smallest at the point of least magnitude
        mig = xp.where((lo <= 0) & (hi >= 0), 0.0, xp.minimum(xp.abs(lo), xp.abs(hi)))
        mag = xp.maximum(xp.abs(lo), xp.abs(hi))
        rlo, rhi = _pow_nonneg(mig, n, down, xp), _pow_nonneg(mag, n, up, xp)
    return keep_nan((rlo, rhi), a, xp=xp)


def sqrt(a, xp=np):
    """Square root; NaN ends where the interval reaches below 0."""
    bad = a[0] < 0
    lo = xp.maximum(down_n(xp.sqrt(xp.where(bad, 0.0, a[0])), SQRT_ULPS, xp), 0.0)
    hi = up_n(xp.sqrt(xp.where(bad, 0.0, a[1])), SQRT_ULPS, xp)
    return keep_nan((xp.where(bad, xp.nan, lo), xp.where(bad, xp.nan, hi)), a, xp=xp)


def log(a, xp=np):
    """Natural log; NaN ends where the interval reaches 0 or below."""
    bad = a[0] <= 0
    lo = down_n(xp.log(xp.where(bad, 1.0, a[0])), LIB_ULPS, xp)
    hi = up_n(xp.log(xp.where(bad, 1.0, a[1])), LIB_ULPS, xp)
    return keep_nan((xp.where(bad, xp.nan, lo), xp.where(bad, xp.nan, hi)), a, xp=xp)


def tanh(a, xp=np):
    """tanh is increasing with values in [-1, 1]."""
    lo = xp.maximum(down_n(xp.tanh(a[0]), LIB_ULPS, xp), -1.0)
    hi = xp.minimum(up_n(xp.tanh(a[1]), LIB_ULPS, xp), 1.0)
    return lo, hi


def _may_contain(a, b, phase: float, xp):
    """True where [a, b] may contain phase + 2 k pi for an integer k (never a false 'no')."""
    ta = (a - phase) * _INV_2PI
    tb = (b - phase) * _INV_2PI
    ta = ta - (xp.abs(ta) + 1.0) * _TRIG_SLACK
    tb = tb + (xp.abs(tb) + 1.0) * _TRIG_SLACK
    return xp.floor(tb) >= xp.ceil(ta)


def _trig(a, fn, max_phase: float, min_phase: float, xp):
    """sin or cos: monotone between extrema, so ends decide unless an extremum is inside."""
    lo, hi = a
    big = ~((xp.abs(lo) <= TRIG_MAX_ARG) & (xp.abs(hi) <= TRIG_MAX_ARG))  # also inf
    safe_lo = xp.where(big, 0.0, lo)
    safe_hi = xp.where(big, 0.0, hi)
    fa, fb = fn(safe_lo), fn(safe_hi)
    rlo = xp.minimum(down_n(fa, LIB_ULPS, xp), down_n(fb, LIB_ULPS, xp))
    rhi = xp.maximum(up_n(fa, LIB_ULPS, xp), up_n(fb, LIB_ULPS, xp))
    rlo = xp.where(big | _may_contain(safe_lo, safe_hi, min_phase, xp), -1.0, xp.maximum(rlo, -1.0))
    rhi = xp.where(big | _may_contain(safe_lo, safe_hi, max_phase, xp), 1.0, xp.minimum(rhi, 1.0))
    return keep_nan((rlo, rhi), a, xp=xp)


def sin(a, xp=np):
    """sin: maxima at pi/2 + 2k pi, minima at -pi/2 + 2k pi; wide intervals give [-1, 1]."""
    return _trig(a, xp.sin, 0.5 * _PI, -0.5 * _PI, xp)


def cos(a, xp=np):
    """cos: maxima at 2k pi, minima at pi + 2k pi; wide intervals give [-1, 1]."""
    return _trig(a, xp.cos, 0.0, _PI, xp)


def abs_(a, xp=np):
    """|x|: exact (no rounding), lower end 0 when the interval straddles 0."""
    lo, hi = a
    rlo = xp.where(lo >= 0, lo, xp.where(hi <= 0, -hi, 0.0))
    rhi = xp.maximum(xp.abs(lo), xp.abs(hi))
    return keep_nan((rlo, rhi), a, xp=xp)


def min_(a, b, xp=np):
    """Exact; xp.minimum propagates NaN."""
    return xp.minimum(a[0], b[0]), xp.minimum(a[1], b[1])


def max_(a, b, xp=np):
    return xp.maximum(a[0], b[0]), xp.maximum(a[1], b[1])


def relu(a, xp=np):
    return xp.maximum(a[0], 0.0), xp.maximum(a[1], 0.0)


def range_(lo, hi, y, xp=np):
    """Range_[lo, hi](y) = min(max(y, lo), hi), with interval lo and hi."""
    return min_(max_(y, lo, xp), hi, xp)
