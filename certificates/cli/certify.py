"""``attncert certify NAME --eps EPS``: prove sup |network - target| < eps over the whole domain.

``--method paving`` (box bisection, on CPU or GPU, local workers or Dask, with checkpoints)
or ``analytic``/``auto`` (pieces with z3 gap lemmas).
"""
from __future__ import annotations

import os
import time

from .common import (EXIT_FAIL, EXIT_OK, UserError, add_construction, add_format, apriori_phrase, backend, command,
                     construction_from_args, decimal_point, emit, positive_finite, writable_output)


def _validate(args) -> None:
    """Flags that make no sense end here, before anything is built."""
    if args.max_boxes < 1:
        raise UserError(f"--max-boxes must be at least 1, got {args.max_boxes}")
    positive_finite(args.time_limit, "--time-limit")
    positive_finite(args.checkpoint_every, "--checkpoint-every")
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    writable_output(args.output)
    if args.checkpoint:
        writable_output(args.checkpoint)


# ---- imported networks (attncert import MODEL -o net.json): NAME is the network file ----

def _is_network_file(name) -> bool:
    import constructions
    return name not in constructions.REGISTRY and (name.endswith(".json") or os.path.sep in name
                                                   or os.path.isfile(name))


def _registered(args):
    if getattr(args, "domain", None) is not None:
        raise UserError("--domain applies to an imported network (attncert certify net.json ...); a construction "
                        "takes its domain from its parameters")
    return construction_from_args(args)


def _imported(args):
    """The construction of an imported network file with the target ``--set f=EXPR`` on ``--domain``."""
    from constructions.float64 import is_float64
    from constructions.imported import build_imported, load_network_document
    from .common import sets
    given = sets(args.set)
    extra = sorted(set(given) - {"f"})
    if extra:
        raise UserError(f"{args.name}: an imported network takes only --set f=EXPR (the target), not {extra[0]!r}")
    if getattr(args, "domain", None) is None:
        raise UserError(f"{args.name}: an imported network needs --domain, e.g. --domain \"x0=-1:1,x1=0:2\" "
                        "(or --domain=-1:1 for every input)")
    c = build_imported(load_network_document(args.name), given.get("f", ""), args.domain)
    if args.float64 and not is_float64(c.network):
        raise UserError(f"{args.name}: --float64 would round the imported weights, and the certificate would no "
                        "longer speak about the model; certify without --float64")
    return c


def _remaining(args, t_start):
    """--time-limit counts from the start of the command, building included."""
    if args.time_limit is None:
        return None
    left = args.time_limit - (time.perf_counter() - t_start)
    if left <= 0:
        raise UserError(f"--time-limit {args.time_limit}s was spent building the construction")
    return left


def _confirm(c, res, analytic=False):
    """The certificate document, or None with the checker's reason when it does not confirm."""
    from certificates.confirm import NotConfirmed, confirmed_document
    try:
        return confirmed_document(c, res, analytic=analytic), None
    except NotConfirmed as e:
        return None, str(e)


def _checkpoint_path(args):
    return args.checkpoint or ((args.output + ".partial") if args.output else None)


def _certify_scaled(args, c, eps, certify, time_limit):
    """certify() on the chosen device, executor and checkpoint (``--device/--workers/--scheduler/--resume``)."""
    from verify.search.executors import open_executor
    from verify.search.outputs import checkpoint_files
    xp = backend("cupy") if args.device == "gpu" else None
    ckpt = _checkpoint_path(args) or ((args.output + ".partial") if args.output else None)
    if args.resume and ckpt is None:
        raise UserError("--resume needs --checkpoint FILE or -o FILE (checkpoint FILE.partial)")
    if args.resume and not checkpoint_files(ckpt):
        raise UserError(f"--resume: no checkpoint {ckpt}")
    from verify.search.certify import CertifyInterrupted
    from verify.search.checkpoint import CheckpointError
    from verify.enclose.linearize import UnsupportedNetwork
    from verify.search.batches import device_batch
    kw = {} if xp is None else {"xp": xp, "batch": device_batch(c)}
    try:
        with open_executor(args.workers, args.scheduler) as ex:
            return certify(c, eps, max_boxes=args.max_boxes, time_limit=time_limit,
                           progress=None if args.format == "text" else False, executor=ex,
                           checkpoint=ckpt, resume=args.resume, checkpoint_every=args.checkpoint_every,
                           drop_checkpoint=False, min_units=args.workers, split=args.split,
                           enclosure=args.enclosure, **kw)
    except CertifyInterrupted as e:
        raise UserError(f"interrupted; checkpoint written to {e.checkpoint} (continue with --resume)") from None
    except (CheckpointError, UnsupportedNetwork) as e:
        raise UserError(str(e)) from None


def _drop(path) -> None:
    """Remove the checkpoint once the job's answer is final (and its certificate safely written)."""
    from verify.search.outputs import checkpoint_files
    for f in checkpoint_files(path):   # the joint checkpoint and those of output groups
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass


def _boxes_phrase(res) -> str:
    if res.residual is not None:
        return f"residual route: {len(res.residual[2].leaves)} boxes of the 1-D residual range"
    return f"{len(res.leaves)} boxes"


def cmd_certify(args) -> int:
    from constructions.exact import ParameterError, parse_rational
    from verify.search.certify import certify
    t_start = time.perf_counter()
    try:
        eps = parse_rational(args.eps)
    except ParameterError as e:
        raise UserError(f"--eps: {e}") from None
    _validate(args)
    c = _imported(args) if _is_network_file(args.name) else _registered(args)
    if args.float64:  # certify exactly the float64 weights that the exporters write
        from constructions.float64 import to_float64
        c = to_float64(c)
    if eps <= 0:
        raise UserError("--eps must be positive")
    from verify.search.residual import certify_residual, residual_claim
    method = args.method or ("residual" if residual_claim(c) is not None else "paving")
    if method not in ("paving", "residual"):
        return _certify_pieces(args, c, eps, _remaining(args, t_start))
    res = None
    if method == "residual":
        res = certify_residual(c, eps, max_boxes=args.max_boxes, time_limit=_remaining(args, t_start))
        if res.status != "CERTIFIED" and args.method is None:
            res = None   # the paving decides: it can also refute
    if res is None:
        res = _certify_scaled(args, c, eps, certify, _remaining(args, t_start))
    doc = None
    if res.status == "CERTIFIED":
        doc, why = _confirm(c, res)
        if doc is None:
            res.status, res.reason = "UNKNOWN", why
    info = {"status": res.status, "construction": c.name, "eps": str(eps), "max_bound": res.max_bound,
            "method": "residual" if res.residual is not None else "paving",
            "observed_error": res.observed, "witness": [str(v) for v in res.witness],
            "boxes": res.boxes_evaluated, "seconds": round(res.seconds, 3), "reason": res.reason,
            "apriori_bound": c.apriori_float()}
    if res.status == "CERTIFIED":
        from certificates.model import save
        if args.output:
            save(doc, args.output)
            info["certificate"] = args.output
        _drop(_checkpoint_path(args))
        text = (f"CERTIFIED: sup |network - target| <= {res.max_bound:.6g} < eps = {float(eps):.6g} on the whole "
                f"domain ({_boxes_phrase(res)}, {res.seconds:.2f}s; confirmed by the independent checker); "
                f"largest observed error {res.observed:.6g} "
                f"(bound/observed {res.max_bound / res.observed if res.observed > 0 else float('inf'):.4f}); "
                + apriori_phrase(c) + (f"\ncertificate written to {args.output}" if args.output else ""))
        emit(args, text, info)
        return EXIT_OK
    if res.status == "REFUTED":
        _drop(_checkpoint_path(args))
        info["witness_lower_bound"] = res.witness_lower
        emit(args, f"REFUTED: at {decimal_point(res.witness)} the error is proved >= {res.witness_lower:.9g} "
                   f"> eps = {float(eps):.6g}", info)
        return EXIT_FAIL
    emit(args, f"UNKNOWN: {res.reason}; best proved bound {res.max_bound:.6g}, largest observed error "
               f"{res.observed:.6g}", info)
    return EXIT_FAIL


def _certify_pieces(args, c, eps, time_limit) -> int:
    """certify --method analytic|auto: pieces with z3 gap lemmas (verify.analytic.certify)."""
    from verify.analytic.certify import certify_analytic
    from verify.enclose.linearize import UnsupportedNetwork
    if getattr(args, "mesh", None) is not None and not 1 <= args.mesh <= 256:
        raise UserError("--mesh must be between 1 and 256")
    try:
        res = certify_analytic(c, eps, method=args.method, max_boxes=args.max_boxes, time_limit=time_limit,
                               mesh=getattr(args, "mesh", None))
    except UnsupportedNetwork as e:
        raise UserError(str(e)) from None
    doc = None
    if res.status == "CERTIFIED":
        doc, why = _confirm(c, res, analytic=True)
        if doc is None:
            res.status, res.reason = "UNKNOWN", why
    n_an = sum(p.method == "analytic" for p in res.pieces)
    info = {"status": res.status, "construction": c.name, "eps": str(eps), "method": args.method,
            "max_bound": res.max_bound, "observed_error": res.observed, "witness": [str(v) for v in res.witness],
            "pieces": len(res.pieces), "analytic_pieces": n_an, "lemmas": res.lemma_count,
            "z3_seconds": round(res.z3_seconds, 3), "boxes": res.boxes_evaluated,
            "seconds": round(res.seconds, 3), "reason": res.reason, "apriori_bound": c.apriori_float()}
    if res.status == "CERTIFIED":
        from certificates.model import save
        if args.output:
            save(doc, args.output)
            info["certificate"] = args.output
        emit(args, f"CERTIFIED ({args.method}): sup |network - target| <= {res.max_bound:.6g} < eps = {float(eps):.6g} "
                   f"on the whole domain ({len(res.pieces)} pieces, {n_an} analytic, {res.lemma_count} z3 lemmas in "
                   f"{res.z3_seconds:.2f}s, {res.seconds:.2f}s; confirmed by the independent checker); "
                   f"largest observed error {res.observed:.6g}"
                   + (f"\ncertificate written to {args.output}" if args.output else ""), info)
        return EXIT_OK
    if res.status == "REFUTED":
        info["witness_lower_bound"] = res.witness_lower
        emit(args, f"REFUTED: at {decimal_point(res.witness)} the error is proved >= {res.witness_lower:.9g} "
                   f"> eps = {float(eps):.6g}", info)
        return EXIT_FAIL
    best = (f"{res.max_bound:.6g}" if res.max_bound != float("inf")
            else "inf (a piece has no finite proved bound)")
    emit(args, f"UNKNOWN: {res.reason}; largest proved bound {best}, largest observed error {res.observed:.6g}",
         info)
    return EXIT_FAIL


def add_command(sub) -> None:
    sp = command(sub, "certify", "prove sup |network - target| < eps over the whole domain",
                 "attncert certify ramp --set p=41 --set kappa=8 --eps 0.02 -o c.json\n"
                 "attncert certify net.json --set f='min(max(x0, -1), 1)' --domain \"x0=-2:2\" --eps 0.05   "
                 "(an imported network)")
    add_construction(sp)
    sp.add_argument("--domain", metavar="x0=LO:HI,...",
                    help="imported network (NAME is a net.json from attncert import): the box, one interval per input "
                         "(\"x0=-1:1,x1=0:2\"), or --domain=LO:HI for every input; the target is --set f=EXPR")
    add_format(sp)
    sp.set_defaults(fn=cmd_certify)
    sp.add_argument("--eps", required=True, help="the error bound to prove (exact: 0.02 means 1/50)")
    sp.add_argument("-o", "--output", help="write the certificate here (checked by the independent checker first)")
    sp.add_argument("--max-boxes", type=int, default=2_000_000, help="box budget; UNKNOWN when spent")
    sp.add_argument("--time-limit", type=float, default=None, help="seconds, building included; UNKNOWN when spent")
    sp.add_argument("--method", choices=["paving", "analytic", "auto", "residual"], default=None,
                    help="paving: box bisection; analytic: one piece per cell with z3 gap lemmas; "
                         "auto: analytic where its closed form is below eps, paving elsewhere; "
                         "residual (icl-gd): one 1-D paving of the residual's error. Default: residual "
                         "where the construction declares it (paving when that does not certify), else paving")
    sp.add_argument("--mesh", type=int, default=None, metavar="K",
                    help="analytic pieces: bound each cell on a fixed K^D sub-mesh (ratio-interval "
                         "softmax bounds; default: 32/8/3 per axis for max-affine in 1/2/3-D, none otherwise)")
    sp.add_argument("--float64", action="store_true",
                    help="fold beta into W_Q and round every weight to float64 first (needed to export)")
    sp.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="gpu: CuPy arrays")
    sp.add_argument("--workers", type=int, default=1, help="local worker processes")
    sp.add_argument("--enclosure", choices=["auto", "plain", "centred"], default="auto",
                    help="box bounds: plain interval, or the tighter of plain and centred (mean-value, "
                         "error ~ width^2); auto: centred for one-layer networks")
    sp.add_argument("--split", choices=["gain", "widest"], default="gain",
                    help="which side of an unfinished box to bisect: the one whose children's bound "
                         "drops most (gain), or the widest")
    sp.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="Dask distributed scheduler")
    sp.add_argument("--checkpoint", metavar="FILE", help="checkpoint file (default: OUTPUT.partial)")
    sp.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                    help="seconds between checkpoint writes (default 30)")
    sp.add_argument("--resume", action="store_true", help="continue from the checkpoint")
