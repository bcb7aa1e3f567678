"""The bounder for a construction's network shape: [MAP] grid, affine one-layer, or layered."""
from __future__ import annotations

import numpy as np

from .affine import AffineBounder
from .grid import pick_bounder


def make_bounder(construction, xp=np):
    """The bounder for the network's shape: affine one-layer, else layered interval propagation."""
    if dict(getattr(construction, "meta", ())).get("grid") is not None:
        return pick_bounder(construction, xp)  # [MAP] grid: the claim is verified by the grid bounder
    if getattr(construction.network, "is_plain", True):
        return AffineBounder(construction, xp)
    from .layered import LayeredBounder
    return LayeredBounder(construction, xp)
