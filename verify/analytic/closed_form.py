"""Closed-form error bounds on cells where one key leads: gap lemmas + the convex-hull argument.

On a box cell C, let ``top`` be a key whose logit leads at the centre.  For every other
key j, M_j = min_C (logit_top - logit_j) is an exact rational (logits are affine), proved
by a z3 gap lemma.  Keys with M_j >= ACTIVE_CUT *trail*: each weighs at most e^{-M_j}.
The rest are *active*; those with M_j >= 0 weigh no more than top.  So the output lies in
conv{means of active values allowed by that ordering} +- sum_j e^{-M_j} spread_j,
a bound that does not depend on how sharp the softmax is: the piece count is the cell
count, whatever gamma is.  Arb bounds e^{-M} rigorously; no exp enters z3.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations

import numpy as np
from flint import arb, ctx, fmpq

from ..enclose.linearize import UnsupportedNetwork, frac_interval
from .mesh import MESH_CUT, exact_logits, mesh_cell_bound
from .smt import GapLemma

ACTIVE_CUT = Fraction(1)   # keys with a margin below this stay in the convex hull
MAX_ORDERED = 4            # hull vertices enumerate subsets of the ordered active keys
PREC = 128
ROUND_BITS = 64            # stored bounds: rounded up to about 64 significant bits
MIN_EXP = -1100            # ... and never finer than 2^-1100


def arb_up_rational(x: arb) -> Fraction:
    """A rational >= every point of the ball x (rounded up to ~64 bits); non-finite -> error."""
    if not x.is_finite():
        raise ArithmeticError("a bound came out non-finite")
    u = x.upper()
    man, exp = (int(v) for v in u.mid().man_exp())
    if man == 0:
        return Fraction(0)
    shift = max(MIN_EXP, exp + man.bit_length() - ROUND_BITS)
    if exp >= shift:
        return Fraction(man << (exp - shift)) * Fraction(2) ** shift
    k = shift - exp
    return Fraction(-((-man) >> k)) * Fraction(2) ** shift  # ceil(man / 2^k) 2^shift


def box_min_affine(c, g, cell):
    """Exact min over a box of c + g.x (at the vertex that each slope's sign picks); Fraction or fmpq."""
    out = c
    for gi, (lo, hi) in zip(g, cell):
        if gi != 0:
            out = out + gi * (lo if gi > 0 else hi)
    return out


def box_range_affine(c, g, cell):
    """Exact (min, max) over a box of c + g.x."""
    return box_min_affine(c, g, cell), -box_min_affine(-c, [-v for v in g], cell)


def _upper_envelope_points(c, g, lo, hi, exclude=()):
    """Exact x in (lo, hi) where the leading line changes (1-D upper envelope of c_j + g_j x)."""
    keys = [j for j in range(len(c)) if j not in exclude]
    if not keys:
        return []
    x = lo
    lead = max(keys, key=lambda j: (c[j] + g[j] * x, g[j]))
    out = []
    while True:
        best = None
        for j in keys:
            if g[j] > g[lead]:
                xj = (c[lead] - c[j]) / (g[j] - g[lead])
                if xj >= x and (best is None or (xj, -g[j]) < (best[0], -g[best[1]])):
                    best = (xj, j)
        if best is None or best[0] >= hi:
            return out
        if best[0] > x:
            out.append(best[0])
        x, lead = best
        lead = max((j for j in keys if c[j] + g[j] * x == c[lead] + g[lead] * x), key=lambda j: g[j])


def cells_1d(forms, domain):
    """Cells of a 1-D domain: split where any head's leader or runner-up changes (exact)."""
    (lo, hi), = domain
    pts = {lo, hi}
    for per in forms:
        for h in per:
            c, g = [_q(v) for v in h.c], [_q(row[0]) for row in h.G]   # fmpq: much faster than Fraction
            lead_pts = [_q(lo)] + _upper_envelope_points(c, g, _q(lo), _q(hi)) + [_q(hi)]
            pts.update(_f(x) for x in lead_pts)
            for u, v in zip(lead_pts, lead_pts[1:]):
                mid = (u + v) / 2
                t = max(range(len(c)), key=lambda j: (c[j] + g[j] * mid, -j))
                pts.update(_f(x) for x in _upper_envelope_points(c, g, u, v, exclude=(t,)))
    s = sorted(pts)
    return [((u, v),) for u, v in zip(s, s[1:])]


@dataclass
class HeadPlan:
    """How one head is bounded on one cell: its top key, the gap lemma, the active keys."""
    output: int
    head: int
    top: int
    lemma: GapLemma | None
    active: tuple
    text: str | None = None   # the lemma's SMT-LIB text, once z3 has proved it


@dataclass
class CellPlan:
    cell: tuple
    heads: list = field(default_factory=list)
    bound: Fraction | None = None
    mesh: int | None = None   # set: bounded on a fixed mesh^D sub-mesh (verify.analytic.mesh)


def plan_cell(forms, cell, lemma_prefix: str, mesh: int | None = None) -> CellPlan:
    """Top keys, exact margins (as gap lemmas) and active sets for every head on one cell."""
    cut = ACTIVE_CUT if mesh is None else MESH_CUT
    qcell = [(_q(lo), _q(hi)) for lo, hi in cell]
    centre = [(lo + hi) / 2 for lo, hi in qcell]
    plan = CellPlan(cell=tuple(cell), mesh=mesh)
    for o, per in enumerate(forms):
        for hn, h in enumerate(per):
            n = len(h.c)
            c, G = exact_logits(h)
            val = [c[j] + sum((gi * xi for gi, xi in zip(G[j], centre)), fmpq(0)) for j in range(n)]
            t = max(range(n), key=lambda j: (val[j], -j))
            claims, active = [], []
            for j in range(n):
                if j == t:
                    continue
                m = _f(box_min_affine(c[t] - c[j], [a - b for a, b in zip(G[t], G[j])], qcell))
                claims.append((j, m))
                if m < cut:
                    active.append(j)
            lemma = GapLemma(f"{lemma_prefix}.o{o}.h{hn}", tuple(cell), o, hn, t, tuple(claims)) if claims else None
            plan.heads.append(HeadPlan(o, hn, t, lemma, tuple(active)))
    return plan


def _q(f: Fraction) -> fmpq:
    return fmpq(f.numerator, f.denominator)


def _f(x: fmpq) -> Fraction:
    return Fraction(int(x.p), int(x.q))


def head_enclosure(h, hp: HeadPlan, cell):
    """Arb enclosure (lo, hi) of one head's output over the cell, from the plan's margins."""
    margins = dict(hp.lemma.claims) if hp.lemma else {}
    n = len(h.c)
    t = hp.top
    qcell = [(_q(lo), _q(hi)) for lo, hi in cell]
    vr = [tuple(_f(v) for v in box_range_affine(_q(h.e[j]), [_q(v) for v in h.F[j]], qcell)) for j in range(n)]
    active = set(hp.active)
    trailing = [j for j in range(n) if j != t and j not in active]
    ordered = sorted(j for j in active if margins[j] >= 0)
    free = sorted(j for j in active if margins[j] < 0)
    verts = [vr[j] for j in free]
    if len(ordered) <= MAX_ORDERED:
        for k in range(len(ordered) + 1):
            for S in combinations(ordered, k):
                grp = (t,) + S
                verts.append((sum(vr[j][0] for j in grp) / len(grp), sum(vr[j][1] for j in grp) / len(grp)))
    else:
        verts += [vr[j] for j in [t] + ordered]
    c_lo, c_hi = min(v[0] for v in verts), max(v[1] for v in verts)
    if not trailing:
        return arb(_q(c_lo)), arb(_q(c_hi))
    # N - c = sum_T a_j (v_j - c), a_j <= e^{-M_j} and sum_T a_j <= 1: so |N - c| <= both of
    # sum_T e^{-M_j} s_j and max_T s_j, with s_j = sup |v_j - c| over the cell.
    spreads = [max(vr[j][1] - c_lo, c_hi - vr[j][0], Fraction(0)) for j in trailing]
    leak = arb(0)
    for j, s_j in zip(trailing, spreads):
        leak += (-arb(_q(margins[j]))).exp() * arb(_q(s_j))
    cap = arb(_q(max(spreads)))
    leak = arb.min(leak, cap).upper() if leak.is_finite() else cap
    return arb(_q(c_lo)) - leak, arb(_q(c_hi)) + leak


def cell_bound(forms, plan: CellPlan, targets) -> Fraction:
    """Proved rational upper bound of sup_C |N - f| (target enclosed by outward-rounded floats)."""
    from ..enclose.target import interval_eval
    old = ctx.prec
    ctx.prec = PREC
    try:
        if plan.mesh is not None:
            return arb_up_rational(mesh_cell_bound(forms, plan, targets, plan.mesh))
        cell = plan.cell
        box = {f"x{i}": (frac_interval([lo])[0], frac_interval([hi])[1]) for i, (lo, hi) in enumerate(cell)}
        worst = arb(0)
        for o, tree in enumerate(targets):
            n_lo, n_hi = arb(0), arb(0)
            for hp in plan.heads:
                if hp.output == o:
                    lo, hi = head_enclosure(forms[o][hp.head], hp, cell)
                    n_lo, n_hi = n_lo + lo, n_hi + hi
            flo, fhi = interval_eval(tree, box, np)
            flo, fhi = float(np.asarray(flo).ravel()[0]), float(np.asarray(fhi).ravel()[0])
            if not (np.isfinite(flo) and np.isfinite(fhi)):
                raise ArithmeticError("target enclosure is not finite")
            err = arb.max(n_hi - arb(flo), arb(fhi) - n_lo)
            worst = arb.max(worst, err)
        return arb_up_rational(worst)
    finally:
        ctx.prec = old


def default_cells(construction, forms):
    """The cells for a construction: 1-D envelope cells; other shapes must supply theirs."""
    if len(construction.domain) != 1:
        raise UnsupportedNetwork(f"--method analytic handles one-layer networks with affine logits on 1-D inputs "
                                 f"or a [MAP] grid, not {len(construction.domain)} inputs; use --method paving")
    (lo, hi), = construction.domain
    cells = cells_1d(forms, construction.domain)
    kinks = sorted({k for t in construction.target for k in target_kinks(t)} - {lo, hi})
    out = []
    for (u, v), in cells:  # also split where the target has a kink, e.g. a and b of Range_[a,b]
        pts = [u] + [k for k in kinks if u < k < v] + [v]
        out += [((s, e),) for s, e in zip(pts, pts[1:])]
    return out


def target_kinks(tree):
    """Constant kink points of a 1-D target: numeric ends of range/min/max/relu (exact)."""
    tag = tree[0]
    if tag in ("num", "var", "pi"):
        return set()
    out = set()
    for t in tree[1:]:
        out |= target_kinks(t)
    if tag == "range" and tree[1][0] == "num" and tree[2][0] == "num":
        out |= {tree[1][1], tree[2][1]}
    elif tag in ("min", "max"):
        out |= {t[1] for t in tree[1:] if t[0] == "num"}
    elif tag == "relu":
        out.add(Fraction(0))
    return out
