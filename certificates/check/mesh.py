"""The checker's re-derivation of analytic pieces bounded on a fixed sub-mesh (piece field "mesh").

Independent of ``verify``: on each of the mesh^D equal sub-boxes of the piece, the active keys'
weights relative to the top key lie in [e^{-max gap}, e^{-min gap}] (exact affine gaps from the
stored weights), the softmax mean over them is bounded by the best threshold prefix, and every
other key weighs at most e^{-M_j} with M_j from the piece's z3 gap lemma.
"""
from __future__ import annotations

import itertools

from flint import arb, fmpq

from .core import Invalid, affine_range as _range, box_env, fr, q as fq, target_error

MAX_MESH = 256


def _prefix_bound(top_v, items, upper):
    items = sorted(items, key=lambda it: it[0], reverse=upper)
    num = arb(top_v) + sum((lo * v for v, lo, _ in items), arb(0))
    den = arb(1) + sum((lo for _, lo, _ in items), arb(0))
    best = num / den
    for v, lo, hi in items:  # the optimum puts the high ratio on a prefix of the keys sorted by value
        num, den = num + (hi - lo) * v, den + (hi - lo)
        best = arb.max(best, num / den) if upper else arb.min(best, num / den)
    return best.upper() if upper else best.lower()


def _enclose(h, top, active, margins, box):
    cq, Gq, eq, Fq = h
    n = len(cq)
    vr = [_range(eq[j], Fq[j], box) for j in range(n)]
    up, dn = [], []
    for j in active:
        gmin, gmax = _range(cq[top] - cq[j], [a - b for a, b in zip(Gq[top], Gq[j])], box)
        lo, hi = (-arb(gmax)).exp(), (-arb(gmin)).exp()
        up.append((vr[j][1], lo, hi))
        dn.append((vr[j][0], lo, hi))
    U = _prefix_bound(vr[top][1], up, True)
    L = _prefix_bound(vr[top][0], dn, False)
    act = set(active)
    for j in range(n):
        if j != top and j not in act:  # N - U <= sum_T a_j (v_j - U)^+ with a_j <= e^{-M_j}
            w = (-arb(fq(margins[j]))).exp()
            U += w * arb.max(arb(0), arb(vr[j][1]) - U)
            L -= w * arb.max(arb(0), L - arb(vr[j][0]))
    vmax, vmin = max(v[1] for v in vr), min(v[0] for v in vr)
    return arb.max(L.lower(), arb(vmin)).lower(), arb.min(U.upper(), arb(vmax)).upper()


def mesh_bound(piece, cell, heads_all, targets, lemmas, used):
    """Arb upper bound of sup |N - f| over the piece: the worst sub-box of its mesh."""
    mesh = piece["mesh"]
    if type(mesh) is not int or not 1 <= mesh <= MAX_MESH:
        raise Invalid("piece mesh must be an integer in 1..256")
    entries = piece["heads"]
    want = sorted((o, h) for o in range(len(heads_all)) for h in range(len(heads_all[o])))
    if sorted((e["output"], e["head"]) for e in entries) != want:
        raise Invalid("an analytic piece must bound every head of every output exactly once")
    plans = []
    for e in entries:
        o, h, t = e["output"], e["head"], e["top"]
        c, G, ev, F = heads_all[o][h]
        n = len(c)
        if t >= n:
            raise Invalid("piece names a top key that does not exist")
        active = e["active"]
        if len(set(active)) != len(active) or any(type(j) is not int or not 0 <= j < n or j == t for j in active):
            raise Invalid("piece lists an invalid active key")
        margins = {}
        if e["lemma"] is not None:
            if e["lemma"] not in lemmas:
                raise Invalid(f"piece cites lemma {e['lemma']}, which the certificate does not hold")
            lm, lcell, margins = lemmas[e["lemma"]]
            if lcell != cell or (lm["output"], lm["head"], lm["top"]) != (o, h, t):
                raise Invalid(f"lemma {lm['id']} is about another cell, head or top key than its piece")
            used.add(lm["id"])
        elif n > 1:
            raise Invalid("an analytic piece with several keys needs a gap lemma")
        exact = ([fq(fr(v)) for v in c], [[fq(fr(v)) for v in row] for row in G],
             [fq(fr(v)) for v in ev], [[fq(fr(v)) for v in row] for row in F])
        plans.append((o, exact, t, active, margins))
    axes = [[(fq(lo) + fq(hi - lo) * fmpq(k, mesh), fq(lo) + fq(hi - lo) * fmpq(k + 1, mesh)) for k in range(mesh)]
            for lo, hi in cell]
    worst = arb(0)
    for box in itertools.product(*axes):
        env = box_env(box)
        for o, target in enumerate(targets):
            n_lo, n_hi = arb(0), arb(0)
            for po, exact, t, active, margins in plans:
                if po == o:
                    a, b = _enclose(exact, t, active, margins, box)
                    n_lo, n_hi = n_lo + a, n_hi + b
            err = target_error(n_lo, n_hi, target, env)
            if err is None:
                raise Invalid("a piece bound is not finite")
            worst = arb.max(worst, err).upper()
    return worst
