"""``attncert build NAME``: build a construction's exact spec (``--symbolic``: its general form as LaTeX)."""
from __future__ import annotations

from .common import EXIT_OK, UserError, add_construction, add_format, command, construction_from_args, emit


def cmd_build(args) -> int:
    from constructions import REGISTRY
    from certificates.model import construction_doc, save
    c = construction_from_args(args)
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
            f"{len(net.layers)} layer(s); weights sha256 {cons['weights_sha256'][:16]}...\n" +
            (f"a-priori bound: {c.apriori_text()} ~ {c.apriori_float():.6g}" if c.apriori_bound is not None
             else "a-priori bound: none is known for this construction"))
    emit(args, text, {"name": c.name, "tokens": net.n_tokens, "weights_sha256": cons["weights_sha256"],
                      "apriori_bound": c.apriori_text(), "apriori_bound_float": c.apriori_float()})
    return EXIT_OK


def add_command(sub) -> None:
    sp = command(sub, "build", "build a construction's exact weights and print its a-priori bound",
                 "attncert build ramp --set p=41 --set kappa=8\nattncert build ramp --symbolic")
    add_construction(sp)
    add_format(sp)
    sp.set_defaults(fn=cmd_build)
    sp.add_argument("--symbolic", action="store_true", help="print the general construction as LaTeX")
    sp.add_argument("-o", "--output", help="write the construction (exact weights, target, domain) as JSON")
