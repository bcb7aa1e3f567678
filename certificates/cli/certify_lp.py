"""``attncert certify-lp NAME --eps EPS --p P``: prove ||network - target||_{L_p(domain)} < eps."""
from __future__ import annotations

from .common import (EXIT_FAIL, EXIT_OK, UserError, add_construction, add_format, command,
                     construction_from_args, emit, parse_eps, positive_finite, writable_output)


def cmd_certify_lp(args) -> int:
    from verify.lp import certify_lp
    eps = parse_eps(args.eps)
    if args.p < 1:
        raise UserError("--p must be an integer >= 1")
    if args.max_boxes < 1:
        raise UserError(f"--max-boxes must be at least 1, got {args.max_boxes}")
    positive_finite(args.time_limit, "--time-limit")
    writable_output(args.output)
    c = construction_from_args(args)
    r = certify_lp(c, eps, args.p, max_boxes=args.max_boxes, time_limit=args.time_limit)
    doc = None
    if r.status == "CERTIFIED":
        from certificates.confirm import NotConfirmed, confirmed_document
        try:
            doc = confirmed_document(c, r)
        except NotConfirmed as e:
            r.status, r.reason = "UNKNOWN", str(e)
    info = {"status": r.status, "eps": str(eps), "p": args.p, "boxes": r.boxes_evaluated,
            "seconds": round(r.seconds, 3), "reason": r.reason, "max_box_bound": r.max_bound}
    if r.status != "CERTIFIED":
        emit(args, f"{r.status}: {r.reason}; best L_{args.p} bound {r.max_bound:.6g}", info)
        return EXIT_FAIL
    info["norm_bound"] = float(r.norm_bound)
    if args.output:
        from certificates.model import save
        save(doc, args.output)
        info["certificate"] = args.output
    emit(args, f"CERTIFIED: ||network - target||_L{args.p} <= {float(r.norm_bound):.6g} < eps = {float(eps):.6g} "
               f"({len(r.leaves)} boxes, {r.seconds:.2f}s; largest box sup bound {r.max_bound:.4g})"
               + (f"\ncertificate written to {args.output}" if args.output else ""), info)
    return EXIT_OK


def add_command(sub) -> None:
    sp = command(sub, "certify-lp", "prove ||network - target||_{L_p(domain)} < eps",
                 "attncert certify-lp max-affine --set f='cos(x0)*cos(x1)' --set G=8 --eps 0.2 --p 2")
    add_construction(sp)
    sp.add_argument("--eps", required=True, help="the L_p norm bound to prove (exact rational)")
    sp.add_argument("--p", "--norm-p", dest="p", type=int, default=2, metavar="P",
                    help="the norm's exponent P >= 1 (not a construction parameter: those go in --set, "
                         "e.g. --set p=41 for the ramp's anchors)")
    sp.add_argument("-o", "--output", help="write the certificate here")
    sp.add_argument("--max-boxes", type=int, default=2_000_000, help="box budget of the paving")
    sp.add_argument("--time-limit", type=float, default=None, help="seconds, building included")
    add_format(sp)
    sp.set_defaults(fn=cmd_certify_lp)
