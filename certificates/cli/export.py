"""``attncert export CERT --to FORMAT -o PATH``: write a certificate's float64 weights for a framework.

The certificate's structure and float64 weights are read first (a refusal is immediate, exit
code 2, naming the field), then it is re-checked in Arb (``--no-check`` skips that), then
written.  Every network the certifier handles exports to all five formats (docs/formats.md).
"""
from __future__ import annotations

from .common import EXIT_FAIL, EXIT_OK, add_format, command, emit

FORMATS = ("safetensors", "torch", "onnx", "flax", "npz")


def cmd_export(args) -> int:
    from certificates.export import export
    from certificates.export.certdata import CertificateMismatch, ExportError, read
    from certificates.model import CertificateError, load
    if args.onnx_attention and args.to != "onnx":
        raise ExportError("--onnx-attention applies to --to onnx only")
    try:
        doc = load(args.cert)
    except CertificateError as e:  # a ValueError: one line, exit code 2
        raise CertificateError(f"{args.cert}: {e}") from None
    try:  # structure and float64 weights first: a refusal comes at once, before the Arb re-check
        read(doc)
    except CertificateMismatch as e:
        print(f"{args.cert}: INVALID: {e}; nothing exported")
        return EXIT_FAIL
    except ExportError as e:
        raise ExportError(f"{args.cert}: {e}") from None
    if not args.no_check:
        from certificates.check.document import Invalid, check_doc
        try:
            check_doc(doc, args.cert)
        except Invalid as e:
            print(f"{args.cert}: INVALID: {e}; nothing exported")
            return EXIT_FAIL
    try:
        info = export(doc, args.to, args.output, **({"attention_op": True} if args.onnx_attention else {}))
    except ImportError as e:  # ExportError (a ValueError) propagates: one line, exit code 2
        raise ExportError(f"--to {args.to} needs {e.name or 'a missing package'}: pip install 'attncert[{_extra(args.to)}]'") from None
    info["certificate_sha256"] = doc["sha256"]
    emit(args, f"exported {doc['construction']['name']} ({args.to}, {info['bytes']} bytes) to {args.output}; "
               f"certificate sha256 {doc['sha256'][:16]}...", info)
    return EXIT_OK


def _extra(fmt: str) -> str:
    return {"torch": "torch", "onnx": "onnx", "flax": "jax"}.get(fmt, "safetensors")


def add_command(sub) -> None:
    sp = command(sub, "export", "write a certificate's float64 weights for safetensors, npz, torch, ONNX or Flax",
                 "attncert export ramp.json --to onnx -o model.onnx\n"
                 "attncert check --weights model.onnx ramp.json   (the file holds exactly the certified weights)")
    sp.add_argument("cert", help="a CERTIFIED certificate made with --float64 (docs/formats.md: the formats)")
    sp.add_argument("--to", required=True, choices=FORMATS, help="the format to write")
    sp.add_argument("-o", "--output", required=True, help="the file to write (atomically)")
    sp.add_argument("--no-check", action="store_true", help="skip re-checking the certificate in Arb first")
    sp.add_argument("--onnx-attention", action="store_true",
                    help="onnx: one opset-23 Attention node per head (scale=1.0) instead of MatMul/Softmax")
    add_format(sp)
    sp.set_defaults(fn=cmd_export)
