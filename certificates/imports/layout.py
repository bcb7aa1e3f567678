"""attncert's own export layouts (docs/formats.md), read back into the network model.

safetensors: tensors named ``embed.const``, ``embed.linear.{i}``, ``layer{l}.head{h}.wq`` ... and
the wiring (query/key rows, heads, post maps, readout) in the ``attncert`` metadata key.
torch: the checkpoint dict with ``embed.const``, ``embed.linear``, per layer the raw heads (and the
``nn.MultiheadAttention`` state_dict, which must agree with them), ``readout``, ``readout.linear``.
Every array must be finite; each float becomes the exact rational it is.
"""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np

from constructions.network import Embedding, Head, Layer, Network

from .base import ImportFailure, exact, rows_of


def _mat(a, name, shape=None):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ImportFailure(f"tensor {name} is not a matrix (shape {a.shape})")
    if shape is not None and a.shape != tuple(shape):
        raise ImportFailure(f"tensor {name} has shape {a.shape}, expected {tuple(shape)}")
    return rows_of(exact(a, f"tensor {name}"))


def _ints(v, name):
    try:
        out = [int(x) for x in np.asarray(v).reshape(-1).tolist()]
    except (TypeError, ValueError):
        raise ImportFailure(f"{name}: not a list of indices") from None
    return out


def _claim(text):
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        raise ImportFailure("the file's attncert metadata is not JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("layers"), list) or not meta["layers"]:
        raise ImportFailure("the file's attncert metadata has no layers")
    return meta


def _network(const, linear, layers, readout, final_softmax, readout_linear):
    net = Network(embedding=Embedding(const=const, linear=tuple(linear)), layers=tuple(layers),
                  readout=tuple(readout), final_softmax=bool(final_softmax), readout_linear=readout_linear)
    _check_shapes(net)
    return net


def _check_shapes(net: Network):
    """The shape rules of the network model (query/key rows in range, matrix widths)."""
    T, d = len(net.embedding.const), len(net.embedding.const[0]) if net.embedding.const else 0
    if T == 0 or d == 0:
        raise ImportFailure("empty embedding")
    for i, E in enumerate(net.embedding.linear):
        if len(E) != T or any(len(r) != d for r in E):
            raise ImportFailure(f"embed.linear.{i}: shape differs from embed.const's ({T}, {d})")
    rows, width = T, d
    for li, layer in enumerate(net.layers):
        if not layer.query_rows or not layer.key_rows or any(not 0 <= r < rows for r in layer.query_rows + layer.key_rows):
            raise ImportFailure(f"layer{li}: query/key rows out of range 0..{rows - 1}")
        dh = None
        for hi, h in enumerate(layer.heads):
            p = f"layer{li}.head{hi}"
            if len(h.wq) != width or len(h.wk) != width or len(h.wv) != width or len(h.wq[0]) != len(h.wk[0]) \
                    or len(h.wv[0]) != len(h.wo) or (dh is not None and len(h.wo[0]) != dh):
                raise ImportFailure(f"{p}: inconsistent matrix shapes")
            if h.bias is not None and (len(h.bias) != len(layer.query_rows) or len(h.bias[0]) != len(layer.key_rows)):
                raise ImportFailure(f"{p}.bias: shape is not (query rows, key rows)")
            dh = len(h.wo[0])
        rows, width = len(layer.query_rows), dh
        if layer.post is not None:
            W, B = layer.post
            if len(W) != dh or len(B) != rows or len(B[0]) != len(W[0]):
                raise ImportFailure(f"layer{li}.post: W must be (head width, out) and B (query rows, out)")
            width = len(W[0])
    for r, c in net.readout:
        if not (0 <= r < rows and 0 <= c < width):
            raise ImportFailure("readout (row, column) out of range")
    if net.readout_linear is not None and any(len(w) != len(net.readout) for _, w in net.readout_linear):
        raise ImportFailure("readout.linear: one weight per readout entry is needed")


def _readout_linear(arr, R):
    if arr is None:
        return None
    rl = exact(np.asarray(arr), "tensor readout.linear")
    if rl.ndim != 2 or rl.shape[1] != 1 + R:
        raise ImportFailure(f"tensor readout.linear has shape {rl.shape}, expected (outputs, {1 + R})")
    return tuple((Fraction(row[0]), tuple(Fraction(v) for v in row[1:])) for row in rl.tolist())


def from_safetensors(tensors: dict, claim_text: str) -> Network:
    """attncert's safetensors export (F64 tensors by name, wiring in the claim)."""
    meta = _claim(claim_text)

    def t(name):
        if name not in tensors:
            raise ImportFailure(f"tensor {name} is missing")
        return tensors[name]
    const = _mat(t("embed.const"), "embed.const")
    n = sum(1 for k in tensors if k.startswith("embed.linear."))
    linear = [_mat(t(f"embed.linear.{i}"), f"embed.linear.{i}") for i in range(n)]
    layers = []
    for li, L in enumerate(meta["layers"]):
        heads = []
        for hi in range(int(L.get("heads", 0))):
            p = f"layer{li}.head{hi}."
            beta = exact(np.asarray(t(p + "beta")), f"tensor {p}beta").reshape(-1)
            if beta.size != 1:
                raise ImportFailure(f"tensor {p}beta is not 1x1")
            heads.append(Head(wq=_mat(t(p + "wq"), p + "wq"), wk=_mat(t(p + "wk"), p + "wk"),
                              wv=_mat(t(p + "wv"), p + "wv"), wo=_mat(t(p + "wo"), p + "wo"),
                              beta=Fraction(beta[0]), bias=_mat(tensors[p + "bias"], p + "bias")
                              if p + "bias" in tensors else None))
        if not heads:
            raise ImportFailure(f"layer{li} has no heads")
        post = None
        if L.get("post"):
            post = (_mat(t(f"layer{li}.post.W"), f"layer{li}.post.W"), _mat(t(f"layer{li}.post.B"), f"layer{li}.post.B"))
        layers.append(Layer(heads=tuple(heads), query_rows=tuple(_ints(L.get("query_rows"), "query_rows")),
                            key_rows=tuple(_ints(L.get("key_rows"), "key_rows")), post=post))
    readout = [tuple(_ints(rc, "readout")) for rc in meta.get("readout") or []]
    if not readout or any(len(rc) != 2 for rc in readout):
        raise ImportFailure("the attncert metadata has no (row, column) readout")
    rl = _readout_linear(tensors.get("readout.linear"), len(readout)) if meta.get("readout_linear") else None
    return _network(const, linear, layers, readout, meta.get("final_softmax", False), rl)


def _np(v, name):
    import torch
    if not isinstance(v, torch.Tensor):
        raise ImportFailure(f"{name} is not a tensor")
    if v.is_floating_point() and v.dtype not in (torch.float64, torch.float32):
        v = v.to(torch.float64)   # float16 / bfloat16: exact in float64
    return v.detach().cpu().numpy()


def from_torch_export(ck: dict) -> Network:
    """attncert's torch export: raw heads for the network, the MHA state_dicts checked against them."""
    _claim(ck.get("attncert"))
    const = _mat(_np(ck.get("embed.const"), "embed.const"), "embed.const")
    lin = _np(ck.get("embed.linear"), "embed.linear")
    if lin.ndim != 3:
        raise ImportFailure(f"embed.linear has shape {lin.shape}, expected (inputs, tokens, width)")
    linear = [_mat(lin[i], f"embed.linear[{i}]") for i in range(lin.shape[0])]
    layers = []
    if not isinstance(ck.get("layers"), list) or not ck["layers"]:
        raise ImportFailure("the checkpoint has no layers")
    for li, L in enumerate(ck["layers"]):
        if not isinstance(L, dict) or not isinstance(L.get("heads"), list) or not L["heads"]:
            raise ImportFailure(f"layers[{li}] has no raw heads")
        heads = []
        for hi, h in enumerate(L["heads"]):
            p = f"layers[{li}].heads[{hi}]."
            heads.append(Head(wq=_mat(_np(h.get("wq"), p + "wq"), p + "wq"), wk=_mat(_np(h.get("wk"), p + "wk"), p + "wk"),
                              wv=_mat(_np(h.get("wv"), p + "wv"), p + "wv"), wo=_mat(_np(h.get("wo"), p + "wo"), p + "wo"),
                              beta=Fraction(1), bias=None if h.get("bias") is None else
                              _mat(_np(h["bias"], p + "bias"), p + "bias")))
        post = None
        if L.get("post.W") is not None:
            post = (_mat(_np(L["post.W"], f"layers[{li}].post.W"), "post.W"),
                    _mat(_np(L["post.B"], f"layers[{li}].post.B"), "post.B"))
        layer = Layer(heads=tuple(heads), query_rows=tuple(_ints(_np(L.get("query_rows"), "query_rows"), "query_rows")),
                      key_rows=tuple(_ints(_np(L.get("key_rows"), "key_rows"), "key_rows")), post=post)
        _check_mha(L, layer, li)
        layers.append(layer)
    ro = _np(ck.get("readout"), "readout").reshape(-1, 2)
    readout = [tuple(int(v) for v in rc) for rc in ro.tolist()]
    rl_t = ck.get("readout.linear")
    rl = None if rl_t is None else _readout_linear(_np(rl_t, "readout.linear"), len(readout))
    return _network(const, linear, layers, readout, bool(ck.get("final_softmax", False)), rl)


def _check_mha(L: dict, layer: Layer, li: int) -> None:
    """The MHA state_dict must be the raw heads, padded to head_dim E and W_Q times sqrt(E) (formats.md)."""
    mha = L.get("mha")
    if not isinstance(mha, dict):
        raise ImportFailure(f"layers[{li}] has no nn.MultiheadAttention state_dict")
    H, E, D = int(L.get("num_heads", 0)), int(L.get("head_dim", 0)), int(L.get("embed_dim", 0))
    if H != len(layer.heads) or E < 1 or D != H * E:
        raise ImportFailure(f"layers[{li}]: num_heads/head_dim/embed_dim do not match the raw heads")
    s = int(round(E ** 0.5))
    if s * s != E:
        raise ImportFailure(f"layers[{li}]: head_dim {E} is not a square")
    d_in = len(layer.heads[0].wq)
    d_heads = len(layer.heads[0].wo[0])
    want = np.zeros((3 * D, D))
    wo = np.zeros((D, D))
    for h, head in enumerate(layer.heads):
        for part, (m, k) in enumerate(((head.wq, s), (head.wk, 1), (head.wv, 1))):
            a = np.array([[float(v) for v in r] for r in m]) * k
            want[part * D + h * E: part * D + h * E + a.shape[1], :d_in] = a.T
        o = np.array([[float(v) for v in r] for r in head.wo])
        wo[:d_heads, h * E:h * E + o.shape[0]] = o.T
    got = _np(mha.get("in_proj_weight"), "in_proj_weight")
    got_o = _np(mha.get("out_proj.weight"), "out_proj.weight")
    if got.shape != want.shape or not np.array_equal(got.astype(np.float64), want) \
            or got_o.shape != wo.shape or not np.array_equal(got_o.astype(np.float64), wo):
        raise ImportFailure(f"layers[{li}]: the nn.MultiheadAttention weights disagree with the raw heads (the file was "
                            "edited?); the two must describe one network")
    mask = L.get("attn_mask")
    if any(h.bias is not None for h in layer.heads):
        m = _np(mask, "attn_mask") if mask is not None else None
        for h, head in enumerate(layer.heads):
            b = np.zeros((len(layer.query_rows), len(layer.key_rows))) if head.bias is None else \
                np.array([[float(v) for v in r] for r in head.bias])
            if m is None or m.shape[0] != H or not np.array_equal(m[h].astype(np.float64), b):
                raise ImportFailure(f"layers[{li}]: attn_mask disagrees with the raw heads' logit biases")
    elif mask is not None:
        raise ImportFailure(f"layers[{li}]: an attn_mask but no head has a logit bias")
