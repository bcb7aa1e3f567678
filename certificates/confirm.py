"""Confirm a search result with the independent checker before any certificate is written.

The search (``verify``) and the checker (``certificates/check``) share no code, so their
bounds differ in the last bits, and on some paths by more.  ``confirmed_document`` builds
the certificate of a CERTIFIED result and runs the checker on it; it returns the document
only when the checker accepts it, so ``attncert certify`` never writes or reports CERTIFIED
for a certificate that ``attncert check`` would reject.
"""
from __future__ import annotations


class NotConfirmed(Exception):
    """The independent checker rejects what the search found; no certificate is made."""


def confirmed_document(construction, result, *, analytic: bool = False):
    """The certificate document of ``result``, re-checked by the independent checker."""
    from .check.core import Invalid
    from .check.document import check_doc
    from .model import analytic_certificate_doc, certificate_doc
    doc = (analytic_certificate_doc if analytic else certificate_doc)(construction, result)
    try:  # the search already did work of this size: no work or exponent limit applies here
        check_doc(doc, max_work=None, max_p=None)
    except Invalid as e:
        raise NotConfirmed(f"the independent checker rejects the search's evidence: {e}") from None
    return doc
