"""The checker's part for L_p certificates: the norm field and the sum of vol * bound^p.

The sum uses the checker's own bound of every box (never the stored one plus a slack), in Arb
balls: a huge exponent can never blow up an exact rational.  Only when the Arb comparison is too
close to call and p is an integer is it redone exactly (the checker's bounds are exact dyadics).
The exponent is limited to ``max_p`` (core.DEFAULT_MAX_P unless raised with ``--max-p``).
"""
from __future__ import annotations

from flint import arb, fmpq

from .core import DEFAULT_MAX_P, Invalid, LimitExceeded, float_up, rat


def lp_norm(doc, max_p=DEFAULT_MAX_P):
    """None for an L-inf certificate; the exponent p (fmpq, 1 <= p <= max_p) for an L_p one."""
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
    if max_p is not None and p > max_p:
        raise LimitExceeded(f"L_p exponent p = {str(norm['p'])[:40]} is larger than the limit {max_p}; "
                            f"raise it with --max-p")
    return p


def _power(x, p):
    """x^p for an arb x >= 0 and an fmpq p >= 1."""
    if p.q == 1:
        return x ** int(p.p)
    if x.upper() <= 0:
        return arb(0)
    return (x.log() * arb(p)).exp()


def _dyadic(x) -> fmpq:
    """The exact value of an exact (zero-radius) arb."""
    man, exp = x.mid().man_exp()
    man, exp = int(man), int(exp)
    return fmpq(man * 2 ** exp) if exp >= 0 else fmpq(man, 2 ** -exp)


def check_lp(doc, p, terms, eps) -> float:
    """(sum_box vol * bound^p) <= norm_bound^p < eps^p with the checker's own box bounds;
    returns the checker's own norm bound (the p-th root of its sum, rounded up)."""
    nb = rat(doc["result"].get("norm_bound"), "norm_bound")
    if nb < 0:
        raise Invalid("the L_p norm bound is negative")
    if not nb < eps:
        raise Invalid("the L_p norm bound is not below eps")
    total = arb(0)
    vols = []
    for box, b in terms:
        vol = fmpq(1)
        for lo, hi in box:
            vol *= fmpq((hi - lo).numerator, (hi - lo).denominator)
        vols.append(vol)
        total += arb(vol) * _power(b.upper(), p)
    lhs = _power(arb(nb), p)
    if not total <= lhs:
        if not (p.q == 1 and total.lower() <= lhs.upper()):
            raise Invalid("sum of vol * bound^p exceeds norm_bound^p")
        # too close to call in Arb: redo it exactly (the checker's bounds are exact dyadics)
        exact = sum((v * _dyadic(b.upper()) ** int(p.p) for v, (_, b) in zip(vols, terms)), fmpq(0))
        if not exact <= nb ** int(p.p):
            raise Invalid("sum of vol * bound^p exceeds norm_bound^p")
    top = total.upper()
    if not top > 0:
        return 0.0
    return float_up((top.log() / arb(p)).exp())
