"""Range and Lipschitz bounds of a target expression over a box, by mpmath interval arithmetic.

The [MAP] parameter recipe needs sup|f|, the oscillation of f and an l1-gradient
Lipschitz constant; these come from forward-mode interval differentiation of the safe
expression tree over a grid of sub-boxes (rigorous up to mpmath.iv's outward rounding).
"""
from __future__ import annotations

import itertools
from fractions import Fraction

import mpmath

from .exact import ParameterError

iv = mpmath.iv
MAX_MAGNITUDE_BITS = 4096   # |f| and |grad f| beyond 2^4096 on the domain: refused, never expanded


def _num(q: Fraction):
    return iv.mpf(q.numerator) / q.denominator


def _hull(*xs):
    lo = min(x.a for x in xs)
    hi = max(x.b for x in xs)
    return iv.mpf([lo, hi])


def _contains_zero(x) -> bool:
    return x.a <= 0 <= x.b


def _tanh(x):
    lo = mpmath.tanh(mpmath.mpf(x.a.a)) - mpmath.mpf(2) ** -50
    hi = mpmath.tanh(mpmath.mpf(x.b.b)) + mpmath.mpf(2) ** -50
    return iv.mpf([lo, hi])


def eval_grad(tree, box: dict, D: int):
    """(value, [d/dx_i]) as mpmath intervals over ``box`` {name: interval}."""
    zero = iv.mpf(0)

    def go(t):
        tag = t[0]
        if tag == "num":
            return _num(t[1]), [zero] * D
        if tag == "pi":
            return iv.pi, [zero] * D
        if tag == "var":
            i = int(t[1][1:])
            return box[t[1]], [iv.mpf(1) if j == i else zero for j in range(D)]
        a = [go(c) for c in t[1:]]
        v = [x[0] for x in a]
        g = [x[1] for x in a]
        if tag == "add":
            return sum(v[1:], v[0]), [sum((gg[j] for gg in g[1:]), g[0][j]) for j in range(D)]
        if tag == "sub":
            return v[0] - v[1], [g[0][j] - g[1][j] for j in range(D)]
        if tag == "neg":
            return -v[0], [-x for x in g[0]]
        if tag == "mul":
            val, grad = v[0], g[0]
            for vv, gg in zip(v[1:], g[1:]):
                grad = [grad[j] * vv + val * gg[j] for j in range(D)]
                val = val * vv
            return val, grad
        if tag == "div":
            if _contains_zero(v[1]):
                raise ParameterError("target divides by an interval containing 0")
            val = v[0] / v[1]
            return val, [(g[0][j] - val * g[1][j]) / v[1] for j in range(D)]
        if tag == "pow":
            n = int(t[2][1])
            if n < 0 and _contains_zero(v[0]):
                raise ParameterError("target raises an interval containing 0 to a negative power")
            if n == 0:
                return iv.mpf(1), [zero] * D
            d = n * v[0] ** (n - 1)
            return v[0] ** n, [d * x for x in g[0]]
        x, gx = v[0], g[0] if g else None
        if tag == "sin":
            return iv.sin(x), [iv.cos(x) * y for y in gx]
        if tag == "cos":
            return iv.cos(x), [-iv.sin(x) * y for y in gx]
        if tag == "exp":
            if x.b > MAX_MAGNITUDE_BITS:  # e^x would pass 2^4096: refuse before mpmath expands it
                raise ParameterError(f"the target's exp argument reaches {mpmath.nstr(x.b, 5)} on the domain, so f "
                                     f"exceeds 2^{MAX_MAGNITUDE_BITS}; shrink the domain or rescale f")
            e = iv.exp(x)
            return e, [e * y for y in gx]
        if tag == "log":
            if x.a <= 0:
                raise ParameterError("target takes log of a non-positive interval")
            return iv.log(x), [y / x for y in gx]
        if tag == "sqrt":
            if x.a < 0:
                raise ParameterError("target takes sqrt of a negative interval")
            s = iv.sqrt(x)
            if x.a == 0:  # not Lipschitz at 0: unbounded slope (the caller asks for L)
                return s, [iv.mpf(["-inf", "inf"]) for _ in gx]
            return s, [y / (2 * s) for y in gx]
        if tag == "tanh":
            th = _tanh(x)
            return th, [(1 - th * th) * y for y in gx]
        if tag == "abs":
            val = abs(x)
            if x.a >= 0:
                return val, gx
            if x.b <= 0:
                return val, [-y for y in gx]
            return val, [_hull(y, -y) for y in gx]
        if tag in ("min", "max", "relu", "range"):
            if tag == "relu":
                v, g = [v[0], zero], [g[0], [zero] * D]
            if tag == "range":
                v, g = [v[2], v[0], v[1]], [g[2], g[0], g[1]]
            val = _hull(*v) if tag != "relu" else iv.mpf([max(v[0].a, 0), max(v[0].b, 0)])
            if tag == "min":
                val = iv.mpf([min(x.a for x in v), min(x.b for x in v)])
            elif tag == "max":
                val = iv.mpf([max(x.a for x in v), max(x.b for x in v)])
            elif tag == "range":
                val = iv.mpf([min(max(v[0].a, v[1].a), v[2].a), min(max(v[0].b, v[1].b), v[2].b)])
            return val, [_hull(*(gg[j] for gg in g)) for j in range(D)]
        raise ParameterError(f"no interval rule for {tag!r}")

    return go(tree)


def range_and_lipschitz(tree, domain, pieces: int = 8):
    """(lo, hi, L): enclosure of f over the box and an upper bound of sup sum_i |df/dx_i|."""
    D = len(domain)
    lo = hi = None
    L = Fraction(0)
    unbounded = False
    with mpmath.workprec(64):
        edges = [[a + (b - a) * Fraction(k, pieces) for k in range(pieces + 1)] for a, b in domain]
        for idx in itertools.product(range(pieces), repeat=D):
            box = {f"x{d}": iv.mpf([_num(edges[d][k]).a, _num(edges[d][k + 1]).b])
                   for d, k in enumerate(idx)}
            val, grad = eval_grad(tree, box, D)
            if not all(mpmath.isfinite(mpmath.mpf(e)) for e in val._mpi_):
                raise ParameterError("target is not bounded on the domain")
            vlo, vhi = _exact(val, 0), _exact(val, 1)
            lo = vlo if lo is None else min(lo, vlo)
            hi = vhi if hi is None else max(hi, vhi)
            if all(mpmath.isfinite(mpmath.mpf(e)) for gg in grad for e in gg._mpi_):
                L = max(L, sum((_exact(abs(gg), 1) for gg in grad), Fraction(0)))
            else:
                unbounded = True
    return lo, hi, (None if unbounded else L)


def _exact(x, end: int) -> Fraction:
    """The exact binary value of an interval's lower (end 0) or upper (end 1) end."""
    raw = x._mpi_[end] if hasattr(x, "_mpi_") else x._mpf_
    sign, man, exp, bc = raw
    if int(exp) + int(bc) > MAX_MAGNITUDE_BITS:
        raise ParameterError(f"the target or its gradient exceeds 2^{MAX_MAGNITUDE_BITS} in magnitude "
                             "on the domain; shrink the domain or rescale f")
    v = Fraction(int(man)) * (Fraction(2) ** int(exp))
    return -v if sign else v
