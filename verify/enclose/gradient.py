"""Forward-mode interval derivatives of a target expression tree over many boxes at once.

``interval_gradient`` encloses, on each box, the value of the tree and its partial
derivative along every input.  It is what the centred (mean-value) form of the error bound
needs from the target: ``|f(x) - f(c)| <= sum_i |x_i - c_i| sup_B |d_i f|``.

Values come from the same rigorous enclosures as ``target.interval_eval`` (``interval`` and
``ifunc``, outward rounded); each derivative rule is an interval formula built from them,
so every derivative enclosure is outward rounded too.  Non-smooth operations (abs, relu,
min, max, range) give the hull of their one-sided derivatives where the argument may sit
on the kink, e.g. relu'(u) in [0, 1] * u': this contains Clarke's generalised gradient, so
the mean-value inequality stays true for these Lipschitz functions.  Guard nodes of
``defined.defined_targets`` clamp a value by a bound proved on the whole domain: the clamp
is the identity there, so its derivative is its argument's derivative.

At a singular point (sqrt or log of an interval reaching 0, a divisor or a negative power's
base containing 0) the derivative enclosure is NaN, and wherever a value enclosure is NaN
so is every derivative: callers treat a non-finite derivative as "no centred bound".  A
NaN end never turns into a number.
"""
from __future__ import annotations

import numpy as np

from constructions.expr import ExprError

from . import ifunc
from . import interval as iv
from .defined import GUARD_TAGS, guard_interval


def add_derivatives(a, b, xp=np):
    """Sum of two derivative enclosures, None standing for an exact 0 (then no array is made)."""
    if a is None:
        return b
    if b is None:
        return a
    return iv.add(a, b, xp)


def interval_gradient(tree, box: dict, inputs, xp=np):
    """Enclosures of the tree and of its partial derivatives over boxes.

    ``box[name] = (lo, hi)`` arrays (that broadcast); ``inputs`` the names to differentiate
    along, in order.  Returns ``((lo, hi), [(glo_i, ghi_i) for each input i])``, all arrays
    of the boxes' broadcast shape (fresh arrays, never the caller's).  A NaN or infinite
    end means "no enclosure" (see the module doc).
    """
    B = {k: (xp.asarray(v[0], dtype=xp.float64), xp.asarray(v[1], dtype=xp.float64))
         for k, v in box.items()}
    shape = tuple(np.broadcast_shapes(*[tuple(e.shape) for pair in B.values() for e in pair])) if B else ()
    inputs = tuple(inputs)
    D = len(inputs)
    index = {name: i for i, name in enumerate(inputs)}

    def full(v):
        return xp.full(shape, v, dtype=xp.float64)

    def ones():
        return full(1.0), full(1.0)

    def zero_ders():
        return [None] * D

    def lin(ders, f):
        """Apply f to each non-zero derivative (None stands for an exact zero)."""
        return [None if d is None else f(d) for d in ders]

    def dadd(a, b):
        return add_derivatives(a, b, xp)

    def dscale(factor, d):
        """factor (an interval) times the derivative d."""
        return None if d is None else iv.mul(factor, d, xp)

    def pick(cond_a, cond_b, da, db):
        """Per input: da where cond_a, db where cond_b, else the hull of both."""
        out = []
        for a, b in zip(da, db):
            if a is None and b is None:
                out.append(None)
                continue
            a = a if a is not None else (full(0.0), full(0.0))
            b = b if b is not None else (full(0.0), full(0.0))
            h = iv.hull(a, b, xp)
            lo = xp.where(cond_a, a[0], xp.where(cond_b, b[0], h[0]))
            hi = xp.where(cond_a, a[1], xp.where(cond_b, b[1], h[1]))
            # a NaN in either piece makes the hull NaN: keep it whichever piece is picked
            out.append(ifunc.keep_nan((lo, hi), a, b, xp=xp))
        return out

    def kink_factor(value, lo_slope, hi_slope):
        """The derivative factor of a one-kink function at 0: lo_slope below, hi_slope above,
        their hull where ``value`` may be 0 (NaN where the value is NaN)."""
        below, above = value[1] < 0, value[0] > 0
        f_lo = xp.where(above, full(hi_slope), xp.where(below, full(lo_slope), full(min(lo_slope, hi_slope))))
        f_hi = xp.where(above, full(hi_slope), xp.where(below, full(lo_slope), full(max(lo_slope, hi_slope))))
        return ifunc.keep_nan((f_lo, f_hi), value, xp=xp)

    def minmax(a, b, is_min):
        """min/max of two (value, ders) pairs: the active piece's derivative, the hull at ties."""
        (va, da), (vb, db) = a, b
        val = (ifunc.min_ if is_min else ifunc.max_)(va, vb, xp)
        if is_min:
            a_only, b_only = va[1] < vb[0], vb[1] < va[0]
        else:
            a_only, b_only = va[0] > vb[1], vb[0] > va[1]
        return val, pick(a_only, b_only, da, db)

    def mul2(a, b):
        (va, da), (vb, db) = a, b
        return iv.mul(va, vb, xp), [dadd(dscale(vb, x), dscale(va, y)) for x, y in zip(da, db)]

    def go(t):
        tag = t[0]
        if tag == "num":
            return ifunc.const(t[1], shape, xp), zero_ders()
        if tag == "var":
            if t[1] not in B:
                raise ExprError(f"no box given for variable {t[1]!r}")
            ders = zero_ders()
            if t[1] in index:
                ders[index[t[1]]] = ones()
            return B[t[1]], ders
        if tag == "pi":
            return ifunc.pi(shape, xp), zero_ders()
        if tag in GUARD_TAGS:  # identity on the domain: the argument's derivative
            v, d = go(t[2])
            return guard_interval(tag, t[1], v, xp), d
        if tag == "pow":
            v, d = go(t[1])
            n = int(t[2][1])
            val = ifunc.pow_int(v, n, xp)
            if n == 0:
                return val, zero_ders()
            if n == 1:
                return val, d
            factor = iv.scale(ifunc.pow_int(v, n - 1, xp), float(n), xp)  # n is a small exact int
            return val, lin(d, lambda x: iv.mul(factor, x, xp))
        args = [go(c) for c in t[1:]]
        if tag == "add":
            val, ders = args[0]
            for v, d in args[1:]:
                val = iv.add(val, v, xp)
                ders = [dadd(x, y) for x, y in zip(ders, d)]
            return val, ders
        if tag == "mul":
            acc = args[0]
            for nxt in args[1:]:
                acc = mul2(acc, nxt)
            return acc
        if tag in ("min", "max"):
            acc = args[0]
            for nxt in args[1:]:
                acc = minmax(acc, nxt, tag == "min")
            return acc
        if tag == "range":  # min(max(y, lo), hi)
            lo, hi, y = args
            return minmax(minmax(y, lo, False), hi, True)
        if tag == "sub":
            (va, da), (vb, db) = args
            return iv.sub(va, vb, xp), [dadd(x, None if y is None else iv.neg(y, xp)) for x, y in zip(da, db)]
        if tag == "div":
            (va, da), (vb, db) = args
            q = ifunc.div(va, vb, xp)
            # (u/v)' = (u' - q v') / v: NaN where v may be 0
            ders = []
            for x, y in zip(da, db):
                num = x if y is None else (iv.neg(iv.mul(q, y, xp), xp) if x is None
                                           else iv.sub(x, iv.mul(q, y, xp), xp))
                ders.append(None if num is None else ifunc.div(num, vb, xp))
            return q, ders
        (v, d), = args
        if tag == "neg":
            return iv.neg(v, xp), lin(d, lambda x: iv.neg(x, xp))
        if tag == "exp":
            val = iv.exp(v, xp)
            return val, lin(d, lambda x: iv.mul(val, x, xp))
        if tag == "log":  # u'/u, NaN where u may be <= 0
            return ifunc.log(v, xp), lin(d, lambda x: ifunc.div(x, v, xp))
        if tag == "sqrt":  # u' / (2 sqrt u), NaN where u may be 0
            val = ifunc.sqrt(v, xp)
            den = iv.scale(val, 2.0, xp)
            return val, lin(d, lambda x: ifunc.div(x, den, xp))
        if tag == "sin":
            factor = ifunc.cos(v, xp)
            return ifunc.sin(v, xp), lin(d, lambda x: iv.mul(factor, x, xp))
        if tag == "cos":
            factor = iv.neg(ifunc.sin(v, xp), xp)
            return ifunc.cos(v, xp), lin(d, lambda x: iv.mul(factor, x, xp))
        if tag == "tanh":  # 1 - tanh^2, which lies in (0, 1]
            val = ifunc.tanh(v, xp)
            s = iv.sub(ones(), ifunc.pow_int(val, 2, xp), xp)
            factor = ifunc.keep_nan((xp.maximum(s[0], 0.0), xp.minimum(s[1], 1.0)), s, xp=xp)
            return val, lin(d, lambda x: iv.mul(factor, x, xp))
        if tag == "abs":
            factor = kink_factor(v, -1.0, 1.0)
            return ifunc.abs_(v, xp), lin(d, lambda x: iv.mul(factor, x, xp))
        if tag == "relu":
            factor = kink_factor(v, 0.0, 1.0)
            return ifunc.relu(v, xp), lin(d, lambda x: iv.mul(factor, x, xp))
        raise ExprError(f"unknown operation {tag!r}")

    with np.errstate(all="ignore"):  # inf - inf, 0 * inf etc. give NaN, which means failure
        val, ders = go(tree)
        # a NaN value anywhere on the way up means no claim about the derivatives either
        lo, hi = (xp.broadcast_to(e, shape).copy() for e in val)
        grads = []
        for d in ders:
            g = (full(0.0), full(0.0)) if d is None else tuple(xp.broadcast_to(e, shape).copy() for e in d)
            grads.append(ifunc.keep_nan(g, (lo, hi), xp=xp))
        return (lo, hi), grads
