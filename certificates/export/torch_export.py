"""torch export: ``nn.MultiheadAttention`` state_dicts (batch_first) plus everything around them, in one ``.pt``.

torch divides logits by sqrt(head_dim) with no switch to turn it off, so the head dim E is
padded to a power of 16 (sqrt(E) = 4^k, and the sqrt(scale) = 2^-k that torch's kernels
apply to q and k is a power of two too) and W_Q is multiplied by sqrt(E) exactly in float64.
The logit bias of a layer is its MHA ``attn_mask``, (heads, L, S), to be repeated to
(N * heads, L, S), batch-major.  The raw heads are there too, for
``scaled_dot_product_attention(..., scale=1.0)``.  The file holds only tensors, ints, bools,
strings and None: ``torch.load(path, weights_only=True)``.  Layout: docs/formats.md.
"""
from __future__ import annotations

import io

import numpy as np

from .certdata import ExportError, metadata_text, read, write_atomic


def head_dim(widths, n_heads: int, dims, base: int = 16) -> int:
    """Smallest base^k (k >= 0) >= every per-head width, with n_heads * base^k >= every token width."""
    e = 1
    while e < max(widths) or n_heads * e < max(dims):
        e *= base
    return e


def scaled(w: np.ndarray, s: int, where: str = "W_Q") -> np.ndarray:
    """``w * s`` for a power of two ``s``, refused unless exact in float64 (no overflow)."""
    with np.errstate(over="ignore"):  # overflow is detected below and refused
        out = w * float(s)
    if not np.all(np.isfinite(out)) or not np.array_equal(out / float(s), w):
        raise ExportError(f"{where} * sqrt(head_dim) = {where} * {s} overflows float64; cannot compensate the "
                          "framework's 1/sqrt(head_dim)")
    return out


def _pad(w: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), dtype=np.float64)
    out[:w.shape[0], :w.shape[1]] = w
    return out


def mha_layer(layer, li: int = 0, compensate: bool = True) -> dict:
    """One layer: an MHA state_dict (in_proj_weight = [W_Q; W_K; W_V] in (out, in) layout), its mask, raw heads."""
    import torch
    H = len(layer.heads)
    E = head_dim([max(h.wq.shape[1], h.wv.shape[1]) for h in layer.heads], H, (layer.d_in, layer.d_heads))
    D = H * E
    s = int(round(E ** 0.5))
    wq = np.concatenate([_pad(scaled(h.wq, s, f"layer{li}.head{hi}.wq") if compensate else h.wq, layer.d_in, E)
                         for hi, h in enumerate(layer.heads)], 1)
    wk = np.concatenate([_pad(h.wk, layer.d_in, E) for h in layer.heads], 1)
    wv = np.concatenate([_pad(h.wv, layer.d_in, E) for h in layer.heads], 1)
    wo = np.concatenate([_pad(h.wo, E, layer.d_heads) for h in layer.heads], 0)
    in_proj = np.concatenate([_pad(wq, D, D), _pad(wk, D, D), _pad(wv, D, D)], 1).T  # (3D, D): (out, in)
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    mask = None
    if any(h.bias is not None for h in layer.heads):
        zero = np.zeros((len(layer.query_rows), len(layer.key_rows)))
        mask = t(np.stack([zero if h.bias is None else h.bias for h in layer.heads]))
    return {"embed_dim": D, "num_heads": H, "head_dim": E, "d_in": layer.d_in, "d_heads": layer.d_heads,
            "query_rows": torch.tensor(layer.query_rows, dtype=torch.int64),
            "key_rows": torch.tensor(layer.key_rows, dtype=torch.int64),
            "mha": {"in_proj_weight": t(in_proj), "out_proj.weight": t(_pad(wo, D, D).T)},
            "attn_mask": mask,
            "heads": [{"wq": t(h.wq), "wk": t(h.wk), "wv": t(h.wv), "wo": t(h.wo), "bias": t(h.bias)}
                      for h in layer.heads],
            "post.W": t(layer.post_w), "post.B": t(layer.post_b)}


def checkpoint(doc, compensate: bool = True) -> dict:
    """The export as a dict of tensors (``compensate=False`` only for the negative-control test)."""
    import torch
    net = read(doc)
    return {"attncert": metadata_text(net, "torch"),
            "embed.const": torch.from_numpy(net.const.copy()),
            "embed.linear": torch.from_numpy(np.ascontiguousarray(net.linear)),
            "layers": [mha_layer(layer, li, compensate) for li, layer in enumerate(net.layers)],
            "final_softmax": net.final_softmax,
            "readout": torch.tensor(net.readout, dtype=torch.int64).reshape(-1, 2),
            "readout.linear": None if net.readout_linear is None else torch.from_numpy(net.readout_linear.copy())}


def to_bytes(doc, compensate: bool = True) -> bytes:
    import torch
    buf = io.BytesIO()
    torch.save(checkpoint(doc, compensate), buf)
    return buf.getvalue()


def export(doc, path) -> dict:
    data = to_bytes(doc)
    write_atomic(path, data)
    return {"format": "torch", "path": str(path), "bytes": len(data)}
