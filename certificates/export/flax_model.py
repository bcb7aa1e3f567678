"""Run an attncert Flax export: a linen module (one ``MultiHeadDotProductAttention`` per layer), float64.

Self-contained (imports only jax and flax).  Needs ``jax.config.update("jax_enable_x64",
True)`` first.  ``module, variables = load(path)``, then ``module.apply(variables, X)`` for
inputs X (N, n_inputs).  ``float64_attention`` is our own attention function (flax's
scaling by 1/sqrt(head_dim), softmax in float64), a second reference besides flax's own
``dot_product_attention``.  Layout: docs/formats.md.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Callable

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


def _zeros(key, shape, dtype=jnp.float64):
    return jnp.zeros(shape, dtype)


class AttncertFlax(nn.Module):
    """Embedding, one ``nn.MultiHeadDotProductAttention`` per layer (bias, post map), readout."""
    config: str                      # the export's "config" (JSON text: rows, heads, shapes, readout)
    attention_fn: Callable = nn.dot_product_attention
    claim: str = ""                  # the export's "attncert" claim (JSON text)

    @nn.compact
    def __call__(self, x: Any) -> Any:
        if not jax.config.jax_enable_x64:
            raise RuntimeError('enable float64 first: jax.config.update("jax_enable_x64", True)')
        c = json.loads(self.config)
        T, d, n_in = c["tokens"], c["width"], c["n_inputs"]
        x = jnp.asarray(x, dtype=jnp.float64)
        Z = (self.param("embed_const", _zeros, (T, d))
             + jnp.einsum("ni,itd->ntd", x, self.param("embed_linear", _zeros, (n_in, T, d))))
        for i, layer in enumerate(c["layers"]):
            L, S, H = len(layer["query_rows"]), len(layer["key_rows"]), layer["num_heads"]
            fn = self.attention_fn
            if layer["bias"]:  # (heads, L, S), broadcast over the batch by dot_product_attention
                fn = functools.partial(fn, bias=self.param(f"layer_{i}_bias", _zeros, (H, L, S)))
            mha = nn.MultiHeadDotProductAttention(
                num_heads=H, qkv_features=H * layer["head_dim"], out_features=layer["d_heads"], use_bias=False,
                dtype=jnp.float64, param_dtype=jnp.float64, attention_fn=fn, deterministic=True, name=f"layer_{i}")
            Zk = Z[:, jnp.asarray(layer["key_rows"])]
            Y = mha(Z[:, jnp.asarray(layer["query_rows"])], inputs_k=Zk)  # values = keys
            if layer["post"]:  # Y W + B
                Y = (Y @ self.param(f"layer_{i}_post_W", _zeros, (layer["d_heads"], layer["d_out"]))
                     + self.param(f"layer_{i}_post_B", _zeros, (L, layer["d_out"])))
            Z = Y
        if c["final_softmax"]:
            Z = jax.nn.softmax(Z, axis=-1)
        r = jnp.asarray(c["readout"])
        y = Z[:, r[:, 0], r[:, 1]]
        if c["readout_linear"] is not None:  # rows [bias, weight per readout entry]
            lin = self.param("readout_linear", _zeros, tuple(c["readout_linear"]))
            y = lin[:, 0] + y @ lin[:, 1:].T
        return y


def load(path, attention_fn=None) -> tuple:
    """``(module, variables)`` of an export written by ``attncert export --to flax`` (msgpack, no pickle)."""
    with open(path, "rb") as fh:
        tree = msgpack_restore(fh.read())
    module = AttncertFlax(config=tree["config"], attention_fn=attention_fn or nn.dot_product_attention,
                          claim=tree["attncert"])
    return module, {"params": tree["params"]}
