"""Benchmark: certify time and bound/observed ratio for a few ramp sizes.

Run: python scripts/bench_ramp.py [--repeat 3]
For each size the true sup error is estimated by a dense float sample; we then
certify at eps = 1.02 x that and at eps = 1.10 x that, and report the median time
and the ratio of the largest proved bound to the largest observed error.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import constructions
from verify.search.certify import certify
from verify.forward import float_weights, forward_float


def dense_sup(c, n=400_001):
    (a, b), = c.domain
    w = float_weights(c.network)
    best = 0.0
    pa, pb = float(c.param_dict()["a"]), float(c.param_dict()["b"])
    for X in np.array_split(np.linspace(float(a), float(b), n), 40):
        y = forward_float(c.network, X[:, None], np, w)[:, 0]
        best = max(best, float(np.max(np.abs(y - np.clip(X, pa, pb)))))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| p | kappa | sup error (dense) | eps/sup | certify s (median) | boxes | bound/observed | a-priori/sup |")
    print("|---|---|---|---|---|---|---|---|")
    for p, kappa in [(9, "27/10"), (41, 8), (41, "27/10"), (201, 30)]:
        c = constructions.build("ramp", p=p, kappa=kappa)
        sup = dense_sup(c)
        for f in (1.10, 1.02):
            times, res = [], None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                res = certify(c, repr(sup * f), progress=False)
                times.append(time.perf_counter() - t0)
            assert res.status == "CERTIFIED", res.reason
            print(f"| {p} | {kappa} | {sup:.4g} | {f} | {statistics.median(times):.3f} | {len(res.leaves)} | "
                  f"{res.max_bound / res.observed:.4f} | {c.apriori_float() / sup:.2f} |")


if __name__ == "__main__":
    main()
