"""Evaluation backends, rigorous enclosures and the branch-and-bound certifier.

``verify.certify(construction, eps, ...)`` is the public entry point (a function: it
lives in ``verify.search.certify``).
"""
from .search.certify import CERTIFIED, REFUTED, UNKNOWN, CertifyResult, certify

__all__ = ["certify", "CertifyResult", "CERTIFIED", "REFUTED", "UNKNOWN"]
