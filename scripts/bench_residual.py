"""icl-gd by the residual route: certified bound against the sampled error, and time, per variant.

    python scripts/bench_residual.py            # the table of the README (one run, same machine)

For each variant: the largest error found by the route's own sampling (random prompts and
prompts with every r_i at the 1-D error's peak), then certify at 2x and at 1.05x that error and
check each certificate with the independent checker (``check_doc``); and, as the baseline in the
same run, the 5-D paving at 2x with a 60 s time limit.
"""
from __future__ import annotations

import os
import sys
import time
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import constructions  # noqa: E402
from certificates.check.document import check_doc  # noqa: E402
from certificates.confirm import confirmed_document  # noqa: E402
from verify.search.certify import certify  # noqa: E402
from verify.search.residual import certify_residual  # noqa: E402

VARIANTS = (("n = 2, d = 1 (defaults)", {}), ("n = 2, d = 2", {"d": 2}), ("n = 3, d = 2", {"d": 2, "n": 3}),
            ("n = 4, d = 1, logcosh", {"n": 4, "loss": "logcosh"}))


def main() -> int:
    print(f"{time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPU(s)\n")
    print("| icl-gd | inputs | sampled error | eps | certified bound | bound/sampled | 1-D boxes | certify s | "
          "check s | 5-D paving at 2x, 60 s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, params in VARIANTS:
        c = constructions.build("icl-gd", **params)
        probe = certify_residual(c, Fraction(1, 2))
        sampled = probe.observed
        paving = None
        for factor in (2, Fraction(105, 100)):
            eps = Fraction(sampled) * factor
            t = time.perf_counter()
            r = certify_residual(c, eps)
            secs = time.perf_counter() - t
            t = time.perf_counter()
            doc = confirmed_document(c, r)
            check_doc(doc)
            chk = time.perf_counter() - t
            if paving is None:
                p = certify(c, eps, time_limit=60, progress=False)
                paving = f"{p.status} ({p.boxes_evaluated} boxes)"
            print(f"| {label} | {len(c.domain)} | {sampled:.5g} | {float(eps):.5g} | {r.max_bound:.5g} | "
                  f"{r.max_bound / sampled:.3f} | {len(r.residual[2].leaves)} | {secs:.2f} | {chk:.2f} | "
                  f"{paving if factor == 2 else '-'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
