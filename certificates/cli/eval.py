"""``attncert eval NAME``: the largest sampled error (numpy, cupy or mpmath)."""
from __future__ import annotations

import time

from .common import (EXIT_OK, UserError, add_construction, add_format, apriori_phrase, backend, command,
                     construction_from_args, emit)


def cmd_eval(args) -> int:
    import numpy as np
    c = construction_from_args(args)
    if args.points < 1:
        raise UserError("--points must be at least 1")
    t0 = time.perf_counter()
    if args.backend == "mpmath":
        import mpmath
        from constructions.expr import mp_eval
        from fractions import Fraction
        from verify.forward import forward_mp
        n = min(args.points, 100_000)
        rng = np.random.default_rng(0)
        best, arg = -1, None
        for _ in range(n):
            x = [Fraction(a) + (Fraction(b) - Fraction(a)) * Fraction(int(rng.integers(0, 2 ** 30)), 2 ** 30)
                 for a, b in c.domain]
            with mpmath.workdps(args.dps):
                y = forward_mp(c.network, x, args.dps)
                pt = {name: mpmath.mpf(v.numerator) / v.denominator for name, v in zip(c.inputs, x)}
                e = max(abs(yo - mp_eval(t, pt)) for yo, t in zip(y, c.target))
            if e > best:
                best, arg = e, x
        best_f, arg_f, npts = float(best), [float(v) for v in arg], n
    else:
        xp = backend(args.backend)
        from verify.search.sampling import max_error_sampled
        best_f, arg_f, npts = max_error_sampled(c, args.points, xp, progress=None if args.format == "text" else False)
    secs = time.perf_counter() - t0
    emit(args, f"max sampled error {best_f:.6g} at x = {arg_f} ({npts} points, {args.backend}, {secs:.2f}s); "
               + apriori_phrase(c),
         {"max_error": best_f, "at": arg_f, "points": npts, "backend": args.backend, "seconds": secs,
          "apriori_bound": c.apriori_float()})
    return EXIT_OK


def add_command(sub) -> None:
    sp = command(sub, "eval", "the largest sampled error |network - target| (an estimate, not a proof)",
                 "attncert eval ramp --set p=41 --backend numpy --points 1000000")
    add_construction(sp)
    add_format(sp)
    sp.set_defaults(fn=cmd_eval)
    sp.add_argument("--backend", choices=["mpmath", "numpy", "cupy"], default="numpy",
                    help="numpy/cupy: float64 on a regular grid; mpmath: random points at --dps digits")
    sp.add_argument("--points", type=int, default=100_000, help="number of sample points (mpmath: at most 100000)")
    sp.add_argument("--dps", type=int, default=50, help="mpmath decimal digits")
