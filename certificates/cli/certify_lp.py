"""``attncert certify-lp NAME --eps EPS --p P``: prove ||network - target||_{L_p(domain)} < eps."""
from __future__ import annotations

from .common import add_construction, EXIT_FAIL, EXIT_OK, UserError, add_format, construction_from_args, emit, parse_eps


def cmd_certify_lp(args) -> int:
    from verify.lp import certify_lp
    eps = parse_eps(args.eps)
    if args.p < 1:
        raise UserError("--p must be an integer >= 1")
    c = construction_from_args(args)
    r = certify_lp(c, eps, args.p, max_boxes=args.max_boxes, time_limit=args.time_limit)
    info = {"status": r.status, "eps": str(eps), "p": args.p, "boxes": r.boxes_evaluated,
            "seconds": round(r.seconds, 3), "reason": r.reason, "max_box_bound": r.max_bound}
    if r.status != "CERTIFIED":
        emit(args, f"{r.status}: {r.reason}; best L_{args.p} bound {r.max_bound:.6g}", info)
        return EXIT_FAIL
    info["norm_bound"] = float(r.norm_bound)
    if args.output:
        from certificates.model import certificate_doc, save
        save(certificate_doc(c, r), args.output)
        info["certificate"] = args.output
    emit(args, f"CERTIFIED: ||network - target||_L{args.p} <= {float(r.norm_bound):.6g} < eps = {float(eps):.6g} "
               f"({len(r.leaves)} boxes, {r.seconds:.2f}s; largest box sup bound {r.max_bound:.4g})"
               + (f"\ncertificate written to {args.output}" if args.output else ""), info)
    return EXIT_OK


def add_command(sub) -> None:
    sp = sub.add_parser("certify-lp", help="prove ||network - target||_{L_p(domain)} < eps")
    add_construction(sp)
    sp.add_argument("--eps", required=True)
    sp.add_argument("--p", type=int, default=2)
    sp.add_argument("-o", "--output")
    sp.add_argument("--max-boxes", type=int, default=2_000_000)
    sp.add_argument("--time-limit", type=float, default=None)
    add_format(sp)
    sp.set_defaults(fn=cmd_certify_lp)
