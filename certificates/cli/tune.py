"""``attncert tune``: for the ramp, the certified-optimal sharpness for given p, or the fewest anchors
for eps; for the [MAP] max-affine family, the smallest certified grid for eps."""
from __future__ import annotations

from .common import (EXIT_FAIL, EXIT_OK, UserError, add_format, command, emit, parse_eps, positive_finite, sets,
                     writable_output)

MAP_NAMES = ("max-affine", "cross-attention", "max-affine-seq")


def add_command(sub) -> None:
    sp = command(sub, "tune", "ramp: kappa for a given p (--set p=...) or the fewest p for --eps; "
                 "[MAP] max-affine family: the smallest certified grid for --eps",
                 "attncert tune ramp --set p=41\nattncert tune max-affine --set f='sin(3*x0)' --eps 0.02")
    sp.add_argument("name", choices=("ramp",) + MAP_NAMES, help="construction to tune")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                    help="an exact parameter value, e.g. --set p=41 (repeatable)")
    sp.add_argument("--max-tokens", type=int, default=None, metavar="N",
                    help="refuse constructions with more than N tokens, estimated before building (default 400000)")
    sp.add_argument("--eps", default=None, help="target error (required for the [MAP] family)")
    sp.add_argument("--kappa", default="27/10", help="ramp: sharpness used with --eps (exact rational)")
    sp.add_argument("--max-grid", type=int, default=200, help="[MAP]: largest grid tried")
    sp.add_argument("--time-limit", type=float, default=300.0, help="[MAP]: seconds")
    sp.add_argument("-o", "--output", help="[MAP]: write the tuned certificate")
    add_format(sp)
    sp.set_defaults(fn=cmd_tune)


def cmd_tune(args) -> int:
    if args.name in MAP_NAMES:
        if args.eps is None:
            raise UserError(f"tune {args.name} needs --eps")
        return cmd_tune_map(args)
    from constructions import REGISTRY
    from constructions.base import resolve_params
    from constructions.exact import ParameterError, parse_rational
    from verify import tune
    given = sets(args.set)
    try:
        base = resolve_params(REGISTRY["ramp"], given)
    except ParameterError as e:
        raise UserError(str(e)) from None
    if args.eps is None:
        if "kappa" in given:
            raise UserError("tune ramp without --eps searches kappa; do not --set kappa")
        params = {k: v for k, v in base.items() if k not in ("p", "kappa")}
        r = tune.tune_kappa(params, base["p"])
        hard = float(r.delta) / 2
        info = {"p": base["p"], "kappa": str(r.kappa), "certified_sup_error": r.certified,
                "sampled_sup_error": r.sampled, "eps_certified": str(r.eps), "delta": str(r.delta),
                "certified_over_delta": r.certified / float(r.delta),
                "hard_max_error": hard, "gain_over_hard_max": hard / r.certified}
        text = (f"p = {base['p']}: kappa = {r.kappa} ({float(r.kappa):.4g}) minimises the error; certified "
                f"sup error <= {r.certified:.6g} = {r.certified / float(r.delta):.4f} Delta (sampled "
                f"{r.sampled:.6g}); the hard-max staircase has Delta/2 = {hard:.6g}, "
                f"{hard / r.certified:.1f}x larger")
        emit(args, text, info)
        return EXIT_OK if r.certified < float("inf") else EXIT_FAIL
    try:
        eps = parse_rational(args.eps)
        kappa = parse_rational(args.kappa)
    except ParameterError as e:
        raise UserError(f"--eps/--kappa: {e}") from None
    if eps <= 0 or kappa <= 0:
        raise UserError("--eps and --kappa must be positive")
    if "p" in given:
        raise UserError("tune ramp --eps searches p; do not --set p")
    params = {k: v for k, v in base.items() if k not in ("p", "kappa")}
    r = tune.fewest_anchors(params, eps, kappa)
    info = {"eps": str(eps), "p": r.p, "kappa": str(r.kappa), "certified_sup_error": r.certified,
            "p_apriori": r.p_apriori, "kappa_apriori": str(r.kappa_apriori),
            "anchor_ratio": r.p_apriori / r.p, "tried": [list(t) for t in r.tried]}
    text = (f"eps = {float(eps):.6g}: p = {r.p} anchors at kappa = {r.kappa} certify (sup error <= "
            f"{r.certified:.6g}); the a-priori recipe needs p = {r.p_apriori} (kappa = {r.kappa_apriori}), "
            f"{r.p_apriori / r.p:.1f}x more")
    emit(args, text, info)
    return EXIT_OK


def cmd_tune_map(args) -> int:
    """``tune`` for the [MAP] max-affine family: the smallest certified grid for ``--eps``."""
    import sys
    from verify.tune_map import tune
    if args.name not in ("max-affine", "cross-attention", "max-affine-seq"):
        raise UserError("tune handles max-affine, cross-attention and max-affine-seq")
    eps = parse_eps(args.eps)
    positive_finite(args.time_limit, "--time-limit")
    writable_output(args.output)
    log = (lambda m: print(m, file=sys.stderr)) if args.format == "text" else None
    out = tune(args.name, sets(args.set), eps, g_max=args.max_grid, time_limit=args.time_limit, log=log)
    if out is None:
        emit(args, f"UNKNOWN: no grid up to G={args.max_grid} certified eps = {float(eps):.6g} "
                   f"within {args.time_limit}s", {"status": "UNKNOWN"})
        return EXIT_FAIL
    r, c = out["result"], out["construction"]
    info = {"status": "CERTIFIED", "G": out["G"], "kappa": out["kappa"], "tokens": out["tokens"],
            "recipe_G": out["recipe_G"], "recipe_tokens": out["recipe_tokens"],
            "token_ratio": out["recipe_tokens"] / out["tokens"], "max_bound": r.max_bound,
            "observed_error": r.observed, "seconds": round(out["seconds"], 2)}
    if args.output:
        from certificates.confirm import NotConfirmed, confirmed_document
        from certificates.model import save
        try:
            doc = confirmed_document(c, r)
        except NotConfirmed as e:
            emit(args, f"UNKNOWN: G={out['G']} kappa={out['kappa']} certified in the search, but {e}",
                 {"status": "UNKNOWN", "reason": str(e)})
            return EXIT_FAIL
        save(doc, args.output)
        info["certificate"] = args.output
    emit(args, f"CERTIFIED with G={out['G']} kappa={out['kappa']}: {out['tokens']} tokens, sup error <= "
               f"{r.max_bound:.6g} < eps = {float(eps):.6g} (observed {r.observed:.4g}); the a-priori recipe "
               f"needs G={out['recipe_G']}, {out['recipe_tokens']} tokens ({info['token_ratio']:.1f}x more); "
               f"{out['seconds']:.1f}s" + (f"\ncertificate written to {args.output}" if args.output else ""), info)
    return EXIT_OK
