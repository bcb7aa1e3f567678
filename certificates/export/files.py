"""Read any attncert file: a certificate or an export in one of the five formats.

``sniff`` tells the format from the file's bytes (never from its name); ``contents`` reads an
export into its claim (the ``attncert`` JSON) and a flat map of entries (arrays and plain
values by path) without executing anything: safetensors and npz (``allow_pickle=False``),
torch (``weights_only=True``), ONNX protobuf, Flax msgpack.  A file that cannot be read, or
that is readable but carries no attncert claim, raises WeightsFileError (exit code 2).
"""
from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..model import unique_keys

FORMAT_NAMES = {"safetensors": "safetensors", "npz": "npz", "torch": "torch .pt", "onnx": "ONNX",
                "flax": "Flax msgpack", "certificate": "certificate"}
_EXTRA = {"torch": "torch", "onnx": "onnx", "flax": "jax", "safetensors": "safetensors"}


class WeightsFileError(ValueError):
    """The file cannot be read as an attncert export (exit code 2)."""


@dataclass
class Contents:
    fmt: str
    claim_text: str | None
    entries: dict = field(default_factory=dict)   # path -> np.ndarray or a plain value
    options: dict = field(default_factory=dict)   # exporter options the file was written with


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return (s.splitlines()[0][:160] if s else type(e).__name__)


MAX_BYTES = 4 << 30  # the largest export read


def read_bytes(path) -> bytes:
    """The bytes of a regular file; a directory, FIFO or device is refused at once, never waited on."""
    from constructions.files import read_regular
    return read_regular(path, MAX_BYTES, WeightsFileError, "model")


def sniff(data: bytes, path="<file>") -> str:
    """The file's format from its bytes: certificate, safetensors, npz, torch, onnx or flax."""
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise WeightsFileError(f"{path}: a damaged zip file ({_first_line(e)})") from None
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise WeightsFileError(f"{path}: a zip file that is neither an npz of arrays nor a torch .pt")
    if len(data) >= 10:  # before JSON: a safetensors length prefix may look like whitespace
        (n,) = struct.unpack("<Q", data[:8])
        if 2 <= n <= len(data) - 8 and data[8:9] == b"{":
            return "safetensors"
    if data.lstrip()[:1] == b"{":
        return "certificate"
    if data[:1] and (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)):
        return "flax"
    if data[:1] == b"\x08":  # protobuf field 1 (ir_version), varint: an ONNX ModelProto
        return "onnx"
    raise WeightsFileError(f"{path}: not an attncert certificate or export (safetensors, npz, torch .pt, "
                           "ONNX or Flax msgpack)")


def needs_message(fmt: str, e: ImportError) -> str:
    return (f"reading a {FORMAT_NAMES[fmt]} file needs {e.name or 'a missing package'}: "
            f"pip install 'attncert[{_EXTRA[fmt]}]'")


def _flatten(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, dict):
        for k in obj:
            _flatten(obj[k], f"{prefix}/{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        out[prefix + "/#len"] = len(obj)
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}/{i}", out)
    else:
        out[prefix] = obj


def contents(data: bytes, fmt: str, path="<file>") -> Contents:
    """The claim and the entries of an export's bytes; WeightsFileError if unreadable or foreign."""
    try:
        c = globals()["_read_" + fmt](data)
    except ImportError as e:
        raise WeightsFileError(needs_message(fmt, e)) from None
    except WeightsFileError:
        raise
    except Exception as e:  # each library raises its own error types for a damaged file
        raise WeightsFileError(f"{path}: not a readable {FORMAT_NAMES[fmt]} file ({_first_line(e)})") from None
    if not isinstance(c.claim_text, str):
        raise WeightsFileError(f"{path}: a {FORMAT_NAMES[fmt]} file, but not an attncert export (no 'attncert' "
                               "claim in its metadata)")
    return c


def _read_safetensors(data):
    from safetensors.numpy import load
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n], object_pairs_hook=unique_keys)
    meta = header.get("__metadata__") or {}
    tensors = load(data)
    entries = {k: tensors[k] for k in header if k != "__metadata__"}
    entries.update({f"__metadata__/{k}": v for k, v in meta.items() if k != "attncert"})
    return Contents("safetensors", meta.get("attncert"), entries)


def _read_npz(data):
    z = np.load(io.BytesIO(data), allow_pickle=False)
    entries = {k: z[k] for k in z.files}
    claim = entries.pop("attncert", None)
    return Contents("npz", None if claim is None or claim.dtype.kind != "U" or claim.ndim else str(claim), entries)


def _read_torch(data):
    import torch
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        return Contents("torch", None)
    flat = {}
    _flatten({k: v for k, v in obj.items() if k != "attncert"}, "", flat)
    entries = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in flat.items()}
    return Contents("torch", obj.get("attncert"), entries)


def _read_flax(data):
    from flax.serialization import msgpack_restore
    obj = msgpack_restore(data)
    if not isinstance(obj, dict):
        return Contents("flax", None)
    flat = {}
    _flatten({k: v for k, v in obj.items() if k != "attncert"}, "", flat)
    return Contents("flax", obj.get("attncert"), flat)


def _read_onnx(data):
    import onnx
    from onnx import numpy_helper
    m = onnx.load_model_from_string(data)
    props = {p.key: p.value for p in m.metadata_props}
    g = m.graph
    entries = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    entries.update({f"metadata_props/{k}": v for k, v in props.items() if k != "attncert"})
    for i, nd in enumerate(g.node):  # the graph itself: every node, input and output, byte for byte
        entries[f"graph/node{i}/{nd.name or nd.op_type}"] = nd.SerializeToString()
    for kind, vals in (("input", g.input), ("output", g.output)):
        for i, v in enumerate(vals):
            entries[f"graph/{kind}{i}/{v.name}"] = v.SerializeToString()
    entries["model/ir_version"] = m.ir_version
    entries["model/opset_import"] = [(o.domain, o.version) for o in m.opset_import]
    attention = any(nd.op_type == "Attention" for nd in g.node)
    return Contents("onnx", props.get("attncert"), entries, {"attention_op": True} if attention else {})


def read_file(path) -> tuple:
    """``(format, certificate dict or Contents)`` of any attncert file."""
    data = read_bytes(path)
    fmt = sniff(data, path)
    if fmt == "certificate":
        from certificates.model import CertificateError, load
        try:
            return fmt, load(data)
        except CertificateError as e:
            raise WeightsFileError(f"{path}: {e}") from None
    return fmt, contents(data, fmt, path)
