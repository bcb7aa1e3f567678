"""``attncert check --weights``: does an export hold exactly a certificate's weights?

Any of the five formats.  The file is read without executing anything, the export that
the certificate gives in that format is made again in memory, and the two are compared
entry by entry: every tensor bit for bit (as 64-bit patterns, so -0.0 != 0.0), every index,
every graph node (ONNX) and the claim, nothing missing or extra.  A difference names the
tensor.
"""
from __future__ import annotations

import importlib
import json

import numpy as np

from ..model import unique_keys
from .certdata import CertificateMismatch, read
from .files import Contents, WeightsFileError, contents, needs_message, read_bytes, sniff  # noqa: F401


def _bits(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return np.ascontiguousarray(a).view(np.dtype(f"<u{a.dtype.itemsize}") if a.dtype.byteorder != ">"
                                            else np.dtype(f">u{a.dtype.itemsize}"))
    return a


def _compare_array(name, got, want) -> str | None:
    if not isinstance(got, np.ndarray):
        return f"tensor {name} is a {type(got).__name__}, expected an array"
    if got.dtype != want.dtype:
        return f"tensor {name} has dtype {got.dtype}, expected {want.dtype}"
    if got.shape != want.shape:
        return f"tensor {name} has shape {got.shape}, expected {want.shape}"
    diff = np.flatnonzero(_bits(got).reshape(-1) != _bits(want).reshape(-1)) if got.size else []
    if len(diff):
        i = np.unravel_index(diff[0], want.shape)
        g, w = got[i], want[i]
        show = (lambda v: repr(float(v))) if want.dtype.kind == "f" else (lambda v: repr(v.item()))
        return (f"tensor {name} differs at {tuple(int(v) for v in i)}: {show(g)} != certified {show(w)} "
                f"({len(diff)} entr{'y differs' if len(diff) == 1 else 'ies differ'})")
    return None


def compare(got: Contents, want: Contents) -> list:
    """Differences between an export read from a file and the one the certificate gives."""
    problems = []
    for name in want.entries:
        if name not in got.entries:
            problems.append(f"{'tensor' if isinstance(want.entries[name], np.ndarray) else 'entry'} {name} is missing")
    for name in got.entries:
        if name not in want.entries:
            problems.append(f"unexpected entry {name}")
    for name, w in want.entries.items():
        if name not in got.entries:
            continue
        g = got.entries[name]
        if isinstance(w, np.ndarray):
            p = _compare_array(name, g, w)
        else:
            p = None if type(g) is type(w) and g == w else f"entry {name} is {str(g)[:60]!r}, expected {str(w)[:60]!r}"
        if p:
            problems.append(p)
    try:
        claim = json.loads(got.claim_text, object_pairs_hook=unique_keys)
    except ValueError:   # also a repeated key (CertificateError is a ValueError)
        claim = None
    expected = json.loads(want.claim_text)
    if not isinstance(claim, dict):
        return ["the file's attncert claim is not JSON"] + problems
    keys = sorted(set(claim) | set(expected), key=lambda k: (k not in ("certificate_sha256", "weights_sha256"), k))
    said = [f"claim {k} {claim.get(k)!r} does not match the certificate's {expected.get(k)!r}"
            for k in keys if claim.get(k) != expected.get(k)]
    # another certificate's export: say so first; otherwise a changed tensor is named first (even if
    # the claim's tensors_sha256 was edited to match it)
    other = any(claim.get(k) != expected.get(k) for k in ("certificate_sha256", "weights_sha256"))
    return said + problems if other else problems + said


def expected_contents(doc, fmt: str, options: dict | None = None) -> Contents:
    """The export that certificate ``doc`` gives in format ``fmt``, read back like a file."""
    mod = importlib.import_module(f"certificates.export.{fmt}_export")
    try:
        data = mod.to_bytes(doc, **(options or {}))
    except ImportError as e:
        raise WeightsFileError(needs_message(fmt, e)) from None
    return contents(data, fmt, "<expected>")


def check_weights(path, doc) -> list:
    """Problems found comparing ``path`` with certificate ``doc`` (empty list: identical).

    Raises WeightsFileError when the file is unreadable or foreign, ExportError when the
    certificate cannot be exported at all (e.g. weights that are not float64)."""
    data = read_bytes(path)
    fmt = sniff(data, path)
    if fmt == "certificate":
        raise WeightsFileError(f"{path} is a certificate, not a weights file (safetensors, npz, torch .pt, ONNX, "
                               "Flax msgpack)")
    got = contents(data, fmt, path)
    try:
        read(doc)
    except CertificateMismatch as e:
        return [str(e)]
    return compare(got, expected_contents(doc, fmt, got.options))
