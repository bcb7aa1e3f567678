"""Rigorous bounds on softmax weights and on a head's output over many boxes.

Weights use the logit-gap form a_j = 1/(1 + sum_{k != j} exp(s_k - s_j)), never an
interval numerator over an interval denominator.  The head output sum_j a_j v_j with
a in its box and in the simplex is a fractional knapsack; we evaluate its LP dual
t + sum_j [u_j (v_j - t)^+ - l_j (t - v_j)^+], which bounds the output for *any* t,
so the greedy t may be found in plain floats while the bound stays rigorous.
"""
from __future__ import annotations

import numpy as np

from . import interval as iv

_U = 2.0 ** -52


def sum_up(a, xp=np):
    """Upper bound of the exact sum of nonnegative floats along the last axis."""
    n = a.shape[-1]
    return iv.up(iv.up(a.sum(axis=-1), xp) * (1.0 + (n + 2) * _U), xp)


def sum_down(a, xp=np):
    """Lower bound of the exact sum of nonnegative floats along the last axis."""
    n = a.shape[-1]
    s = iv.down(iv.down(a.sum(axis=-1), xp) * (1.0 - (n + 2) * _U), xp)
    return xp.minimum(s, np.finfo(np.float64).max)


def exp_up(x, xp):
    """exp rounded up by the validated library margin."""
    return iv.up_n(xp.exp(x), iv.EXP_ULPS, xp)


def exp_down(x, xp):
    """exp rounded down by the validated library margin, never below 0."""
    return xp.maximum(iv.down_n(xp.exp(x), iv.EXP_ULPS, xp), 0.0)


def weight_bounds(sl, sh, xp=np):
    """Enclosures [l, u] of the softmax weights, given logit enclosures [sl, sh] (N, p).

    The logits may be shifted by any common function of x (softmax ignores it); a
    shift that makes the leading logit ~0 keeps every exp finite.  Where a step
    overflows (inf*0), or a logit enclosure is NaN, the trivial bounds l = 0 and u = 1 are
    used, which are true.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        Eh, El = xp.exp(sh), xp.exp(sl)     # two exps per entry; e^{-s} below comes from these
        Eh_up, El_up = iv.up_n(Eh, iv.EXP_ULPS, xp), iv.up_n(El, iv.EXP_ULPS, xp)
        Eh_dn = xp.maximum(iv.down_n(Eh, iv.EXP_ULPS, xp), 0.0)
        El_dn = xp.maximum(iv.down_n(El, iv.EXP_ULPS, xp), 0.0)
        S_hi = sum_up(Eh_up, xp)
        S_lo = sum_down(El_dn, xp)
        T_hi = xp.maximum(iv.up(S_hi[:, None] - Eh_dn, xp), 0.0)
        T_lo = xp.maximum(iv.down(S_lo[:, None] - El_up, xp), 0.0)
        # e^{-s} <= 1 / (lower bound of e^s) and >= 1 / (upper bound); 1/0 = inf stays true.
        # The tests are written as "== 0" so that a NaN T keeps its NaN (and becomes l = 0, u = 1).
        m = xp.where(T_hi == 0, 0.0, iv.up(iv.up(1.0 / El_dn, xp) * T_hi, xp))
        l = iv.down(1.0 / iv.up(1.0 + m, xp), xp)
        m2 = xp.where(T_lo == 0, 0.0, iv.down(iv.down(1.0 / Eh_up, xp) * T_lo, xp))
        u = iv.up(1.0 / iv.down(1.0 + m2, xp), xp)
    l = xp.where(xp.isfinite(l), xp.clip(l, 0.0, 1.0), 0.0)
    u = xp.where(xp.isfinite(u), xp.clip(u, 0.0, 1.0), 1.0)
    return l, u


def knapsack_upper(l, u, v, xp=np):
    """Rigorous upper bound of max sum_j a_j v_j over l <= a <= u, sum a = 1 (rows = boxes).

    ``v`` is (N, p), or (p,) when every box has the same values: then it is sorted once.
    """
    shared = v.ndim == 1
    if shared:
        order = xp.argsort(-v)
        vs, cap = v[order], (u - l)[:, order]
    else:
        order = xp.argsort(-v, axis=1)
        vs = xp.take_along_axis(v, order, axis=1)
        cap = xp.take_along_axis(u - l, order, axis=1)
    mass = 1.0 - l.sum(axis=1)
    cum = xp.cumsum(cap, axis=1)
    idx = xp.argmax(cum >= mass[:, None], axis=1)
    idx = xp.where(cum[:, -1] >= mass, idx, v.shape[-1] - 1)
    # t is only a float guess for the LP dual; any t gives a valid bound
    t = vs[idx][:, None] if shared else xp.take_along_axis(vs, idx[:, None], axis=1)
    if shared:
        v = v[None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        # written so that a NaN value (or t) gives a NaN bound, never a dropped term
        pos = xp.where(v <= t, 0.0, iv.up(v - t, xp))
        neg = xp.where(t <= v, 0.0, iv.down(t - v, xp))
        s1 = sum_up(iv.up(u * pos, xp), xp)
        s2 = sum_down(iv.down(l * neg, xp), xp)
        return iv.up(iv.up(t[:, 0] + s1, xp) - s2, xp)


def head_output_bounds(l, u, vl, vh, xp=np):
    """Enclosure of sum_j a_j v_j for values v_j in [vl_j, vh_j] (a >= 0, so ends suffice)."""
    hi = knapsack_upper(l, u, vh, xp)
    lo = -knapsack_upper(l, u, -vl, xp)
    return lo, hi
