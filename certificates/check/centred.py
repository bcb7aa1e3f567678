"""The checker's centred (mean-value) bound of a box of a one-layer network (the shared
specification of issue 17, steps 1-7), used for the boxes of a paving that carry slopes.

For output o the error e_o = N_o - f_o satisfies, for every x in the box B with exact centre c
and radii r_i, |e_o(x)| <= |e_o(c)| + sum_i |x_i - c_i| sup_B |d_i e_o|  (move one coordinate
at a time; each e_o is Lipschitz on B wherever the enclosures below are finite).  So
    C = E_c + sum_i slope_i r_i,   slope_i >= max_o sup_B |d_i e_o|,
    E_c >= max_o |e_o(c)|  (``core.box_bound`` on the degenerate box [c, c], same hints)
bounds sup_B max_o |e_o|.

Derivative of one head y = sum_j w_j V_j, w = softmax(s), s_j = c_j + G_j.x, V_j = e_j + F_j.x.
With dG_j = G_j - G_k* (k* the hint) and P_i = sum_j w_j dG_ji, exactly for every x:
    d_i w_j = w_j (dG_ji - P_i),   sum_j w_j (dG_ji - P_i) = 0,   so
    d_i y = sum_j w_j q_ji,   q_ji = F_ji + (V_j - y)(dG_ji - P_i).
Over B: y lies in the head's enclosure Y = [Yl, Yh] and w is feasible for the knapsack
l <= w <= u, sum w = 1 (``core.head_parts``: the very bounds of ``box_bound``), so P_i lies in
Pbar_i = [-knap(-dG_i), knap(dG_i)], each q_ji in F_ji + [vl_j - Yh, vh_j - Yl] x
[dG_ji - Ph_i, dG_ji - Pl_i] =: [ql_ji, qh_ji], and d_i y in [-knap(-ql_i), knap(qh_i)], where
knap is ``core.knapsack_upper`` (weak LP duality: an upper end for every feasible w).

Lumped tail.  When ``head_parts`` lumps the keys T whose gap ends below core.TAIL_GAP into one
entry of weight m = sum_T w_j in [0, min(1, tau)] (its docstring), the same entry stands for
them here: sum_T w_j dG_ji = m * (a convex combination of the dG_ji, j in T) lies between
m min_T dG_ji and m max_T dG_ji, so the tail enters the knapsack for P_i as one key of weight m
and value max_T dG_ji (upper end) or min_T dG_ji (lower end); likewise every q_ji, j in T, lies
in [min_T F_ji, max_T F_ji] + [V_lo - Yh, V_hi - Yl] x [min_T dG_ji - Ph_i, max_T dG_ji - Pl_i],
whose ends make the tail's entry in the knapsack for d_i y.  (a_A, m) is feasible for both, so
the bounds hold with the tail as they do densely.

The target's derivative is ``CompiledExpr.bounds_and_gradient`` (forward mode, hulls of
one-sided derivatives at kinks); d_i e_o = sum_h d_i y_h - d_i f_o; a NaN or infinite
enclosure makes the slope infinite, and a box whose slopes are not all finite has no centred
bound (BoxError).  Nothing here is shared with the search in verify/.
"""
from __future__ import annotations

from fractions import Fraction

from flint import arb, fmpq

from .core import (REL_SLACK, BoxError, Invalid, box_bound, box_env, head_parts, knapsack_upper, prepare_heads,
                   rat, undercuts)


def _qbox(box):
    return [(lo if isinstance(lo, fmpq) else fmpq(lo.numerator, lo.denominator),
             hi if isinstance(hi, fmpq) else fmpq(hi.numerator, hi.denominator)) for lo, hi in box]


def _prod(a_lo, a_hi, b_lo, b_hi):
    """Exact ends of an enclosure of [a_lo, a_hi] x [b_lo, b_hi] (NaN when any end is not finite)."""
    if not (a_lo.is_finite() and a_hi.is_finite() and b_lo.is_finite() and b_hi.is_finite()):
        n = arb.nan()
        return n, n
    ps = (a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi)
    lo, hi = ps[0].lower(), ps[0].upper()
    for p in ps[1:]:
        pl, ph = p.lower(), p.upper()
        lo = pl if pl < lo else lo
        hi = ph if ph > hi else hi
    return lo, hi


def head_derivatives(prep, hn, ks, qbox):
    """[(lo, hi) per input]: enclosures of d_i y of head ``hn`` (flat index) over the exact box,
    with hint ``ks`` (see the module docstring)."""
    c, G, e, F = prep.flat[hn]
    D = len(qbox)
    if not 0 <= ks < len(c):
        raise Invalid("hint names an anchor that does not exist")
    y_lo, y_hi, act, l, u, vl, vh = head_parts(prep, hn, ks, qbox)
    _, dG = prep.gaps(hn, ks)
    const = prep.const[hn]
    tail = None
    if len(l) > len(act):
        live = set(act)
        tail = [j for j in range(len(c)) if j not in live]
    # V_j - y over the box, per entry (the tail's entry last)
    a_lo = [(x - y_hi).lower() for x in vl]
    a_hi = [(x - y_lo).upper() for x in vh]
    out = []
    for i in range(D):
        g_lo = [arb(dG[j][i]).lower() for j in act]
        g_hi = [arb(dG[j][i]).upper() for j in act]
        f_lo = f_hi = None
        if not const:
            f_lo = [arb(F[j][i]).lower() for j in act]
            f_hi = [arb(F[j][i]).upper() for j in act]
        if tail is not None:
            tg = [dG[j][i] for j in tail]
            g_lo.append(arb(min(tg)).lower())
            g_hi.append(arb(max(tg)).upper())
            if not const:
                tf = [F[j][i] for j in tail]
                f_lo.append(arb(min(tf)).lower())
                f_hi.append(arb(max(tf)).upper())
        p_hi = knapsack_upper(l, u, g_hi)
        p_lo = -knapsack_upper(l, u, [-x for x in g_lo])
        q_lo, q_hi = [], []
        for j in range(len(l)):
            lo, hi = _prod(a_lo[j], a_hi[j], (g_lo[j] - p_hi).lower(), (g_hi[j] - p_lo).upper())
            if f_lo is not None:
                lo, hi = (lo + f_lo[j]).lower(), (hi + f_hi[j]).upper()
            q_lo.append(lo)
            q_hi.append(hi)
        out.append((-knapsack_upper(l, u, [-x for x in q_lo]), knapsack_upper(l, u, q_hi)))
    return out


def box_slopes(box, heads_all, targets, hints, prep=None):
    """slope_i (an arb upper end per input; +inf when not finite) >= max_o sup_B |d_i e_o| over
    the exact box (spec steps 1-5)."""
    if prep is None or prep.heads_all is not heads_all:
        prep = prepare_heads(heads_all)
    qbox = _qbox(box)
    D = len(qbox)
    env = box_env(qbox)
    names = [f"x{i}" for i in range(D)]
    if len(hints) != sum(len(per) for per in heads_all):
        raise Invalid("wrong number of hints")
    inf = arb("inf")
    slopes = [arb(0)] * D
    hn = 0
    for per, target in zip(heads_all, targets):
        dn = [(arb(0), arb(0))] * D
        for _ in per:
            dy = head_derivatives(prep, hn, hints[hn], qbox)
            hn += 1
            dn = [((a + c).lower(), (b + d).upper()) for (a, b), (c, d) in zip(dn, dy)]
        _, df = target.bounds_and_gradient(env, names)
        for i in range(D):
            lo = (dn[i][0] - df[i][1]).lower()
            hi = (dn[i][1] - df[i][0]).upper()
            m = arb.max(abs(lo), abs(hi)).upper() if lo.is_finite() and hi.is_finite() else inf
            if not m.is_finite():
                m = inf
            slopes[i] = m if m > slopes[i] else slopes[i]
    return slopes


def centred_parts(box, heads_all, targets, hints, prep=None, slopes=None):
    """(C, slopes, E_c): the centred bound C = E_c + sum_i slope_i r_i of an exact box (an arb
    upper end, +inf when a slope is not), the slopes (``box_slopes`` unless given) and the
    error bound E_c at the exact centre (``box_bound`` on [c, c] with the same hints)."""
    if prep is None or prep.heads_all is not heads_all:
        prep = prepare_heads(heads_all)
    qbox = _qbox(box)
    if slopes is None:
        slopes = box_slopes(qbox, heads_all, targets, hints, prep)
    centre = [(lo + hi) / 2 for lo, hi in qbox]
    e_c = box_bound([(Fraction(int(x.p), int(x.q)),) * 2 for x in centre], heads_all, targets, hints, prep)
    total = e_c
    for s, (lo, hi) in zip(slopes, qbox):
        total = (total + s * arb((hi - lo) / 2)).upper()
    return total, slopes, e_c


def centred_box_bound(box, heads_all, targets, hints, prep, stored_slopes):
    """The checker's centred bound C* of a box whose certificate entry carries slopes: checks
    that no stored slope (D exact rationals, fmpq or rat strings) undercuts the checker's own
    slope (core.undercuts; Invalid naming the input), then returns C* = E_c* + sum_i s*_i r_i
    with the checker's own slopes s*_i (an arb upper end).  BoxError when a slope is not finite."""
    qbox = _qbox(box)
    D = len(qbox)
    if len(stored_slopes) != D:
        raise Invalid(f"{len(stored_slopes)} slopes for a {D}-D box")
    stored = [s if isinstance(s, fmpq) else rat(s, f"slope of input {i}") for i, s in enumerate(stored_slopes)]
    if prep is None or prep.heads_all is not heads_all:
        prep = prepare_heads(heads_all)
    slopes = box_slopes(qbox, heads_all, targets, hints, prep)
    for i, s in enumerate(slopes):
        if not s.is_finite():
            raise BoxError(f"input {i}: the checker's slope is not finite, so no centred bound holds")
    total, _, _ = centred_parts(qbox, heads_all, targets, hints, prep, slopes)
    if not total.is_finite():
        raise BoxError("the centred bound is not finite")
    # A stored slope below the checker's is a false statement, unless the gap is too small to move
    # the box's bound (gap * half-width within REL_SLACK of C*): slopes of 1e-300 against the
    # checker's 1e-31 (its lumped tail of keys with weight < e^-60) state nothing wrong about C.
    for i, (st, s, (lo, hi)) in enumerate(zip(stored, slopes, qbox)):
        if undercuts(st, s) and (s - arb(st)) * arb((hi - lo) / 2) > total * arb(REL_SLACK):
            raise Invalid(f"input {i}: stored slope {float(st):.6g} is below the re-derived slope "
                          f"{float(s.mid()):.6g}")
    return total
