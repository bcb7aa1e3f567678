"""Exact float64 rounding of a construction: what you certify is what you export.

``to_float64`` folds each head's beta into W_Q and rounds every weight to the nearest
float64, keeping each as the exact Fraction of that float, so a certificate of the result
speaks about exactly the float64 weights that the exporters write.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from .base import Construction
from .network import Embedding, Head, Layer, Network


def exact_f64(v: Fraction) -> bool:
    """Whether ``v`` is exactly a (finite) float64 value: n 2^e with odd n < 2^53, -1074 <= e, top bit <= 1023."""
    n, d = v.numerator, v.denominator
    if d & (d - 1):
        return False
    if n == 0:
        return True
    n = abs(n)
    tz = (n & -n).bit_length() - 1
    n >>= tz
    e = tz - (d.bit_length() - 1)
    return n.bit_length() <= 53 and e >= -1074 and e + n.bit_length() - 1 <= 1023


def round_f64(v: Fraction) -> Fraction:
    """The exact rational value of the float64 nearest to ``v`` (ties to even)."""
    if type(v) is Fraction and exact_f64(v):
        return v
    try:
        f = float(v)  # Fraction.__float__ is correctly rounded
    except OverflowError:
        raise ValueError(f"weight {v} is beyond the float64 range") from None
    return Fraction(f)


def _round(m):
    return tuple(tuple(round_f64(v) for v in row) for row in m)


def network_to_float64(net: Network) -> Network:
    """Fold beta into W_Q exactly, then round every matrix entry (post maps and readout too) to float64."""
    layers = tuple(replace(layer,
                           heads=tuple(Head(wq=_round(tuple(tuple(v * h.beta for v in row) for row in h.wq)),
                                            wk=_round(h.wk), wv=_round(h.wv), wo=_round(h.wo), beta=Fraction(1),
                                            bias=None if h.bias is None else _round(h.bias))
                                       for h in layer.heads),
                           post=None if layer.post is None else (_round(layer.post[0]), _round(layer.post[1])))
                   for layer in net.layers)
    emb = Embedding(const=_round(net.embedding.const), linear=tuple(_round(e) for e in net.embedding.linear))
    readout_linear = None if net.readout_linear is None else tuple(
        (round_f64(b), tuple(round_f64(v) for v in w)) for b, w in net.readout_linear)
    return replace(net, embedding=emb, layers=layers, readout_linear=readout_linear)


def _all_f64(m) -> bool:
    return all(exact_f64(v) for row in m for v in row)


def is_float64(net: Network) -> bool:
    """True when every weight is already a float64 value and every beta is 1.

    The same as ``network_to_float64(net) == net`` (tests check that), without rounding anything.
    """
    for layer in net.layers:
        for h in layer.heads:
            if h.beta != 1 or not all(_all_f64(m) for m in (h.wq, h.wk, h.wv, h.wo)) \
                    or (h.bias is not None and not _all_f64(h.bias)):
                return False
        if layer.post is not None and not (_all_f64(layer.post[0]) and _all_f64(layer.post[1])):
            return False
    if not (_all_f64(net.embedding.const) and all(_all_f64(e) for e in net.embedding.linear)):
        return False
    return net.readout_linear is None or all(exact_f64(Fraction(b)) and all(exact_f64(Fraction(v)) for v in w)
                                             for b, w in net.readout_linear)


# metadata that states exact structure of the weights (rounding need not keep it)
STRUCTURE_META = ("grid", "map", "float64", "residual")


def to_float64(construction: Construction) -> Construction:
    """A new Construction over float64 weights (name, target, domain unchanged; params gain float64=1).

    A network that is already float64 (beta 1) is kept as it is, with its metadata.  A
    construction whose metadata holds a conversion under "float64" (a function of the
    construction returning its float64 version, or None) gets that: the [MAP] grids carry
    ``constructions.max_affine.grid_to_float64``, which keeps the grid exact (dyadic centres,
    nothing rounded but beta, lam/beta and the values), so the grid bounder and the checker's
    grid path apply to the result.  Any other network is rounded entry by entry
    (``network_to_float64``) and loses its structural claims (``STRUCTURE_META``), which
    rounding need not preserve: it is then certified by the general path.
    """
    params = tuple(p for p in construction.params if p[0] != "float64") + (("float64", 1),)
    if is_float64(construction.network):
        return replace(construction, params=params)
    convert = dict(construction.meta).get("float64")  # a construction's own structure-keeping conversion
    if convert is not None:
        kept = convert(construction)
        if kept is not None:
            return kept
    net = network_to_float64(construction.network)
    meta = tuple((k, v) for k, v in construction.meta if k not in STRUCTURE_META)
    note = ("float64: beta folded into W_Q, then every weight rounded to the nearest float64; "
            "the certificate speaks about these exact float64 values (the a-priori bound is the unrounded one's)")
    return replace(construction, network=net, params=params, meta=meta,
                   notes=tuple(construction.notes) + (note,))
