"""Dense float sampling of the error on any backend ``xp`` (an estimate, never a proof)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..forward import float_weights, forward_float
from ..enclose.target import float_eval


def max_error_sampled(construction, points: int, xp=np, chunk: int | None = None):
    """Largest |N - f| over a regular grid of about ``points`` points; returns (err, x, n).

    Grid points are generated chunk by chunk on the backend itself (as np.linspace
    does: start + i*step, the last point exactly the end), so 10^8 points on CuPy
    never materialise on the host.
    """
    D = len(construction.domain)
    per = max(2, int(round(points ** (1.0 / D))))
    if chunk is None:   # points per chunk: a bounded number of (point, key) pairs in memory
        keys = max(len(layer.key_rows) for layer in construction.network.layers)
        gpu = getattr(xp, "__name__", "") == "cupy"
        chunk = max(256, min(1 << (20 if gpu else 16), (1 << (27 if gpu else 24)) // max(keys, 1)))
    ends = [(float(a), float(b)) for a, b in construction.domain]
    steps = [(b - a) / (per - 1) for a, b in ends]
    total = per ** D
    w = float_weights(construction.network, xp)
    best, arg = -1.0, None
    for s in range(0, total, chunk):
        flat = xp.arange(s, min(s + chunk, total), dtype=xp.int64)
        cols = []
        for d in reversed(range(D)):   # row-major (meshgrid "ij") order: the last axis varies fastest
            idx = flat % per
            flat = flat // per
            x = idx.astype(xp.float64) * steps[d] + ends[d][0]
            cols.append(xp.where(idx == per - 1, ends[d][1], x))
        X = xp.stack(cols[::-1], axis=1)
        y = forward_float(construction.network, X, xp, w)
        vals = {n: X[:, i] for i, n in enumerate(construction.inputs)}
        err = xp.zeros(X.shape[0])
        for o, t in enumerate(construction.target):
            err = xp.maximum(err, xp.abs(y[:, o] - float_eval(t, vals, xp)))
        j = int(xp.argmax(err))
        e = float(err[j])
        if e > best:
            best, arg = e, [float(v) for v in X[j]]
    return best, arg, total


def observed_at_centres(construction, weights, xl, xh, xp):
    """Float error |N - f| at the centre of each box [xl, xh] (an estimate), and the centres."""
    xm = 0.5 * (xl + xh)
    y = forward_float(construction.network, xm, xp, weights)
    X = {name: xm[:, i] for i, name in enumerate(construction.inputs)}
    err = xp.zeros(xm.shape[0])
    for o, tree in enumerate(construction.target):
        err = xp.maximum(err, xp.abs(y[:, o] - float_eval(tree, X, xp)))
    return err, xm


def _inside_floats(a: Fraction, b: Fraction):
    """The smallest float >= a and the largest float <= b: the float points of [a, b]."""
    lo, hi = float(a), float(b)
    if Fraction(lo) < a:
        lo = math.nextafter(lo, math.inf)
    if Fraction(hi) > b:
        hi = math.nextafter(hi, -math.inf)
    return lo, hi


def observed_at_corners(construction, weights, domain, leaves, xp=np, max_points: int = 1 << 21,
                        chunk: int = 1 << 15):
    """Largest float error |N - f| at the corners of the leaves (the domain's corners among them).

    The search samples box centres; an error peak on the domain's boundary (a kink, an end)
    sits at a corner.  Over ``max_points`` corners, the leaves with the largest bounds go
    first.  Returns (error, point) with the point inside the exact domain, or (-1, None).
    """
    if not leaves:
        return -1.0, None
    D = len(domain)
    n = max(1, min(len(leaves), max_points >> D))
    chosen = sorted(leaves, key=lambda l: -l.bound)[:n]
    I = np.array([l.i for l in chosen], dtype=np.float64)
    K = np.array([l.k for l in chosen], dtype=np.int64)
    ends = [_inside_floats(Fraction(a), Fraction(b)) for a, b in domain]
    cols = []
    for d, (a, b) in enumerate(domain):
        lo, hi = ends[d]
        width = float(Fraction(b) - Fraction(a))
        t0, t1 = np.ldexp(I[:, d], -K[:, d]), np.ldexp(I[:, d] + 1, -K[:, d])
        cols.append((np.clip(float(a) + width * t0, lo, hi), np.clip(float(a) + width * t1, lo, hi)))
    pts = np.concatenate([np.stack([cols[d][(c >> d) & 1] for d in range(D)], axis=1) for c in range(1 << D)])
    pts = np.unique(pts, axis=0)
    best, arg = -1.0, None
    for s in range(0, len(pts), chunk):
        X = xp.asarray(pts[s:s + chunk])
        y = forward_float(construction.network, X, xp, weights)
        vals = {name: X[:, i] for i, name in enumerate(construction.inputs)}
        err = xp.zeros(X.shape[0])
        for o, tree in enumerate(construction.target):
            err = xp.maximum(err, xp.abs(y[:, o] - float_eval(tree, vals, xp)))
        j = int(xp.argmax(err))
        if float(err[j]) > best:
            best, arg = float(err[j]), [float(v) for v in pts[s + j]]
    return best, arg
