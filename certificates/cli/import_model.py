"""``attncert import MODEL -o net.json``: read a trained attention model into the network model.

ONNX graphs, torch checkpoints (attncert's own, or a state_dict with ``--wiring``), safetensors
files (attncert's own, or a state_dict with ``--wiring``) and attncert JSON files.  Every float
becomes the exact rational it is; anything that cannot be mapped exactly is exit 2, one line,
naming the op, the node and why.  The module is named ``import_model`` because ``import`` is a
Python keyword; the subcommand is ``import``.
"""
from __future__ import annotations

from .common import EXIT_OK, UserError, add_format, command, emit, writable_output


def _dims(pairs) -> dict:
    out = {}
    for item in pairs or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--dim expects NAME=N, got {item!r}")
        try:
            n = int(value)
        except ValueError:
            raise UserError(f"--dim {name}: {value!r} is not a whole number") from None
        if n < 1:
            raise UserError(f"--dim {name}: must be at least 1")
        out[name.strip()] = n
    return out


def _wiring(path):
    if path is None:
        return None
    from certificates.imports.wiring import load_wiring
    return load_wiring(path)


def cmd_import(args) -> int:
    from certificates.imports import document, import_model
    from certificates.model import save
    writable_output(args.output)
    imp = import_model(args.model, wiring=_wiring(args.wiring), dims=_dims(args.dim), name=args.name)
    doc = document(imp)
    save(doc, args.output)
    net = imp.network
    n_out = doc["n_outputs"]
    shape = ", ".join(f"{len(L.heads)} head{'s' if len(L.heads) > 1 else ''} over {len(L.key_rows)} keys"
                      for L in net.layers)
    text = (f"imported {args.model} ({imp.source['format']}): {len(net.layers)} layer(s) [{shape}], "
            f"{net.n_tokens} tokens of width {len(net.embedding.const[0])}, {net.n_inputs} input(s) "
            f"{'x0' if net.n_inputs == 1 else f'x0..x{net.n_inputs - 1}'}, {n_out} output(s); "
            f"weights sha256 {doc['weights_sha256'][:16]}...; "
            f"written to {args.output}")
    for note in imp.notes:
        text += f"\nnote: {note}"
    text += (f"\nnext: attncert certify {args.output} --set f=EXPR --domain \"x0=LO:HI"
             f"{',...' if net.n_inputs > 1 else ''}\" --eps EPS")
    emit(args, text, {"model": args.model, "format": imp.source["format"], "output": args.output,
                      "weights_sha256": doc["weights_sha256"], "inputs": net.n_inputs, "outputs": n_out,
                      "layers": len(net.layers), "tokens": net.n_tokens, "notes": imp.notes})
    return EXIT_OK


def add_command(sub) -> None:
    sp = command(sub, "import", "read a trained attention model (ONNX, torch, safetensors) into an exact network file",
                 "attncert import model.onnx -o net.json\n"
                 "attncert certify net.json --set f='min(max(x0, -1), 1)' --domain \"x0=-2:2\" --eps 0.05 -o c.json")
    sp.add_argument("model", help="an ONNX model, a torch checkpoint (.pt), a safetensors file, or an attncert "
                                  "certificate/network JSON (the format is read from the bytes)")
    sp.add_argument("-o", "--output", required=True, help="the network file to write (net.json)")
    sp.add_argument("--wiring", metavar="FILE",
                    help="JSON (or YAML) description of how a state_dict's nn.Linear / nn.MultiheadAttention modules "
                         "connect (README: Certify your own model)")
    sp.add_argument("--dim", action="append", default=[], metavar="NAME=N",
                    help="ONNX: the size of a dynamic input dimension other than the batch axis (repeatable)")
    sp.add_argument("--name", help="the model's name in the network file (default: the file name)")
    add_format(sp)
    sp.set_defaults(fn=cmd_import)
