"""``attncert check CERT...``: re-check certificates independently (``--weights``: and a weights file).

Starts fast: the checker is imported inside the command.
"""
from __future__ import annotations

import json
import sys

from .common import EXIT_FAIL, EXIT_OK, UserError


def cmd_check(args) -> int:
    from certificates.check.document import Invalid, check_doc
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
                # an unreadable or foreign weights file raises WeightsFileError, and a certificate that
                # cannot export ExportError (ValueErrors): one line, exit code 2
                from certificates.export.weights_check import check_weights
                bad = check_weights(args.weights, doc)
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


def add_command(sub) -> None:
    sp = sub.add_parser("check", help="re-check certificates independently")
    sp.add_argument("certs", nargs="+")
    sp.add_argument("--format", choices=["text", "json", "github"], default="text")
    sp.add_argument("--cross-check", action="store_true",
                    help="re-run SMT lemmas with cvc5 as well (skipped with a message when cvc5 is absent)")
    sp.add_argument("--lemma-timeout", type=float, default=None,
                    help="seconds per SMT lemma (default 10); a lemma that times out is 'unknown': invalid")
    sp.add_argument("--weights", metavar="FILE", help="also confirm that FILE (an export: safetensors, npz, torch "
                                                      ".pt, ONNX or Flax msgpack) holds exactly the certificate's "
                                                      "weights, every tensor bit for bit")
    sp.set_defaults(fn=cmd_check)
