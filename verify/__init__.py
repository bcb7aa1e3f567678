"""Evaluation backends, rigorous enclosures and the branch-and-bound certifier.

``verify.certify(construction, eps, ...)`` is the public entry point (a function: it
lives in ``verify.search.certify``); ``verify.certify_residual`` is icl-gd's residual route
(where ``verify.residual_claim`` finds the structure; what ``attncert certify`` uses by default).
"""
from .search.certify import CERTIFIED, REFUTED, UNKNOWN, CertifyResult, certify
from .search.residual import certify_residual, residual_claim

__all__ = ["certify", "certify_residual", "residual_claim", "CertifyResult", "CERTIFIED", "REFUTED", "UNKNOWN"]
