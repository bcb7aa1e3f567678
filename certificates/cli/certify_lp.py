"""CLI commands for [MAP]: ``certify-lp`` (L_p certificates) and the [MAP] branch of ``tune`` (smallest certified grid)."""
from __future__ import annotations


from .cli import EXIT_FAIL, EXIT_OK, UserError, _construction, _emit, _sets


def _eps(text):
    from constructions.exact import ParameterError, parse_rational
    try:
        eps = parse_rational(text)
    except ParameterError as e:
        raise UserError(f"--eps: {e}") from None
    if eps <= 0:
        raise UserError("--eps must be positive")
    return eps


def cmd_tune_map(args) -> int:
    import sys
    from verify.tune_map import tune
    if args.name not in ("max-affine", "cross-attention", "max-affine-seq"):
        raise UserError("tune handles max-affine, cross-attention and max-affine-seq")
    eps = _eps(args.eps)
    log = (lambda m: print(m, file=sys.stderr)) if args.format == "text" else None
    out = tune(args.name, _sets(args.set), eps, g_max=args.max_grid, time_limit=args.time_limit, log=log)
    if out is None:
        _emit(args, f"UNKNOWN: no grid up to G={args.max_grid} certified eps = {float(eps):.6g} "
                    f"within {args.time_limit}s", {"status": "UNKNOWN"})
        return EXIT_FAIL
    r, c = out["result"], out["construction"]
    info = {"status": "CERTIFIED", "G": out["G"], "kappa": out["kappa"], "tokens": out["tokens"],
            "recipe_G": out["recipe_G"], "recipe_tokens": out["recipe_tokens"],
            "token_ratio": out["recipe_tokens"] / out["tokens"], "max_bound": r.max_bound,
            "observed_error": r.observed, "seconds": round(out["seconds"], 2)}
    if args.output:
        from certificates.model import certificate_doc, save
        save(certificate_doc(c, r), args.output)
        info["certificate"] = args.output
    _emit(args, f"CERTIFIED with G={out['G']} kappa={out['kappa']}: {out['tokens']} tokens, sup error <= "
                f"{r.max_bound:.6g} < eps = {float(eps):.6g} (observed {r.observed:.4g}); the a-priori recipe "
                f"needs G={out['recipe_G']}, {out['recipe_tokens']} tokens ({info['token_ratio']:.1f}x more); "
                f"{out['seconds']:.1f}s" + (f"\ncertificate written to {args.output}" if args.output else ""), info)
    return EXIT_OK


def cmd_certify_lp(args) -> int:
    from verify.lp import certify_lp
    eps = _eps(args.eps)
    if args.p < 1:
        raise UserError("--p must be an integer >= 1")
    c = _construction(args)
    r = certify_lp(c, eps, args.p, max_boxes=args.max_boxes, time_limit=args.time_limit)
    info = {"status": r.status, "eps": str(eps), "p": args.p, "boxes": r.boxes_evaluated,
            "seconds": round(r.seconds, 3), "reason": r.reason, "max_box_bound": r.max_bound}
    if r.status != "CERTIFIED":
        _emit(args, f"{r.status}: {r.reason}; best L_{args.p} bound {r.max_bound:.6g}", info)
        return EXIT_FAIL
    info["norm_bound"] = float(r.norm_bound)
    if args.output:
        from certificates.model import certificate_doc, save
        save(certificate_doc(c, r), args.output)
        info["certificate"] = args.output
    _emit(args, f"CERTIFIED: ||network - target||_L{args.p} <= {float(r.norm_bound):.6g} < eps = {float(eps):.6g} "
                f"({len(r.leaves)} boxes, {r.seconds:.2f}s; largest box sup bound {r.max_bound:.4g})"
                + (f"\ncertificate written to {args.output}" if args.output else ""), info)
    return EXIT_OK


def add_commands(sub, common) -> None:
    sp = sub.add_parser("certify-lp", help="prove ||network - target||_{L_p(domain)} < eps")
    sp.add_argument("name")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE", default=[])
    sp.add_argument("--eps", required=True)
    sp.add_argument("--p", type=int, default=2)
    sp.add_argument("-o", "--output")
    sp.add_argument("--max-boxes", type=int, default=2_000_000)
    sp.add_argument("--time-limit", type=float, default=None)
    common(sp)
    sp.set_defaults(fn=cmd_certify_lp)
