"""Rate experiments of [UAP] with certified numbers: sup error vs p (ramp) and vs H (ramp-multihead).

Run: python scripts/rates.py [--out docs]   (writes rates.png and rates.md there)
For each size a dense float sample estimates the sup error; the certifier then proves
a bound at eps = 1.02 x (1.05 x, ...) that estimate, and the proved bound is what we
plot.  The paper's published code reports sampled MSE of trained float32 models; these
are proved sup errors of exact constructions on [lo, hi] = [-2, 2], Range_[-1, 1].
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import constructions
from verify.search.sampling import max_error_sampled
from verify.tune import certified_bound

KAPPA = "27/10"
RAMP_P = (3, 5, 9, 17, 33, 65, 129, 257)
MH_N = 5
MH_H = (1, 2, 4, 8, 16, 32, 64)


def row(c, anchors):
    sup, _, _ = max_error_sampled(c, max(100_001, 400 * anchors))
    t0 = time.perf_counter()
    res, eps = certified_bound(c, sup)
    return {"sampled": sup, "certified": res.max_bound, "status": res.status, "eps": float(eps),
            "seconds": time.perf_counter() - t0, "boxes": len(res.leaves), "apriori": c.apriori_float()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs")
    args = ap.parse_args()
    ramp, mh = [], []
    for p in RAMP_P:
        c = constructions.build("ramp", p=p, kappa=KAPPA)
        ramp.append({"p": p, "anchors": p, **row(c, p)})
        print("ramp", ramp[-1], flush=True)
    for H in MH_H:
        c = constructions.build("ramp-multihead", n=MH_N, H=H, kappa=KAPPA)
        mh.append({"H": H, "anchors": H * MH_N, **row(c, H * MH_N)})
        print("ramp-multihead", mh[-1], flush=True)
    os.makedirs(args.out, exist_ok=True)
    _plot(ramp, mh, os.path.join(args.out, "rates.png"))
    _atomic_text(os.path.join(args.out, "rates.md"), _table(ramp, mh))
    print(_table(ramp, mh))


def _table(ramp, mh) -> str:
    lines = [f"Certified sup error on [-2, 2] of Range_[-1,1], kappa = {KAPPA} (`python scripts/rates.py`).", "",
             "| construction | p or H | anchors | certified sup error | sampled sup | certified x anchors | a-priori bound | certify s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in ramp:
        lines.append(f"| ramp | p = {r['p']} | {r['anchors']} | {r['certified']:.4g} | {r['sampled']:.4g} | "
                     f"{r['certified'] * r['anchors']:.4f} | {r['apriori']:.4g} | {r['seconds']:.2f} |")
    for r in mh:
        lines.append(f"| ramp-multihead (n = {MH_N}) | H = {r['H']} | {r['anchors']} | {r['certified']:.4g} | "
                     f"{r['sampled']:.4g} | {r['certified'] * r['anchors']:.4f} | {r['apriori']:.4g} | {r['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def _plot(ramp, mh, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.loglog([r["p"] for r in ramp], [r["certified"] for r in ramp], "o-", label="certified sup error")
    ax1.loglog([r["p"] for r in ramp], [r["apriori"] for r in ramp], "s--", label="a-priori bound")
    ax1.set_xlabel("anchors p"); ax1.set_ylabel("sup |F - Range|"); ax1.set_title("ramp (one head)")
    ax1.legend()
    ax2.loglog([r["H"] for r in mh], [r["certified"] for r in mh], "o-", label="certified sup error")
    ax2.loglog([r["H"] for r in mh], [r["apriori"] for r in mh], "s--", label="a-priori bound")
    ax2.set_xlabel(f"heads H (n = {MH_N} tokens)"); ax2.set_title("ramp-multihead")
    ax2.legend()
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rates-", suffix=".png", dir=folder)
    os.close(fd)
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


def _atomic_text(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rates-", suffix=".md", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
