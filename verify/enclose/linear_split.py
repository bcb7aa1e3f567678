"""Split a target tree into its top-level linear part and the rest: f = sum_i a_i x_i + f'.

Used to cancel a linear term that the network output shares exactly with the target
(icl-gd: both are w + ...), so that it does not enter a box bound twice.  Only the
top-level add/sub/neg/scalar-mul structure is split; everything else stays in f'.
"""
from __future__ import annotations

from fractions import Fraction


def split_linear(tree):
    """(coefficients {var: Fraction}, rest tree or None) with tree == linear + rest exactly."""
    tag = tree[0]
    if tag == "var":
        return {tree[1]: Fraction(1)}, None
    if tag == "add":
        coef, rests = {}, []
        for c in tree[1:]:
            k, r = split_linear(c)
            for v, a in k.items():
                coef[v] = coef.get(v, Fraction(0)) + a
            if r is not None:
                rests.append(r)
        return coef, (None if not rests else rests[0] if len(rests) == 1 else ("add",) + tuple(rests))
    if tag == "sub":
        ka, ra = split_linear(tree[1])
        kb, rb = split_linear(tree[2])
        coef = dict(ka)
        for v, a in kb.items():
            coef[v] = coef.get(v, Fraction(0)) - a
        if rb is None:
            return coef, ra
        return coef, (("neg", rb) if ra is None else ("sub", ra, rb))
    if tag == "neg":
        k, r = split_linear(tree[1])
        return {v: -a for v, a in k.items()}, (None if r is None else ("neg", r))
    if tag == "mul" and len(tree) == 3 and (tree[1][0] == "num" or tree[2][0] == "num"):
        num, other = (tree[1], tree[2]) if tree[1][0] == "num" else (tree[2], tree[1])
        k, r = split_linear(other)
        return {v: num[1] * a for v, a in k.items()}, (None if r is None else ("mul", num, r))
    return {}, tree
