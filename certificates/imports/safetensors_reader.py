"""safetensors files: attncert's own layout (wiring in the ``attncert`` metadata key), or a
state_dict with ``--wiring``.  Read with safetensors' NumPy loader: tensors only, nothing executed."""
from __future__ import annotations

import json
import struct

import numpy as np

from .base import MAX_ELEMENTS, ImportFailure, check_finite_array


def read_safetensors(data: bytes, wiring=None):
    try:
        from safetensors.numpy import load
    except ImportError as e:
        raise ImportFailure(f"reading safetensors needs {e.name}: pip install 'attncert[safetensors]'") from None
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        meta = header.get("__metadata__") or {}
        tensors = load(data)
    except Exception as e:
        msg = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
        raise ImportFailure(f"not a readable safetensors file ({msg})") from None
    if sum(a.size for a in tensors.values()) > MAX_ELEMENTS:
        raise ImportFailure(f"the file holds more than {MAX_ELEMENTS} weights (the import limit)")
    for k, a in tensors.items():
        check_finite_array(a, f"weight {k!r}")
    if isinstance(meta, dict) and isinstance(meta.get("attncert"), str):
        if wiring is not None:
            raise ImportFailure("an attncert safetensors export carries its own wiring; drop --wiring")
        from .layout import from_safetensors
        net = from_safetensors(tensors, meta["attncert"])
        return net, ["attncert safetensors export: tensors by name, wiring from its attncert metadata"], \
            {"format": "safetensors", "layout": "attncert"}
    if wiring is None:
        raise ImportFailure("a safetensors state_dict holds weights, not the forward pass: give --wiring FILE saying "
                            "how its modules connect (README: Certify your own model)")
    from .wiring import build_from_wiring
    net, notes = build_from_wiring({k: np.asarray(v) for k, v in tensors.items()}, wiring)
    return net, notes, {"format": "safetensors", "layout": "state_dict+wiring"}
