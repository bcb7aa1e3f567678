"""``attncert export CERT --to FORMAT -o PATH``: write a certificate's float64 weights for a framework.

The certificate is re-checked in Arb first (``--no-check`` skips that), then the exporter
reads its exact weights; a certificate whose weights are not float64 values is refused.
"""
from __future__ import annotations

from .common import EXIT_FAIL, EXIT_OK, add_format, emit

FORMATS = ("safetensors", "torch", "onnx", "flax", "npz")


def cmd_export(args) -> int:
    from certificates.check.document import Invalid, check_doc
    from certificates.export import export
    from certificates.export.certdata import CertificateMismatch, ExportError
    from certificates.model import CertificateError, load
    if args.onnx_attention and args.to != "onnx":
        raise ExportError("--onnx-attention applies to --to onnx only")
    try:
        doc = load(args.cert)
    except CertificateError as e:  # a ValueError: one line, exit code 2
        raise CertificateError(f"{args.cert}: {e}") from None
    if not args.no_check:
        try:
            check_doc(doc, args.cert)
        except Invalid as e:
            print(f"{args.cert}: INVALID: {e}; nothing exported")
            return EXIT_FAIL
    try:
        info = export(doc, args.to, args.output, **({"attention_op": True} if args.onnx_attention else {}))
    except CertificateMismatch as e:
        print(f"{args.cert}: INVALID: {e}; nothing exported")
        return EXIT_FAIL
    except ImportError as e:  # ExportError (a ValueError) propagates: one line, exit code 2
        raise ExportError(f"--to {args.to} needs {e.name or 'a missing package'}: pip install 'attncert[{_extra(args.to)}]'") from None
    info["certificate_sha256"] = doc["sha256"]
    emit(args, f"exported {doc['construction']['name']} ({args.to}, {info['bytes']} bytes) to {args.output}; "
               f"certificate sha256 {doc['sha256'][:16]}...", info)
    return EXIT_OK


def _extra(fmt: str) -> str:
    return {"torch": "torch", "onnx": "onnx", "flax": "jax"}.get(fmt, "safetensors")


def add_command(sub) -> None:
    sp = sub.add_parser("export", help="write a certificate's float64 weights for torch, ONNX, Flax, safetensors, npz")
    sp.add_argument("cert")
    sp.add_argument("--to", required=True, choices=FORMATS)
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--no-check", action="store_true", help="skip re-checking the certificate in Arb first")
    sp.add_argument("--onnx-attention", action="store_true",
                    help="onnx: one opset-23 Attention node per head (scale=1.0) instead of MatMul/Softmax")
    add_format(sp)
    sp.set_defaults(fn=cmd_export)
