"""Exporters of certified float64 weights: safetensors, torch, ONNX, Flax and NumPy npz.

Each reads a certificate's JSON (never the construction code), refuses weights that are
not float64 values (with the command that makes a float64 certificate), and writes one file
atomically, carrying the claim in the format's own metadata; heavy frameworks are imported
lazily.  ``files`` reads any export back, ``weights_check`` compares one with a certificate,
and ``torch_model``, ``flax_model``, ``numpy_model`` run them.  Reference: docs/formats.md.
"""
from __future__ import annotations

FORMATS = ("safetensors", "torch", "onnx", "flax", "npz")


def export(doc, fmt: str, path, **options) -> dict:
    """Write certificate ``doc``'s weights as ``fmt`` to ``path``; returns a short summary.

    ``options`` go to the format's exporter (``attention_op=True`` for onnx)."""
    import importlib
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    mod = importlib.import_module(f"certificates.export.{fmt}_export")
    return mod.export(doc, path, **options)
