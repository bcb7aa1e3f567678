"""Run an attncert torch export: ``nn.MultiheadAttention`` or plain SDPA over the certified weights.

Self-contained (imports only torch), so it can be copied next to an export.  As a script
it is the loader: ``python -m certificates.export.torch_model model.pt 0.25 [more x ...]``
prints the network's outputs at the input point(s).
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


def embed(ckpt_const, ckpt_linear, x):
    """Token matrix Z = const + sum_i x_i linear_i for a batch of inputs x (N, n_inputs)."""
    return ckpt_const + torch.einsum("ni,itd->ntd", x, ckpt_linear)


class AttncertMHA(nn.Module):
    """The certified network with one ``nn.MultiheadAttention`` (batch_first) per layer."""

    def __init__(self, ckpt: dict, need_weights: bool = False):
        super().__init__()
        self.meta = json.loads(ckpt["attncert"])
        self.need_weights = need_weights
        self.register_buffer("const", ckpt["embed.const"])
        self.register_buffer("linear", ckpt["embed.linear"])
        self.register_buffer("readout", ckpt["readout"])
        self.layers = ckpt["layers"]
        self.mha = nn.ModuleList()
        for layer in self.layers:
            m = nn.MultiheadAttention(layer["embed_dim"], layer["num_heads"], bias=False, batch_first=True,
                                      dtype=torch.float64)
            m.load_state_dict(layer["mha"])
            self.mha.append(m.eval())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Z = embed(self.const, self.linear, x)
        for layer, m in zip(self.layers, self.mha):
            Z = F.pad(Z, (0, layer["embed_dim"] - Z.shape[-1]))
            q, k = Z[:, layer["query_rows"]], Z[:, layer["key_rows"]]
            mask = layer["attn_mask"]
            if mask is not None:  # (heads, L, S) -> (N * heads, L, S), batch-major as torch expects
                mask = mask.repeat(x.shape[0], 1, 1)
            Z = m(q, k, k, attn_mask=mask, need_weights=self.need_weights)[0][..., :layer["d_out"]]
        return Z[:, self.readout[:, 0], self.readout[:, 1]]


class AttncertSDPA(nn.Module):
    """The same network over ``scaled_dot_product_attention(..., scale=1.0)`` and unpadded heads."""

    def __init__(self, ckpt: dict):
        super().__init__()
        self.meta = json.loads(ckpt["attncert"])
        self.register_buffer("const", ckpt["embed.const"])
        self.register_buffer("linear", ckpt["embed.linear"])
        self.register_buffer("readout", ckpt["readout"])
        self.layers = ckpt["layers"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Z = embed(self.const, self.linear, x)
        for layer in self.layers:
            Zq, Zk = Z[:, layer["query_rows"]], Z[:, layer["key_rows"]]
            Z = sum(F.scaled_dot_product_attention(Zq @ h["wq"], Zk @ h["wk"], Zk @ h["wv"],
                                                   attn_mask=h["bias"], scale=1.0) @ h["wo"]
                    for h in layer["heads"])
        return Z[:, self.readout[:, 0], self.readout[:, 1]]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m certificates.export.torch_model MODEL.pt X0 [X1 ...]  (one input point)",
              file=sys.stderr)
        return 2
    model = AttncertMHA(load_checkpoint(argv[0]))
    x = torch.tensor([[float(v) for v in argv[1:]]], dtype=torch.float64)
    with torch.no_grad():
        y = model(x)[0]
    print(json.dumps({"certificate_sha256": model.meta["certificate_sha256"], "outputs": [float(v) for v in y]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
