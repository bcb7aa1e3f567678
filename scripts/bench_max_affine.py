"""Benchmark [MAP]: certify time, bound/observed ratio, tuned vs a-priori token counts (1-D, 2-D, 3-D).

Run: python scripts/bench_max_affine.py [--quick]
For each case `tune` finds the smallest certified grid; the a-priori recipe's token count
is the baseline (ratio = recipe tokens / tuned tokens).  The tuned construction's true sup
error is estimated by a dense float sample (an estimate; the bound is the proof).  As a
second same-run baseline, the default 2-D case is certified with the grid path and with
the general affine path (ratio = general time / grid time), and checked independently.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import constructions
from certificates.check.document import check_doc
from certificates.model import certificate_doc
from verify.search.certify import certify
from verify.tune_map import sampled_sup, tune

CASES = [("1-D", "max-affine", {"f": "sin(3*x0)"}, "1/50"),
         ("2-D", "max-affine", {"f": "sin(2*x0)*cos(3*x1)", "B": "1"}, "1/20"),
         ("3-D", "max-affine", {"f": "sin(x0+x1)*x2", "B": "1"}, "1/5")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the general-path timing")
    args = ap.parse_args()
    print(f"{'case':<5} {'eps':>6} {'G':>4} {'kappa':>5} {'tokens':>7} {'recipe':>9} {'ratio':>8} "
          f"{'bound':>9} {'observed':>9} {'b/obs':>6} {'certify s':>9} {'check s':>8}")
    for label, name, params, eps in CASES:
        out = tune(name, params, eps, time_limit=600)
        if out is None:
            print(f"{label:<5} {eps:>6} tune found nothing")
            continue
        c, r = out["construction"], out["result"]
        t = time.perf_counter()
        check_doc(certificate_doc(c, r))
        tc = time.perf_counter() - t
        obs = max(r.observed, sampled_sup(c, n=200_000, seed=1))
        print(f"{label:<5} {eps:>6} {out['G']:>4} {out['kappa']:>5} {out['tokens']:>7} {out['recipe_tokens']:>9} "
              f"{out['recipe_tokens'] / out['tokens']:>7.0f}x {r.max_bound:>9.5f} {obs:>9.5f} "
              f"{r.max_bound / obs:>6.3f} {r.seconds:>9.2f} {tc:>8.2f}")
    if args.quick:
        return
    c = constructions.build("max-affine", f="sin(2*x0)*cos(3*x1)", B=1)
    t = time.perf_counter()
    r = certify(c, "1/20", progress=False)
    tg = time.perf_counter() - t
    import verify.enclose.grid as gb
    from verify.enclose.affine import AffineBounder
    orig = gb.GridBounder
    gb.GridBounder = lambda cons, xp: AffineBounder(cons, xp)  # force the general path
    try:
        t = time.perf_counter()
        ra = certify(c, "1/20", progress=False)
        ta = time.perf_counter() - t
    finally:
        gb.GridBounder = orig
    print(f"2-D default ({c.network.n_tokens} tokens, eps 1/20): grid path {tg:.2f}s ({len(r.leaves)} boxes), "
          f"general path {ta:.2f}s ({len(ra.leaves)} boxes, {ra.status}); general/grid time {ta / tg:.1f}x")


if __name__ == "__main__":
    main()
