"""Exact affine form of a one-layer network: logits and values as affine functions of x.

For each network output and each head, logit_j(x) = c_j + g_j . x and value_j(x) =
e_j + f_j . x over the keys j, with exact rational coefficients.  Bounds on logit
*differences* over a box then come straight from these coefficients, which is what
keeps the enclosures tight when the logits themselves are huge.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


class UnsupportedNetwork(ValueError):
    """The certifier has no bound for this network shape (e.g. quadratic logits)."""


@dataclass(frozen=True)
class AffineHead:
    """Logits c + G x and values e + F x over the keys of one head (exact)."""
    c: tuple      # (n_keys,) Fractions
    G: tuple      # (n_keys, D)
    e: tuple      # (n_keys,)
    F: tuple      # (n_keys, D)


def _row_affine(emb, row):
    """The token at ``row`` as (const vector, [linear vector per input])."""
    const = list(emb.const[row])
    lins = [list(E[row]) for E in emb.linear]
    return const, lins


def _vecmat(v, M):
    cols = len(M[0]) if M else 0
    return [sum((v[i] * M[i][j] for i in range(len(v)) if v[i]), Fraction(0)) for j in range(cols)]


def _dot(u, v):
    return sum((a * b for a, b in zip(u, v) if a and b), Fraction(0))


def affine_form(network) -> list:
    """For each readout (row, col): the list of AffineHead of the one layer.

    Raises UnsupportedNetwork for several layers or logits that are not affine in x.
    """
    if len(network.layers) != 1:
        raise UnsupportedNetwork("the affine certifier handles one attention layer")
    emb = network.embedding
    D = len(emb.linear)
    layer = network.layers[0]
    out = []
    for (r, col) in network.readout:
        qrow = layer.query_rows[r]
        heads = []
        for h in layer.heads:
            qc, ql = _row_affine(emb, qrow)
            q0 = _vecmat(qc, h.wq)
            qi = [_vecmat(v, h.wq) for v in ql]
            c, G, e, F = [], [], [], []
            wvo = [[_dot(h.wv[a], [h.wo[bb][col] for bb in range(len(h.wo))])] for a in range(len(h.wv))]
            for jn, krow in enumerate(layer.key_rows):
                kc, kl = _row_affine(emb, krow)
                k0 = _vecmat(kc, h.wk)
                ki = [_vecmat(v, h.wk) for v in kl]
                for i in range(D):
                    for l in range(D):
                        if _dot(qi[i], ki[l]) != 0:
                            raise UnsupportedNetwork("logits are quadratic in the input")
                bias = h.bias[r][jn] if h.bias is not None else Fraction(0)
                c.append(h.beta * _dot(q0, k0) + bias)
                G.append(tuple(h.beta * (_dot(qi[i], k0) + _dot(q0, ki[i])) for i in range(D)))
                e.append(_vecmat(kc, wvo)[0])
                F.append(tuple(_vecmat(v, wvo)[0] for v in kl))
            heads.append(AffineHead(tuple(c), tuple(G), tuple(e), tuple(F)))
        out.append(heads)
    return out


def frac_interval(values) -> tuple:
    """Float64 arrays (lo, hi) enclosing each exact rational (one step outward if inexact)."""
    vals = np.asarray(values, dtype=object).ravel()
    mid = np.array([float(v) for v in vals], dtype=np.float64)
    lo = mid.copy()
    hi = mid.copy()
    for i, v in enumerate(vals):
        f = Fraction(mid[i]) if np.isfinite(mid[i]) else None
        if f is None or f != v:
            lo[i] = np.nextafter(mid[i], -np.inf)
            hi[i] = np.nextafter(mid[i], np.inf)
    shape = np.shape(np.asarray(values, dtype=object))
    return lo.reshape(shape), hi.reshape(shape)
