"""``attncert list``: the constructions with their parameters, paper and claim."""
from __future__ import annotations

from .common import EXIT_OK, add_format, emit


def cmd_list(args) -> int:
    from constructions import REGISTRY
    rows = []
    for name, spec in sorted(REGISTRY.items()):
        rows.append({"name": name, "summary": spec.summary, "paper": spec.paper, "claim": spec.theorem,
                     "params": {p.name: {"default": p.default, "shown": p.shown or str(p.default), "help": p.help}
                                for p in spec.params}})
    text = "\n".join(
        f"{r['name']:<16} {r['summary']}\n{'':16} paper: {r['paper']}\n{'':16} claim: {r['claim']}\n"
        f"{'':16} params: " + ", ".join(f"{k}={v['shown']}" for k, v in r["params"].items())
        for r in rows)
    emit(args, text, rows)
    return EXIT_OK


def add_command(sub) -> None:
    sp = sub.add_parser("list", help="constructions with their parameters, paper and claim")
    add_format(sp)
    sp.set_defaults(fn=cmd_list)
