"""safetensors export: the certificate's tensors as F64, one ``__metadata__`` key with the claim.

Tensor names are the certificate's canonical names (``embed.const``, ``embed.linear.0``,
``layer0.head0.wq``, ..., beta as a 1x1 tensor, ``layer0.post.W``/``.B``, ``readout.linear``);
the wiring (query/key rows, readout, final softmax) is in the ``attncert`` metadata key, with
the claim.  ``attncert check --weights`` compares every tensor bit for bit.
"""
from __future__ import annotations

from .certdata import metadata_text, read, write_atomic

META_KEY = "attncert"


def to_bytes(doc) -> bytes:
    from safetensors.numpy import save
    net = read(doc)
    # one metadata key only: the order of several keys is not stable between saves
    return save(dict(net.tensors), metadata={META_KEY: metadata_text(net, "safetensors")})


def export(doc, path) -> dict:
    data = to_bytes(doc)
    write_atomic(path, data)
    return {"format": "safetensors", "path": str(path), "bytes": len(data)}
