"""The bounder for a construction's network shape: [MAP] grid, affine one-layer, or layered."""
from __future__ import annotations

import numpy as np

from .affine import AffineBounder
from .grid import GridBounder
from .linearize import UnsupportedNetwork


def make_bounder(construction, xp=np):
    """The bounder for the network's shape: the [MAP] grid path when the construction claims a
    grid and the claim verifies exactly; else affine one-layer; else layered interval propagation.

    Falling back from the grid path is always sound (the general bounders bound the same
    network) and writes no grid evidence: only the grid bounder has a grid ``evidence``.
    """
    if dict(getattr(construction, "meta", ())).get("grid") is not None:
        try:
            return GridBounder(construction, xp)  # [MAP] grid: the claim is verified exactly here
        except UnsupportedNetwork:
            pass
    if getattr(construction.network, "is_plain", True):
        return AffineBounder(construction, xp)
    from .layered import LayeredBounder
    return LayeredBounder(construction, xp)
