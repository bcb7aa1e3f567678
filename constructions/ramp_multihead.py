"""[UAP] ramp-multihead: H heads over n tokens, error O((b-a)/(nH)).

Telescoping: Range_[a,b](x) = a + sum_h (Range_[a_h,b_h](x) - a_h) with a_h = a + (h-1)(b-a)/H.
All n tokens are the same token-wise affine map of x, (x, 1, j) with position j;
head h is a ramp on [a_h, b_h] whose n anchors L_hj = a_h + j Delta_H come from the
key j*Delta_H and the position-dependent logit bias -gamma (L_hj^2 - L_h0^2).  Its
value L_hj - a_h + a/H = a/H + j Delta_H is exact because the weights sum to one.
"""
from __future__ import annotations

from fractions import Fraction

from .base import Construction, Param, Spec, register
from .exact import ParameterError
from .formula import Formula, exp
from .network import Embedding, Head, Layer, Network, mat
from .ramp import PAPER

CLAIM = ("H softmax heads, each a ramp on one H-th of [a,b] placed by a position-dependent bias, "
         "sum to Range_[a,b] with error O((b-a)/(nH))")


def multihead_bound(a, b, n, H, kappa):
    """Delta_H/2 + 2((b-a)/H) q/(1-q) + (H-1) Delta_H q/(1-q)^2, q = e^-kappa (exact Formula).

    The last term bounds (H-1) Delta_H sum_m m q^{m^2} via q^{m^2} <= q^m.
    """
    a, b, kappa = Formula.num(a), Formula.num(b), Formula.num(kappa)
    dH = (b - a) / (H * (n - 1))
    q = exp(-kappa)
    return dH / 2 + 2 * ((b - a) / H) * q / (1 - q) + (H - 1) * dH * q / (1 - q) ** 2


def build_ramp_multihead(a, b, n, H, kappa, lo, hi) -> Construction:
    if n < 2:
        raise ParameterError(f"ramp-multihead: n must be at least 2 tokens, got {n}")
    if not 1 <= H <= 256:
        raise ParameterError(f"ramp-multihead: H must be between 1 and 256 heads, got {H}")
    if not a < b:
        raise ParameterError(f"ramp-multihead: need a < b, got a={a}, b={b}")
    if not kappa > 0:
        raise ParameterError(f"ramp-multihead: kappa must be positive, got {kappa}")
    if not lo < hi:
        raise ParameterError(f"ramp-multihead: empty or inverted domain [lo, hi] = [{lo}, {hi}]")
    a, b, kappa = Fraction(a), Fraction(b), Fraction(kappa)
    dH = (b - a) / (H * (n - 1))
    gamma = kappa / dH ** 2
    const = [[0, 1, j] for j in range(n)]
    lin = [[1, 0, 0] for _ in range(n)]
    heads = []
    for h in range(H):
        ah = a + h * (b - a) / H
        L = [ah + j * dH for j in range(n)]
        bias = [[-gamma * (L[j] ** 2 - L[0] ** 2) for j in range(n)]]
        heads.append(Head(wq=mat([[2], [0], [0]]), wk=mat([[0], [0], [dH]]),
                          wv=mat([[0], [a / H], [dH]]), wo=mat([[1]]), beta=gamma, bias=mat(bias)))
    layer = Layer(heads=tuple(heads), query_rows=(0,), key_rows=tuple(range(n)))
    net = Network(embedding=Embedding(const=mat(const), linear=(mat(lin),)), layers=(layer,),
                  readout=((0, 0),))
    return Construction(
        name="ramp-multihead", paper=PAPER, theorem=CLAIM,
        params=(("a", a), ("b", b), ("n", n), ("H", H), ("kappa", kappa), ("lo", lo), ("hi", hi)),
        network=net, target=(("range", ("num", a), ("num", b), ("var", "x0")),),
        domain=((Fraction(lo), Fraction(hi)),),
        apriori_bound=multihead_bound(a, b, n, H, kappa),
        notes=(f"Delta_H = (b-a)/(H(n-1)) = {dH}, gamma = kappa/Delta_H^2 = {gamma} (exact)",),
    )


register(Spec(
    name="ramp-multihead", summary="H heads with position bias ~ Range_[a,b](x), error O((b-a)/(nH))",
    paper=PAPER, theorem=CLAIM,
    params=(
        Param("a", "rational", "-1", "left end of the ramp"),
        Param("b", "rational", "1", "right end of the ramp"),
        Param("n", "int", "9", "tokens (= anchors per head, >= 2)"),
        Param("H", "int", "4", "heads (1..256)"),
        Param("kappa", "rational", "8", "sharpness gamma*Delta_H^2"),
        Param("lo", "rational", "-2", "domain left end"),
        Param("hi", "rational", "2", "domain right end"),
    ),
    builder=build_ramp_multihead,
    size=lambda p: p["n"] * p["H"],
))
