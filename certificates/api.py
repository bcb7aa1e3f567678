"""The public Python API for certificates: typed check results and reproducible documents.

``check`` wraps the independent checker and returns a ``CheckResult`` instead of raising,
so scripts can branch on ``result.ok``.  Nothing here imports ``verify``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

from .model import CertificateError, digest, load

# Fields of certificate_doc that vary from run to run and carry no proof.
VOLATILE_NOTE = "omitted for a reproducible certificate"


@dataclass(frozen=True)
class CheckResult:
    """Outcome of re-checking one certificate; ``ok`` is True exactly when it holds.

    ``norm`` is "Linf" (then ``norm_bound`` is the sup bound) or "Lp" with exponent ``p``;
    ``checked_*`` are the checker's own bounds (floats rounded up), the others the certificate's
    stated ones.  ``unverified`` names what the certificate states that the check did not verify.
    """
    ok: bool
    status: str              # "CERTIFIED" when it holds, "INVALID" otherwise
    eps: Fraction | None
    max_bound: Fraction | None   # the largest proved sup bound the certificate claims
    checked_max_bound: float     # the largest sup bound the checker re-derived (0.0 if invalid)
    boxes: int
    reason: str = ""
    name: str = ""
    path: str = ""
    norm: str = "Linf"                 # "Linf" or "Lp"
    p: Fraction | None = None          # the L_p exponent (None for Linf)
    norm_bound: Fraction | None = None  # the claimed bound in that norm (the sup bound for Linf)
    checked_norm_bound: float = 0.0    # the checker's own bound in that norm (0.0 if invalid)
    witness_error: float = 0.0         # the checker's bound of the error at the witness
    unverified: tuple = ()

    def __bool__(self) -> bool:
        return self.ok


def _frac(doc, *keys):
    try:
        v = doc
        for k in keys:
            v = v[k]
        return Fraction(v) if isinstance(v, str) and len(v) < 5000 else None
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def check(path_or_obj, **limits) -> CheckResult:
    """Re-check a certificate given as a path, bytes or a parsed dict.

    An invalid certificate gives ``ok=False`` with the reason; a file that cannot be read
    or parsed raises ``CertificateError`` (that is an input error, not a verdict), and a check
    past a limit raises ``certificates.check.core.LimitExceeded`` (a ValueError; nothing decided).
    ``limits``: ``max_bytes`` (file size, see ``model.load``), ``max_work`` and ``max_p`` (see
    ``check_doc``), ``timeout_ms`` and ``cross_check`` (SMT lemmas).
    """
    from .check.document import Invalid, check_doc
    max_bytes = limits.pop("max_bytes", None)
    opts = {} if max_bytes is None else {"max_bytes": max_bytes}
    if isinstance(path_or_obj, dict):
        doc, path = path_or_obj, "<certificate>"
    elif isinstance(path_or_obj, (bytes, bytearray)):
        doc, path = load(path_or_obj, **opts), "<bytes>"
    else:
        path = os.fspath(path_or_obj)
        doc = load(path, **opts)
    name = doc.get("construction", {}).get("name", "") if isinstance(doc.get("construction"), dict) else ""
    name = name if isinstance(name, str) else ""
    try:
        rep = check_doc(doc, path, **limits)
    except Invalid as e:
        return CheckResult(False, "INVALID", _frac(doc, "eps"), _frac(doc, "result", "max_bound"),
                           0.0, 0, str(e), name, path)
    except (KeyError, TypeError, IndexError) as e:  # structure the schema could not vouch for
        return CheckResult(False, "INVALID", _frac(doc, "eps"), _frac(doc, "result", "max_bound"),
                           0.0, 0, f"malformed certificate ({type(e).__name__}: {e})", name, path)
    return CheckResult(True, "CERTIFIED", Fraction(rep.eps), Fraction(rep.max_bound), rep.checked_max_bound,
                       rep.boxes, "", rep.name, path, norm=rep.norm, p=Fraction(rep.p) if rep.p else None,
                       norm_bound=Fraction(rep.norm_bound), checked_norm_bound=rep.checked_norm_bound,
                       witness_error=rep.witness_error, unverified=tuple(rep.unverified))


def reproducible_doc(doc) -> dict:
    """A copy without run-dependent fields (timing, library versions), re-hashed.

    The proof content (weights, target, domain, eps, paving, bounds) is untouched, so the
    checker accepts it exactly as before; two runs on one machine give identical bytes.
    """
    out = dict(doc)
    ev = out.get("evidence", {})
    if ev.get("method") == "residual":   # the embedded 1-D certificate has its own run-dependent fields
        out["evidence"] = dict(ev, certificate=reproducible_doc(ev["certificate"]))
    stats = dict(out.get("stats", {}))
    stats.pop("seconds", None)
    out["stats"] = stats
    out["versions"] = {"note": VOLATILE_NOTE}
    out["sha256"] = digest(out)
    return out


def certificate(construction, result, *, reproducible: bool = False) -> dict:
    """The certificate document of a CERTIFIED ``verify.certify`` result, confirmed by the
    independent checker first (CertificateError when it does not confirm: then there is no
    certificate).  ``reproducible``: without timing and versions, so that regenerating it gives
    identical bytes."""
    from .confirm import NotConfirmed, confirmed_document
    try:
        doc = confirmed_document(construction, result)
    except NotConfirmed as e:
        raise CertificateError(str(e)) from None
    return reproducible_doc(doc) if reproducible else doc


__all__ = ["CheckResult", "CertificateError", "check", "certificate", "reproducible_doc"]
