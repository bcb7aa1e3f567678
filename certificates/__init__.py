"""Certificate model, schema, independent checker and the public certificate API.

``check(path_or_obj) -> CheckResult``, ``load``/``save`` and ``certificate(construction,
result)`` are the script-facing entry points; nothing here imports ``verify``.
"""
# The checker package shares its name with the API function ``check``: load the (empty)
# package first, so that importing its modules later never rebinds ``certificates.check``.
from . import check as _checker_package  # noqa: F401
from .api import CheckResult, certificate, check, reproducible_doc
from .model import CertificateError, load, save

__all__ = ["CheckResult", "CertificateError", "certificate", "check", "load", "reproducible_doc", "save"]
