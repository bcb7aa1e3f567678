"""The residual route for in-context GD networks (icl-gd): one 1-D paving instead of a 5-D one.

Query i's output is w_c + (1 - m_i) x_ic psi(r_i) + (foreign keys' share), with r_i = w . x_i - y_i,
psi(r) = sum_k softmax_k(alpha_k + beta_k r) b_k and m_i the weight on foreign keys, so
    |N_c - f_c| <= (1/n) sum_i [X_ic S + m_i B (X_ic + X_c)],   S = sup_R |psi - g|,  g = -eta l',
X_ic = max |x_ic|, X_c = max_i X_ic, B = max |b_k|, R the residuals' range
(certificates/check/residual.py derives and verifies all of it from the weights).  The error of
the prompt network is near its maximum along ridges that cross the whole 5-D box, which a
paving must follow; the 1-D function psi - g is certified in a few hundred boxes, and the bound
is tight: S is reached wherever every x_ic is at its largest and every r_i at psi - g's peak.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction

import mpmath
import numpy as np

from constructions.base import Construction
from constructions.network import Embedding, Head, Layer, Network, mat

from ..enclose.linearize import frac_interval

MARGIN = Fraction(1, 1000)   # eps is split: the 1-D paving aims at (1 - MARGIN) of what is left


def residual_claim(construction):
    """The construction's residual claim (a dict), or None where it has none or its weights changed
    (a float64 rounding keeps the meta but not the exact structure)."""
    claim = dict(getattr(construction, "meta", ())).get("residual")
    if claim is None or claim.get("weights") != construction.network.weights_hash():
        return None
    return claim


def residual_construction(claim) -> Construction:
    """The 1-D problem: one query token [r, 1, 0], one key [beta_k, alpha_k, b_k] per anchor, so the
    head's output is psi(r); the target is g(r) = -eta l'(r) on the residual range."""
    anchors = claim["anchors"]
    const = [[0, 1, 0]] + [[beta, alpha, b] for alpha, beta, b in anchors]
    lin = [[1, 0, 0]] + [[0, 0, 0] for _ in anchors]
    eye2 = [[1, 0], [0, 1], [0, 0]]
    head = Head(wq=mat(eye2), wk=mat(eye2), wv=mat([[0], [0], [1]]), wo=mat([[1]]), beta=Fraction(1))
    layer = Layer(heads=(head,), query_rows=(0,), key_rows=tuple(range(1, len(anchors) + 1)))
    net = Network(embedding=Embedding(const=mat(const), linear=(mat(lin),)), layers=(layer,), readout=((0, 0),))
    r = ("var", "x0")
    lp = r if claim["loss"] == "squared" else ("tanh", r)
    g = ("mul", ("num", -Fraction(claim["eta"])), lp)
    rlo, rhi = claim["residual"]
    return Construction(name="icl-gd-residual", paper="", theorem="the residual head psi(r) against -eta l'(r)",
                        params=(("of", "icl-gd"),), network=net, target=(g,),
                        domain=((Fraction(rlo), Fraction(rhi)),), apriori_bound=None,
                        notes=("psi(r) = sum_k softmax_k(alpha_k + beta_k r) b_k on the residual range",))


def _terms(construction, claim):
    """(per output c: [X_ic], X_c), B and the leak bound m (the same for every query), exact or upward."""
    dom = construction.domain
    n, d = len(claim["blocks"]), len(claim["w"])
    X = [[max(abs(dom[claim["x"][i][c]][0]), abs(dom[claim["x"][i][c]][1])) for i in range(n)] for c in range(d)]
    B = max(abs(b) for _, _, b in claim["anchors"])
    with mpmath.workdps(30):
        m = sum(mpmath.exp(mpmath.mpf(g.numerator) / g.denominator) for g in claim["foreign_gaps"]) * (n - 1)
        m = Fraction(mpmath.nstr(m * (1 + mpmath.mpf(2) ** -60), 25)) if m > 0 else Fraction(0)
    return X, B, m


def combine(X, B, m, S: Fraction) -> Fraction:
    """max over outputs c of (1/n) sum_i [X_ic S + m B (X_ic + X_c)] (exact)."""
    out = Fraction(0)
    for Xc in X:
        top = max(Xc)
        out = max(out, sum(x * S + m * B * (x + top) for x in Xc) / len(Xc))
    return out


def _peak(sub, points: int = 20001) -> float:
    """Where |psi - g| is largest on a dense float64 sample of the residual range."""
    from .sampling import errors_at
    (lo, hi), = sub.domain
    rs = np.linspace(float(lo), float(hi), points)
    e = np.abs(np.asarray(errors_at(sub, rs[:, None]))).reshape(-1)
    return float(rs[int(np.argmax(e))])


def _observed(construction, claim, r_star, rng_points=4096):
    """The largest float64 error among random prompts and prompts built to put every r_i at r*."""
    from .sampling import errors_at
    dom = [(float(a), float(b)) for a, b in construction.domain]
    rng = np.random.default_rng(0)
    pts = [rng.uniform([a for a, _ in dom], [b for _, b in dom], size=(rng_points, len(dom)))]
    lo = np.array([a for a, _ in dom])
    hi = np.array([b for _, b in dom])
    for wpick in np.linspace(0, 1, 9):
        for xend in (0, 1):
            p = lo + wpick * (hi - lo)
            for i in range(len(claim["blocks"])):
                for c in range(len(claim["w"])):
                    k = claim["x"][i][c]
                    p[k] = hi[k] if (abs(hi[k]) >= abs(lo[k])) == bool(xend) else lo[k]
                dot = sum(p[claim["w"][c]] * p[claim["x"][i][c]] for c in range(len(claim["w"])))
                p[claim["y"][i]] = dot - r_star
            if np.all(p >= lo) and np.all(p <= hi):
                pts.append(p[None, :])
    P = np.concatenate(pts)
    e = np.abs(np.asarray(errors_at(construction, P)))
    e = e.reshape(len(P), -1).max(axis=1)
    best = int(np.argmax(e))
    return float(e[best]), tuple(Fraction(float(v)) for v in P[best])


def certify_residual(construction, eps, *, progress=False, **kw):
    """certify() by the residual route: a CertifyResult whose ``residual`` holds (claim, the 1-D
    construction, its result); UNKNOWN (with the reason) when the 1-D paving does not certify."""
    from .certify import CERTIFIED, CertifyResult, certify
    t0 = time.perf_counter()
    eps = Fraction(eps)
    claim = residual_claim(construction)
    if claim is None:
        raise ValueError(f"{construction.name} declares no residual structure; use --method paving")
    X, B, m = _terms(construction, claim)
    zero = combine(X, B, m, Fraction(0))
    per_S = combine(X, B, Fraction(0), Fraction(1))
    target = (eps * (1 - MARGIN) - zero) / per_S if per_S > 0 else Fraction(0)
    target = Fraction(math.floor(target * 10 ** 12), 10 ** 12)   # a short rational, never above
    sub = residual_construction(claim)
    if target <= 0:
        return CertifyResult("UNKNOWN", eps, math.inf, 0.0, (), None, reason="the foreign blocks' leak alone "
                             "exceeds eps", seconds=time.perf_counter() - t0)
    r = certify(sub, target, progress=progress, **kw)
    if r.status != CERTIFIED:
        return CertifyResult("UNKNOWN", eps, math.inf, 0.0, (), None, boxes_evaluated=r.boxes_evaluated,
                             reason=f"the 1-D residual bound is {r.status} at {float(target):.6g} "
                                    f"({r.reason or 'its sup exceeds it'})", seconds=time.perf_counter() - t0)
    bound = combine(X, B, m, Fraction(r.max_bound))
    observed, witness = _observed(construction, claim, _peak(sub))
    up = float(frac_interval([bound])[1][0])   # the exact bound rounded up
    return CertifyResult(CERTIFIED, eps, up, observed, witness, None, boxes_evaluated=r.boxes_evaluated,
                         seconds=time.perf_counter() - t0, residual=(claim, sub, r))
