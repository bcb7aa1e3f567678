"""Flax export: linen ``MultiHeadDotProductAttention`` parameter trees in one msgpack file.

Kernels are (in, heads, head_dim) for query/key/value and (heads, head_dim, out) for out.
Flax divides the query by sqrt(head_dim); head_dim is padded to a power of 4 so that
sqrt(head_dim) is a power of two and W_Q * sqrt(head_dim) is exact in float64.
"""
from __future__ import annotations

import numpy as np

from .certdata import canonical, metadata, read, write_atomic
from .torch_export import head_dim, scaled


def _kernel(w: np.ndarray, E: int) -> np.ndarray:
    out = np.zeros((w.shape[0], E), dtype=np.float64)
    out[:, :w.shape[1]] = w
    return out


def layer_tree(layer, compensate: bool = True) -> dict:
    H = len(layer.heads)
    E = head_dim([max(h.wq.shape[1], h.wv.shape[1]) for h in layer.heads], 1, (1,), base=4)
    s = int(round(E ** 0.5))
    qkv = lambda f: np.stack([_kernel(f(h), E) for h in layer.heads], axis=1)  # (in, H, E)
    out = np.stack([np.pad(h.wo, ((0, E - h.wo.shape[0]), (0, 0))) for h in layer.heads], axis=0)  # (H, E, out)
    tree = {"params": {"query": {"kernel": qkv(lambda h: scaled(h.wq, s) if compensate else h.wq)},
                       "key": {"kernel": qkv(lambda h: h.wk)},
                       "value": {"kernel": qkv(lambda h: h.wv)},
                       "out": {"kernel": out}},
            "num_heads": H, "head_dim": E, "d_out": layer.d_out,
            "query_rows": np.asarray(layer.query_rows, dtype=np.int64),
            "key_rows": np.asarray(layer.key_rows, dtype=np.int64)}
    if any(h.bias is not None for h in layer.heads):
        zero = np.zeros((len(layer.query_rows), len(layer.key_rows)))
        tree["bias"] = np.stack([zero if h.bias is None else h.bias for h in layer.heads])  # (H, L, S)
    return tree


def tree(doc, compensate: bool = True) -> dict:
    """The whole export as a nested dict (``compensate=False`` only for the negative-control test)."""
    net = read(doc)
    return {"attncert": canonical(metadata(net)).decode("ascii"),
            "embed": {"const": net.const, "linear": np.ascontiguousarray(net.linear)},
            "readout": np.asarray(net.readout, dtype=np.int64).reshape(-1, 2),
            "layers": {str(i): layer_tree(layer, compensate) for i, layer in enumerate(net.layers)}}


def to_bytes(doc, compensate: bool = True) -> bytes:
    from flax.serialization import msgpack_serialize
    return msgpack_serialize(tree(doc, compensate))


def export(doc, path) -> dict:
    data = to_bytes(doc)
    write_atomic(path, data)
    return {"format": "flax", "path": str(path), "bytes": len(data)}
