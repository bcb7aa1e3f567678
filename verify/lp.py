"""L_p certification: prove (sum_box vol(box) * bound_box^p)^(1/p) < eps over a paving.

The per-box bounds are the same proved sup bounds as for L-inf; only the stopping rule
differs: refine the boxes whose contribution vol * bound^p is largest until the sum is
below eps^p.  The sum is recomputed exactly in rationals (integer p) with each bound
raised by the checker's slack eps*2^-20, and the stored norm bound is a rational whose
p-th power provably dominates it.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np

from .enclose.grid import pick_bounder
from .forward import float_weights
from .search.certify import CERTIFIED, UNKNOWN, CertifyResult, stated
from .search.paving import MAX_LEVEL, Domain, Leaf, bisect_boxes, choose_dim, tree_string
from .search.sampling import observed_at_centres

SLACK = Fraction(1, 2 ** 20)


def _exact_sum(leaves, domain, p: int, eps: Fraction) -> Fraction:
    widths = [b - a for a, b in domain.exact]
    total = Fraction(0)
    for l in leaves:
        vol = Fraction(1)
        for d, k in enumerate(l.k):
            vol *= widths[d] / 2 ** k
        total += vol * (Fraction(l.bound) + eps * SLACK) ** p
    return total


def _root_up(total: Fraction, p: int) -> Fraction:
    """A rational r with r^p >= total (float root, then nudged up until it provably holds)."""
    r = Fraction(math.pow(float(total), 1.0 / p)) if total > 0 else Fraction(0)
    while r ** p < total:
        r = r * (1 + Fraction(1, 2 ** 40)) + Fraction(1, 2 ** 1000)
    return r


def certify_lp(construction, eps, p: int = 2, *, max_boxes: int = 2_000_000, time_limit=None,
               xp=np, batch: int = 8192) -> CertifyResult:
    """Prove ||network - target||_{L_p(domain)} < eps (unnormalised Lebesgue measure)."""
    eps = Fraction(eps)
    if eps <= 0:
        raise ValueError("eps must be positive")
    if int(p) != p or p < 1:
        raise ValueError("p must be an integer >= 1 (the checker also accepts rational p)")
    p = int(p)
    t0 = time.perf_counter()
    domain = Domain(construction.domain, xp)
    bounder = pick_bounder(construction, xp)
    weights = float_weights(construction.network, xp)
    D = domain.D
    vol_root = float(math.prod(float(b - a) for a, b in domain.exact))
    pend_I = np.zeros((1, D), dtype=np.int64)
    pend_K = np.zeros((1, D), dtype=np.int64)
    pend_paths = [""]
    done: list = []
    seen = np.zeros(0)
    keep_idx = np.zeros(0, dtype=np.int64)
    evaluated = 0
    obs_best, obs_point = -1.0, None
    target = float(eps) ** p
    status, reason = CERTIFIED, ""
    while True:
        bs, hs, obs = [], [], []
        for s in range(0, len(pend_paths), batch):
            xl, xh = domain.enclose(xp.asarray(pend_I[s:s + batch]), xp.asarray(pend_K[s:s + batch]))
            b, h = bounder.error_bounds(xl, xh)
            o, xm = observed_at_centres(construction, weights, xl, xh, xp)
            j = int(xp.argmax(o))
            if float(o[j]) > obs_best:
                obs_best, obs_point = float(o[j]), [float(v) for v in xm[j]]
            obs.append(np.asarray(o.get() if hasattr(o, "get") else o))
            bs.append(np.asarray(b.get() if hasattr(b, "get") else b))
            hs.append(np.asarray(h.get() if hasattr(h, "get") else h))
        evaluated += len(pend_paths)
        bounds, hints = np.concatenate(bs), np.concatenate(hs)
        seen = np.concatenate([seen[keep_idx], np.concatenate(obs)]) if len(done) else np.concatenate(obs)
        for n in range(len(pend_paths)):
            done.append(Leaf(pend_paths[n], tuple(int(v) for v in pend_I[n]), tuple(int(v) for v in pend_K[n]),
                             stated(float(bounds[n])), tuple(int(v) for v in hints[n])))
        K = np.array([l.k for l in done])
        vols = vol_root * np.ldexp(1.0, -K.sum(axis=1))
        b = np.array([l.bound for l in done])
        contrib = vols * np.where(np.isfinite(b), b, np.inf) ** p
        total = float(np.sum(contrib))
        if total < target * (1 - 1e-6):
            break
        # split where the bound most exceeds the error seen at the box centre
        gain = contrib - vols * np.minimum(seen, b) ** p
        order = np.argsort(-gain)
        need = 1.5 * (total - 0.9 * target)
        cum = np.cumsum(gain[order])
        m = int(np.searchsorted(cum, need)) + 1
        split = order[:max(1, min(len(order), m))]
        if evaluated + 2 * len(split) > max_boxes:
            status, reason = UNKNOWN, f"box budget {max_boxes} spent"
            break
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            status, reason = UNKNOWN, f"time limit {time_limit}s reached"
            break
        Ks = K[split]
        dims = choose_dim(Ks, domain)
        if np.any(Ks[np.arange(len(split)), dims] >= MAX_LEVEL):
            status, reason = UNKNOWN, "boxes reached the finest dyadic level"
            break
        keep = np.ones(len(done), dtype=bool)
        keep[split] = False
        chosen = [done[i] for i in split]
        done = [l for l, k in zip(done, keep) if k]
        keep_idx = np.flatnonzero(keep)
        pend_I, pend_K, pend_paths = bisect_boxes(np.array([l.i for l in chosen]), Ks, dims, [l.path for l in chosen])
    seconds = time.perf_counter() - t0
    witness = tuple(Fraction(v) for v in obs_point)
    if status != CERTIFIED:
        return CertifyResult(status, eps, float(total) ** (1.0 / p), obs_best, witness, None,
                             boxes_evaluated=evaluated, seconds=seconds, reason=reason)
    done.sort(key=lambda l: l.path)
    exact = _exact_sum(done, domain, p, eps)
    nb = _root_up(exact, p)
    if not nb < eps:
        return CertifyResult(UNKNOWN, eps, float(nb), obs_best, witness, None, boxes_evaluated=evaluated,
                             seconds=seconds, reason="exact L_p sum is not below eps^p")
    res = CertifyResult(CERTIFIED, eps, max(l.bound for l in done), obs_best, witness, None,
                        leaves=done, tree=tree_string([l.path for l in done]),
                        boxes_evaluated=evaluated, seconds=seconds,
                        evidence=dict(getattr(bounder, "evidence", {})))
    res.norm = {"kind": "Lp", "p": str(p)}
    res.norm_bound = nb
    return res
