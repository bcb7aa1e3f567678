"""Benchmark: attncert against Sollya's infnorm on the 1-D ramp (same function, same interval).

Run: python scripts/bench_sollya.py [--sizes 5,9,17] [--repeat 3] [--budget 600]
The ramp network's output is written as a Sollya expression, sum_k e^{s_k} L_k / sum_k e^{s_k},
with the logits s_k in two equivalent exact forms: the network's own
gamma((x-L_0)^2 - (x-L_k)^2) and the Gaussian -gamma (x-L_k)^2 (the same function: the common
factor e^{gamma (x-L_0)^2} cancels), which Sollya handles far better; the better of the two is
the baseline.  On [-1/2, 1/2], inside [a, b] = [-1, 1] where the target is x (smooth), Sollya's
infnorm encloses sup |N - x|; eps is set to the upper end of that enclosure and attncert must
certify sup error < eps.  Timings: in-process (Sollya's time(infnorm(...)) against
verify.certify, median of --repeat after a warm-up) and whole process (`sollya script`
against `attncert certify` as a fresh Python process).  Then the whole domain [-2, 2], where the
target min(max(x, -1), 1) has kinks: Sollya's enclosure there is shown as it comes.
Prints markdown tables; skips with a message when `sollya` is not installed.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUM = r"[-+0-9.e]+"


def sollya_expr(p: int, form: str) -> str:
    """The ramp network (a=-1, b=1, kappa=8) as a Sollya expression in x, exact rationals only."""
    a, b, kappa = Fraction(-1), Fraction(1), Fraction(8)
    d = (b - a) / (p - 1)
    g = kappa / d ** 2
    L = [a + k * d for k in range(p)]
    q = lambda v: f"({v.numerator}/{v.denominator})"
    if form == "network":
        s = [f"{q(g)}*((x-{q(L[0])})^2-(x-{q(Lk)})^2)" for Lk in L]
    else:
        s = [f"(-{q(g)}*(x-{q(Lk)})^2)" for Lk in L]
    num = " + ".join(f"exp({sk})*{q(Lk)}" for sk, Lk in zip(s, L))
    den = " + ".join(f"exp({sk})" for sk in s)
    return f"(({num})/({den}))"


def run_sollya(expr: str, target: str, lo: str, hi: str, budget: float):
    """(enclosure (lo, hi) as decimal strings, in-process seconds, whole-process seconds) or None."""
    script = (f"prec=165;\nF = {expr};\nt = time(r = infnorm(F - ({target}), [{lo};{hi}]));\n"
              f"print(inf(r)); print(sup(r)); print(t);\nquit;\n")
    with tempfile.NamedTemporaryFile("w", suffix=".sol", delete=False) as fh:
        fh.write(script)
    try:
        t0 = time.perf_counter()
        r = subprocess.run(["sollya", fh.name], capture_output=True, text=True, timeout=budget)
        wall = time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        return None
    finally:
        os.unlink(fh.name)
    vals = re.findall(rf"^({_NUM})\s*$", r.stdout, re.M)
    if len(vals) < 3:
        raise RuntimeError(f"unexpected sollya output: {r.stdout[-300:]} {r.stderr[-300:]}")
    return (vals[0], vals[1]), float(vals[2]), wall


def cli_wall(p, lo, hi, eps, repeat):
    argv = [sys.executable, "-m", "certificates.cli", "certify", "ramp", "--set", f"p={p}", "--set", f"lo={lo}",
            "--set", f"hi={hi}", "--eps", eps, "--format", "json"]
    # as an installed attncert runs: its bytecode cached after the first run (some sandboxes set
    # PYTHONDONTWRITEBYTECODE, which would recompile every module of ours in every process)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = ROOT
    subprocess.run(argv, capture_output=True, text=True, env=env)   # warm-up: writes the bytecode
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise RuntimeError(f"attncert certify failed: {r.stdout[-300:]} {r.stderr[-300:]}")
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,9,17")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=600.0, help="seconds allowed per Sollya run")
    ap.add_argument("--forms", default="gaussian,network", help="Sollya logit forms to try")
    args = ap.parse_args()
    if shutil.which("sollya") is None:
        print("bench_sollya: `sollya` is not installed (Debian: apt-get install sollya); skipped")
        return 0
    sys.path.insert(0, ROOT)
    import constructions
    from verify.search.certify import certify
    ver = subprocess.run(["sollya", "--help"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"{time.strftime('%Y-%m-%d')}; {os.cpu_count()} CPU(s); {ver.strip()[:60]}\n")
    print("### Sub-domain [-1/2, 1/2] (target x, smooth); eps = upper end of Sollya's enclosure\n")
    print("| p | Sollya form | Sollya enclosure | Sollya infnorm s | attncert certify s | in-process ratio | "
          "sollya process s | attncert process s | whole-process ratio | attncert bound |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in [int(v) for v in args.sizes.split(",")]:
        best = None
        for form in args.forms.split(","):
            r = run_sollya(sollya_expr(p, form), "x", "-1/2", "1/2", args.budget)
            if r is None:
                print(f"| {p} | {form} | (no answer in {args.budget:g} s) | > {args.budget:g} | | | | | | |", flush=True)
                continue
            (slo, shi), s_in, s_wall = r
            if best is None or Fraction(shi) < Fraction(best[1][1]):
                best = (form, (slo, shi), s_in, s_wall)
            if form == "network" and best[0] != form:
                print(f"| {p} | {form} | [{float(slo):.6g}, {float(shi):.6g}] | {s_in:.3f} | | | {s_wall:.2f} | | | |",
                      flush=True)
        if best is None:
            continue
        form, (slo, shi), s_in, s_wall = best
        c = constructions.build("ramp", p=p, lo="-1/2", hi="1/2")
        res = certify(c, shi, progress=False)   # warm-up (and the result we report)
        if res.status != "CERTIFIED":
            print(f"| {p} | {form} | [{slo}, {shi}] | {s_in:.3f} | {res.status} | | | | | |")
            continue
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            certify(c, shi, progress=False)
            times.append(time.perf_counter() - t0)
        a_in = statistics.median(times)
        a_wall = cli_wall(p, "-1/2", "1/2", shi, args.repeat)
        print(f"| {p} | {form} | [{float(slo):.9g}, {float(shi):.9g}] | {s_in:.3f} | {a_in:.3f} | {s_in / a_in:.1f}x | "
              f"{s_wall:.2f} | {a_wall:.2f} | {s_wall / a_wall:.1f}x | {res.max_bound:.9g} |", flush=True)

    print("\n### Whole domain [-2, 2] (target min(max(x,-1),1) = (|x+1| - |x-1|)/2, kinks at +-1)\n")
    print("| p | Sollya form | Sollya enclosure | Sollya s | attncert eps (1.02 x dense sup) | attncert certify s | attncert bound |")
    print("|---|---|---|---|---|---|---|")
    from verify.search.sampling import max_error_sampled
    for p in [int(v) for v in args.sizes.split(",")][:2]:
        c = constructions.build("ramp", p=p)
        sup, _, _ = max_error_sampled(c, 400_001)
        eps = repr(sup * 1.02)
        t0 = time.perf_counter()
        res = certify(c, eps, progress=False)
        a_t = time.perf_counter() - t0
        r = run_sollya(sollya_expr(p, "gaussian"), "(abs(x+1) - abs(x-1))/2", "-2", "2", args.budget)
        enc = f"(no answer in {args.budget:g} s)" if r is None else f"[{float(r[0][0]):.6g}, {float(r[0][1]):.6g}]"
        st = f"> {args.budget:g}" if r is None else f"{r[1]:.3f}"
        print(f"| {p} | gaussian | {enc} | {st} | {float(eps):.6g} | {a_t:.3f} | {res.max_bound:.6g} ({res.status}) |",
              flush=True)
    print(f"\nreproduce: python scripts/bench_sollya.py --sizes {args.sizes} --repeat {args.repeat} "
          f"--budget {args.budget:g} --forms {args.forms}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
