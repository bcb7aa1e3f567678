"""Tuning the ramp: the sharpness kappa that minimises the certified error, and the fewest anchors for eps.

The search steers by dense float samples (cheap estimates) but every number it reports
as a result is a certified bound from ``verify.certify``: a sampled optimum is only a
candidate until the certifier proves its error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .search.certify import CERTIFIED, certify
from .search.progress import progress_bar
from .search.sampling import max_error_sampled

KAPPA_DEN = 100  # tuned kappa is a rational with this denominator


@dataclass
class KappaResult:
    kappa: Fraction
    sampled: float       # dense-sample sup error (an estimate)
    certified: float     # proved sup error bound (max box bound)
    eps: Fraction        # the eps that was certified
    delta: Fraction      # anchor spacing
    scan: list           # (kappa, sampled sup) pairs of the search


def _build(params: dict, p: int, kappa):
    import constructions
    return constructions.build("ramp", **{**params, "p": p, "kappa": kappa})


def sampled_sup(params, p, kappa, points=None) -> float:
    c = _build(params, p, kappa)
    return max_error_sampled(c, points or max(20_001, 300 * p))[0]


def certified_bound(c, sup: float, ratios=(1.02, 1.05, 1.1, 1.25, 1.5, 2.0), **kw):
    """Certify at eps just above a sampled sup; returns (result, eps) of the first that holds."""
    for r in ratios:
        eps = Fraction(repr(sup * r))
        res = certify(c, eps, progress=False, **kw)
        if res.status == CERTIFIED:
            return res, eps
    return res, eps


def tune_kappa(params: dict, p: int, lo=0.25, hi=40.0, grid=40, progress=None, **kw) -> KappaResult:
    """Scan kappa geometrically, refine by golden section on the sampled sup, certify the best."""
    ks = np.geomspace(lo, hi, grid)
    scan = []
    bar = progress_bar(progress, total=grid + 36, unit=" kappa", desc="tune")
    for k in ks:
        kq = Fraction(round(k * KAPPA_DEN), KAPPA_DEN)
        scan.append((kq, sampled_sup(params, p, kq)))
        bar.update()
    i = int(np.argmin([s for _, s in scan]))
    a = float(scan[max(i - 1, 0)][0])
    b = float(scan[min(i + 1, len(scan) - 1)][0])
    g = (math.sqrt(5) - 1) / 2
    best = scan[i]
    for _ in range(18):
        if b - a < 1.0 / KAPPA_DEN:
            break
        m1, m2 = b - g * (b - a), a + g * (b - a)
        k1 = Fraction(round(m1 * KAPPA_DEN), KAPPA_DEN)
        k2 = Fraction(round(m2 * KAPPA_DEN), KAPPA_DEN)
        s1, s2 = sampled_sup(params, p, k1), sampled_sup(params, p, k2)
        bar.update(2)
        scan += [(k1, s1), (k2, s2)]
        if s1 < s2:
            b = m2
        else:
            a = m1
        best = min(best, (k1, s1), (k2, s2), key=lambda t: t[1])
    bar.close()
    kappa, sup = best
    c = _build(params, p, kappa)
    res, eps = certified_bound(c, sup, **kw)
    delta = (Fraction(c.param_dict()["b"]) - Fraction(c.param_dict()["a"])) / (p - 1)
    return KappaResult(kappa, sup, res.max_bound if res.status == CERTIFIED else math.inf, eps,
                       delta, sorted(scan))


@dataclass
class AnchorsResult:
    p: int
    kappa: Fraction
    certified: float
    p_apriori: int
    kappa_apriori: Fraction | None
    tried: list   # (p, status, max bound)


def apriori_recipe(a, b, eps):
    """Fewest anchors for which the a-priori bound Delta/2 + 2(b-a)q/(1-q) can be made <= eps.

    Delta/2 < eps is necessary; kappa then spends the rest of the budget on the tail
    term (the smallest such kappa is returned, rounded up to 1/100).
    """
    a, b, eps = Fraction(a), Fraction(b), Fraction(eps)
    p = int((b - a) / (2 * eps)) + 2
    while True:
        delta = (b - a) / (p - 1)
        rest = float(eps - delta / 2)
        if rest > 0:
            # 2(b-a) q/(1-q) <= rest  <=>  q <= rest / (2(b-a) + rest)
            q = rest / (2 * float(b - a) + rest)
            kappa = Fraction(math.ceil(-math.log(q) * KAPPA_DEN) + 1, KAPPA_DEN)
            return p, kappa
        p += 1


def fewest_anchors(params: dict, eps, kappa=Fraction(27, 10), p_max=5000, progress=None, **kw) -> AnchorsResult:
    """Smallest p whose ramp (at the given kappa) certifies eps; bisection on p."""
    eps = Fraction(eps)
    a, b = Fraction(params.get("a", -1)), Fraction(params.get("b", 1))
    tried = []
    bar = progress_bar(progress, unit=" candidates", desc="tune")

    def ok(p):
        c = _build(params, p, kappa)
        res = certify(c, eps, progress=False, **kw)
        tried.append((p, res.status, res.max_bound))
        bar.update()
        bar.set_postfix(p=p, status=res.status, refresh=False)
        return res.status == CERTIFIED, res

    lo_p, hi_p = 1, 2
    while True:
        good, res = ok(hi_p)
        if good:
            best = res
            break
        lo_p, hi_p = hi_p, hi_p * 2
        if hi_p > p_max:
            raise ValueError(f"no p <= {p_max} certifies eps = {eps} at kappa = {kappa}")
    while hi_p - lo_p > 1:
        mid = (lo_p + hi_p) // 2
        good, res = ok(mid)
        if good:
            hi_p, best = mid, res
        else:
            lo_p = mid
    bar.close()
    pa, ka = apriori_recipe(a, b, eps)
    return AnchorsResult(hi_p, Fraction(kappa), best.max_bound, pa, ka, tried)
