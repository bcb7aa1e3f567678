"""Import is export's mirror: ONNX graphs, torch checkpoints and safetensors files of
softmax-attention networks, read into the network model with every float taken as the exact
rational it is, so that a trained model is certified as it is.

``import_model(path)`` reads a file (format told by its bytes, never by its name) without
executing anything and returns an ``Imported`` (network, notes, source); ``document(imp)`` is
the ``net.json`` that ``attncert certify net.json`` reads (constructions/imported.py).
Anything that cannot be mapped exactly raises ``ImportFailure`` (exit code 2), naming the op,
the node and why.
"""
from __future__ import annotations

from .base import ImportFailure
from .files import Imported, document, import_bytes, import_model, read_model_bytes, sniff

__all__ = ["ImportFailure", "Imported", "document", "import_bytes", "import_model", "read_model_bytes", "sniff"]
