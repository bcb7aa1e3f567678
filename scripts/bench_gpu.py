"""Benchmark: the same branch and bound on CuPy against NumPy (target >= 50x), when a device is there.

Run: python scripts/bench_gpu.py [--repeat 3] [--numpy-budget 120]
For ramps with p = 1001..10000 anchors at a tight eps (1.1 x the dense sup error), it
reports (a) end-to-end certify time on CuPy (median of --repeat) and on NumPy (one run,
stopped after --numpy-budget seconds, in which case the ratio is one of boxes per second
over the part it did), and (b) the throughput of one GPU-sized work unit (verify.search.batches.device_batch boxes) on each
backend (median of --repeat; NumPy on at most 16384 boxes, as its rate per box is flat in
the batch size), the number that does not depend on the search shape.  The whole script takes
several minutes; --sizes runs a subset.
Prints a markdown table; without a usable CUDA device it says so and exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def gpu():
    try:
        import cupy
        cupy.zeros(1).sum().item()
        return cupy
    except Exception as e:  # no cupy, no driver, no device
        print(f"bench_gpu: no usable CUDA device ({type(e).__name__}); nothing to measure")
        return None


def unit_rate(c, xp, n, repeat):
    """Boxes per second of one work unit of n boxes at level 20 (a mid-search size)."""
    from verify.search.batches import Job, evaluate_batch
    job = Job(c, "cupy" if xp.__name__ == "cupy" else "numpy")
    k = 20
    I = (np.arange(n, dtype=np.int64) * ((1 << k) // n)).reshape(n, 1)
    K = np.full((n, 1), k, dtype=np.int64)
    evaluate_batch(job, I[:1024], K[:1024])     # warm-up: kernels compiled, data prepared
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        evaluate_batch(job, I, K)
        if xp.__name__ == "cupy":
            xp.cuda.Device().synchronize()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--numpy-budget", type=float, default=45.0)
    ap.add_argument("--numpy-e2e-max-p", type=int, default=4001,
                    help="above this p, NumPy is timed on one work unit only (a generation can outlast the budget)")
    ap.add_argument("--sizes", default="1001,4001,10000")
    args = ap.parse_args()
    cp = gpu()
    if cp is None:
        return 0
    import constructions
    from verify.search.batches import device_batch
    from verify.search.certify import certify
    from verify.search.sampling import max_error_sampled
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"device: {dev}; {time.strftime('%Y-%m-%d')}\n")
    print("| p | eps | boxes | CuPy certify s | NumPy certify s | end-to-end ratio | unit CuPy box/s | NumPy box/s | unit ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in [int(v) for v in args.sizes.split(",")]:
        c = constructions.build("ramp", p=p, kappa=8)
        sup, _, _ = max_error_sampled(c, 4_000_001, cp)
        eps = repr(sup * 1.1)
        nb = device_batch(c)
        certify(c, eps, xp=cp, batch=nb, progress=False, max_boxes=10_000)   # warm-up
        gt, res = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = certify(c, eps, xp=cp, batch=nb, progress=False)
            gt.append(time.perf_counter() - t0)
        assert res.status == "CERTIFIED", res.reason
        g = statistics.median(gt)
        if p > args.numpy_e2e_max_p:
            ntxt, ratio = "(unit only)", "see unit ratio"
        else:
            t0 = time.perf_counter()
            rn = certify(c, eps, progress=False, time_limit=args.numpy_budget)
            nt = time.perf_counter() - t0
        if p > args.numpy_e2e_max_p:
            pass
        elif rn.status == "CERTIFIED":
            ntxt, ratio = f"{nt:.2f}", f"{nt / g:.0f}x"
        else:   # stopped: compare boxes per second over the part it did
            ntxt = f"> {nt:.0f} ({rn.boxes_evaluated} boxes)"
            ratio = f"~{(res.boxes_evaluated / g) / (rn.boxes_evaluated / nt):.0f}x (box/s; NumPy stopped)"
        rg, rc = unit_rate(c, cp, nb, args.repeat), unit_rate(c, np, min(nb, 16384), 1)
        print(f"| {p} | {float(eps):.4g} | {res.boxes_evaluated} | {g:.2f} | {ntxt} | {ratio} | "
              f"{rg:.3g} | {rc:.3g} | {rg / rc:.0f}x |", flush=True)
    print(f"\nreproduce: python scripts/bench_gpu.py --repeat {args.repeat} --numpy-budget {args.numpy_budget:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
