"""Dyadic boxes of the domain, their float enclosures, and the bisection-tree encoding.

A box is (i_d, k_d) per dimension: [lo_d + W_d i_d/2^k_d, lo_d + W_d (i_d+1)/2^k_d].
Its exact ends are rationals; the float ends we compute enclose them (outward
rounding), so a bound over the float box holds on the exact box.  The leaves of a
bisection are written as a preorder token string: a digit d = "split dimension d at
the midpoint, then the left and the right child", "L" = a leaf.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..enclose import interval as iv
from ..enclose.linearize import frac_interval

MAX_LEVEL = 50  # i/2^k stays exact in float64


@dataclass
class Leaf:
    """A finished box of the paving: its tree path, dyadic indices, proved bound and hints."""
    path: str
    i: tuple
    k: tuple
    bound: float
    hints: tuple


class Domain:
    """The root box with float enclosures of its rational ends and widths."""

    def __init__(self, domain, xp=np):
        self.xp = xp
        self.exact = tuple((Fraction(a), Fraction(b)) for a, b in domain)
        self.lo = [frac_interval([a])[0][0] for a, _ in self.exact], [frac_interval([a])[1][0] for a, _ in self.exact]
        self.w = [frac_interval([b - a])[0][0] for a, b in self.exact], [frac_interval([b - a])[1][0] for a, b in self.exact]
        self.D = len(self.exact)

    def enclose(self, I, K):
        """Float (xl, xh) of shape (N, D) enclosing the boxes with indices I, levels K."""
        xp = self.xp
        xl = xp.empty(I.shape, dtype=xp.float64)
        xh = xp.empty(I.shape, dtype=xp.float64)
        for d in range(self.D):
            t0 = xp.ldexp(I[:, d].astype(xp.float64), -K[:, d])
            t1 = xp.ldexp((I[:, d] + 1).astype(xp.float64), -K[:, d])
            xl[:, d] = iv.down(self.lo[0][d] + iv.down(self.w[0][d] * t0, xp), xp)
            xh[:, d] = iv.up(self.lo[1][d] + iv.up(self.w[1][d] * t1, xp), xp)
        return xl, xh

    def exact_box(self, i, k):
        """The exact rational box of one leaf (lists of ints i, k)."""
        return tuple((a + (b - a) * Fraction(ii, 2 ** kk), a + (b - a) * Fraction(ii + 1, 2 ** kk))
                     for (a, b), ii, kk in zip(self.exact, i, k))


def choose_dim(K, domain: Domain):
    """Split the widest side (in absolute width); ties go to the lowest dimension."""
    widths = np.stack([np.ldexp(np.full(K.shape[0], float(domain.w[1][d])), -np.asarray(K[:, d]))
                       for d in range(domain.D)], axis=1)
    return np.argmax(widths, axis=1)


def tree_string(paths) -> str:
    """Preorder encoding of the bisection tree whose leaves have the given paths.

    A path is a string of (dimension digit, side digit) pairs from the root.  The
    leaves must be exactly the leaves of one bisection (checked by the checker).
    """
    paths = sorted(paths)
    out = []

    def walk(lo, hi, depth):
        if hi - lo == 1 and len(paths[lo]) == depth:
            out.append("L")
            return
        dim = paths[lo][depth]
        mid = lo
        while mid < hi and paths[mid][depth + 1] == "0":
            mid += 1
        out.append(dim)
        walk(lo, mid, depth + 2)
        walk(mid, hi, depth + 2)

    walk(0, len(paths), 0)
    return "".join(out)


def bisect_boxes(I, K, dims, paths):
    """Bisect boxes (I, K) along ``dims``: both children of each, in order, with their tree paths."""
    n = len(paths)
    rows = np.arange(n)
    I2 = np.repeat(I, 2, axis=0)
    K2 = np.repeat(K, 2, axis=0)
    I2[2 * rows, dims] = 2 * I[rows, dims]
    I2[2 * rows + 1, dims] = 2 * I[rows, dims] + 1
    K2[2 * rows, dims] += 1
    K2[2 * rows + 1, dims] += 1
    new_paths = []
    for p, d in zip(paths, dims):
        new_paths.append(f"{p}{d}0")
        new_paths.append(f"{p}{d}1")
    return I2, K2, new_paths
