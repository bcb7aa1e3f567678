"""Find the smallest [MAP] grid and a sharpness whose CERTIFIED error is below eps.

Float samples screen (G, kappa) pairs cheaply; only promising pairs go to the certifier,
and the answer is the first pair (in order of token count) that certifies.  The a-priori
recipe's token count is reported alongside, as the baseline.
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from .search.certify import certify
from .search.progress import progress_bar
from .search.sampling import errors_at

KAPPAS = ("1", "3/2", "2", "5/2", "3", "4", "6")


def sampled_sup(c, n=20000, seed=0):
    """Float64 estimate of sup |N - f| (random points plus the domain's corners); a screen only."""
    rng = np.random.default_rng(seed)
    lo = np.array([float(a) for a, _ in c.domain])
    hi = np.array([float(b) for _, b in c.domain])
    X = lo + (hi - lo) * rng.uniform(0, 1, (n, len(lo)))
    corners = np.array([[lo[d] if (k >> d) & 1 == 0 else hi[d] for d in range(len(lo))]
                        for k in range(2 ** len(lo))])
    X = np.concatenate([X, corners])
    return float(np.max(errors_at(c, X)))


def recipe_tokens(name, params, eps):
    """Tokens of the a-priori recipe (G = ceil(6BL/eps) per dimension) for the same f and domain."""
    import constructions
    from constructions import max_affine as M
    spec = constructions.REGISTRY[name]
    p = constructions.resolve_params(spec, dict(params))
    if name == "max-affine-seq":
        D = p["d"] * p["n"]
        _, domain, trees = M._common(p["f"], D, p["B"], p["lo"], p["hi"], n_out=p["d_o"] * p["n"])
    else:
        D, domain, trees = M._common(p["f"], p["D"], p["B"], p["lo"], p["hi"])
    L, osc, R = M._stats(trees, domain, M._opt_rational("L", p["L"]))
    G, _, _ = M.recipe(domain, Fraction(eps), L, osc, R)
    return p.get("n", 1) * (1 + G ** D), G


def tune(name, params: dict, eps, *, g_max=200, time_limit=120.0, log=None, progress=None):
    """Smallest certified (G, kappa); returns a dict with the construction, result and token counts."""
    import constructions
    eps = Fraction(eps)
    t0 = time.perf_counter()
    base = {k: v for k, v in params.items() if k not in ("G", "kappa", "beta")}
    tried = []
    G = 2
    bar = progress_bar(progress, unit=" candidates", desc="tune")
    while G <= g_max:
        best = None
        for kappa in KAPPAS:
            c = constructions.build(name, **base, G=G, kappa=kappa)
            s = sampled_sup(c)
            tried.append((G, kappa, s))
            bar.update()
            bar.set_postfix(G=G, kappa=kappa, refresh=False)
            if s < 0.85 * float(eps) and (best is None or s < best[1]):
                best = (kappa, s, c)
        if best is not None:
            kappa, s, c = best
            if log:
                log(f"  G={G} kappa={kappa}: sampled {s:.4g}; certifying ...")
            left = max(5.0, time_limit - (time.perf_counter() - t0))
            r = certify(c, eps, time_limit=left, progress=False)
            if r.status == "CERTIFIED":
                bar.close()
                rt, rG = recipe_tokens(name, base, eps)
                return {"construction": c, "result": r, "G": G, "kappa": kappa,
                        "tokens": c.network.n_tokens, "recipe_tokens": rt, "recipe_G": rG,
                        "seconds": time.perf_counter() - t0, "tried": tried}
        if time.perf_counter() - t0 > time_limit:
            break
        G = G + 1 if G < 16 else int(G * 1.15) + 1
    bar.close()
    return None
