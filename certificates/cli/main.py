"""The ``attncert`` command line: list, build, eval, certify, check, demo.

Exit codes: 0 the claim holds, 1 it does not hold (or a certificate is invalid),
2 a tool or input error.  Every error is one line on stderr, never a traceback.
Heavy modules are imported inside the commands so that ``attncert check`` starts fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

# Modules that add subcommands: each has ``add_commands(subparsers, common)`` and keeps
# its top-level imports light (heavy work is imported inside the command functions).
COMMAND_MODULES: tuple = ("certificates.cli_audit", "certificates.cli_plot", "certificates.audit_cli",
                           "certificates.cli_export", "certificates.tune_cli", "certificates.cli_map")


class UserError(Exception):
    """Bad input: reported as one line with exit code 2."""


def _sets(pairs) -> dict:
    out = {}
    for item in pairs or ():
        if "=" not in item:
            raise UserError(f"--set expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _construction(args):
    import constructions
    return constructions.build(args.name, **_sets(args.set))


def _json_safe(obj):
    """Non-finite floats (e.g. no a-priori bound: inf) become null, so the output is valid JSON."""
    if isinstance(obj, float) and obj != obj or obj in (float("inf"), float("-inf")):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _emit(args, text: str, obj) -> None:
    if getattr(args, "format", "text") == "json":
        print(json.dumps(_json_safe(obj), indent=2, sort_keys=True, allow_nan=False))
    else:
        print(text)


def cmd_list(args) -> int:
    from constructions import REGISTRY
    rows = []
    for name, spec in sorted(REGISTRY.items()):
        rows.append({"name": name, "summary": spec.summary, "paper": spec.paper, "claim": spec.theorem,
                     "params": {p.name: {"default": p.default, "help": p.help} for p in spec.params}})
    text = "\n".join(
        f"{r['name']:<16} {r['summary']}\n{'':16} paper: {r['paper']}\n{'':16} claim: {r['claim']}\n"
        f"{'':16} params: " + ", ".join(f"{k}={v['default']}" for k, v in r["params"].items())
        for r in rows)
    _emit(args, text, rows)
    return EXIT_OK


def cmd_build(args) -> int:
    from constructions import REGISTRY
    from certificates.model import construction_doc, save
    c = _construction(args)
    if args.symbolic:
        spec = REGISTRY[c.name]
        if spec.symbolic is None:
            raise UserError(f"{c.name} has no symbolic form")
        import sympy
        for key, value in spec.symbolic().items():
            print(f"% {key}\n{sympy.latex(value)}")
        return EXIT_OK
    cons, target = construction_doc(c)
    doc = {"construction": cons, "target": target, "inputs": list(c.inputs),
           "domain": [[str(a), str(b)] for a, b in c.domain],
           "apriori_bound_float": repr(c.apriori_float())}
    if args.output:
        save(doc, args.output)
    net = c.network
    text = (f"{c.name}: {net.n_tokens} tokens, {sum(len(l.heads) for l in net.layers)} head(s), "
            f"{len(net.layers)} layer(s); weights sha256 {cons['weights_sha256'][:16]}...\n"
            f"a-priori bound: {c.apriori_text()} ~ {c.apriori_float():.6g}")
    _emit(args, text, {"name": c.name, "tokens": net.n_tokens, "weights_sha256": cons["weights_sha256"],
                       "apriori_bound": c.apriori_text(), "apriori_bound_float": c.apriori_float()})
    return EXIT_OK


def _backend(name):
    if name == "numpy":
        import numpy
        return numpy
    if name == "cupy":
        try:
            import cupy
            cupy.zeros(1) + 1
        except Exception as e:  # no device, no driver, or no cupy
            raise UserError(f"cupy backend unavailable: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return cupy
    raise UserError(f"unknown backend {name!r}")


def cmd_eval(args) -> int:
    import numpy as np
    c = _construction(args)
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
        xp = _backend(args.backend)
        from verify.sampling import max_error_sampled
        best_f, arg_f, npts = max_error_sampled(c, args.points, xp)
    secs = time.perf_counter() - t0
    _emit(args, f"max sampled error {best_f:.6g} at x = {arg_f} ({npts} points, {args.backend}, {secs:.2f}s); "
                f"a-priori bound {c.apriori_float():.6g}",
          {"max_error": best_f, "at": arg_f, "points": npts, "backend": args.backend, "seconds": secs,
           "apriori_bound": c.apriori_float()})
    return EXIT_OK


def _certify_scaled(args, c, eps, certify):
    """certify() on the chosen device, executor and checkpoint (``--device/--workers/--scheduler/--resume``)."""
    from verify.executors import open_executor
    xp = _backend("cupy") if args.device == "gpu" else None
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    ckpt = args.checkpoint or ((args.output + ".partial") if args.output else None)
    if args.resume and ckpt is None:
        raise UserError("--resume needs --checkpoint FILE or -o FILE (checkpoint FILE.partial)")
    if args.resume and not os.path.exists(ckpt):
        raise UserError(f"--resume: no checkpoint {ckpt}")
    from verify.certify import CertifyInterrupted
    from verify.checkpoint import CheckpointError
    from verify.batches import device_batch
    kw = {} if xp is None else {"xp": xp, "batch": device_batch(c)}
    try:
        with open_executor(args.workers, args.scheduler) as ex:
            return certify(c, eps, max_boxes=args.max_boxes, time_limit=args.time_limit,
                           progress=None if args.format == "text" else False, executor=ex,
                           checkpoint=ckpt, resume=args.resume, checkpoint_every=args.checkpoint_every, **kw)
    except CertifyInterrupted as e:
        raise UserError(f"interrupted; checkpoint written to {e.checkpoint} (continue with --resume)") from None
    except CheckpointError as e:
        raise UserError(str(e)) from None


def cmd_certify(args) -> int:
    from constructions.exact import ParameterError, parse_rational
    from verify.certify import certify
    try:
        eps = parse_rational(args.eps)
    except ParameterError as e:
        raise UserError(f"--eps: {e}") from None
    c = _construction(args)
    if args.float64:  # certify exactly the float64 weights that the exporters write
        from constructions.float64 import to_float64
        c = to_float64(c)
    if eps <= 0:
        raise UserError("--eps must be positive")
    if getattr(args, "method", "paving") != "paving":
        return _certify_pieces(args, c, eps)
    res = _certify_scaled(args, c, eps, certify)
    info = {"status": res.status, "construction": c.name, "eps": str(eps), "max_bound": res.max_bound,
            "observed_error": res.observed, "witness": [str(v) for v in res.witness],
            "boxes": res.boxes_evaluated, "seconds": round(res.seconds, 3), "reason": res.reason,
            "apriori_bound": c.apriori_float()}
    if res.status == "CERTIFIED":
        from certificates.model import certificate_doc, save
        if args.output:
            save(certificate_doc(c, res), args.output)
            info["certificate"] = args.output
        text = (f"CERTIFIED: sup |network - target| <= {res.max_bound:.6g} < eps = {float(eps):.6g} on the whole domain "
                f"({len(res.leaves)} boxes, {res.seconds:.2f}s); largest observed error {res.observed:.6g} "
                f"(bound/observed {res.max_bound / res.observed if res.observed > 0 else float('inf'):.4f}); "
                f"a-priori bound {c.apriori_float():.6g}" + (f"\ncertificate written to {args.output}" if args.output else ""))
        _emit(args, text, info)
        return EXIT_OK
    if res.status == "REFUTED":
        info["witness_lower_bound"] = res.witness_lower
        _emit(args, f"REFUTED: at x = {[str(v) for v in res.witness]} the error is proved >= {res.witness_lower:.9g} "
                    f"> eps = {float(eps):.6g}", info)
        return EXIT_FAIL
    _emit(args, f"UNKNOWN: {res.reason}; best proved bound {res.max_bound:.6g}, largest observed error "
                f"{res.observed:.6g}", info)
    return EXIT_FAIL


def _certify_pieces(args, c, eps) -> int:
    """certify --method analytic|auto: pieces with z3 gap lemmas (verify.certify_analytic)."""
    from verify.certify_analytic import certify_analytic
    from verify.linearize import UnsupportedNetwork
    if getattr(args, "mesh", None) is not None and not 1 <= args.mesh <= 256:
        raise UserError("--mesh must be between 1 and 256")
    try:
        res = certify_analytic(c, eps, method=args.method, max_boxes=args.max_boxes, time_limit=args.time_limit,
                               mesh=getattr(args, "mesh", None))
    except UnsupportedNetwork as e:
        raise UserError(str(e)) from None
    n_an = sum(p.method == "analytic" for p in res.pieces)
    info = {"status": res.status, "construction": c.name, "eps": str(eps), "method": args.method,
            "max_bound": res.max_bound, "observed_error": res.observed, "witness": [str(v) for v in res.witness],
            "pieces": len(res.pieces), "analytic_pieces": n_an, "lemmas": res.lemma_count,
            "z3_seconds": round(res.z3_seconds, 3), "boxes": res.boxes_evaluated,
            "seconds": round(res.seconds, 3), "reason": res.reason, "apriori_bound": c.apriori_float()}
    if res.status == "CERTIFIED":
        from certificates.model import analytic_certificate_doc, save
        if args.output:
            save(analytic_certificate_doc(c, res), args.output)
            info["certificate"] = args.output
        _emit(args, f"CERTIFIED ({args.method}): sup |network - target| <= {res.max_bound:.6g} < eps = {float(eps):.6g} "
                    f"on the whole domain ({len(res.pieces)} pieces, {n_an} analytic, {res.lemma_count} z3 lemmas in "
                    f"{res.z3_seconds:.2f}s, {res.seconds:.2f}s); largest observed error {res.observed:.6g}"
                    + (f"\ncertificate written to {args.output}" if args.output else ""), info)
        return EXIT_OK
    if res.status == "REFUTED":
        info["witness_lower_bound"] = res.witness_lower
        _emit(args, f"REFUTED: at x = {[str(v) for v in res.witness]} the error is proved >= {res.witness_lower:.9g} "
                    f"> eps = {float(eps):.6g}", info)
        return EXIT_FAIL
    _emit(args, f"UNKNOWN: {res.reason}", info)
    return EXIT_FAIL


def cmd_check(args) -> int:
    from certificates.checker import Invalid, check_doc
    from certificates.model import CertificateError, load
    if args.weights and len(args.certs) != 1:
        raise UserError("--weights compares one weights file with exactly one certificate")
    reports, worst = [], EXIT_OK
    for path in args.certs:
        try:
            doc = load(path)
        except CertificateError as e:
            if args.format == "github":
                from certificates.github import annotation
                print(annotation("error", str(e), file=path, title="attncert check: unreadable certificate"))
            raise UserError(f"{path}: {e}")
        try:
            if args.weights:  # the weights file must hold exactly the certified weights
                from certificates.cli_export import weights_problems
                bad = weights_problems(args.weights, doc)
                if bad:
                    raise Invalid(f"weights file {args.weights} does not match: {bad[0]}"
                                  + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
            opts = {}
            if getattr(args, "cross_check", False):
                if not _have_cvc5():
                    print("attncert: --cross-check skipped: the cvc5 package is not installed", file=sys.stderr)
                else:
                    opts["cross_check"] = True
            if getattr(args, "lemma_timeout", None) is not None:
                if not args.lemma_timeout > 0:
                    raise UserError("--lemma-timeout must be positive")
                opts["timeout_ms"] = int(args.lemma_timeout * 1000)
            rep = check_doc(doc, path, **opts)
            reports.append({"path": path, "ok": True, "name": rep.name, "eps": rep.eps,
                            "max_bound": rep.max_bound, "checked_max_bound": rep.checked_max_bound,
                            "boxes": rep.boxes, "observed_error": rep.observed_error, **rep.details})
        except Invalid as e:
            reports.append({"path": path, "ok": False, "reason": str(e)})
            worst = EXIT_FAIL
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            # schema-valid but inconsistent structure: the certificate does not hold
            reports.append({"path": path, "ok": False, "reason": f"malformed certificate ({type(e).__name__}: {e})"})
            worst = EXIT_FAIL
    if args.format == "json":
        print(json.dumps(reports, indent=2, sort_keys=True))
    elif args.format == "github":
        from certificates.github import emit_check
        emit_check(reports)
    else:
        for r in reports:
            if r["ok"] and "lemmas" in r:
                print(f"{r['path']}: OK {r['name']}: sup error <= {r['checked_max_bound']:.6g} < eps {r['eps']} over "
                      f"{r['pieces']} pieces ({r['method']}; {r['lemmas']} z3 lemmas re-run"
                      f"{', cross-checked with cvc5' if r['cross_check'] else ''}; bounds re-derived in Arb)")
            elif r["ok"]:
                print(f"{r['path']}: OK {r['name']}: sup error <= {r['checked_max_bound']:.6g} < eps "
                      f"{r['eps']} over {r['boxes']} boxes (re-derived in Arb)"
                      + (f"; {args.weights} holds exactly these weights, bit for bit" if args.weights else ""))
                for t in r.get("chain", ()):
                    print(f"  chain: |f - g| <= {t['f_minus_g']:.6g}, |g - network| <= {t['g_minus_network']:.6g} "
                          f"({t['label']})")
            else:
                print(f"{r['path']}: INVALID: {r['reason']}")
    return worst


def _have_cvc5() -> bool:
    import importlib.util
    return importlib.util.find_spec("cvc5") is not None


def cmd_demo(args) -> int:
    import tempfile, os
    from constructions import build
    from verify.certify import certify
    from certificates.model import certificate_doc, save, load
    from certificates.checker import check_doc
    t0 = time.perf_counter()
    c = build("ramp", a="-1", b="1", p=17, kappa="27/10", lo="-2", hi="2")
    print("ramp: one softmax head over 17 anchors approximates Range_[-1,1](x) on [-2, 2] (paper [UAP])")
    print(f"  a-priori bound (paper-style): {c.apriori_float():.4g}")
    res = certify(c, "0.009", progress=False)
    if res.status != "CERTIFIED":
        raise UserError(f"demo did not certify: {res.status} {res.reason}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ramp.cert.json")
        save(certificate_doc(c, res), path)
        rep = check_doc(load(path), path)
    print(f"  certified: sup_x |F(x) - Range(x)| <= {res.max_bound:.5g} < 0.009 over the whole domain "
          f"({len(res.leaves)} boxes; largest observed error {res.observed:.5g})")
    print(f"  independent Arb checker re-derived all {rep.boxes} box bounds: max {rep.checked_max_bound:.5g}")
    print(f"  done in {time.perf_counter() - t0:.1f}s. Try: attncert certify ramp --set p=41 --eps 0.02 -o c.json")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="attncert", description="Certified softmax-attention constructions.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, fmt=True):
        if fmt:
            sp.add_argument("--format", choices=["text", "json"], default="text")

    sp = sub.add_parser("list", help="constructions with their parameters, paper and claim")
    common(sp)
    sp.set_defaults(fn=cmd_list)
    for name, fn, helptext in (("build", cmd_build, "build a construction's exact spec"),
                               ("eval", cmd_eval, "sampled max error"),
                               ("certify", cmd_certify, "prove sup error < eps over the whole domain")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("name")
        sp.add_argument("--set", action="append", metavar="NAME=VALUE", default=[])
        common(sp)
        sp.set_defaults(fn=fn)
        if name == "build":
            sp.add_argument("--symbolic", action="store_true", help="print the general construction as LaTeX")
            sp.add_argument("-o", "--output")
        if name == "eval":
            sp.add_argument("--backend", choices=["mpmath", "numpy", "cupy"], default="numpy")
            sp.add_argument("--points", type=int, default=100_000)
            sp.add_argument("--dps", type=int, default=50)
        if name == "certify":
            sp.add_argument("--eps", required=True)
            sp.add_argument("-o", "--output")
            sp.add_argument("--max-boxes", type=int, default=2_000_000)
            sp.add_argument("--time-limit", type=float, default=None)
            sp.add_argument("--method", choices=["paving", "analytic", "auto"], default="paving",
                            help="paving: box bisection; analytic: one piece per cell with z3 gap lemmas; "
                                 "auto: analytic where its closed form is below eps, paving elsewhere")
            sp.add_argument("--mesh", type=int, default=None, metavar="K",
                            help="analytic pieces: bound each cell on a fixed K^D sub-mesh (ratio-interval "
                                 "softmax bounds; default: 32/8/3 per axis for max-affine in 1/2/3-D, none otherwise)")
            sp.add_argument("--float64", action="store_true",
                            help="fold beta into W_Q and round every weight to float64 first (needed to export)")
            sp.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="gpu: CuPy arrays")
            sp.add_argument("--workers", type=int, default=1, help="local worker processes")
            sp.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="Dask distributed scheduler")
            sp.add_argument("--checkpoint", metavar="FILE", help="checkpoint file (default: OUTPUT.partial)")
            sp.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS")
            sp.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    sp = sub.add_parser("check", help="re-check certificates independently")
    sp.add_argument("certs", nargs="+")
    sp.add_argument("--format", choices=["text", "json", "github"], default="text")
    sp.add_argument("--cross-check", action="store_true",
                    help="re-run SMT lemmas with cvc5 as well (skipped with a message when cvc5 is absent)")
    sp.add_argument("--lemma-timeout", type=float, default=None,
                    help="seconds per SMT lemma (default 10); a lemma that times out is 'unknown': invalid")
    sp.add_argument("--weights", metavar="FILE", help="also confirm that FILE (safetensors or npz) holds "
                                                      "exactly the certificate's weights, bit for bit")
    sp.set_defaults(fn=cmd_check)
    sp = sub.add_parser("demo", help="build, certify and check a ramp in a few seconds")
    sp.set_defaults(fn=cmd_demo)
    import importlib
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_commands(sub, common)
    return p


def main(argv=None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed one usage line
        return EXIT_ERROR if e.code else EXIT_OK
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("attncert: interrupted; nothing was written", file=sys.stderr)
        return EXIT_ERROR
    except UserError as e:
        print(f"attncert: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, OSError, ArithmeticError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"attncert: error: {msg}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # never a traceback: one line, exit 2
        print(f"attncert: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
