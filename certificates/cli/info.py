"""``attncert info FILE``: the claim a certificate or an export (any of the five formats) carries.

Reads the file without executing anything and prints what it says was certified: the
construction, status, eps, norm, domain, target, the certificate and weights hashes and the
schema version.  It verifies nothing: ``attncert check CERT`` re-checks a certificate and
``attncert check --weights FILE CERT`` confirms that an export holds exactly its weights.
"""
from __future__ import annotations

from fractions import Fraction

from .common import EXIT_OK, UserError, add_format, command, emit


def _num(s) -> str:
    """An exact "p/q" string with its decimal value; long fractions as the decimal first."""
    try:
        if "/" not in str(s):
            return str(s)
        v = float(Fraction(s))
    except (ValueError, ZeroDivisionError, TypeError, OverflowError):
        return str(s)
    return f"{s} ({v:.6g})" if len(str(s)) <= 16 else f"{v:.6g} (exactly {s})"


def _norm(norm) -> str:
    if not isinstance(norm, dict):
        return str(norm)
    return "L_inf (sup over the domain)" if norm.get("kind") == "Linf" else \
        f"L_{norm.get('p')} over the domain" if norm.get("kind") == "Lp" else str(norm)


def _text(path, kind, fmt, c) -> str:
    from certificates.export.files import FORMAT_NAMES
    domain = c.get("domain") or []
    inputs = c.get("inputs") or [f"x{i}" for i in range(len(domain))]
    lp = isinstance(c.get("norm"), dict) and c["norm"].get("kind") == "Lp"
    what = (f"a certificate (not re-checked here: attncert check {path})" if kind == "certificate" else
            f"an export in {FORMAT_NAMES.get(fmt, fmt)} format ({c.get('format')}; not verified here: "
            f"attncert check --weights {path} CERT)")
    rows = [("construction", c.get("construction")), ("status", c.get("status")),
            ("claim", ("||network - target||_Lp" if lp else "sup |network - target|") + " < eps on the whole domain"),
            ("eps", _num(c.get("eps"))), ("norm", _norm(c.get("norm"))),
            ("proved bound", _num(c.get("norm_bound" if lp else "max_bound"))),
            ("domain", ", ".join(f"{v} in [{a}, {b}]" for v, (a, b) in zip(inputs, domain))),
            *[(f"target y{i}", t) for i, t in enumerate(c.get("target") or [])],
            ("certificate", f"sha256 {c.get('certificate_sha256')}"), ("weights", f"sha256 {c.get('weights_sha256')}"),
            ("schema version", c.get("schema_version"))]
    if kind != "certificate":
        rows.append(("tensors", f"sha256 {c.get('tensors_sha256')}"))
    return f"{path}: {what}\n" + "\n".join(f"  {k:<15} {v}" for k, v in rows)


def cmd_info(args) -> int:
    import json
    from certificates.export.certdata import claim
    from certificates.export.files import read_file
    fmt, obj = read_file(args.file)  # WeightsFileError (a ValueError): one line, exit code 2
    if fmt == "certificate":
        if not isinstance(obj.get("construction"), dict):
            raise UserError(f"{args.file}: a JSON file, but not an attncert certificate")
        kind, c = "certificate", claim(obj)
    else:
        try:
            c = json.loads(obj.claim_text)
        except ValueError:
            c = None
        if not isinstance(c, dict):
            raise UserError(f"{args.file}: a {fmt} file whose attncert claim is not JSON")
        kind = "export"
    emit(args, _text(args.file, kind, fmt, c), {"path": args.file, "kind": kind, "format": fmt, "claim": c})
    return EXIT_OK


def add_command(sub) -> None:
    sp = command(sub, "info", "print the claim a certificate or an export (any of the five formats) carries",
                 "attncert info model.onnx\nattncert info ramp.json --format json")
    sp.add_argument("file", help="a certificate, or an export: safetensors, npz, torch .pt, ONNX or Flax msgpack")
    add_format(sp)
    sp.set_defaults(fn=cmd_info)
