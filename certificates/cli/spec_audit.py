"""``attncert spec-audit``: z3 proves that a construction's exact weights satisfy its spec (verify.spec_audit).

Takes a construction name (built with ``--set``) or a JSON file holding a "construction"
(the output of ``attncert build -o`` or a certificate), so edited weights can be audited.
Exit 0: every lemma holds; 1: a lemma fails (named, with z3's counterexample point); 2: bad input.
"""
from __future__ import annotations

from .common import EXIT_FAIL, EXIT_OK, UserError, add_format, command, construction_from_args, emit, positive_finite


def cmd_spec_audit(args) -> int:
    import os

    from constructions.network import Network
    from verify.spec_audit import spec_audit
    if os.path.isfile(args.name) or args.name.endswith(".json"):
        from certificates.model import CertificateError, load
        from constructions import REGISTRY
        from constructions.base import resolve_params
        try:
            doc = load(args.name)
            cons = doc["construction"]
            name = cons["name"]
            if name not in REGISTRY:
                raise UserError(f"{args.name}: unknown construction {name!r}")
            params = resolve_params(REGISTRY[name], cons["params"])
            network = Network.from_json(cons["network"])
        except CertificateError as e:
            raise UserError(f"{args.name}: {e}") from None
        except (KeyError, TypeError) as e:
            raise UserError(f"{args.name}: not a construction file (missing {e})") from None
    else:
        c = construction_from_args(args)
        name, params, network = c.name, c.param_dict(), c.network
    try:
        positive_finite(args.lemma_timeout, "--lemma-timeout")
        rep = spec_audit(name, params, network, timeout_ms=int(args.lemma_timeout * 1000))
    except ValueError as e:
        raise UserError(str(e)) from None
    info = {"construction": name, "ok": rep.ok, "lemmas": rep.lemmas, "failures": rep.failures,
            "seconds": round(rep.seconds, 3)}
    if rep.ok:
        emit(args, f"AUDIT OK {name}: {rep.lemmas} z3 lemmas (spec identities and gap facts) unsat "
                   f"in {rep.seconds:.2f}s", info)
        return EXIT_OK
    emit(args, "\n".join(f"AUDIT FAILED {name}: {f}" for f in rep.failures), info)
    return EXIT_FAIL


def add_command(sub) -> None:
    sp = command(sub, "spec-audit", "prove with z3 that a construction's weights meet its spec",
                 "attncert spec-audit ramp --set p=9")
    sp.add_argument("name", help="construction name, or a JSON file with a construction (build -o, certificate)")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                    help="an exact parameter value, e.g. --set p=41 (repeatable)")
    sp.add_argument("--max-tokens", type=int, default=None, metavar="N",
                    help="refuse constructions with more than N tokens, estimated before building (default 400000)")
    sp.add_argument("--lemma-timeout", type=float, default=10.0, help="seconds per lemma")
    add_format(sp)
    sp.set_defaults(fn=cmd_spec_audit)
