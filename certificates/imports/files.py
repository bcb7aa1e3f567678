"""Reading a model file: safe bytes, the format from the bytes, the reader, the net.json document."""
from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
from dataclasses import dataclass, field

from .base import ImportFailure, read_model_bytes

FORMATS = ("onnx", "torch", "safetensors", "certificate")


@dataclass
class Imported:
    network: object                     # constructions.network.Network
    name: str
    source: dict
    notes: list = field(default_factory=list)


def sniff(data: bytes) -> str:
    """onnx, torch, safetensors or certificate (JSON), from the bytes."""
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise ImportFailure(f"a damaged zip file ({str(e).splitlines()[0][:80] if str(e) else 'unreadable'})") \
                from None
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        raise ImportFailure("a zip file that is not a torch checkpoint (torch.save)")
    if len(data) >= 10:
        (n,) = struct.unpack("<Q", data[:8])
        if 2 <= n <= len(data) - 8 and data[8:9] == b"{":
            return "safetensors"
    if data.lstrip()[:1] == b"{":
        return "certificate"
    if data[:1] == b"\x08":   # protobuf field 1 (ir_version), varint: an ONNX ModelProto
        return "onnx"
    raise ImportFailure("not an ONNX model, a torch checkpoint (.pt), a safetensors file or an attncert JSON file")


def _from_json(data: bytes):
    from certificates.model import CertificateError, parse
    from constructions.imported import NETWORK_SCHEMA, network_from_document
    from constructions.network import Network
    try:
        doc = parse(data, "JSON file")
    except CertificateError as e:
        raise ImportFailure(str(e)) from None
    if isinstance(doc, dict) and doc.get("schema") == NETWORK_SCHEMA:
        try:
            net = network_from_document(doc)
        except ValueError as e:
            raise ImportFailure(str(e)) from None
        return net, ["read from an attncert network file"], {"format": "network"}, doc.get("name")
    if not isinstance(doc, dict) or doc.get("schema") != "attncert/certificate":
        raise ImportFailure("a JSON file that is neither an attncert certificate nor an attncert network file")
    try:
        net = Network.from_json(doc["construction"]["network"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ImportFailure(f"the certificate's network is malformed ({type(e).__name__})") from None
    return net, [f"the network of certificate {str(doc.get('sha256'))[:16]}"], {"format": "certificate"}, \
        doc["construction"].get("name")


def import_bytes(data: bytes, path=None, *, wiring=None, dims=None, name=None) -> Imported:
    """Import a model from its bytes (``path`` locates ONNX external data; ``wiring`` is the
    parsed wiring description of a state_dict; ``dims`` fixes dynamic ONNX dimensions)."""
    fmt = sniff(data)
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0] if path is not None else "model"
    default_name = stem
    if wiring is not None and fmt not in ("torch", "safetensors"):
        raise ImportFailure(f"--wiring describes a state_dict; this file is {fmt}")
    if fmt == "onnx":
        from .onnx_reader import read_onnx
        net, notes, info = read_onnx(data, path, dims)
    elif fmt == "torch":
        from .torch_reader import read_torch
        net, notes, info = read_torch(data, wiring)
    elif fmt == "safetensors":
        from .safetensors_reader import read_safetensors
        net, notes, info = read_safetensors(data, wiring)
    else:
        net, notes, info, nm = _from_json(data)
        default_name = nm or stem
    info = dict(info)
    info["sha256"] = hashlib.sha256(data).hexdigest()
    if path is not None:
        info["file"] = os.path.basename(os.fspath(path))
    return Imported(network=net, name=str(name or default_name), source=info, notes=list(notes))


def import_model(path, *, wiring=None, dims=None, name=None) -> Imported:
    """Import the model file at ``path`` (see ``import_bytes``)."""
    return import_bytes(read_model_bytes(path), path, wiring=wiring, dims=dims, name=name)


def document(imp: Imported) -> dict:
    """The net.json document of an import (constructions.imported reads it back)."""
    from constructions.imported import network_document
    return network_document(imp.network, imp.name, imp.source, imp.notes)
