"""The checker's part for paving evidence: every leaf box of the bisection tree re-bounded."""
from __future__ import annotations

from flint import arb, fmpq

from .core import BoxError, Invalid, rat, undercuts


def check_boxes(boxes, bounds, hints, bound, eps, *, n_hints=None, lp=False, start=0, tick=None,
                slopes=None, centred=None, n_centred_hints=None):
    """Re-derive each box's bound with ``bound(box, hints)``; returns (stored max, checked max, lp terms).

    A stored bound must not undercut the re-derived one by more than REL_SLACK of the re-derived
    bound itself (core.undercuts; never a slack in terms of eps).  With ``lp`` the boxes feed an
    L_p sum, so a box need not be below eps; the sum uses the checker's own bound of each box.
    ``n_hints`` fixes the hint count per box when known; ``start`` is the first box's index in the
    whole paving (for messages, when a chunk is checked); ``tick()`` is called after each box
    (a progress bar).

    ``slopes`` (optional, aligned with ``boxes``): per box either [] (a plain box, re-bounded with
    ``bound``) or one exact rational string per input (a centred box, re-bounded with
    ``centred(box, hints, slopes)``, which confirms the slopes and returns the centred bound).
    A centred box's hints are those of its centred form: ``n_centred_hints`` of them when given
    (one leading key per head for the affine form, whose boxes in a grid paving differ from the
    plain boxes' grid hints; a paving marked "centred": "grid" uses grid hints for both).
    """
    if slopes is not None:
        if centred is None:
            raise Invalid("slopes are checked for pavings with bounder \"affine\" (one layer or layered) only")
        if len(slopes) != len(boxes):
            raise Invalid(f"evidence lists {len(slopes)} slope entries for {len(boxes)} boxes")
    stored_max = fmpq(0)
    checked_max = arb(0)
    lp_terms = []
    for n, (box, b, h) in enumerate(zip(boxes, bounds, hints), start):
        stored = rat(b, f"bounds[{n}]")
        s = slopes[n - start] if slopes is not None else None
        want = n_centred_hints if s and n_centred_hints is not None else n_hints
        if want is not None and len(h) != want:
            raise Invalid(f"box {n}: wrong number of hints")
        if s:
            if type(s) is not list or len(s) != len(box):
                raise Invalid(f"box {n}: a slopes entry lists one slope per input ({len(box)}) or none")
            try:
                proved = centred(box, h, [rat(x, f"box {n} slopes") for x in s])
            except (BoxError, Invalid) as e:
                raise Invalid(f"box {n} (centred): {e}") from None
        else:
            if s is not None and type(s) is not list:
                raise Invalid(f"box {n}: a slopes entry is a list")
            try:
                proved = bound(box, h)
            except BoxError as e:
                raise Invalid(f"box {n}: {e}") from None
        if lp:
            lp_terms.append((box, proved))
        elif not proved < arb(eps):
            raise Invalid(f"box {n} {[(str(a)[:40], str(c)[:40]) for a, c in box]}: re-derived bound "
                          f"{float(proved.mid()):.6g} is not below eps")
        if undercuts(stored, proved):
            raise Invalid(f"box {n}: stored bound {float(stored):.6g} is below the re-derived "
                          f"bound {float(proved.mid()):.6g}")
        stored_max = max(stored_max, stored)
        checked_max = arb.max(checked_max, proved).upper()
        if tick is not None:
            tick()
    return stored_max, checked_max, lp_terms
