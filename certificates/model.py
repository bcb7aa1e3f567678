"""Certificate documents: build from a certify result, canonical bytes, hash, atomic save, safe load.

A certificate is canonical JSON (sorted keys, exact rationals as "p/q" strings, no
floats anywhere) with a SHA-256 over its canonical bytes without the ``sha256`` field.
Loading parses JSON only: no eval, no sympify, no pickle; it reads only a regular file of at
most MAX_BYTES, and rejects float literals, repeated keys and nesting past MAX_NESTING.
"""
from __future__ import annotations

import hashlib
import json
import platform
from fractions import Fraction


SCHEMA_VERSION = 1
MAX_BYTES = 64 << 20   # the largest certificate file read by default (64 MiB; raise with --max-size)
MAX_NESTING = 512      # JSON nesting: a 200-deep expression nests 400 deep


class CertificateError(ValueError):
    """The file is not a well-formed certificate (exit code 2 when it cannot be read)."""


def q(value) -> str:
    """Exact rational string of an int, Fraction or float ("p" or "p/q")."""
    if type(value) is float:   # the common case (every box bound): no Fraction object needed
        n, d = value.as_integer_ratio()   # lowest terms; NaN and inf raise, as Fraction does
    else:
        f = Fraction(value)
        n, d = f.numerator, f.denominator
    return str(n) if d == 1 else f"{n}/{d}"


def canonical(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def digest(doc) -> str:
    """SHA-256 over the canonical bytes of the document without its ``sha256`` field."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return hashlib.sha256(canonical(body)).hexdigest()


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for dist in ("attncert", "numpy", "sympy", "mpmath", "python-flint", "z3-solver"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def construction_doc(construction) -> dict:
    from constructions.expr import to_json
    net = construction.network
    return {
        "name": construction.name,
        "paper": construction.paper,
        "theorem": construction.theorem,
        "params": {k: (v if isinstance(v, str) else q(v)) for k, v in construction.params},
        "network": net.to_json(),
        "weights_sha256": net.weights_hash(),
        "apriori_bound": construction.apriori_text(),
        "notes": list(construction.notes),
    }, [to_json(t) for t in construction.target]


def _header(construction, eps) -> dict:
    """The fields every certificate shares: schema, construction, target, domain, eps, norm."""
    cons, target = construction_doc(construction)
    return {
        "schema": "attncert/certificate",
        "schema_version": SCHEMA_VERSION,
        "construction": cons,
        "inputs": list(construction.inputs),
        "target": target,
        "domain": [[q(a), q(b)] for a, b in construction.domain],
        "eps": q(eps),
        "norm": {"kind": "Linf"},
        "status": "CERTIFIED",
    }


def _paving_evidence(result) -> dict:
    """A paving's evidence, or one paving per group of outputs (``result.groups``)."""
    def one(r):
        ev = {"tree": r.tree, "bounds": [q(l.bound) for l in r.leaves],
              "hints": [list(l.hints) for l in r.leaves], **getattr(r, "evidence", {})}
        if any(getattr(l, "slopes", ()) for l in r.leaves):   # centred boxes: their slope bounds
            ev["slopes"] = [[q(v) for v in getattr(l, "slopes", ())] for l in r.leaves]
        return ev
    if getattr(result, "groups", None):
        return {"method": "outputs", "groups": [{"outputs": list(outs), **one(r)} for outs, r in result.groups]}
    return {"method": "paving", **one(result)}


def _residual_evidence(result) -> dict:
    """The residual route's evidence: the claim (layout, loss, eta, residual range) and the whole
    certificate of the 1-D problem (verify/search/residual.py; checked by check/residual.py)."""
    claim, sub, r = result.residual
    return {"method": "residual",
            "claim": {"blocks": [list(b) for b in claim["blocks"]], "w": list(claim["w"]),
                      "x": [list(v) for v in claim["x"]], "y": list(claim["y"]), "loss": claim["loss"],
                      "eta": q(Fraction(claim["eta"])), "residual": [q(Fraction(v)) for v in claim["residual"]]},
            "certificate": certificate_doc(sub, r)}


def certificate_doc(construction, result) -> dict:
    """The certificate of a CERTIFIED result (the evidence is its paving)."""
    if result.status != "CERTIFIED":
        raise ValueError("only a CERTIFIED result makes a certificate")
    doc = {
        **_header(construction, result.eps),
        "result": {
            "max_bound": q(result.max_bound),
            "observed_error": q(result.observed),
            "witness": [q(v) for v in result.witness],
        },
        "evidence": _residual_evidence(result) if getattr(result, "residual", None) else _paving_evidence(result),
        "stats": {"boxes_evaluated": result.boxes_evaluated,
                  "seconds": f"{result.seconds:.3f}"},
        "versions": versions(),
    }
    if getattr(result, "terms", None):
        from constructions.expr import to_json
        doc["result"]["chain"] = [{"label": label, "g": to_json(tree), "f_minus_g": q(t1),
                                   "g_minus_network": q(t2)} for label, tree, t1, t2 in result.terms]
    if getattr(result, "norm", None) is not None:  # an L_p certificate (verify.lp)
        doc["norm"] = dict(result.norm)
        doc["result"]["norm_bound"] = q(result.norm_bound)
    doc["sha256"] = digest(doc)
    return doc


def write_atomic(path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename,
    so that an interrupted write never leaves a half-written file."""
    from constructions.files import write_atomic as write
    write(path, data)


def save(doc, path) -> None:
    """Write the document's canonical bytes atomically."""
    write_atomic(path, canonical(doc) + b"\n")


def _no_float(text):
    raise CertificateError(f"certificate contains a float literal {text[:40]!r}; numbers must be exact strings")


def unique_keys(pairs):
    """``object_pairs_hook`` for ``json.load(s)``: reject an object that repeats a key (CertificateError).
    Use it for every attncert JSON file: certificates, checkpoints, partitions."""
    global _UNIQUE
    if _UNIQUE is None:   # imported on first use: loading a certificate stays light
        from constructions.files import unique_keys as hook
        _UNIQUE = hook(CertificateError)
    return _UNIQUE(pairs)


_UNIQUE = None


def _depth(obj, limit):
    """Nesting depth of lists/dicts, iteratively (stops counting past ``limit``)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > deepest:
            deepest = d
            if d > limit:
                return d
        if type(o) is dict:
            stack.extend((v, d + 1) for v in o.values() if type(v) in (dict, list))
        elif type(o) is list:
            stack.extend((v, d + 1) for v in o if type(v) in (dict, list))
    return deepest


def read_file(path, max_bytes: int = MAX_BYTES, what: str = "certificate") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, checked before reading: a FIFO, a
    device (``/dev/zero``), a directory or an oversized file is refused at once, never read or
    waited on.  Raises CertificateError naming ``--max-size`` for a file over the limit."""
    from constructions.files import read_regular
    return read_regular(path, max_bytes, CertificateError, what)


def parse(data: bytes, what: str = "certificate"):
    """Parse JSON bytes strictly: UTF-8, no float/NaN/Infinity literal, no repeated key, nesting at
    most MAX_NESTING; every failure is a one-line CertificateError (never a RecursionError)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CertificateError(f"{what} is not UTF-8 text") from None
    try:
        doc = json.loads(text, parse_float=_no_float, parse_constant=_no_float, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        raise CertificateError(f"{what} is not valid JSON (truncated?): {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise CertificateError(f"{what} is nested more than {MAX_NESTING} levels deep") from None
    except CertificateError:
        raise
    except ValueError as e:   # e.g. an integer with more digits than Python converts
        raise CertificateError(f"{what} is not valid JSON: {str(e).splitlines()[0][:120]}") from None
    if _depth(doc, MAX_NESTING) > MAX_NESTING:
        raise CertificateError(f"{what} is nested more than {MAX_NESTING} levels deep")
    return doc


def load(path_or_bytes, *, max_bytes: int = MAX_BYTES) -> dict:
    """Parse a certificate file as plain JSON (never executes anything).

    Only a regular file of at most ``max_bytes`` (default MAX_BYTES, CLI ``--max-size``) is read;
    see ``read_file`` and ``parse`` for what is refused.  Raises CertificateError.
    """
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
        if len(data) > max_bytes:
            raise CertificateError(f"certificate has {len(data)} bytes, more than the limit of {max_bytes}; "
                                   f"raise it with --max-size")
    else:
        data = read_file(path_or_bytes, max_bytes)
    doc = parse(data)
    if not isinstance(doc, dict):
        raise CertificateError("certificate is not a JSON object")
    return doc


def analytic_certificate_doc(construction, result) -> dict:
    """The certificate of a CERTIFIED analytic/auto result: pieces tiling the domain, and z3 lemmas."""
    if result.status != "CERTIFIED":
        raise ValueError("only a CERTIFIED result makes a certificate")
    pieces, lemmas = [], []
    for p in result.pieces:
        piece = {"cell": [[q(lo), q(hi)] for lo, hi in p.cell], "method": p.method, "bound": q(p.bound)}
        if p.method == "analytic":
            if p.plan.mesh is not None:
                piece["mesh"] = p.plan.mesh
            piece["heads"] = []
            for hp in p.plan.heads:
                piece["heads"].append({"output": hp.output, "head": hp.head, "top": hp.top,
                                       "active": list(hp.active),
                                       "lemma": None if hp.lemma is None else hp.lemma.id})
                if hp.lemma is not None:
                    if hp.text is None:
                        raise ValueError(f"lemma {hp.lemma.id} was not proved by z3; it is never written")
                    lm = hp.lemma
                    lemmas.append({"id": lm.id, "kind": "gap", "cell": piece["cell"], "output": lm.output,
                                   "head": lm.head, "top": lm.top,
                                   "claims": [[j, q(m)] for j, m in lm.claims], "expect": "unsat",
                                   "smt2": hp.text})
        else:
            sub = p.paving
            piece.update({"tree": sub.tree, "bounds": [q(l.bound) for l in sub.leaves],
                          "hints": [list(l.hints) for l in sub.leaves]})
        pieces.append(piece)
    doc = {
        **_header(construction, result.eps),
        "result": {
            "max_bound": q(max(p.bound for p in result.pieces)),
            "observed_error": q(result.observed),
            "witness": [q(v) for v in result.witness],
        },
        "evidence": {
            "method": "analytic" if all(p.method == "analytic" for p in result.pieces) else "mixed",
            "pieces": pieces,
            "lemmas": lemmas,
        },
        "stats": {"boxes_evaluated": result.boxes_evaluated, "lemmas": result.lemma_count,
                  "z3_seconds": f"{result.z3_seconds:.3f}", "seconds": f"{result.seconds:.3f}"},
        "versions": versions(),
    }
    part = getattr(result, "partition", None)
    if part:  # max-affine: the partition's cells, their leading anchors and the z3 partition lemmas
        doc["evidence"]["partition"] = {
            "output": part["output"], "head": part["head"],
            "cells": [[[q(lo), q(hi)] for lo, hi in cell] for cell in part["cells"]],
            "anchors": list(part["anchors"]),
            "lemmas": [dict(lm) for lm in part["lemmas"]]}
    doc["sha256"] = digest(doc)
    return doc
