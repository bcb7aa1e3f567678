"""A tighter closed form for soft cells: ratio-interval softmax bounds on a fixed sub-mesh of the cell.

Keys whose proved margin (gap lemma) is at least MESH_CUT trail, each weighing at most e^{-M_j}.
For the other (active) keys, the exact affine logit gap to the top key on each sub-box gives
e^{-gap} ratio intervals, and the softmax mean over them is bounded exactly by a threshold
(prefix) argument.  The mesh size is fixed per piece (it does not grow with beta), so the
piece count stays the cell count; it only resolves where the target and a soft softmax move.
"""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
from flint import arb, fmpq

MESH_CUT = Fraction(20)   # keys with a cell margin >= this are bounded by e^{-M} alone


def _q(f) -> fmpq:
    return f if isinstance(f, fmpq) else fmpq(f.numerator, f.denominator)


_FQ: dict = {}


def exact_logits(h):
    """The logits of an AffineHead as fmpq (cached per head object): c, G."""
    key = id(h)
    if key not in _FQ or _FQ[key][0] is not h:
        if len(_FQ) > 4096:
            _FQ.clear()
        _FQ[key] = (h, [_q(v) for v in h.c], [[_q(v) for v in row] for row in h.G])
    return _FQ[key][1], _FQ[key][2]


def sub_boxes(cell, mesh: int):
    """The mesh^D equal sub-boxes of the cell (exact fmpq), in C order."""
    axes = []
    for lo, hi in cell:
        lo, hi = _q(lo), _q(hi)
        axes.append([(lo + (hi - lo) * fmpq(k, mesh), lo + (hi - lo) * fmpq(k + 1, mesh)) for k in range(mesh)])
    return [tuple(b) for b in itertools.product(*axes)]


def _range(c, g, box):
    lo = hi = c
    for gi, (a, b) in zip(g, box):
        if gi > 0:
            lo, hi = lo + gi * a, hi + gi * b
        elif gi < 0:
            lo, hi = lo + gi * b, hi + gi * a
    return lo, hi


def _mean_bound(top_v, items, upper):
    """max (upper) / min of (v_t + sum r_j v_j)/(1 + sum r_j) over r_j in [lo_j, hi_j]: best prefix."""
    items = sorted(items, key=lambda it: it[0], reverse=upper)
    num = arb(top_v) + sum((r_lo * v for v, r_lo, _ in items), arb(0))
    den = arb(1) + sum((r_lo for _, r_lo, _ in items), arb(0))
    best = num / den
    for v, r_lo, r_hi in items:
        num, den = num + (r_hi - r_lo) * v, den + (r_hi - r_lo)
        best = arb.max(best, num / den) if upper else arb.min(best, num / den)
    return best.upper() if upper else best.lower()


def head_enclosure_sub(cq, Gq, eq, Fq, top, active, margins, box):
    """Arb (lo, hi) of one head's output on a sub-box: ratio intervals for active keys, e^{-M} leak for the rest."""
    n = len(cq)
    vr = [_range(eq[j], Fq[j], box) for j in range(n)]
    up, dn = [], []
    for j in active:
        gmin, gmax = _range(cq[top] - cq[j], [a - b for a, b in zip(Gq[top], Gq[j])], box)
        r_lo, r_hi = (-arb(gmax)).exp(), (-arb(gmin)).exp()
        up.append((vr[j][1], r_lo, r_hi))
        dn.append((vr[j][0], r_lo, r_hi))
    U = _mean_bound(vr[top][1], up, True)
    L = _mean_bound(vr[top][0], dn, False)
    act = set(active)
    for j in range(n):
        if j == top or j in act:
            continue
        w = (-arb(_q(margins[j]))).exp()
        U += w * arb.max(arb(0), arb(vr[j][1]) - U)
        L -= w * arb.max(arb(0), L - arb(vr[j][0]))
    vmax, vmin = max(v[1] for v in vr), min(v[0] for v in vr)
    return arb.max(L.lower(), arb(vmin)).lower(), arb.min(U.upper(), arb(vmax)).upper()


def mesh_cell_bound(forms, plan, targets, mesh: int):
    """An Arb upper bound of sup_cell |N - f|: the worst sub-box of the mesh."""
    from ..enclose.target import interval_eval
    boxes = sub_boxes(plan.cell, mesh)
    D = len(plan.cell)
    lo = np.array([[float(b[d][0]) for d in range(D)] for b in boxes])
    hi = np.array([[float(b[d][1]) for d in range(D)] for b in boxes])
    lo, hi = np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)  # float sub-boxes contain the exact ones
    env = {f"x{d}": (lo[:, d], hi[:, d]) for d in range(D)}
    worst = arb(0)
    cache = {}
    for hp in plan.heads:
        h = forms[hp.output][hp.head]
        if id(h) not in cache:
            cq, Gq = exact_logits(h)
            cache[id(h)] = (cq, Gq, [_q(v) for v in h.e], [[_q(v) for v in row] for row in h.F])
    for o, tree in enumerate(targets):
        flo, fhi = interval_eval(tree, env, np)
        flo, fhi = np.broadcast_to(flo, (len(boxes),)), np.broadcast_to(fhi, (len(boxes),))
        if not (np.all(np.isfinite(flo)) and np.all(np.isfinite(fhi))):
            raise ArithmeticError("target enclosure is not finite")
        for k, box in enumerate(boxes):
            n_lo, n_hi = arb(0), arb(0)
            for hp in plan.heads:
                if hp.output != o:
                    continue
                cq, Gq, eq, Fq = cache[id(forms[o][hp.head])]
                margins = dict(hp.lemma.claims) if hp.lemma else {}
                a, b = head_enclosure_sub(cq, Gq, eq, Fq, hp.top, hp.active, margins, box)
                n_lo, n_hi = n_lo + a, n_hi + b
            err = arb.max(n_hi - arb(float(flo[k])), arb(float(fhi[k])) - n_lo)
            worst = arb.max(worst, err)
    return worst
