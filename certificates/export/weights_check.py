"""``attncert check --weights``: does a weights file hold exactly a certificate's weights?

Tensor by tensor, bit for bit (compared as 64-bit patterns, so -0.0 != 0.0), no tensor
missing or extra, and the file's metadata must name this certificate's hashes.  Reads
safetensors or the npz export; nothing is unpickled.
"""
from __future__ import annotations

import json
import zipfile

import numpy as np

from .certdata import ExportError, metadata, read, tensors_sha256


class WeightsFileError(ValueError):
    """The weights file cannot be read (exit code 2)."""


def _read_safetensors(path):
    from safetensors import safe_open
    try:
        with safe_open(path, "np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise WeightsFileError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    from .safetensors_export import META_KEY
    raw = meta.get(META_KEY)
    return tensors, raw, sorted(meta)


def _read_npz(path):
    try:
        z = np.load(path, allow_pickle=False)
        files = list(z.files)
        arrays = {k: z[k] for k in files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise WeightsFileError(f"{path}: not a readable npz file ({str(e).splitlines()[0][:120]})") from None
    if not all(isinstance(v, np.ndarray) for v in arrays.values()):  # e.g. a torch .pt, also a zip
        raise WeightsFileError(f"{path}: a zip file but not an npz of arrays (check --weights reads "
                               "safetensors or the npz export)")
    raw = arrays.pop("attncert.meta", None)
    exact = {k[:-len(".exact")]: v for k, v in arrays.items() if k.endswith(".exact")}
    tensors = {k: v for k, v in arrays.items() if not k.endswith(".exact")}
    return tensors, (None if raw is None else str(raw)), exact


def check_weights(path, doc) -> list:
    """Problems found comparing ``path`` with certificate ``doc`` (empty list: identical)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise WeightsFileError(f"cannot read {path}: {e.strerror}") from None
    try:
        net = read(doc)
    except ExportError as e:
        return [str(e)]
    expected = net.tensors
    exact = None
    if magic.startswith(b"PK"):
        tensors, raw, exact = _read_npz(path)
        meta_keys = None
    else:
        tensors, raw, meta_keys = _read_safetensors(path)
    problems = []
    for name in expected:
        if name not in tensors:
            problems.append(f"tensor {name} is missing")
    for name in tensors:
        if name not in expected:
            problems.append(f"unexpected tensor {name}")
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None:
            continue
        if got.dtype != np.float64:
            problems.append(f"tensor {name} has dtype {got.dtype}, expected float64")
        elif got.shape != want.shape:
            problems.append(f"tensor {name} has shape {got.shape}, expected {want.shape}")
        else:
            diff = np.flatnonzero(got.astype("<f8").view("<u8") != want.astype("<f8").view("<u8"))
            if diff.size:
                i = np.unravel_index(diff[0], want.shape)
                problems.append(f"tensor {name} differs at {tuple(int(v) for v in i)}: "
                                f"{float(got[i])!r} != certified {float(want[i])!r} ({diff.size} entries differ)")
        if exact is not None and (name not in exact or exact[name].tolist() != net.exact[name]):
            problems.append(f"exact strings {name}.exact differ from the certificate")
    if meta_keys is not None and meta_keys != ["attncert"]:
        problems.append(f"metadata keys {meta_keys}, expected exactly ['attncert']")
    try:
        meta = json.loads(raw) if raw is not None else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        problems.append("file carries no attncert metadata")
    else:
        want_meta = metadata(net)
        for key in ("certificate_sha256", "weights_sha256", "tensors_sha256", "schema_version"):
            if meta.get(key) != want_meta[key]:
                problems.append(f"metadata {key} {meta.get(key)!r} does not match the certificate's {want_meta[key]!r}")
        if not problems and tensors_sha256({k: tensors[k] for k in expected}) != meta.get("tensors_sha256"):
            problems.append("tensors_sha256 does not match the file's tensor bytes")
    return problems
