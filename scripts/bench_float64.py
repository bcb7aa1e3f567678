"""Certify time of the float64 weights against the exact weights (issue 14: at most 3x).

For every row of the certificate library (scripts/make_library.py), the two constructions'
defaults that are not library rows, and the analytic route where it certifies: the median
wall time of ``verify.certify`` (or ``certify_analytic``) on the exact construction and on
its float64 version (``constructions.float64.to_float64``), and their ratio.  The conversion
time (to_float64) is shown separately and is included in the end-to-end ratio.

    python scripts/bench_float64.py                # median of 3 runs per row
    python scripts/bench_float64.py --repeat 1 --quick   # without the 401-token 2-D rows

Exit status 1 if a ratio is above --limit (3).  A measurement, not a test.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import constructions  # noqa: E402
from constructions.float64 import to_float64  # noqa: E402
from verify.analytic.certify import certify_analytic  # noqa: E402
from verify.search.certify import certify  # noqa: E402

_spec = importlib.util.spec_from_file_location("make_library", os.path.join(ROOT, "scripts", "make_library.py"))
LIB = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(LIB)

BIG = {"max-affine-2d-sin2x-cos3y", "cross-attention default", "max-affine-seq default"}


def rows():
    """(label, name, exact params, eps, method)."""
    out = [(f[:-5], n, {k: v for k, v in p.items() if k != "float64"}, e, "paving") for f, n, p, e, _ in LIB.LIBRARY]
    out += [("cross-attention default", "cross-attention", {}, "1/10", "paving"),
            ("max-affine-seq default", "max-affine-seq", {}, "1/10", "paving"),
            ("max-affine-1d-sin3x analytic", "max-affine", {"f": "sin(3*x0)", "G": "32", "kappa": "3"}, "1/20",
             "analytic"),
            ("cross-attention-2d analytic", "cross-attention", {"f": "sin(x0)*cos(2*x1)", "G": "8"}, "3/20",
             "analytic"),
            ("ramp p=65 kappa=1e6 analytic", "ramp", {"p": "65", "kappa": "1000000", "lo": "-2", "hi": "3"},
             "0.015626", "analytic")]
    return out


def run(c, eps, method):
    t = time.perf_counter()
    if method == "paving":
        r = certify(c, eps, progress=False)
    else:
        r = certify_analytic(c, eps, method=method)
    return time.perf_counter() - t, r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--limit", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="skip the 401-token 2-D grids")
    args = ap.parse_args(argv)
    print(f"| row | method | exact status | exact bound | exact s | float64 status | float64 bound | float64 s | "
          f"to_float64 s | ratio | ratio incl. conversion |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for label, name, params, eps, method in rows():
        if args.quick and (label in BIG or label.startswith("max-affine-2d")):
            continue
        c = constructions.build(name, **params)
        conv, te, tf = [], [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            f = to_float64(c)
            conv.append(time.perf_counter() - t)
            s, re_ = run(c, eps, method)
            te.append(s)
            s, rf = run(f, eps, method)
            tf.append(s)
        e, g, k = statistics.median(te), statistics.median(tf), statistics.median(conv)
        ratio, ratio_all = g / e, (g + k) / e
        worst = max(worst, ratio_all)
        print(f"| {label} | {method} | {re_.status} | {re_.max_bound:.6g} | {e:.3f} | {rf.status} | "
              f"{rf.max_bound:.6g} | {g:.3f} | {k:.3f} | {ratio:.2f} | {ratio_all:.2f} |", flush=True)
    print(f"\nlargest ratio (float64 certify + conversion) / exact certify: {worst:.2f} (limit {args.limit})")
    return 0 if worst <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
