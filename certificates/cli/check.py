"""``attncert check CERT...``: re-check certificates independently (``--weights``: and a weights file).

Starts fast: the checker is imported inside the command.
"""
from __future__ import annotations

import json
import sys

from .common import EXIT_ERROR, EXIT_FAIL, EXIT_OK, UserError, command, json_safe, positive_finite, printable


def _limits(args) -> dict:
    """check_doc's limits from --max-work/--max-p (0 lifts a limit)."""
    from certificates.check.core import DEFAULT_MAX_P, DEFAULT_MAX_WORK
    out = {}
    for flag, key, default in (("--max-work", "max_work", DEFAULT_MAX_WORK), ("--max-p", "max_p", DEFAULT_MAX_P)):
        value = getattr(args, key)
        if value is None:
            continue
        if value < 0:
            raise UserError(f"{flag} must be >= 0 (0: no limit), got {value}")
        out[key] = None if value == 0 else value
    return out


def _check_one(args, path, opts) -> dict:
    """The report of one certificate: {"ok": True, ...} or {"ok": False, "reason"}; raises UserError
    for a file that cannot be read or a check past a limit (an input error, nothing decided)."""
    from certificates.check.core import Invalid, LimitExceeded
    from certificates.check.document import check_doc
    from certificates.model import CertificateError, load
    try:
        doc = load(path, max_bytes=args.max_size << 20)
    except CertificateError as e:
        raise UserError(f"{path}: {e}") from None
    try:
        if args.weights:  # the weights file must hold exactly the certified weights
            # an unreadable or foreign weights file raises WeightsFileError, and a certificate that
            # cannot export ExportError (ValueErrors): one line, exit code 2
            from certificates.export.weights_check import check_weights
            bad = check_weights(args.weights, doc)
            if bad:
                raise Invalid(f"weights file {args.weights} does not match: {bad[0]}"
                              + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
        rep = check_doc(doc, path, **opts)
        return {"path": path, "ok": True, **rep.to_json()}
    except LimitExceeded as e:
        raise UserError(f"{path}: {e}") from None
    except Invalid as e:
        return {"path": path, "ok": False, "reason": str(e)}
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        # schema-valid but inconsistent structure: the certificate does not hold
        return {"path": path, "ok": False, "reason": f"malformed certificate ({type(e).__name__}: {e})"}


def _text(r, weights) -> list:
    """The text report of one certificate; every string that came from the file is escaped."""
    P = printable
    if "error" in r:
        return [f"{P(r['path'])}: ERROR: {P(r['error'])}"]
    if not r["ok"]:
        return [f"{P(r['path'])}: INVALID: {P(r['reason'])}"]
    name, eps = P(r["name"]), P(r["eps"])
    if r.get("norm") == "Lp":
        what = (f"L{P(r['p'])} error <= {r['checked_norm_bound']:.6g} < eps {eps} over {r['boxes']} boxes "
                f"(sup error <= {r['checked_max_bound']:.6g}; re-derived in Arb)")
    elif "lemmas" in r:
        what = (f"sup error <= {r['checked_max_bound']:.6g} < eps {eps} over {r['pieces']} pieces "
                f"({P(r['method'])}; {r['lemmas']} z3 lemmas re-run"
                f"{', cross-checked with cvc5' if r.get('cross_check') else ''}; partition {P(r.get('partition'))}; "
                f"bounds re-derived in Arb)")
    else:
        what = (f"sup error <= {r['checked_max_bound']:.6g} < eps {eps} over {r['boxes']} boxes (re-derived in Arb)"
                + (f"; {P(weights)} holds exactly these weights, bit for bit" if weights else ""))
    lines = [f"{P(r['path'])}: OK {name}: {what}"]
    for t in r.get("chain", ()):
        lines.append(f"  chain: |f - g| <= {t['f_minus_g']:.6g}, |g - network| <= {t['g_minus_network']:.6g} "
                     f"({P(t['label'])})")
    if r.get("unverified"):
        lines.append(f"  not verified: {P('; '.join(r['unverified']))}")
    return lines


def cmd_check(args) -> int:
    if args.weights and len(args.certs) != 1:
        raise UserError("--weights compares one weights file with exactly one certificate")
    if args.max_size < 1:
        raise UserError(f"--max-size must be at least 1 (MiB), got {args.max_size}")
    opts = _limits(args)
    if getattr(args, "cross_check", False):
        if not _have_cvc5():
            print("attncert: --cross-check skipped: the cvc5 package is not installed", file=sys.stderr)
        else:
            opts["cross_check"] = True
    if getattr(args, "workers", None) is not None:
        if args.workers < 1:
            raise UserError(f"--workers must be at least 1, got {args.workers}")
        opts["workers"] = args.workers
    if getattr(args, "lemma_timeout", None) is not None:
        positive_finite(args.lemma_timeout, "--lemma-timeout")
        opts["timeout_ms"] = int(args.lemma_timeout * 1000)
    opts["progress"] = sys.stderr.isatty()   # a bar of the boxes checked, on a terminal only
    reports, worst = [], EXIT_OK
    for path in args.certs:   # one unreadable file is reported, and the others are still checked
        try:
            r = _check_one(args, path, opts)
        except UserError as e:
            r = {"path": path, "ok": False, "error": str(e)}
            print(f"attncert: error: {printable(e)}", file=sys.stderr)
        reports.append(r)
        worst = max(worst, EXIT_ERROR if "error" in r else EXIT_OK if r["ok"] else EXIT_FAIL)
    if args.format == "json":
        print(json.dumps(json_safe(reports), indent=2, sort_keys=True))
    elif args.format == "github":
        from certificates.github import emit_check
        emit_check(reports)
    else:
        for r in reports:
            if "error" not in r:
                print("\n".join(_text(r, args.weights)))
    return worst


def _have_cvc5() -> bool:
    import importlib.util
    return importlib.util.find_spec("cvc5") is not None


def add_command(sub) -> None:
    sp = command(sub, "check", "re-check certificates with the independent Arb checker (exit 0 all hold, "
                 "1 one does not, 2 one cannot be read)",
                 "attncert check c.json\nattncert check --weights ramp.safetensors c.json\n"
                 "attncert check certificates/library/*.json --format github")
    sp.add_argument("certs", nargs="+", metavar="CERT", help="certificate files")
    sp.add_argument("--format", choices=["text", "json", "github"], default="text",
                    help="text, json, or github (::error/::notice annotations and a job summary)")
    sp.add_argument("--cross-check", action="store_true",
                    help="re-run SMT lemmas with cvc5 as well (skipped with a message when cvc5 is absent)")
    sp.add_argument("--lemma-timeout", type=float, default=None,
                    help="seconds per SMT lemma (default 10); a lemma that times out is 'unknown': invalid")
    sp.add_argument("--weights", metavar="FILE", help="also confirm that FILE (an export: safetensors, npz, torch "
                                                      ".pt, ONNX or Flax msgpack) holds exactly the certificate's "
                                                      "weights, every tensor bit for bit")
    sp.add_argument("--max-work", type=int, default=None, metavar="N",
                    help="refuse a certificate whose estimated checking work passes N units (default 10^7, "
                         "about 20 s to 5 min; 0: no limit)")
    sp.add_argument("--max-p", type=int, default=None, metavar="P",
                    help="largest L_p exponent checked (default 64; 0: no limit)")
    sp.add_argument("--workers", type=int, default=None, metavar="N",
                    help="check a paving's boxes in N processes (default 1); the report is the serial one")
    sp.add_argument("--max-size", type=int, default=64, metavar="MIB",
                    help="largest certificate file read, in MiB (default 64)")
    sp.set_defaults(fn=cmd_check)
