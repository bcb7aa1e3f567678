"""safetensors export: the certificate's tensors as F64, one ``__metadata__`` key with its hashes.

Tensor names are the certificate's canonical names (``embed.const``, ``layer0.head0.wq``,
..., beta as a 1x1 tensor); ``attncert check --weights`` compares them bit for bit.
"""
from __future__ import annotations

from .certdata import canonical, metadata, read, write_atomic

META_KEY = "attncert"


def to_bytes(doc) -> bytes:
    from safetensors.numpy import save
    net = read(doc)
    # one metadata key only: the order of several keys is not stable between saves
    return save(dict(net.tensors), metadata={META_KEY: canonical(metadata(net)).decode("ascii")})


def export(doc, path) -> dict:
    data = to_bytes(doc)
    write_atomic(path, data)
    return {"format": "safetensors", "path": str(path), "bytes": len(data)}
