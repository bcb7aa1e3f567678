"""Prove a target defined on the whole domain, so that its enclosures may clamp at domain ends.

``sqrt(x0 + 1)`` on [-1, 1] is defined everywhere, but an outward-rounded box at x0 = -1
has a slightly negative argument, so its enclosure is NaN and the paving never finishes.
Before the search, every ``sqrt`` / ``log`` argument, every divisor and every base of a
negative power is bounded over the whole domain in exact rational interval arithmetic
(transcendental sub-terms through the outward-rounded float enclosures of ``ifunc``,
whose float ends are exact rationals), bisecting the domain where one evaluation is too
coarse.  What is proved is an exact rational bound ``m`` with

    sqrt: arg >= m >= 0,   log: arg >= m > 0,   divisor / base: >= m > 0 or <= m < 0

at every point of the domain.  The tree handed to the bounders then carries internal
guard nodes ``("atleast", m, arg)`` / ``("atmost", m, arg)`` that intersect the
argument's enclosure with [m, inf) / (-inf, m]: sound for every box inside the domain
(the exact box's points all satisfy the bound), never used outside the search.

Where the target is undefined at a point (found at a box centre or corner, by an exact
evaluation there), ``UndefinedTarget`` names the point; where neither is proved the tree
stays unguarded (no clamping, as before).
"""
from __future__ import annotations

import functools
import itertools
from fractions import Fraction

import numpy as np

from constructions.exact import ParameterError

from . import ifunc
from . import interval as iv

GUARD_TAGS = ("atleast", "atmost")
# boxes bisected per guarded node before giving up (then no guard: the old behaviour)
MAX_BOXES = 512


class UndefinedTarget(ParameterError):
    """The target is undefined at a point of the domain (``point``: exact rationals)."""

    def __init__(self, message, point):
        super().__init__(message)
        self.point = point


class _NoEnclosure(Exception):
    """Undefined or unbounded on the box (as far as this evaluation can tell)."""


def _f2q(x) -> Fraction:
    x = float(x)
    if not np.isfinite(x):
        raise _NoEnclosure
    return Fraction(x)


def _float_box(a: Fraction, b: Fraction):
    """Float (1,)-arrays enclosing the exact interval [a, b]."""
    return ifunc.const(a, (1,))[0], ifunc.const(b, (1,))[1]


def _via_float(fn, a, b):
    """Enclosure of fn over the exact [a, b] through the outward-rounded float enclosure."""
    with np.errstate(all="ignore"):
        lo, hi = fn(_float_box(a, b), np)
    return _f2q(lo[0]), _f2q(hi[0])


def _mul(x, y):
    ps = (x[0] * y[0], x[0] * y[1], x[1] * y[0], x[1] * y[1])
    return min(ps), max(ps)


def _recip(x):
    if x[0] <= 0 <= x[1]:
        raise _NoEnclosure
    return 1 / x[1], 1 / x[0]


def _pow(x, n):
    if n == 0:
        return Fraction(1), Fraction(1)
    if n < 0:
        return _recip(_pow(x, -n))
    lo, hi = x
    if n % 2 or lo >= 0:
        return lo ** n, hi ** n
    if hi <= 0:
        return hi ** n, lo ** n
    return Fraction(0), max(-lo, hi) ** n


def _guarded(x, guard):
    """Intersect with what is proved on the domain."""
    if guard is None:
        return x
    kind, m = guard
    if kind == "atleast":
        return max(x[0], m), max(x[1], m)
    return min(x[0], m), min(x[1], m)


_FLOAT_UNARY = {"exp": iv.exp, "sin": ifunc.sin, "cos": ifunc.cos, "tanh": ifunc.tanh}


def _xeval(t, box, guards):
    """Exact rational enclosure (lo, hi) of tree t over the box (name -> (lo, hi) Fractions)."""
    tag = t[0]
    if tag == "num":
        return t[1], t[1]
    if tag == "var":
        return box[t[1]]
    if tag == "pi":
        return Fraction(ifunc.pi()[0].item()), Fraction(ifunc.pi()[1].item())
    if tag == "pow":
        x = _xeval(t[1], box, guards)
        n = int(t[2][1])
        if n < 0:
            x = _guarded(x, guards.get(t[1]))
        return _pow(x, n)
    a = [_xeval(c, box, guards) for c in t[1:]]
    if tag == "add":
        return sum(x[0] for x in a), sum(x[1] for x in a)
    if tag == "mul":
        r = a[0]
        for x in a[1:]:
            r = _mul(r, x)
        return r
    if tag == "sub":
        return a[0][0] - a[1][1], a[0][1] - a[1][0]
    if tag == "neg":
        return -a[0][1], -a[0][0]
    if tag == "div":
        return _mul(a[0], _recip(_guarded(a[1], guards.get(t[2]))))
    if tag == "min":
        return min(x[0] for x in a), min(x[1] for x in a)
    if tag == "max":
        return max(x[0] for x in a), max(x[1] for x in a)
    if tag == "relu":
        return max(a[0][0], 0), max(a[0][1], 0)
    if tag == "range":
        (l0, h0), (l1, h1), (lx, hx) = a
        return min(max(lx, l0), l1), min(max(hx, h0), h1)
    if tag == "abs":
        lo, hi = a[0]
        if lo >= 0:
            return lo, hi
        if hi <= 0:
            return -hi, -lo
        return Fraction(0), max(-lo, hi)
    if tag == "sqrt":
        lo, hi = _guarded(a[0], guards.get(t[1]))
        if lo < 0:
            raise _NoEnclosure
        return _via_float(ifunc.sqrt, lo, hi)
    if tag == "log":
        lo, hi = _guarded(a[0], guards.get(t[1]))
        if lo <= 0:
            raise _NoEnclosure
        return _via_float(ifunc.log, lo, hi)
    fn = _FLOAT_UNARY.get(tag)
    if fn is None:
        raise _NoEnclosure
    return _via_float(fn, *a[0])


def _enclose(t, box, guards):
    try:
        return _xeval(t, box, guards)
    except (_NoEnclosure, ArithmeticError, ValueError):   # no enclosure: nothing is claimed
        return None


def _needs(t):
    """(kind, argument) for a node whose argument must be proved in range, else None."""
    tag = t[0]
    if tag == "sqrt":
        return "sqrt", t[1]
    if tag == "log":
        return "log", t[1]
    if tag == "div" and t[2][0] != "num":
        return "div", t[2]
    if tag == "pow" and int(t[2][1]) < 0 and t[1][0] != "num":
        return "div", t[1]
    return None


def _nodes_postorder(t, out):
    if t[0] in ("num", "var", "pi"):
        return out
    if t[0] == "pow":
        _nodes_postorder(t[1], out)
    else:
        for c in t[1:]:
            _nodes_postorder(c, out)
    out.append(t)
    return out


def _undefined_at(kind, r) -> bool:
    """True when the exact enclosure r of the argument at a point proves the node undefined there."""
    if kind == "sqrt":
        return r[1] < 0
    if kind == "log":
        return r[1] <= 0
    return r[0] == r[1] == 0


def _points(box, names):
    """The centre and the corners of a box (exact rational points)."""
    ends = [box[n] for n in names]
    yield tuple((lo + hi) / 2 for lo, hi in ends)
    for corner in itertools.product(*ends):
        yield corner


def _affine(t):
    """(constant, {name: coefficient}) when t is affine in the inputs with rational coefficients, else None."""
    tag = t[0]
    if tag == "num":
        return t[1], {}
    if tag == "var":
        return Fraction(0), {t[1]: Fraction(1)}
    if tag in ("add", "sub", "neg"):
        parts = [_affine(c) for c in t[1:]]
        if any(p is None for p in parts):
            return None
        signs = [1] * len(parts) if tag == "add" else [1, -1] if tag == "sub" else [-1]
        c0, co = Fraction(0), {}
        for sg, (c, k) in zip(signs, parts):
            c0 += sg * c
            for v, a in k.items():
                co[v] = co.get(v, Fraction(0)) + sg * a
        return c0, co
    if tag == "mul":
        parts = [_affine(c) for c in t[1:]]
        if any(p is None for p in parts) or sum(1 for _, k in parts if k) > 1:
            return None
        c0, co = Fraction(1), {}
        for c, k in parts:
            if k:
                co = {v: a * c0 for v, a in k.items()}
                c0 = c0 * c
            else:
                c0 *= c
                co = {v: a * c for v, a in co.items()}
        return c0, co
    if tag == "div" and t[2][0] == "num" and t[2][1] != 0:
        p = _affine(t[1])
        return None if p is None else (p[0] / t[2][1], {v: a / t[2][1] for v, a in p[1].items()})
    if tag == "pow" and int(t[2][1]) == 1:
        return _affine(t[1])
    return None


def _undefined(kind, pt, value):
    return UndefinedTarget(f"the target is undefined at x = ({', '.join(str(v) for v in pt)}): "
                           f"{_WHAT[kind]} is {value} there", pt)


def _prove_affine(kind, aff, domain, names):
    """Exact: an affine argument's min and max over the box sit at corners."""
    c0, co = aff
    lo_pt = tuple(a if co.get(n, 0) >= 0 else b for n, (a, b) in zip(names, domain))
    hi_pt = tuple(b if co.get(n, 0) >= 0 else a for n, (a, b) in zip(names, domain))
    val = lambda pt: c0 + sum(co.get(n, 0) * v for n, v in zip(names, pt))  # noqa: E731
    m, M = val(lo_pt), val(hi_pt)
    if kind == "sqrt":
        if m < 0:
            raise _undefined(kind, lo_pt, m)
        return "atleast", m
    if kind == "log":
        if m <= 0:
            raise _undefined(kind, lo_pt, m)
        return "atleast", m
    if m > 0:
        return "atleast", m
    if M < 0:
        return "atmost", M
    s = Fraction(0) if m == M else m / (m - M)   # the zero on the segment from lo_pt to hi_pt
    pt = tuple(a + s * (b - a) for a, b in zip(lo_pt, hi_pt))
    raise _undefined(kind, pt, 0)


def _prove(kind, arg, domain, names, guards):
    """The guard (tag, m) proved for ``arg`` on the domain, or None; raises UndefinedTarget."""
    aff = _affine(arg)
    if aff is not None and all(v in names for v in aff[1]):
        return _prove_affine(kind, aff, domain, names)
    stack = [dict(zip(names, domain))]
    los, his, n = [], [], 0
    while stack:
        box = stack.pop()
        r = _enclose(arg, box, guards)
        if r is not None and (r[0] >= 0 if kind == "sqrt" else r[0] > 0 or (kind == "div" and r[1] < 0)):
            los.append(r[0])
            his.append(r[1])
            continue
        for pt in _points(box, names):
            rp = _enclose(arg, {nm: (v, v) for nm, v in zip(names, pt)}, guards)
            if rp is not None and _undefined_at(kind, rp):
                raise _undefined(kind, pt, rp[0] if rp[0] == rp[1] else f"in [{float(rp[0])!r}, {float(rp[1])!r}]")
        n += 1
        if n > MAX_BOXES:
            return None
        d = max(range(len(names)), key=lambda i: box[names[i]][1] - box[names[i]][0])
        lo, hi = box[names[d]]
        if lo == hi:
            return None
        mid = (lo + hi) / 2
        for part in ((mid, hi), (lo, mid)):
            child = dict(box)
            child[names[d]] = part
            stack.append(child)
    if kind == "div" and not (all(v > 0 for v in los) or all(v < 0 for v in his)):
        return None   # both signs: not one guard (a zero in between was not found at a point)
    if kind == "div" and all(v < 0 for v in his):
        return "atmost", max(his)
    return "atleast", min(los)


_WHAT = {"sqrt": "the argument of sqrt", "log": "the argument of log", "div": "a divisor"}


@functools.lru_cache(maxsize=64)
def _guard_trees(targets, domain, names):
    guards: dict = {}
    for tree in targets:
        for node in _nodes_postorder(tree, []):
            need = _needs(node)
            if need is None or need[1] in guards:
                continue
            g = _prove(need[0], need[1], domain, names, guards)
            if g is not None:
                guards[need[1]] = g
    if not guards:
        return targets
    return tuple(_rewrite(t, guards) for t in targets)


def _rewrite(t, guards):
    """The tree with each proved argument wrapped in its guard node."""
    tag = t[0]
    if tag in ("num", "var", "pi"):
        return t
    if tag == "pow":
        base = _rewrite(t[1], guards)
        if int(t[2][1]) < 0 and t[1] in guards:
            base = (guards[t[1]][0], guards[t[1]][1], base)
        return ("pow", base, t[2])
    kids = [_rewrite(c, guards) for c in t[1:]]
    if tag in ("sqrt", "log") and t[1] in guards:
        kids[0] = (guards[t[1]][0], guards[t[1]][1], kids[0])
    elif tag == "div" and t[2] in guards:
        kids[1] = (guards[t[2]][0], guards[t[2]][1], kids[1])
    return (tag,) + tuple(kids)


def defined_targets(construction):
    """The construction's targets with guards for what is proved on its domain (see the module doc).

    Raises ``UndefinedTarget`` (a ParameterError: exit 2) naming a point where a target is undefined.
    """
    names = tuple(construction.inputs)
    domain = tuple((Fraction(a), Fraction(b)) for a, b in construction.domain)
    return _guard_trees(tuple(construction.target), domain, names)


def guard_interval(kind, m, x, xp=np):
    """Float enclosure of a guard node: ``x`` intersected with [m, inf) or (-inf, m]; NaN stays NaN."""
    lo, hi = x
    if kind == "atleast":
        mf = ifunc.const(m, (), xp)[0]
        out = xp.maximum(lo, mf), xp.maximum(hi, mf)
    else:
        mf = ifunc.const(m, (), xp)[1]
        out = xp.minimum(lo, mf), xp.minimum(hi, mf)
    return ifunc.keep_nan(out, x, xp=xp)
