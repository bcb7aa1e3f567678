"""Shared soundness helper: sample each certified box densely and compare with its proved bound."""
from __future__ import annotations

import itertools
from fractions import Fraction

import mpmath
import numpy as np

from constructions.expr import mp_eval
from verify.forward import float_weights, forward_float, forward_mp
from verify.search.outputs import restrict
from verify.search.paving import Domain
from verify.enclose.target import float_eval


def leaf_boxes(c, res):
    dom = Domain(c.domain)
    return [(dom.exact_box(l.i, l.k), l.bound) for l in res.leaves]


def float_errors(c, X):
    """max over outputs of |N - f| at float points X (N, D)."""
    y = forward_float(c.network, X, np, float_weights(c.network))
    vals = {n: X[:, i] for i, n in enumerate(c.inputs)}
    return np.max(np.stack([np.abs(y[:, o] - float_eval(t, vals, np)) for o, t in enumerate(c.target)]), axis=0)


def pavings(c, res):
    """(construction, result) per paving: one, or one per group of outputs (each bounds its own outputs)."""
    return [(restrict(c, outs), r) for outs, r in res.groups] if res.groups else [(c, res)]


def check_float(c, res, per_dim=9, slack=1e-12):
    """Every leaf sampled on a per_dim^D grid (corners included) in float64: sample <= bound + slack."""
    found = [_check_float(cc, rr, per_dim, slack) for cc, rr in pavings(c, res)]
    return max(e for e, _ in found), max(b for _, b in found)


def _check_float(c, res, per_dim, slack):
    boxes = leaf_boxes(c, res)
    t = np.linspace(0, 1, per_dim)
    D = len(c.domain)
    grid = np.array(list(itertools.product(t, repeat=D)))
    lo = np.array([[float(a) for a, _ in b] for b, _ in boxes])
    hi = np.array([[float(bb) for _, bb in b] for b, _ in boxes])
    X = (lo[:, None, :] + (hi - lo)[:, None, :] * grid[None]).reshape(-1, D)
    err = float_errors(c, X).reshape(len(boxes), -1).max(axis=1)
    bounds = np.array([bd for _, bd in boxes])
    assert np.all(err <= bounds + slack), float(np.max(err - bounds))
    return float(np.max(err)), float(np.max(bounds))


def check_mp(c, res, top=6, per_dim=5, dps=40):
    """The boxes with the largest bounds, sampled at ``dps`` digits: error <= bound."""
    for cc, rr in pavings(c, res):
        _check_mp(cc, rr, top, per_dim, dps)


def _check_mp(c, res, top, per_dim, dps):
    boxes = sorted(leaf_boxes(c, res), key=lambda bb: -bb[1])[:top]
    D = len(c.domain)
    with mpmath.workdps(dps):
        for box, bound in boxes:
            for u in itertools.product(range(per_dim), repeat=D):
                x = [lo + (hi - lo) * Fraction(k, per_dim - 1) for (lo, hi), k in zip(box, u)]
                y = forward_mp(c.network, x, dps)
                pt = {n: mpmath.mpf(v.numerator) / v.denominator for n, v in zip(c.inputs, x)}
                err = max(abs(yo - mp_eval(t, pt)) for yo, t in zip(y, c.target))
                assert err <= mpmath.mpf(bound), (x, err, bound)
