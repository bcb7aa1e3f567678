"""Dense float sampling of the error on any backend ``xp`` (an estimate, never a proof)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..forward import float_weights, forward_float
from ..enclose.target import float_eval
from .progress import progress_bar


def points_per_chunk(network, xp=np) -> int:
    """Points per forward pass so that each (point, token, width) array stays about 16 MB (256 MB on a GPU):
    the forward pass holds a few such arrays, so memory stays far below 1 GB at any size."""
    gpu = getattr(xp, "__name__", "") == "cupy"
    width = max([len(network.embedding.const[0])] + [len(layer.key_rows) for layer in network.layers])
    per_point = max(1, network.n_tokens * width)
    return int(max(16, min(1 << (20 if gpu else 16), (1 << (25 if gpu else 21)) // per_point)))


def errors_at(construction, X, xp=np, weights=None):
    """Float error max_o |N_o(x) - f_o(x)| at each row of X, chunk by chunk (an estimate)."""
    w = weights or float_weights(construction.network, xp)
    step = points_per_chunk(construction.network, xp)
    out = []
    for s in range(0, X.shape[0], step):
        Xc = xp.asarray(X[s:s + step], dtype=xp.float64)
        y = forward_float(construction.network, Xc, xp, w)
        vals = {name: Xc[:, i] for i, name in enumerate(construction.inputs)}
        err = xp.zeros(Xc.shape[0])
        for o, tree in enumerate(construction.target):
            err = xp.maximum(err, xp.abs(y[:, o] - float_eval(tree, vals, xp)))
        out.append(err)
    return xp.concatenate(out) if out else xp.zeros(0)


def max_error_sampled(construction, points: int, xp=np, chunk: int | None = None, progress=False):
    """Largest |N - f| over a regular grid of about ``points`` points; returns (err, x, n).

    Grid points are generated chunk by chunk on the backend itself (as np.linspace
    does: start + i*step, the last point exactly the end), so 10^8 points on CuPy
    never materialise on the host.
    """
    D = len(construction.domain)
    per = max(2, int(round(points ** (1.0 / D))))
    if chunk is None:
        chunk = points_per_chunk(construction.network, xp)
    ends = [(float(a), float(b)) for a, b in construction.domain]
    steps = [(b - a) / (per - 1) for a, b in ends]
    total = per ** D
    w = float_weights(construction.network, xp)
    best, arg = -1.0, None
    bar = progress_bar(progress, total=total, unit=" points", desc="sample")
    for s in range(0, total, chunk):
        bar.update(min(chunk, total - s))
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
    bar.close()
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


def observed_at_corners(construction, weights, domain, leaves, xp=np, max_points: int = 1 << 21, dims=None):
    """Largest float error |N - f| at the corners of the leaves (the domain's corners among them).

    The search samples box centres; an error peak on the domain's boundary (a kink, an end)
    sits at a corner.  Over ``max_points`` corners, the leaves with the largest bounds go
    first.  With ``dims`` (the inputs the error depends on at all) the corners vary in those
    inputs only, the others staying at the leaf's lower end.  Returns (error, point) with the
    point inside the exact domain, or (-1, None).
    """
    if not leaves:
        return -1.0, None
    D = len(domain)
    dims = list(range(D)) if dims is None else [int(d) for d in dims]
    n = max(1, min(len(leaves), max_points >> len(dims)))
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
    bit = {d: j for j, d in enumerate(dims)}
    pts = np.concatenate([np.stack([cols[d][(c >> bit[d]) & 1 if d in bit else 0] for d in range(D)], axis=1)
                          for c in range(1 << len(dims))])
    pts = np.unique(pts, axis=0)
    err = errors_at(construction, pts, xp, weights)
    j = int(xp.argmax(err))
    return float(err[j]), [float(v) for v in pts[j]]
