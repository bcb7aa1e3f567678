"""NumPy ``.npz`` export: float64 arrays with the exact rationals as strings beside them.

For each canonical tensor NAME (as in safetensors) the archive holds ``NAME`` (float64) and
``NAME.exact`` (unicode "p/q" strings); ``attncert`` (a 0-d unicode array) holds the claim
and the wiring as JSON.  Written with fixed zip timestamps so the same certificate gives
byte-identical files; loads with ``np.load(path, allow_pickle=False)``.
"""
from __future__ import annotations

import io
import zipfile

import numpy as np

from .certdata import metadata_text, read, write_atomic

META_KEY = "attncert"


def _member(zf, name, arr) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    zf.writestr(info, buf.getvalue())


def to_bytes(doc) -> bytes:
    net = read(doc)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, arr in net.tensors.items():
            _member(zf, name, arr)
            _member(zf, name + ".exact", np.array(net.exact[name], dtype=str))
        _member(zf, META_KEY, np.array(metadata_text(net, "npz")))
    return out.getvalue()


def export(doc, path) -> dict:
    data = to_bytes(doc)
    write_atomic(path, data)
    return {"format": "npz", "path": str(path), "bytes": len(data)}
