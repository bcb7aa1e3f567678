"""A certificate's exact weights, parsed from its JSON and checked to be float64 values.

Exporters start here: the network comes from ``doc["construction"]["network"]`` (plain
strings parsed into Fractions), its hashes are re-computed, and every weight must equal
its float64 rounding exactly, or the export is refused (certify with ``--float64``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from certificates.model import write_atomic  # noqa: F401  (shared by the exporters)

_RAT = re.compile(r"-?[0-9]+(/[0-9]+)?\Z")


class ExportError(ValueError):
    """The certificate cannot be exported as asked (exit code 2)."""


class CertificateMismatch(Exception):
    """The certificate's hashes do not match its content (exit code 1)."""


@dataclass(frozen=True)
class Head:
    wq: np.ndarray   # (d, dq) float64, beta folded in (exact)
    wk: np.ndarray   # (d, dq)
    wv: np.ndarray   # (d, dv)
    wo: np.ndarray   # (dv, dout)
    bias: np.ndarray | None  # (|query_rows|, |key_rows|)


@dataclass(frozen=True)
class Layer:
    heads: tuple
    query_rows: tuple
    key_rows: tuple
    d_in: int
    d_out: int


@dataclass(frozen=True)
class Net:
    """The certified network as float64 arrays, plus the raw exact strings and hashes."""
    const: np.ndarray          # (T, d)
    linear: np.ndarray         # (n_inputs, T, d)
    layers: tuple
    readout: tuple             # ((row, col), ...)
    tensors: dict              # canonical name -> float64 array (as in the certificate, beta apart)
    exact: dict                # canonical name -> nested lists of "p/q" strings
    name: str
    certificate_sha256: str
    weights_sha256: str
    schema_version: int


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _frac(s, where) -> Fraction:
    if type(s) is not str or len(s) > 5000 or not _RAT.match(s):
        raise ExportError(f"{where}: not an exact rational string")
    p, _, q = s.partition("/")
    if q and int(q) == 0:
        raise ExportError(f"{where}: zero denominator")
    return Fraction(int(p), int(q) if q else 1)


def _f64(v: Fraction, where) -> float:
    try:
        f = float(v)
    except OverflowError:
        f = None
    if f is None or Fraction(f) != v:
        raise ExportError(f"weight {where} = {v} is not a float64 value; certify with --float64 "
                          "(attncert certify NAME --float64 ...) so that the certificate covers the exported floats")
    return f


def _matrix(m, where):
    if type(m) is not list or not m or any(type(r) is not list or len(r) != len(m[0]) for r in m) or not m[0]:
        raise ExportError(f"{where}: not a non-empty rectangular matrix")
    fr = [[_frac(v, where) for v in r] for r in m]
    arr = np.array([[_f64(v, f"{where}[{i}][{j}]") for j, v in enumerate(r)] for i, r in enumerate(fr)],
                   dtype=np.float64)
    return fr, arr


def tensors_sha256(tensors: dict) -> str:
    """SHA-256 over the canonical tensor bytes: name, shape and little-endian float64 data, in order."""
    h = hashlib.sha256()
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr, dtype="<f8")
        h.update(canonical([name, list(a.shape)]))
        h.update(a.tobytes())
    return h.hexdigest()


def read(doc) -> Net:
    """Parse and check ``doc``'s network; raises ExportError or CertificateMismatch."""
    if not isinstance(doc, dict) or doc.get("status") != "CERTIFIED" or not isinstance(doc.get("construction"), dict):
        raise ExportError("not a CERTIFIED attncert certificate")
    from certificates.model import digest
    if doc.get("sha256") != digest(doc):
        raise CertificateMismatch("certificate sha256 does not match its content")
    cons = doc["construction"]
    net = cons.get("network")
    if not isinstance(net, dict):
        raise ExportError("certificate has no network")
    if hashlib.sha256(canonical(net)).hexdigest() != cons.get("weights_sha256"):
        raise CertificateMismatch("weights_sha256 does not match the certificate's weights")
    try:
        return _parse(doc, cons, net)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ExportError(f"malformed network in certificate ({type(e).__name__}: {e})") from None


_NET_KEYS = {"embedding", "layers", "readout"}
_LAYER_KEYS = {"query_rows", "key_rows", "heads"}


def _parse(doc, cons, net) -> Net:
    # A field the exporters do not model (a layer's post map, a final softmax, a linear
    # readout) would silently change the function: refuse rather than export something else.
    extra = (set(net) - _NET_KEYS) | {k for layer in net["layers"] for k in set(layer) - _LAYER_KEYS}
    if extra:
        raise ExportError(f"the exporters do not handle {', '.join(sorted(extra))} yet "
                          f"(post-layer maps / final softmax networks such as relu-net)")
    tensors, exact = {}, {}

    def take(name, m):
        fr, arr = _matrix(m, name)
        tensors[name], exact[name] = arr, m
        return fr, arr

    _, const = take("embed.const", net["embedding"]["const"])
    lin = [take(f"embed.linear.{i}", e)[1] for i, e in enumerate(net["embedding"]["linear"])]
    T, d = const.shape
    if any(e.shape != (T, d) for e in lin):
        raise ExportError("embedding matrices differ in shape")
    layers, rows, width = [], T, d
    for li, layer in enumerate(net["layers"]):
        q, k = tuple(layer["query_rows"]), tuple(layer["key_rows"])
        if not k or any(type(r) is not int or not 0 <= r < rows for r in q + k):
            raise ExportError(f"layer {li}: row index out of range")
        heads, d_out = [], None
        for hi, h in enumerate(layer["heads"]):
            p = f"layer{li}.head{hi}."
            wq_fr, _ = take(p + "wq", h["wq"])
            _, wk = take(p + "wk", h["wk"])
            _, wv = take(p + "wv", h["wv"])
            _, wo = take(p + "wo", h["wo"])
            beta = _frac(h["beta"], p + "beta")
            take(p + "beta", [[h["beta"]]])
            bias = None if h.get("bias") is None else take(p + "bias", h["bias"])[1]
            wq = np.array([[_f64(v * beta, f"{p}wq[{i}][{j}]*beta") for j, v in enumerate(r)]
                           for i, r in enumerate(wq_fr)], dtype=np.float64)
            if (wq.shape[0], wk.shape[0], wv.shape[0]) != (width, width, width) or wq.shape[1] != wk.shape[1] \
                    or wv.shape[1] != wo.shape[0] or (d_out is not None and wo.shape[1] != d_out) \
                    or (bias is not None and bias.shape != (len(q), len(k))):
                raise ExportError(f"{p[:-1]}: inconsistent matrix shapes")
            d_out = wo.shape[1]
            heads.append(Head(wq=wq, wk=wk, wv=wv, wo=wo, bias=bias))
        if not heads:
            raise ExportError(f"layer {li} has no heads")
        layers.append(Layer(heads=tuple(heads), query_rows=q, key_rows=k, d_in=width, d_out=d_out))
        rows, width = len(q), d_out
    readout = tuple((int(r), int(c)) for r, c in net["readout"])
    if not readout or any(not (0 <= r < rows and 0 <= c < width) for r, c in readout):
        raise ExportError("readout index out of range")
    lin_arr = np.stack(lin) if lin else np.zeros((0, T, d))
    return Net(const=const, linear=lin_arr, layers=tuple(layers), readout=readout, tensors=tensors,
               exact=exact, name=str(cons.get("name", "")), certificate_sha256=doc["sha256"],
               weights_sha256=cons["weights_sha256"], schema_version=int(doc.get("schema_version", 0)))


def metadata(net: Net) -> dict:
    """What every export carries: the certificate's hashes, schema version and wiring."""
    return {"format": "attncert-export/1", "construction": net.name,
            "certificate_sha256": net.certificate_sha256, "weights_sha256": net.weights_sha256,
            "schema_version": net.schema_version, "tensors_sha256": tensors_sha256(net.tensors),
            "layers": [{"query_rows": list(l.query_rows), "key_rows": list(l.key_rows), "heads": len(l.heads)}
                       for l in net.layers],
            "readout": [list(rc) for rc in net.readout]}
