"""Audit a folder of certificates: re-check each one and detect construction drift.

Drift means that rebuilding a certificate's construction from its stored exact parameters
with the *current* code gives different weights (or target, or domain): the certificate
then speaks about a network the code no longer builds.  The first differing weight is named
by tensor (as in ``Network.tensors()``) and index.  An imported network ("imported", from
``attncert import``) has no parameters to rebuild from: its stored weights must match the imported
model's weights hash, and its target and domain their parameters.  This module rebuilds, so it
imports ``constructions``; it never imports ``verify``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .api import CheckResult, check
from .model import CertificateError, load

OK, DRIFT, INVALID, ERROR = "OK", "DRIFT", "INVALID", "ERROR"
_MARK = b"attncert/certificate"
_ORDER = {"embedding": 0, "const": 1, "linear": 2, "layers": 3, "query_rows": 4, "key_rows": 5,
          "heads": 6, "wq": 7, "wk": 8, "wv": 9, "wo": 10, "beta": 11, "bias": 12, "readout": 13}


@dataclass(frozen=True)
class AuditEntry:
    """One certificate's audit: ``status`` is OK, DRIFT, INVALID or ERROR (unreadable)."""
    path: str
    status: str
    name: str = ""
    reason: str = ""
    stored_hash: str = ""
    current_hash: str = ""
    check: CheckResult | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


def find_certificates(root) -> list:
    """Sorted paths of ``*.json`` files under ``root`` that declare the attncert certificate schema.

    Hidden folders (``.git``, ``.venv``) are skipped; a file that mentions the schema name is
    taken as a certificate, so a damaged one is reported rather than silently skipped.
    """
    root = os.fspath(root)
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        raise CertificateError(f"{root}: no such directory")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.endswith(".json"):
                path = os.path.join(folder, f)
                if _mentions_schema(path):
                    found.append(path)
    return found


def _mentions_schema(path) -> bool:
    """Whether the file contains the schema name anywhere (canonical JSON puts "schema" late)."""
    tail = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                return False
            if _MARK in tail + chunk:
                return True
            tail = chunk[-len(_MARK):]


def _tensor_name(path) -> tuple:
    """(tensor name, index) of a JSON path inside ``Network.to_json()``."""
    p = list(path)
    if p[:2] == ["embedding", "const"]:
        return "embed.const", p[2:]
    if p[:2] == ["embedding", "linear"] and len(p) > 2:
        return f"embed.linear.{p[2]}", p[3:]
    if p[:1] == ["layers"] and len(p) > 1:
        if len(p) > 3 and p[2] == "heads":
            if len(p) > 4:
                return f"layer{p[1]}.head{p[3]}.{p[4]}", p[5:]
            return f"layer{p[1]}.head{p[3]}", []
        return f"layer{p[1]}" + (f".{p[2]}" if len(p) > 2 else ""), p[3:]
    return ".".join(str(x) for x in p) or "network", []


def _is_matrix(v) -> bool:
    return isinstance(v, list) and all(isinstance(r, list) and all(isinstance(x, str) for x in r) for r in v) and bool(v)


def _shape(m) -> str:
    return f"{len(m)}x{len(m[0]) if m else 0}"


def _first_diff(old, new, path=()):
    """First difference between two JSON values as (path, description), or None."""
    if old == new:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=lambda k: (_ORDER.get(k, 99), k)):
            if k not in old or k not in new:
                return path + (k,), ("added" if k not in old else "removed")
            d = _first_diff(old[k], new[k], path + (k,))
            if d:
                return d
        return None
    if _is_matrix(old) and _is_matrix(new) and (len(old) != len(new) or len(old[0]) != len(new[0])):
        return path, f"shape {_shape(old)} -> {_shape(new)}"
    if isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new)):
            d = _first_diff(a, b, path + (i,))
            if d:
                return d
        return path, f"length {len(old)} -> {len(new)}"
    return path, f"stored {old} -> now {new}"


def first_weight_difference(old_net: dict, new_net: dict) -> str | None:
    """'layer0.head0.wo[0, 0]: stored 1 -> now 2' for the first differing weight, or None."""
    d = _first_diff(old_net, new_net)
    if d is None:
        return None
    path, what = d
    name, index = _tensor_name(path)
    idx = f"[{', '.join(str(i) for i in index)}]" if index else ""
    return f"{name}{idx}: {what}"


def _rebuild(constructions, name, params):
    """The construction a certificate's stored parameters describe.

    ``float64=1`` (written by ``certify --float64``) means the float64 version of the
    construction built from the other parameters (``constructions.float64.to_float64``).
    """
    from constructions.exact import ParameterError, parse_int
    from constructions.float64 import to_float64
    params = dict(params)
    f64 = parse_int(params.pop("float64", 0))
    if f64 not in (0, 1):
        raise ParameterError(f"float64 must be 0 or 1, got {f64}")
    built = constructions.build(name, **params)
    return to_float64(built) if f64 else built


def audit_doc(doc, path: str = "<certificate>", progress: bool = False) -> AuditEntry:
    """Rebuild the construction from the certificate's parameters, compare, then re-check it
    (``progress``: a bar of the boxes checked, on stderr)."""
    import constructions
    from constructions.exact import ParameterError
    from .model import construction_doc, q
    cons = doc.get("construction") if isinstance(doc, dict) else None
    if not isinstance(cons, dict) or not isinstance(cons.get("params"), dict):
        return AuditEntry(path, INVALID, reason="no construction name and parameters to rebuild from")
    name, stored = str(cons.get("name", "")), str(cons.get("weights_sha256", ""))
    if name == "imported":
        return _audit_imported(doc, cons, path, stored, progress)
    res = check(doc, progress=progress)
    try:
        built = _rebuild(constructions, name, cons["params"])
    except (ParameterError, ValueError, TypeError, ArithmeticError) as e:
        return AuditEntry(path, DRIFT, name, f"cannot rebuild {name} from its stored parameters with the current "
                                             f"code: {e}", stored, "", res)
    now = built.network.weights_hash()
    problems = []
    if now != stored:
        diff = first_weight_difference(cons.get("network", {}), built.network.to_json())
        problems.append(f"{name} rebuilt from its parameters has different weights (sha256 {stored[:12]} -> "
                        f"{now[:12]}); first differing weight {diff or 'unknown (stored weights do not match their hash)'}")
    new_cons, new_target = construction_doc(built)
    if new_target != doc.get("target"):
        problems.append(f"{name}: the target expression changed")
    if [[q(a), q(b)] for a, b in built.domain] != doc.get("domain"):
        problems.append(f"{name}: the domain changed")
    if problems:
        return AuditEntry(path, DRIFT, name, "; ".join(problems), stored, now, res)
    if not res.ok:
        return AuditEntry(path, INVALID, name, res.reason, stored, now, res)
    return AuditEntry(path, OK, name, "", stored, now, res)


def _audit_imported(doc, cons, path, stored, progress=False) -> AuditEntry:
    """An imported network has no construction parameters to rebuild from: the stored weights must
    hash to the imported model's weights hash (a parameter), and the target and domain must be
    the ones its parameters give; then the certificate is re-checked."""
    from constructions.float64 import is_float64
    from constructions.imported import verify_params
    from constructions.network import Network, sha256_canonical
    params = cons["params"]
    model = str(params.get("model", ""))
    label = f"imported:{model}" if model else "imported"
    res = check(doc, progress=progress)
    net_json = cons.get("network", {})
    problems = verify_params(params, net_json, doc.get("target"), doc.get("domain"))
    now = sha256_canonical(net_json) if isinstance(net_json, dict) else ""
    if now != stored:
        problems.append(f"imported network: stored weights_sha256 {stored[:12]} does not match its weights {now[:12]}")
    if str(params.get("float64", "0")) not in ("0", "1"):
        problems.append("imported network: float64 must be 0 or 1")
    elif str(params.get("float64", "0")) == "1":
        try:
            if not is_float64(Network.from_json(net_json)):
                problems.append("imported network: float64=1 but its weights are not all float64 values with beta 1")
        except (KeyError, TypeError, ValueError, IndexError) as e:
            problems.append(f"imported network: malformed network ({type(e).__name__})")
    if problems:
        return AuditEntry(path, DRIFT, label, "; ".join(problems), stored, now, res)
    if not res.ok:
        return AuditEntry(path, INVALID, label, res.reason, stored, now, res)
    return AuditEntry(path, OK, label, "imported network: no construction parameters to rebuild from; the stored "
                                       "weights match the imported model's hash, and target and domain match "
                                       "their parameters", stored, now, res)


def audit_path(path, progress: bool = False) -> AuditEntry:
    try:
        doc = load(path)
    except CertificateError as e:
        return AuditEntry(os.fspath(path), ERROR, reason=str(e))
    return audit_doc(doc, os.fspath(path), progress)


def audit_dir(root, progress: bool = False) -> list:
    """Audit every certificate under ``root`` (a folder, searched recursively, or one file);
    ``progress`` shows a bar of each certificate's boxes on stderr."""
    return [audit_path(p, progress) for p in find_certificates(root)]
