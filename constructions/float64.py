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


def round_f64(v: Fraction) -> Fraction:
    """The exact rational value of the float64 nearest to ``v`` (ties to even)."""
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


def is_float64(net: Network) -> bool:
    """True when every weight is already a float64 value and every beta is 1."""
    return network_to_float64(net) == net


def to_float64(construction: Construction) -> Construction:
    """A new Construction over the float64-rounded network (name, target, domain unchanged)."""
    net = network_to_float64(construction.network)
    params = tuple(p for p in construction.params if p[0] != "float64") + (("float64", 1),)
    note = ("float64: beta folded into W_Q, then every weight rounded to the nearest float64; "
            "the certificate speaks about these exact float64 values (the a-priori bound is the unrounded one's)")
    return replace(construction, network=net, params=params, notes=tuple(construction.notes) + (note,))
