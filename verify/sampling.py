"""Dense float sampling of the error on any backend ``xp`` (an estimate, never a proof)."""
from __future__ import annotations

import numpy as np

from .forward import float_weights, forward_float
from .target import float_eval


def max_error_sampled(construction, points: int, xp=np, chunk: int = 1 << 16):
    """Largest |N - f| over a regular grid of about ``points`` points; returns (err, x, n)."""
    D = len(construction.domain)
    per = max(2, int(round(points ** (1.0 / D))))
    axes = [np.linspace(float(a), float(b), per) for a, b in construction.domain]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, D) if D > 1 else axes[0][:, None]
    w = float_weights(construction.network, xp)
    best, arg = -1.0, None
    for s in range(0, len(grid), chunk):
        X = xp.asarray(grid[s:s + chunk])
        y = forward_float(construction.network, X, xp, w)
        vals = {n: X[:, i] for i, n in enumerate(construction.inputs)}
        err = xp.zeros(X.shape[0])
        for o, t in enumerate(construction.target):
            err = xp.maximum(err, xp.abs(y[:, o] - float_eval(t, vals, xp)))
        j = int(xp.argmax(err))
        if float(err[j]) > best:
            best, arg = float(err[j]), [float(v) for v in X[j]]
    return best, arg, len(grid)
