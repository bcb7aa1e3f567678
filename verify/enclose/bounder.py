"""The bounder for a construction's network shape: [MAP] grid, affine one-layer, or layered."""
from __future__ import annotations

import numpy as np

from .affine import AffineBounder
from .grid import GridBounder
from .linearize import UnsupportedNetwork


ENCLOSURES = ("auto", "plain", "centred")


def resolve_enclosure(construction, enclosure: str) -> str:
    """"plain" or "centred" for ``enclosure`` in ENCLOSURES.

    Every network has a centred form (one layer: the affine bounder's; layered: LayeredBounder's,
    re-derived by certificates/check/layered.py).  "auto" is centred for one-layer networks only:
    on icl-gd and relu-net the layered centred bound rarely beats the plain one where it is tried
    and costs about 3x (measured, issue 17), so there it would only slow the search down.
    """
    if enclosure not in ENCLOSURES:
        raise ValueError(f"unknown enclosure {enclosure!r} ({', '.join(ENCLOSURES)})")
    if enclosure == "auto":
        return "centred" if getattr(construction.network, "is_plain", True) else "plain"
    return enclosure


# The centred bound is computed for a box only when the plain bound does not finish it but is
# below WINDOW times the acceptance level: far above it the centred bound is no better (it
# wins on small boxes, where the plain bound is already close), and each costs 2 + 2D plain ones.
# Measured on 2-D max-affine sin(2x0)cos(3x1) at eps 0.03 with the grid's centred form:
# WINDOW 1.5 / 2 / 4 / 8 -> 12 560 / 7 608 / 5 764 / 5 764 leaves.
WINDOW = 4.0


class CentredBounder:
    """The tighter of a plain bounder's bound and a centred (mean-value) bound, per box (per output
    with ``each``: min(plain_o, C), whose combination is min(plain, C)).  ``centred`` gives the
    latter: the plain bounder itself (affine, grid or layered: each has its own centred form).

    With ``accept`` the centred bound is computed only for boxes whose plain bound lies in
    [accept, WINDOW * accept); elsewhere the plain bound stands (always sound: C only ever
    lowers a bound it also proves).  Hints are the plain bounder's; ``centred_leaves`` gives a
    centred box's own evidence (slopes and the centred form's hints: grid hints on a grid, whose
    evidence then says "centred": "grid")."""

    def __init__(self, plain, centred, accept=None):
        self.plain, self.centred, self.accept = plain, centred, accept
        self.xp = plain.xp
        self.construction, self.inputs = plain.construction, plain.inputs
        self.depends = getattr(plain, "depends", None)
        self.evidence = dict(getattr(plain, "evidence", {}))
        if isinstance(centred, GridBounder):   # centred boxes carry grid hints and grid-derived slopes
            self.evidence["centred"] = "grid"

    @property
    def point_bounder(self):
        """The bounder for refutation witnesses, made only when one is needed: the affine bounder
        this one already holds where it has one (building another costs an exact affine form
        of every key, 10-20 s at 4 097 tokens), else the plain bounder's own."""
        if isinstance(self.centred, AffineBounder):
            return self.centred
        return getattr(self.plain, "point_bounder", self.plain)

    def output_bounds(self, xl, xh):
        return self.plain.output_bounds(xl, xh)

    def _window(self, box):
        xp = self.xp
        if self.accept is None:
            return xp.ones(box.shape, dtype=bool)
        return (box >= self.accept) & (box < WINDOW * self.accept)

    def error_bounds(self, xl, xh, each: bool = False):
        from .affine import combine_outputs
        xp = self.xp
        b, h = self.plain.error_bounds(xl, xh, each)
        sel = xp.flatnonzero(self._window(combine_outputs(b, xp) if each else b))
        if len(sel):
            _, C, _ = self.centred.centred_parts(xl[sel], xh[sel])
            b = b.copy()
            b[sel] = xp.minimum(b[sel], C[:, None] if each else C)
        return b, h

    def centred_leaves(self, xl, xh):
        """For finished boxes: the plain bound (N,), the centred bound C (N,) (inf where not computed:
        the plain bound is below accept), the slopes (N, D) and the centred bound's hints (N, H)
        (None when no box needed the centred bound), from one centred pass."""
        xp = self.xp
        b, _ = self.plain.error_bounds(xl, xh)
        # a leaf the plain bound did not finish was finished by the centred one
        need = xp.arange(len(b)) if self.accept is None else xp.flatnonzero(~(b < self.accept))
        C = xp.full(b.shape, xp.inf)
        slopes = xp.full(xl.shape, xp.inf)
        hints = None
        if len(need):
            _, Cn, sn, hn = self.centred.centred_bounds(xl[need], xh[need])
            C[need], slopes[need] = Cn, sn
            hints = xp.zeros((xl.shape[0], hn.shape[1]), dtype=hn.dtype)
            hints[need] = hn
        return b, C, slopes, hints


def make_bounder(construction, xp=np, enclosure: str = "plain", accept=None):
    """The bounder for the network's shape: the [MAP] grid path when the construction claims a
    grid and the claim verifies exactly; else affine one-layer; else layered interval propagation.
    ``enclosure="centred"`` takes the tighter of that bound and the centred (mean-value) bound
    on each box (``CentredBounder``; ``accept`` limits where it is computed).

    Falling back from the grid path is always sound (the general bounders bound the same
    network) and writes no grid evidence: only the grid bounder has a grid ``evidence``.
    """
    if resolve_enclosure(construction, enclosure) == "centred":
        plain = make_bounder(construction, xp, "plain")
        # every plain bounder has its own centred form (the grid's keeps the product structure)
        return CentredBounder(plain, plain, accept)
    if dict(getattr(construction, "meta", ())).get("grid") is not None:
        try:
            return GridBounder(construction, xp)  # [MAP] grid: the claim is verified exactly here
        except UnsupportedNetwork:
            pass
    if getattr(construction.network, "is_plain", True):
        return AffineBounder(construction, xp)
    from .layered import LayeredBounder
    return LayeredBounder(construction, xp)
