"""The cells of a [MAP] max-affine grid: each anchor's nearest-centre (Voronoi) cube, clipped to the domain.

Cells come from the grid centres the construction's network was built from (exact; for its
float64 version the dyadic centres of ``constructions.max_affine.grid_to_float64``), so the
analytic route's pieces are the partition's cells (optionally split ``sub`` times per axis to
resolve the soft transition), and ``leaders`` names the anchor key whose logit leads each cell.
"""
from __future__ import annotations

import itertools
from fractions import Fraction

from ..enclose.linearize import UnsupportedNetwork


def _grid(construction):
    meta = dict(construction.meta)
    if "grid" not in meta or construction.name not in ("max-affine", "cross-attention"):
        return None
    per = meta["grid"]
    if len(per) != 1:
        return None
    return per[0]


def is_max_affine_grid(construction) -> bool:
    return _grid(construction) is not None


def faces_1d(centres, lo, hi):
    """Breakpoints of the 1-D nearest-centre cells: the domain's ends and the midpoints of centres."""
    return [lo] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [hi]


def partition_cells(construction):
    """((cell, anchor key index), ...) in C order: the Voronoi cube of each grid anchor, clipped."""
    from constructions.max_affine import grid_centres
    g = _grid(construction)
    if g is None:
        raise UnsupportedNetwork("not a max-affine grid construction")
    prm = construction.param_dict()
    G = int(prm["G"])
    dom = construction.domain
    mm = dict(construction.meta).get("map")
    # the centres the network was built from (dyadic ones for its float64 version); the partition
    # lemmas then check, from the exact weights, that each cell is the one its anchor leads
    cen = [list(row) for row in mm["centres"]] if mm is not None else grid_centres(dom, G, prm["centres"])
    per_dim = []
    for d, (lo, hi) in enumerate(dom):
        f = faces_1d(cen[d], lo, hi)
        per_dim.append([(max(lo, u), min(hi, v)) for u, v in zip(f, f[1:])])
    out = []
    for flat, idx in enumerate(itertools.product(range(G), repeat=len(dom))):
        cell = tuple(per_dim[d][k] for d, k in enumerate(idx))
        out.append((cell, g["main"] + flat))
    return out


def split_cell(cell, sub: int):
    """The sub^D equal sub-boxes of a cell (exact), in C order."""
    axes = [[(lo + (hi - lo) * Fraction(k, sub), lo + (hi - lo) * Fraction(k + 1, sub)) for k in range(sub)]
            for lo, hi in cell]
    return [tuple(b) for b in itertools.product(*axes)]


def map_cells(construction, sub: int = 1):
    """Analytic pieces for a max-affine grid: each partition cell, split sub times per axis."""
    out = []
    for cell, _ in partition_cells(construction):
        out += split_cell(cell, sub)
    return out
