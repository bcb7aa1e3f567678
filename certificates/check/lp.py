"""The checker's part for L_p certificates: the norm field and the exact sum of vol * bound^p."""
from __future__ import annotations

from flint import arb, fmpq

from .core import Invalid, rat


def lp_norm(doc):
    """None for an L-inf certificate; the exponent p (fmpq >= 1) for an L_p one."""
    norm = doc["norm"]
    if norm.get("kind") == "Linf":
        if set(norm) != {"kind"}:
            raise Invalid("an Linf norm takes no parameters")
        return None
    if norm.get("kind") != "Lp" or set(norm) != {"kind", "p"}:
        raise Invalid("norm must be Linf or Lp with p")
    p = rat(norm["p"], "norm.p")
    if not p >= 1:
        raise Invalid("norm.p must be >= 1")
    return p


def check_lp(doc, p, terms, eps):
    """(sum_box vol * bound^p) <= norm_bound^p < eps^p, in Arb (exact fmpq when p is an integer)."""
    nb = rat(doc["result"].get("norm_bound"), "norm_bound")
    if not nb < eps:
        raise Invalid("the L_p norm bound is not below eps")
    integer = p.q == 1
    total = fmpq(0) if integer else arb(0)
    for box, b in terms:
        vol = fmpq(1)
        for lo, hi in box:
            vol *= fmpq((hi - lo).numerator, (hi - lo).denominator)
        if b < 0:
            raise Invalid("a stored box bound is negative")
        total += vol * (b ** int(p.p) if integer else arb(b) ** arb(p))
    lhs = nb ** int(p.p) if integer else arb(nb) ** arb(p)
    if not (total <= lhs if integer else total < lhs):
        raise Invalid("sum of vol * bound^p exceeds norm_bound^p")
