"""Small exact pieces shared by the checker's paths (never by the search in verify/)."""
from __future__ import annotations

from flint import arb


def affine_range(c, g, qbox):
    """Exact range (lo, hi) of c + g.x over a rational box (fmpq arithmetic, no rounding)."""
    lo = hi = c
    for gi, (a, b) in zip(g, qbox):
        if gi > 0:
            lo, hi = lo + gi * a, hi + gi * b
        elif gi < 0:
            lo, hi = lo + gi * b, hi + gi * a
    return lo, hi


def knapsack_upper(l, u, v):
    """Upper end of max sum a_j v_j over l <= a <= u, sum a = 1, by weak LP duality:
    t + sum_j [u_j (v_j - t)^+ - l_j (t - v_j)^+] bounds it for any t; t comes from the greedy."""
    order = sorted(range(len(v)), key=lambda j: -float(v[j].mid()))
    mass = 1.0 - sum(float(x.mid()) for x in l)
    t = v[order[-1]]
    for j in order:
        mass -= float(u[j].mid()) - float(l[j].mid())
        if mass <= 0:
            t = v[j]
            break
    t = arb(t.mid())  # an exact point: the dual bound holds for any t
    total = t
    for j in range(len(v)):
        total += u[j] * arb.max(v[j] - t, arb(0)) - l[j] * arb.max(t - v[j], arb(0))
    return total.upper()
