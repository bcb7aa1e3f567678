"""Run an attncert torch export: ``nn.MultiheadAttention`` or plain SDPA over the certified weights.

Self-contained (imports only torch), so it can be copied next to an export.  As a script
it is the loader: ``python torch_model.py model.pt 0.25 [more inputs of the same point]``
(or ``python -m certificates.export.torch_model ...``) prints the network's outputs at
that input point.  Layout and forward pass: docs/formats.md.
"""
from __future__ import annotations

import json
import sys

import torch
from torch import nn
from torch.nn import functional as F


def load_checkpoint(path) -> dict:
    """The export's dict of tensors (``weights_only``: nothing is unpickled beyond tensors)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def embed(const: torch.Tensor, linear: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Token matrix Z = const + sum_i x_i linear_i for a batch of inputs x (N, n_inputs)."""
    return const + torch.einsum("ni,itd->ntd", x, linear)


def post(layer: dict, Y: torch.Tensor) -> torch.Tensor:
    """The layer's optional post map: Y @ W + B (B per query row)."""
    return Y if layer["post.W"] is None else Y @ layer["post.W"] + layer["post.B"]


def readout(ckpt: dict, Z: torch.Tensor) -> torch.Tensor:
    """Optional softmax over each row's columns, the (row, column) entries, the optional linear readout."""
    if ckpt["final_softmax"]:
        Z = torch.softmax(Z, dim=-1)
    r = ckpt["readout"]
    y = Z[:, r[:, 0], r[:, 1]]
    lin = ckpt["readout.linear"]  # rows [bias, weight per readout entry]
    return y if lin is None else lin[:, 0] + y @ lin[:, 1:].T


def mha_module(layer: dict) -> nn.MultiheadAttention:
    """The plain ``nn.MultiheadAttention`` of one layer (batch_first, no biases, float64), weights loaded."""
    m = nn.MultiheadAttention(layer["embed_dim"], layer["num_heads"], bias=False, batch_first=True,
                              dtype=torch.float64)
    m.load_state_dict(layer["mha"])
    return m.eval()


class AttncertMHA(nn.Module):
    """The certified network with one ``nn.MultiheadAttention`` (batch_first) per layer."""

    def __init__(self, ckpt: dict, need_weights: bool = False):
        super().__init__()
        self.meta = json.loads(ckpt["attncert"])
        self.ckpt = ckpt
        self.need_weights = need_weights
        self.mha = nn.ModuleList(mha_module(layer) for layer in ckpt["layers"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Z = embed(self.ckpt["embed.const"], self.ckpt["embed.linear"], x)
        for layer, m in zip(self.ckpt["layers"], self.mha):
            Z = F.pad(Z, (0, layer["embed_dim"] - Z.shape[-1]))  # token width -> embed_dim
            q, k = Z[:, layer["query_rows"]], Z[:, layer["key_rows"]]
            mask = layer["attn_mask"]
            if mask is not None:  # (heads, L, S) -> (N * heads, L, S), batch-major as torch expects
                mask = mask.repeat(x.shape[0], 1, 1)
            Y = m(q, k, k, attn_mask=mask, need_weights=self.need_weights)[0][..., :layer["d_heads"]]
            Z = post(layer, Y)
        return readout(self.ckpt, Z)


class AttncertSDPA(nn.Module):
    """The same network over ``scaled_dot_product_attention(..., scale=1.0)`` and unpadded heads."""

    def __init__(self, ckpt: dict):
        super().__init__()
        self.meta = json.loads(ckpt["attncert"])
        self.ckpt = ckpt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Z = embed(self.ckpt["embed.const"], self.ckpt["embed.linear"], x)
        for layer in self.ckpt["layers"]:
            Zq, Zk = Z[:, layer["query_rows"]], Z[:, layer["key_rows"]]
            Y = sum(F.scaled_dot_product_attention(Zq @ h["wq"], Zk @ h["wk"], Zk @ h["wv"],
                                                   attn_mask=h["bias"], scale=1.0) @ h["wo"]
                    for h in layer["heads"])
            Z = post(layer, Y)
        return readout(self.ckpt, Z)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python torch_model.py MODEL.pt X0 [X1 ...]  (one input point)", file=sys.stderr)
        return 2
    try:
        model = AttncertMHA(load_checkpoint(argv[0]))
        x = torch.tensor([[float(v) for v in argv[1:]]], dtype=torch.float64)
        with torch.no_grad():
            y = model(x)[0]
    except Exception as e:  # one line, never a traceback
        print(f"torch_model: error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return 2
    print(json.dumps({"certificate_sha256": model.meta["certificate_sha256"], "outputs": [float(v) for v in y]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
