"""Vectorised evaluation of a target expression tree over many points or boxes.

``float_eval`` gives float64 estimates; ``interval_eval`` gives rigorous outward-
rounded enclosures built from ``verify.enclose.interval`` (+ - * exp) and ``verify.enclose.ifunc``
(everything else).  ``xp`` is NumPy or CuPy; a NaN end means "no enclosure".
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from constructions.expr import ExprError

from . import ifunc
from . import interval as iv
from .defined import GUARD_TAGS, guard_interval


def _shape(arrays, xp):
    shapes = [tuple(a.shape) for a in arrays]
    return tuple(np.broadcast_shapes(*shapes)) if shapes else ()


def _to_float(q: Fraction) -> float:
    try:
        return float(q)
    except OverflowError:
        return float("inf") if q > 0 else float("-inf")


def float_eval(tree, X: dict, xp=np):
    """Float64 value of the tree at the points ``X[name]`` (arrays that broadcast)."""
    X = {k: xp.asarray(v, dtype=xp.float64) for k, v in X.items()}
    shape = _shape(X.values(), xp)

    def go(t):
        tag = t[0]
        if tag == "num":
            return xp.full(shape, _to_float(t[1]))
        if tag == "var":
            if t[1] not in X:
                raise ExprError(f"no value given for variable {t[1]!r}")
            return X[t[1]]
        if tag == "pi":
            return xp.full(shape, np.pi)
        if tag == "pow":
            return xp.power(go(t[1]), float(t[2][1]))
        if tag in GUARD_TAGS:  # internal (verify.enclose.defined): proved on the domain
            return (xp.maximum if tag == "atleast" else xp.minimum)(go(t[2]), _to_float(t[1]))
        a = [go(c) for c in t[1:]]
        if tag in ("add", "mul", "min", "max"):
            f = {"add": xp.add, "mul": xp.multiply, "min": xp.minimum, "max": xp.maximum}[tag]
            r = a[0]
            for x in a[1:]:
                r = f(r, x)
            return r
        if tag == "sub":
            return a[0] - a[1]
        if tag == "neg":
            return -a[0]
        if tag == "div":
            return a[0] / a[1]
        if tag == "relu":
            return xp.maximum(a[0], 0.0)
        if tag == "range":
            return xp.minimum(xp.maximum(a[2], a[0]), a[1])
        fn = {"sin": xp.sin, "cos": xp.cos, "exp": xp.exp, "log": xp.log, "sqrt": xp.sqrt,
              "tanh": xp.tanh, "abs": xp.abs}.get(tag)
        if fn is None:
            raise ExprError(f"unknown operation {tag!r}")
        return fn(a[0])

    with np.errstate(all="ignore"):  # domain errors become NaN, as intended
        return xp.broadcast_to(go(tree), shape) if shape else go(tree)


def interval_eval(tree, box: dict, xp=np):
    """Rigorous enclosure ``(lo, hi)`` of the tree over boxes ``box[name] = (lo, hi)``.

    Every end is rounded outward; where the result has a NaN or infinite end no claim
    is made (callers check ``interval.finite``).  A tree from ``defined.defined_targets``
    may carry guard nodes: such a tree is only valid on boxes inside its domain.
    """
    B = {k: (xp.asarray(v[0], dtype=xp.float64), xp.asarray(v[1], dtype=xp.float64))
         for k, v in box.items()}
    shape = _shape([e for pair in B.values() for e in pair], xp)

    def go(t):
        tag = t[0]
        if tag == "num":
            return ifunc.const(t[1], shape, xp)
        if tag == "var":
            if t[1] not in B:
                raise ExprError(f"no box given for variable {t[1]!r}")
            return B[t[1]]
        if tag == "pi":
            return ifunc.pi(shape, xp)
        if tag == "pow":
            return ifunc.pow_int(go(t[1]), int(t[2][1]), xp)
        if tag in GUARD_TAGS:  # internal (verify.enclose.defined): a bound proved on the whole domain
            return guard_interval(tag, t[1], go(t[2]), xp)
        a = [go(c) for c in t[1:]]
        if tag in _NARY:
            r = a[0]
            for x in a[1:]:
                r = _NARY[tag](r, x, xp)
            return r
        if tag == "sub":
            return iv.sub(a[0], a[1], xp)
        if tag == "div":
            return ifunc.div(a[0], a[1], xp)
        if tag == "range":
            return ifunc.range_(a[0], a[1], a[2], xp)
        fn = _UNARY.get(tag)
        if fn is None:
            raise ExprError(f"unknown operation {tag!r}")
        return fn(a[0], xp)

    with np.errstate(all="ignore"):  # inf - inf, 0 * inf etc. give NaN, which means failure
        lo, hi = go(tree)
        if tuple(lo.shape) != shape or tree[0] == "var":  # never hand back the caller's arrays
            lo, hi = xp.broadcast_to(lo, shape).copy(), xp.broadcast_to(hi, shape).copy()
        return lo, hi


_NARY = {"add": iv.add, "mul": iv.mul, "min": ifunc.min_, "max": ifunc.max_}
_UNARY = {"neg": iv.neg, "exp": iv.exp, "sin": ifunc.sin, "cos": ifunc.cos, "log": ifunc.log,
          "sqrt": ifunc.sqrt, "tanh": ifunc.tanh, "abs": ifunc.abs_, "relu": ifunc.relu}

