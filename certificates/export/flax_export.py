"""Flax export: a linen module's config and params in one msgpack file (no pickle).

The file is a map ``{"attncert": claim JSON, "config": wiring JSON, "params": tree}``; the
module is ``certificates.export.flax_model.AttncertFlax`` (one linen
``MultiHeadDotProductAttention`` per layer).  Kernels are (in, heads, head_dim) for
query/key/value and (heads, head_dim, out) for out.  Flax divides the query by
sqrt(head_dim); head_dim is padded to a power of 4 so that sqrt(head_dim) is a power of two
and W_Q * sqrt(head_dim) is exact in float64.  The logit bias of layer i is
``params["layer_i_bias"]`` (heads, L, S), passed to flax's ``dot_product_attention(bias=)``.
Layout: docs/formats.md.
"""
from __future__ import annotations

import numpy as np

from .certdata import canonical, metadata_text, read, write_atomic
from .torch_export import head_dim, scaled


def _kernel(w: np.ndarray, E: int) -> np.ndarray:
    out = np.zeros((w.shape[0], E), dtype=np.float64)
    out[:, :w.shape[1]] = w
    return out


def layer_params(layer, li: int, compensate: bool = True) -> tuple:
    """(params entries, config entry) of one layer."""
    H = len(layer.heads)
    E = head_dim([max(h.wq.shape[1], h.wv.shape[1]) for h in layer.heads], 1, (1,), base=4)
    s = int(round(E ** 0.5))
    qkv = lambda f: np.stack([_kernel(f(hi, h), E) for hi, h in enumerate(layer.heads)], axis=1)  # (in, H, E)
    out = np.stack([np.pad(h.wo, ((0, E - h.wo.shape[0]), (0, 0))) for h in layer.heads], axis=0)  # (H, E, out)
    q = qkv(lambda hi, h: scaled(h.wq, s, f"layer{li}.head{hi}.wq") if compensate else h.wq)
    params = {f"layer_{li}": {"query": {"kernel": q}, "key": {"kernel": qkv(lambda hi, h: h.wk)},
                              "value": {"kernel": qkv(lambda hi, h: h.wv)}, "out": {"kernel": out}}}
    L, S = len(layer.query_rows), len(layer.key_rows)
    bias = any(h.bias is not None for h in layer.heads)
    if bias:
        params[f"layer_{li}_bias"] = np.stack([np.zeros((L, S)) if h.bias is None else h.bias
                                               for h in layer.heads])  # (H, L, S)
    if layer.post_w is not None:
        params[f"layer_{li}_post_W"], params[f"layer_{li}_post_B"] = layer.post_w, layer.post_b
    config = {"query_rows": list(layer.query_rows), "key_rows": list(layer.key_rows), "num_heads": H,
              "head_dim": E, "d_in": layer.d_in, "d_heads": layer.d_heads, "d_out": layer.d_out,
              "bias": bias, "post": layer.post_w is not None}
    return params, config


def tree(doc, compensate: bool = True) -> dict:
    """The whole export as a nested dict (``compensate=False`` only for the negative-control test)."""
    net = read(doc)
    n_in, T, d = net.linear.shape
    params = {"embed_const": net.const, "embed_linear": np.ascontiguousarray(net.linear)}
    layers = []
    for li, layer in enumerate(net.layers):
        p, c = layer_params(layer, li, compensate)
        params.update(p)
        layers.append(c)
    if net.readout_linear is not None:
        params["readout_linear"] = net.readout_linear
    config = {"n_inputs": n_in, "tokens": T, "width": d, "layers": layers,
              "readout": [list(rc) for rc in net.readout], "final_softmax": net.final_softmax,
              "readout_linear": None if net.readout_linear is None else list(net.readout_linear.shape)}
    return {"attncert": metadata_text(net, "flax"), "config": canonical(config).decode("ascii"), "params": params}


def to_bytes(doc, compensate: bool = True) -> bytes:
    from flax.serialization import msgpack_serialize
    return msgpack_serialize(tree(doc, compensate))


def export(doc, path) -> dict:
    data = to_bytes(doc)
    write_atomic(path, data)
    return {"format": "flax", "path": str(path), "bytes": len(data)}
