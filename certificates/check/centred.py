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
Pbar_i = [-knap(-dG_i), knap(dG_i)], where knap is ``core.knapsack_upper`` (weak LP duality: an
upper end for every feasible w).  For any constants alpha and gamma_i, as sum w = 1,
    sum_j w_j (V_j - y)(dG_ji - P_i) = sum_j w_j (V_j - alpha)(dG_ji - gamma_i) - (y - alpha)(P_i - gamma_i),
so with alpha, gamma_i the exact midpoints of Y and Pbar_i each q'_ji = F_ji + (V_j - alpha)(dG_ji - gamma_i)
lies in F_ji + [vl_j - alpha, vh_j - alpha] x [dG_ji - gamma_i] =: [ql_ji, qh_ji] and
    d_i y in [-knap(-ql_i), knap(qh_i)] - (Y - alpha) x (Pbar_i - gamma_i):
the product of two wide intervals of the direct form becomes a product of two half-widths.

Lumped tail.  When ``head_parts`` lumps the keys T whose gap ends below core.TAIL_GAP into one
entry of weight m = sum_T w_j in [0, min(1, tau)] (its docstring), the same entry stands for
them here: sum_T w_j dG_ji = m * (a convex combination of the dG_ji, j in T) lies between
m min_T dG_ji and m max_T dG_ji, so the tail enters the knapsack for P_i as one key of weight m
and value max_T dG_ji (upper end) or min_T dG_ji (lower end); likewise every q_ji, j in T, lies
in [min_T F_ji, max_T F_ji] + [V_lo - alpha, V_hi - alpha] x [min_T dG_ji - gamma_i, max_T dG_ji - gamma_i],
whose ends make the tail's entry in the knapsack for d_i y.  (a_A, m) is feasible for both, so
the bounds hold with the tail as they do densely.

The target's derivative is ``CompiledExpr.bounds_and_gradient`` (forward mode, hulls of
one-sided derivatives at kinks); d_i e_o = sum_h d_i y_h - d_i f_o; a NaN or infinite
enclosure makes the slope infinite, and a box whose slopes are not all finite has no centred
bound (BoxError).  Nothing here is shared with the search in verify/.
"""
from __future__ import annotations

from flint import arb, fmpq

from .core import (Invalid, box_bound, box_env, centred_total, confirm_slopes, corner_product, head_parts_lu,
                   interval_product, knapsack_lower, knapsack_upper, parse_slopes, prepare_heads, require_finite,
                   slope_bound)

_ZERO = arb(0)


def _qbox(box):
    return [(lo if isinstance(lo, fmpq) else fmpq(lo.numerator, lo.denominator),
             hi if isinstance(hi, fmpq) else fmpq(hi.numerator, hi.denominator)) for lo, hi in box]


def _first_outside(order, live):
    """The first key of ``order`` that is not in ``live``."""
    for j in order:
        if j not in live:
            return j
    raise ValueError("every key is live")


def head_derivatives(prep, hn, ks, qbox):
    """[(lo, hi) per input]: enclosures of d_i y of head ``hn`` (flat index) over the exact box,
    with hint ``ks`` (see the module docstring).  The tail's extremes min_T / max_T of dG_ji and
    F_ji are read off the keys presorted by their exact values (``PreparedHeads.slope_table``):
    the first key outside the live ones, the very numbers a scan over T gives."""
    c = prep.flat[hn][0]
    D = len(qbox)
    if not 0 <= ks < len(c):
        raise Invalid("hint names an anchor that does not exist")
    y_lo, y_hi, act, l, u, vl, vh, lu = head_parts_lu(prep, hn, ks, qbox)
    table = prep.slope_table(hn, ks)
    has_tail = len(l) > len(act)
    live = set(act) if has_tail else None
    # V_j - alpha over the box, per entry (the tail's entry last); alpha exact, the midpoint of Y
    alpha = ((y_lo + y_hi) / 2).mid()
    a_lo = [(x - alpha).lower() for x in vl]
    a_hi = [(x - alpha).upper() for x in vh]
    dy_lo, dy_hi = (y_lo - alpha).lower(), (y_hi - alpha).upper()
    n = len(l)
    # The ends of V_j - alpha are .lower() / .upper() of the balls of vl_j - alpha <= vh_j - alpha
    # (vl_j <= vh_j: head_parts' value ends), so exact and ordered, and finite when their sum is
    # (an infinite or NaN end makes the sum so); likewise the ends of dG_j - gamma when P is
    # finite.  Then ``corner_product`` needs no checks.
    a_ok = (sum(a_lo, _ZERO) + sum(a_hi, _ZERO)).is_finite()
    out = []
    for i in range(D):
        glo_all, ghi_all, g_up, g_down, flo_all, fhi_all, f_up, f_down = table[i]
        g_lo = [glo_all[j] for j in act]
        g_hi = [ghi_all[j] for j in act]
        f_lo = f_hi = None
        if flo_all is not None:
            f_lo = [flo_all[j] for j in act]
            f_hi = [fhi_all[j] for j in act]
        if has_tail:
            g_lo.append(glo_all[_first_outside(g_up, live)])
            g_hi.append(ghi_all[_first_outside(g_down, live)])
            if f_lo is not None:
                f_lo.append(flo_all[_first_outside(f_up, live)])
                f_hi.append(fhi_all[_first_outside(f_down, live)])
        p_hi = knapsack_upper(l, u, g_hi, None, lu)
        p_lo = knapsack_lower(l, u, g_lo, None, lu)
        gamma = ((p_lo + p_hi) / 2).mid()
        q_lo, q_hi = [None] * n, [None] * n
        prod = corner_product if a_ok and p_lo.is_finite() and p_hi.is_finite() else interval_product
        if f_lo is None:
            for j, (al, ah, gl, gh) in enumerate(zip(a_lo, a_hi, g_lo, g_hi)):
                q_lo[j], q_hi[j] = prod(al, ah, (gl - gamma).lower(), (gh - gamma).upper())
        else:
            for j, (al, ah, gl, gh, fl, fh) in enumerate(zip(a_lo, a_hi, g_lo, g_hi, f_lo, f_hi)):
                lo, hi = prod(al, ah, (gl - gamma).lower(), (gh - gamma).upper())
                q_lo[j], q_hi[j] = (lo + fl).lower(), (hi + fh).upper()
        c_lo, c_hi = interval_product(dy_lo, dy_hi, (p_lo - gamma).lower(), (p_hi - gamma).upper())
        out.append(((knapsack_lower(l, u, q_lo, None, lu) - c_hi).lower(),
                    (knapsack_upper(l, u, q_hi, None, lu) - c_lo).upper()))
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
    slopes = [_ZERO] * D
    hn = 0
    for per, target in zip(heads_all, targets):
        dn = None
        for _ in per:
            dy = head_derivatives(prep, hn, hints[hn], qbox)
            hn += 1
            # the first head's ends as they are (0 + x is x), then sums rounded outward
            dn = dy if dn is None else [((a + c).lower(), (b + d).upper()) for (a, b), (c, d) in zip(dn, dy)]
        if dn is None:
            dn = [(_ZERO, _ZERO)] * D
        _, df = target.bounds_and_gradient(env, names)
        for i in range(D):
            m = slope_bound((dn[i][0] - df[i][1]).lower(), (dn[i][1] - df[i][0]).upper())
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
    e_c = box_bound([(x, x) for x in centre], heads_all, targets, hints, prep)
    return centred_total(e_c, slopes, qbox), slopes, e_c


def centred_box_bound(box, heads_all, targets, hints, prep, stored_slopes):
    """The checker's centred bound C* of a box whose certificate entry carries slopes: checks
    that no stored slope (D exact rationals, fmpq or rat strings) undercuts the checker's own
    slope (core.undercuts; Invalid naming the input), then returns C* = E_c* + sum_i s*_i r_i
    with the checker's own slopes s*_i (an arb upper end).  BoxError when a slope is not finite."""
    qbox = _qbox(box)
    stored = parse_slopes(stored_slopes, len(qbox))
    if prep is None or prep.heads_all is not heads_all:
        prep = prepare_heads(heads_all)
    slopes = box_slopes(qbox, heads_all, targets, hints, prep)
    require_finite(slopes)
    total, _, _ = centred_parts(qbox, heads_all, targets, hints, prep, slopes)
    confirm_slopes(stored, slopes, qbox, total)
    return total
