"""Whole-certify time with 1 and N local worker processes, medians of --repeat runs, same machine,
same run; the ratio is the figure (these machines are noisy).

    python scripts/bench_workers.py                               # ramp p=1001, kappa=4, eps=0.0004
    python scripts/bench_workers.py --set p=201 --set kappa=30 --eps 0.00424 --workers 1,2 --repeat 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import constructions
from verify.search.certify import certify
from verify.search.executors import open_executor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="ramp")
    ap.add_argument("--set", action="append", default=None, metavar="K=V")
    ap.add_argument("--eps", default="0.0004")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (1 runs in process)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    sets = a.set if a.set is not None else (["p=1001", "kappa=4"] if a.name == "ramp" else [])
    c = constructions.build(a.name, **dict(s.split("=", 1) for s in sets))
    rows = []
    for w in [int(v) for v in a.workers.split(",")]:
        times, boxes, status = [], 0, ""
        for _ in range(a.repeat):
            with open_executor(w, None) as ex:
                t = time.perf_counter()
                r = certify(c, a.eps, progress=False, executor=ex, min_units=w)
                times.append(time.perf_counter() - t)
            boxes, status = r.boxes_evaluated, r.status
        rows.append((w, statistics.median(times), boxes, status))
    base = rows[0][1]
    print(f"{a.name} {' '.join(sets)} eps={a.eps}, median of {a.repeat}")
    print("| workers | certify s | boxes/s | speed-up | status |")
    print("|---|---|---|---|---|")
    for w, t, boxes, status in rows:
        print(f"| {w} | {t:.2f} | {boxes / t:.3g} | {base / t:.2f}x | {status} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
