"""torch checkpoints: ``torch.load(weights_only=True)`` only, never a pickled module.

attncert's own torch export is read as it is laid out (layout.py); any other checkpoint is a
state_dict (possibly under "state_dict" / "model_state_dict" / "model") and needs ``--wiring``
(wiring.py).  For a whole nn.Module, export it with ``torch.onnx.export`` instead.
"""
from __future__ import annotations

import io

from .base import ImportFailure, check_finite_array


def _state_dict(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return obj[key]
        return obj
    raise ImportFailure(f"the checkpoint holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")


def tensors_of(state: dict) -> dict:
    """name -> NumPy array for every tensor entry (float16/bfloat16 widened exactly), all finite."""
    import torch
    out = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            if v.is_floating_point() and v.dtype not in (torch.float32, torch.float64):
                v = v.to(torch.float64)
            a = v.detach().cpu().numpy()
            check_finite_array(a, f"weight {k!r}")
            out[str(k)] = a
    return out


def read_torch(data: bytes, wiring=None):
    try:
        import torch
    except ImportError as e:
        raise ImportFailure(f"reading a torch checkpoint needs {e.name}: pip install 'attncert[torch]'") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for a pickled module, RuntimeError for a damaged zip
        msg = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
        raise ImportFailure(f"not loadable with torch.load(weights_only=True) ({msg}); save model.state_dict(), or "
                            "export the module with torch.onnx.export") from None
    if isinstance(obj, dict) and isinstance(obj.get("attncert"), str) and isinstance(obj.get("layers"), list):
        if wiring is not None:
            raise ImportFailure("an attncert torch export carries its own wiring; drop --wiring")
        from .layout import from_torch_export
        for k in ("embed.const", "embed.linear"):
            if isinstance(obj.get(k), torch.Tensor):
                check_finite_array(obj[k].detach().cpu().numpy(), f"weight {k!r}")
        net = from_torch_export(obj)
        return net, ["attncert torch export: the raw heads, checked against the nn.MultiheadAttention weights"], \
            {"format": "torch", "layout": "attncert"}
    state = tensors_of(_state_dict(obj))
    if not state:
        raise ImportFailure("the checkpoint holds no tensors")
    if wiring is None:
        raise ImportFailure("a torch state_dict holds weights, not the forward pass: give --wiring FILE saying how its "
                            "nn.Linear / nn.MultiheadAttention modules connect (README: Certify your own model), "
                            "or export the module with torch.onnx.export")
    from .wiring import build_from_wiring
    net, notes = build_from_wiring(state, wiring)
    return net, notes, {"format": "torch", "layout": "state_dict+wiring"}
