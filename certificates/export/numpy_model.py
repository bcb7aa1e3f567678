"""Run an attncert safetensors or npz export in plain NumPy (float64).

Self-contained (NumPy, plus safetensors for .safetensors files), so it can be copied next to
an export.  ``forward`` is, line for line, the reference forward pass of docs/formats.md
(a test keeps the two identical).
"""
from __future__ import annotations

import json

import numpy as np


def load(path) -> tuple:
    """``(tensors, meta)``: a dict of float64 arrays by name, and the ``attncert`` JSON (claim and wiring)."""
    with open(path, "rb") as fh:
        is_zip = fh.read(2) == b"PK"
    if is_zip:  # npz: NAME and NAME.exact (the exact "p/q" strings) for every tensor, and "attncert"
        w = dict(np.load(path, allow_pickle=False))
        return w, json.loads(str(w.pop("attncert")))
    from safetensors import safe_open
    with safe_open(str(path), "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["attncert"])


def forward(w, meta, X):
    """Outputs (N, n_outputs) at inputs X (N, n_inputs): tensors w by name, wiring meta (the attncert JSON)."""
    Z = w["embed.const"] + sum(X[:, i, None, None] * w[f"embed.linear.{i}"] for i in range(X.shape[1]))
    for l, layer in enumerate(meta["layers"]):
        Zq, Zk = Z[:, layer["query_rows"]], Z[:, layer["key_rows"]]  # queries attend over keys
        Y = 0
        for h in range(layer["heads"]):  # heads are summed
            p = f"layer{l}.head{h}."
            S = w[p + "beta"][0, 0] * (Zq @ w[p + "wq"]) @ (Zk @ w[p + "wk"]).transpose(0, 2, 1)
            S = S + w.get(p + "bias", 0.0)  # logit bias, (query rows, key rows)
            A = np.exp(S - S.max(axis=2, keepdims=True))
            Y = Y + (A / A.sum(axis=2, keepdims=True)) @ (Zk @ w[p + "wv"]) @ w[p + "wo"]
        Z = Y @ w[f"layer{l}.post.W"] + w[f"layer{l}.post.B"] if layer["post"] else Y
    if meta["final_softmax"]:  # softmax over the columns of each row
        Z = np.exp(Z - Z.max(axis=2, keepdims=True))
        Z = Z / Z.sum(axis=2, keepdims=True)
    y = np.stack([Z[:, r, c] for r, c in meta["readout"]], axis=1)  # (row, column) entries
    if meta["readout_linear"]:  # one row per output: [bias, weight per readout entry]
        y = w["readout.linear"][:, 0] + y @ w["readout.linear"][:, 1:].T
    return y
