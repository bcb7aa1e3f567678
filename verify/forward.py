"""The network's forward pass, once per arithmetic: float64 on any ``xp`` and mpmath.

Both follow constructions.network's definition exactly; the float path subtracts the
row maximum before exp (logits reach 1e9), the mpmath path works at any precision.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np


def float_weights(network, xp=np) -> dict:
    """The network's matrices rounded to nearest float64, on backend ``xp``."""
    f = lambda m: xp.asarray(np.array([[float(v) for v in row] for row in m], dtype=np.float64).reshape(len(m), -1))
    emb = network.embedding
    return {
        "const": f(emb.const),
        "linear": [f(E) for E in emb.linear],
        "layers": [[(f(h.wq), f(h.wk), f(h.wv), f(h.wo), float(h.beta),
                     None if h.bias is None else f(h.bias)) for h in layer.heads]
                   for layer in network.layers],
        "post": [None if layer.post is None else (f(layer.post[0]), f(layer.post[1]))
                 for layer in network.layers],
        "readout_linear": None if getattr(network, "readout_linear", None) is None else (
            xp.asarray(np.array([float(b) for b, _ in network.readout_linear])),
            xp.asarray(np.array([[float(v) for v in w] for _, w in network.readout_linear]))),
    }


def forward_float(network, X, xp=np, weights=None):
    """Outputs (N, n_out) for inputs X (N, D), vectorised; float64 estimates only."""
    w = weights or float_weights(network, xp)
    X = xp.asarray(X, dtype=xp.float64)
    Z = w["const"][None, :, :] + sum(X[:, i, None, None] * E[None] for i, E in enumerate(w["linear"]))
    for layer, heads, post in zip(network.layers, w["layers"], w.get("post", [None] * len(network.layers))):
        q = xp.asarray(list(layer.query_rows))
        k = xp.asarray(list(layer.key_rows))
        Zq, Zk = Z[:, q, :], Z[:, k, :]
        Y = 0
        for wq, wk, wv, wo, beta, bias in heads:
            S = beta * xp.einsum("nqd,nkd->nqk", Zq @ wq, Zk @ wk)
            if bias is not None:
                S = S + bias[None]
            S = S - S.max(axis=2, keepdims=True)
            A = xp.exp(S)
            A = A / A.sum(axis=2, keepdims=True)
            Y = Y + (A @ (Zk @ wv)) @ wo
        Z = Y if post is None else Y @ post[0] + post[1][None]
    if getattr(network, "final_softmax", False):
        Z = xp.exp(Z - Z.max(axis=2, keepdims=True))
        Z = Z / Z.sum(axis=2, keepdims=True)
    rows = xp.asarray([r for r, _ in network.readout])
    cols = xp.asarray([c for _, c in network.readout])
    out = Z[:, rows, cols]
    if w.get("readout_linear") is not None:
        b, W = w["readout_linear"]
        out = b[None, :] + out @ W.T
    return out


def forward_mp(network, x, dps=50):
    """Outputs at one point x (sequence of exact numbers) in mpmath at ``dps`` digits."""
    with mpmath.workdps(dps):
        mpf = lambda v: mpmath.mpf(v.numerator) / v.denominator if isinstance(v, Fraction) else mpmath.mpf(v)
        M = lambda m: mpmath.matrix([[mpf(v) for v in row] for row in m])
        emb = network.embedding
        xs = [mpf(Fraction(v)) if not isinstance(v, mpmath.mpf) else v for v in x]
        Z = M(emb.const)
        for xi, E in zip(xs, emb.linear):
            Z = Z + xi * M(E)
        for layer in network.layers:
            rows = lambda idx: mpmath.matrix([[Z[i, j] for j in range(Z.cols)] for i in idx])
            Zq, Zk = rows(layer.query_rows), rows(layer.key_rows)
            Y = None
            for h in layer.heads:
                S = mpf(h.beta) * (Zq * M(h.wq)) * (Zk * M(h.wk)).T
                if h.bias is not None:
                    S = S + M(h.bias)
                V = Zk * M(h.wv) * M(h.wo)
                out = mpmath.matrix(S.rows, V.cols)
                for i in range(S.rows):
                    m = max(S[i, j] for j in range(S.cols))
                    e = [mpmath.exp(S[i, j] - m) for j in range(S.cols)]
                    tot = mpmath.fsum(e)
                    for c in range(V.cols):
                        out[i, c] = mpmath.fsum(e[j] * V[j, c] for j in range(S.cols)) / tot
                Y = out if Y is None else Y + out
            Z = Y if getattr(layer, "post", None) is None else Y * M(layer.post[0]) + M(layer.post[1])
        if getattr(network, "final_softmax", False):
            for i in range(Z.rows):
                m = max(Z[i, j] for j in range(Z.cols))
                e = [mpmath.exp(Z[i, j] - m) for j in range(Z.cols)]
                tot = mpmath.fsum(e)
                for j in range(Z.cols):
                    Z[i, j] = e[j] / tot
        out = [Z[r, c] for r, c in network.readout]
        if getattr(network, "readout_linear", None) is not None:
            out = [mpf(b) + mpmath.fsum(mpf(wv) * o for wv, o in zip(wts, out)) for b, wts in network.readout_linear]
        return out
