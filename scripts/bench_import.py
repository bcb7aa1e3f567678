"""Import + certify of an exported 1,000-anchor network against certifying the same network built natively.

The network is the float64 ramp with p anchors (p = 1000 by default; certify --float64 makes
exactly the weights that the exporters write).  Native: build it and certify it.  Imported:
its certificate is exported to ONNX (and torch, safetensors), the file is imported with
``attncert import`` (exact rationals from the floats) and the imported network is certified on
the same domain against the same target and eps.  Each side runs in a fresh process, median of
``--repeat`` runs; peak memory is the process's maximum resident set size.

    python scripts/bench_import.py                  # p = 1000, ONNX, 3 runs per side
    python scripts/bench_import.py --p 1000 --formats onnx,torch,safetensors --repeat 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _eps(p):
    """eps = 1.1 x the dense-sample sup error of the float64 ramp (computed once, exact)."""
    from fractions import Fraction

    import numpy as np

    import constructions
    from constructions.float64 import to_float64
    from verify.forward import forward_float
    c = to_float64(constructions.build("ramp", p=p, kappa=8, lo=-2, hi=2))
    xs = np.linspace(-2, 2, 100_001)
    err = max(np.abs(forward_float(c.network, xs[i:i + 4096, None])[:, 0] - np.clip(xs[i:i + 4096], -1, 1)).max()
              for i in range(0, len(xs), 4096))
    return c, Fraction(float(err) * 1.1).limit_denominator(10 ** 9)


def child(args) -> int:
    """One timed side, in this fresh process; prints JSON."""
    import verify
    t0 = time.perf_counter()
    if args.side == "native":
        import constructions
        from constructions.float64 import to_float64
        c = to_float64(constructions.build("ramp", p=args.p, kappa=8, lo=-2, hi=2))
        t_prep = time.perf_counter() - t0
    else:
        from certificates.imports import document, import_model
        from constructions.imported import build_imported
        imp = import_model(args.file)
        c = build_imported(document(imp), "min(max(x0, -1), 1)", "x0=-2:2")
        t_prep = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = verify.certify(c, args.eps, progress=False)
    t_cert = time.perf_counter() - t1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"status": res.status, "prep": t_prep, "certify": t_cert, "total": t_prep + t_cert,
                      "boxes": res.boxes_evaluated, "bound": res.max_bound, "rss_mib": rss / 1024,
                      "weights": c.network.weights_hash()}))
    return 0


def run_side(side, p, eps, file=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--p", str(p), "--eps", str(eps)]
    if file:
        cmd += ["--file", file]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--p", type=int, default=1000, help="anchors (default 1000)")
    ap.add_argument("--formats", default="onnx", help="export formats to import (onnx,torch,safetensors)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    ap.add_argument("--child", dest="side", help=argparse.SUPPRESS)
    ap.add_argument("--eps", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        return child(args)
    import verify
    from certificates.export import export
    from certificates.model import certificate_doc
    c, eps = _eps(args.p)
    res = verify.certify(c, eps, progress=False)
    if res.status != "CERTIFIED":
        print(f"the native network does not certify at eps {eps}: {res.status}", file=sys.stderr)
        return 1
    doc = certificate_doc(c, res)
    folder = tempfile.mkdtemp(prefix="bench-import-")
    rows = []
    native = [run_side("native", args.p, eps) for _ in range(args.repeat)]
    for fmt in args.formats.split(","):
        path = os.path.join(folder, f"ramp{args.p}.{ {'onnx': 'onnx', 'torch': 'pt', 'safetensors': 'safetensors'}[fmt] }")
        export(doc, fmt, path)
        imported = [run_side("imported", args.p, eps, path) for _ in range(args.repeat)]
        same = all(r["weights"] == native[0]["weights"] for r in imported)
        med = lambda runs, k: statistics.median(r[k] for r in runs)
        rows.append((fmt, med(native, "total"), med(imported, "prep"), med(imported, "certify"), med(imported, "total"),
                     med(native, "rss_mib"), med(imported, "rss_mib"), same, imported[0]["status"],
                     os.path.getsize(path)))
    print(f"ramp p = {args.p} (float64), eps = {float(eps):.6g}, {native[0]['boxes']} boxes, median of {args.repeat} "
          "fresh processes per side\n")
    print("| format | file bytes | native build + certify s | import s | imported certify s | import + certify s | "
          "time ratio | native peak RSS MiB | imported peak RSS MiB | memory ratio | same weights sha256 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for fmt, nat, imp_s, cert_s, tot, rn, ri, same, st, size in rows:
        ratio = tot / nat
        worst = max(worst, ratio, ri / rn)
        print(f"| {fmt} | {size} | {nat:.2f} | {imp_s:.2f} | {cert_s:.2f} | {tot:.2f} | {ratio:.2f}x | {rn:.0f} | {ri:.0f} "
              f"| {ri / rn:.2f}x | {'yes' if same else 'NO'} |")
    print(f"\nworst ratio {worst:.2f}x (target: within 2x)")
    return 0 if worst <= 2.0 and all(r[7] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
