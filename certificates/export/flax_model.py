"""Run an attncert Flax export: linen ``MultiHeadDotProductAttention`` per layer, in float64.

Needs ``jax.config.update("jax_enable_x64", True)`` before use.  ``float64_attention`` is
our own attention function (flax's scaling by 1/sqrt(head_dim), softmax in float64), the
reference that the tests use besides flax's own ``dot_product_attention``.
"""
from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.serialization import msgpack_restore


def float64_attention(query, key, value, bias=None, mask=None, **_):
    """softmax(q k^T / sqrt(head_dim) + bias) v over (..., length, heads, head_dim), in float64."""
    query = query / jnp.sqrt(query.shape[-1]).astype(query.dtype)
    logits = jnp.einsum("...qhd,...khd->...hqk", query, key)
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    logits = logits - jnp.max(logits, axis=-1, keepdims=True)
    w = jnp.exp(logits)
    w = w / jnp.sum(w, axis=-1, keepdims=True)
    return jnp.einsum("...hqk,...khd->...qhd", w, value)


class AttncertFlax:
    """Embedding + one ``nn.MultiHeadDotProductAttention`` per layer + readout."""

    def __init__(self, tree: dict, attention_fn=None):
        if not jax.config.jax_enable_x64:
            raise RuntimeError('enable float64 first: jax.config.update("jax_enable_x64", True)')
        self.meta = json.loads(tree["attncert"])
        self.tree = tree
        self.layers = []
        for i in range(len(tree["layers"])):
            layer = tree["layers"][str(i)]
            fn = attention_fn or nn.dot_product_attention
            if "bias" in layer:
                fn = functools.partial(fn, bias=jnp.asarray(layer["bias"]))
            module = nn.MultiHeadDotProductAttention(
                num_heads=int(layer["num_heads"]), qkv_features=int(layer["num_heads"]) * int(layer["head_dim"]),
                out_features=int(layer["d_out"]), use_bias=False, dtype=jnp.float64, param_dtype=jnp.float64,
                attention_fn=fn, deterministic=True)
            self.layers.append((module, {"params": layer["params"]}, layer))
        self._jitted = jax.jit(self.forward)

    def __call__(self, x):
        """Outputs (N, n_outputs) for inputs x (N, n_inputs), compiled once per input shape."""
        return self._jitted(jnp.asarray(x, dtype=jnp.float64))

    def forward(self, x):
        Z = self.tree["embed"]["const"] + jnp.einsum("ni,itd->ntd", x, self.tree["embed"]["linear"])
        for module, variables, layer in self.layers:
            q, k = Z[:, layer["query_rows"]], Z[:, layer["key_rows"]]
            Z = module.apply(variables, q, k)  # inputs_v defaults to inputs_k
        r = self.tree["readout"]
        return Z[:, r[:, 0], r[:, 1]]


def load(path, attention_fn=None) -> AttncertFlax:
    """Read an export written by ``attncert export --to flax`` (msgpack, no pickle)."""
    with open(path, "rb") as fh:
        return AttncertFlax(msgpack_restore(fh.read()), attention_fn)
