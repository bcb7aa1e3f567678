"""A certificate's exact weights, parsed from its JSON and checked to be float64 values.

Exporters start here: the network comes from ``doc["construction"]["network"]`` (plain
strings parsed into Fractions), its hashes are re-computed, its structure is checked (every
field of the network model: logit biases, several query/key rows, summed heads, post maps,
several layers, a final softmax, a linear readout), and every weight must equal its float64
rounding exactly, or the export is refused with the command that makes a float64
certificate.  ``claim(doc)`` is what every export carries in its format's own metadata.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from certificates.model import write_atomic  # noqa: F401  (shared by the exporters)

EXPORT_FORMAT = "attncert-export/2"
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
    wo: np.ndarray   # (dv, d_heads)
    bias: np.ndarray | None  # (|query_rows|, |key_rows|)


@dataclass(frozen=True)
class Layer:
    heads: tuple
    query_rows: tuple
    key_rows: tuple
    d_in: int                 # token width in
    d_heads: int              # width of the summed head outputs
    post_w: np.ndarray | None  # (d_heads, d_out): the layer output is Y @ post_w + post_b
    post_b: np.ndarray | None  # (|query_rows|, d_out)

    @property
    def d_out(self) -> int:
        return self.d_heads if self.post_w is None else self.post_w.shape[1]


@dataclass(frozen=True)
class Net:
    """The certified network as float64 arrays, plus the raw exact strings and the claim."""
    const: np.ndarray          # (T, d)
    linear: np.ndarray         # (n_inputs, T, d)
    layers: tuple
    readout: tuple             # ((row, col), ...)
    final_softmax: bool
    readout_linear: np.ndarray | None  # (n_outputs, 1 + len(readout)): [bias, weight per readout entry]
    tensors: dict              # canonical name -> float64 array (as in the certificate, beta apart)
    exact: dict                # canonical name -> nested lists of "p/q" strings
    name: str
    certificate_sha256: str
    weights_sha256: str
    schema_version: int
    doc: dict

    @property
    def n_outputs(self) -> int:
        return len(self.readout) if self.readout_linear is None else self.readout_linear.shape[0]


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


class _NotFloat64(Exception):
    pass


def _f64(v: Fraction, where) -> float:
    try:
        f = float(v)
    except OverflowError:
        f = None
    if f is None or Fraction(f) != v:
        raise _NotFloat64(f"weight {where} = {v} is not a float64 value")
    return f


def _shape(m, where) -> tuple:
    if type(m) is not list or not m or any(type(r) is not list or len(r) != len(m[0]) for r in m) or not m[0]:
        raise ExportError(f"{where}: not a non-empty rectangular matrix")
    return len(m), len(m[0])


def _matrix(m, where) -> np.ndarray:
    _shape(m, where)
    return np.array([[_f64(_frac(v, where), f"{where}[{i}][{j}]") for j, v in enumerate(r)]
                     for i, r in enumerate(m)], dtype=np.float64)


def tensors_sha256(tensors: dict) -> str:
    """SHA-256 over the canonical tensor bytes: name, shape and little-endian float64 data, in order."""
    h = hashlib.sha256()
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr, dtype="<f8")
        h.update(canonical([name, list(a.shape)]))
        h.update(a.tobytes())
    return h.hexdigest()


def float64_command(doc) -> str:
    """The exact ``attncert`` command that certifies this certificate's construction in float64."""
    cons = doc.get("construction") if isinstance(doc, dict) else None
    cons = cons if isinstance(cons, dict) else {}
    name = str(cons.get("name", "NAME"))
    params = cons.get("params") if isinstance(cons.get("params"), dict) else {}
    sets = " ".join("--set " + shlex.quote(f"{k}={v}") for k, v in sorted(params.items()) if k != "float64")
    method = (doc.get("evidence") or {}).get("method") if isinstance(doc.get("evidence"), dict) else None
    opt = {"analytic": " --method analytic", "mixed": " --method auto"}.get(method, "")
    norm = doc.get("norm") if isinstance(doc.get("norm"), dict) else {}
    if norm.get("kind", "Linf") != "Linf":
        return (f"(none yet: certify-lp has no --float64; for the sup norm: attncert certify {shlex.quote(name)} "
                f"{sets} --float64 --eps {doc.get('eps')} -o {shlex.quote(name + '.f64.json')})")
    return (f"attncert certify {shlex.quote(name)}{' ' + sets if sets else ''}{opt} --float64 "
            f"--eps {shlex.quote(str(doc.get('eps')))} -o {shlex.quote(name + '.f64.json')}")


def read(doc) -> Net:
    """Parse and check ``doc``'s network; raises ExportError or CertificateMismatch.

    The structure is checked before any weight is converted, and both long before the
    Arb re-check, so that a refusal is immediate."""
    if not isinstance(doc, dict) or not isinstance(doc.get("construction"), dict):
        raise ExportError("not an attncert certificate (no construction)")
    if doc.get("status") != "CERTIFIED":
        raise ExportError(f"certificate status is {doc.get('status')!r}; only CERTIFIED certificates export")
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
        _structure(net)
        return _parse(doc, cons, net)
    except _NotFloat64 as e:
        raise ExportError(f"{e}: the certificate must speak about the exported floats; make one with: "
                          f"{float64_command(doc)}") from None
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
        if isinstance(e, ExportError):
            raise
        raise ExportError(f"malformed network in certificate ({type(e).__name__}: {e})") from None


_NET_KEYS = {"embedding", "layers", "readout", "final_softmax", "readout_linear"}
_LAYER_KEYS = {"query_rows", "key_rows", "heads", "post"}
_HEAD_KEYS = {"wq", "wk", "wv", "wo", "beta", "bias"}


def _refuse_extra(obj, known, where):
    extra = sorted(set(obj) - known)
    if extra:
        raise ExportError(f"{where}{extra[0]}: a field that no export format can express (certificate schema "
                          f"{EXPORT_FORMAT} knows {', '.join(sorted(known))})")


def _structure(net) -> None:
    """Shapes, indices and fields only (no weight is converted): fails fast."""
    _refuse_extra(net, _NET_KEYS, "network.")
    emb = net["embedding"]
    _refuse_extra(emb, {"const", "linear"}, "network.embedding.")
    T, d = _shape(emb["const"], "embed.const")
    if type(emb["linear"]) is not list:
        raise ExportError("embed.linear: not a list of matrices")
    for i, e in enumerate(emb["linear"]):
        if _shape(e, f"embed.linear.{i}") != (T, d):
            raise ExportError(f"embed.linear.{i}: shape differs from embed.const's {(T, d)}")
    if type(net["layers"]) is not list or not net["layers"]:
        raise ExportError("network.layers: no layers")
    rows, width = T, d
    for li, layer in enumerate(net["layers"]):
        _refuse_extra(layer, _LAYER_KEYS, f"network.layers[{li}].")
        q, k = layer["query_rows"], layer["key_rows"]
        if type(q) is not list or type(k) is not list or not q or not k \
                or any(type(r) is not int or not 0 <= r < rows for r in q + k):
            raise ExportError(f"layer{li}: query_rows/key_rows out of range (0..{rows - 1})")
        if type(layer["heads"]) is not list or not layer["heads"]:
            raise ExportError(f"layer{li}: no heads")
        d_heads = None
        for hi, h in enumerate(layer["heads"]):
            p = f"layer{li}.head{hi}."
            _refuse_extra(h, _HEAD_KEYS, p)
            sq, sk, sv, so = (_shape(h[n], p + n) for n in ("wq", "wk", "wv", "wo"))
            _frac(h["beta"], p + "beta")
            if (sq[0], sk[0], sv[0]) != (width, width, width) or sq[1] != sk[1] or sv[1] != so[0] \
                    or (d_heads is not None and so[1] != d_heads):
                raise ExportError(f"{p[:-1]}: inconsistent matrix shapes")
            if h.get("bias") is not None and _shape(h["bias"], p + "bias") != (len(q), len(k)):
                raise ExportError(f"{p}bias: shape is not (query rows, key rows) = {(len(q), len(k))}")
            d_heads = so[1]
        rows, width = len(q), d_heads
        if "post" in layer:
            _refuse_extra(layer["post"], {"W", "B"}, f"layer{li}.post.")
            sw, sb = _shape(layer["post"]["W"], f"layer{li}.post.W"), _shape(layer["post"]["B"], f"layer{li}.post.B")
            if sw[0] != d_heads or sb != (rows, sw[1]):
                raise ExportError(f"layer{li}.post: W must be (head width, out) and B (query rows, out)")
            width = sw[1]
    if net.get("final_softmax", True) is not True:
        raise ExportError("network.final_softmax: only true (or absent) is defined")
    ro = net["readout"]
    if type(ro) is not list or not ro or any(type(rc) is not list or len(rc) != 2 or any(type(v) is not int for v in rc)
                                             or not (0 <= rc[0] < rows and 0 <= rc[1] < width) for rc in ro):
        raise ExportError("network.readout: (row, column) pairs of the last layer's output, in range")
    if "readout_linear" in net:
        rl = net["readout_linear"]
        if type(rl) is not list or not rl or any(type(o) is not dict or set(o) != {"bias", "weights"}
                                                 or type(o["weights"]) is not list or len(o["weights"]) != len(ro)
                                                 for o in rl):
            raise ExportError("network.readout_linear: one {bias, weights} per output, one weight per readout entry")


def _parse(doc, cons, net) -> Net:
    tensors, exact = {}, {}

    def take(name, m):
        arr = _matrix(m, name)
        tensors[name], exact[name] = arr, m
        return arr

    const = take("embed.const", net["embedding"]["const"])
    lin = [take(f"embed.linear.{i}", e) for i, e in enumerate(net["embedding"]["linear"])]
    T, d = const.shape
    layers, width = [], d
    for li, layer in enumerate(net["layers"]):
        heads = []
        for hi, h in enumerate(layer["heads"]):
            p = f"layer{li}.head{hi}."
            take(p + "wq", h["wq"])
            wk, wv, wo = take(p + "wk", h["wk"]), take(p + "wv", h["wv"]), take(p + "wo", h["wo"])
            beta = _frac(h["beta"], p + "beta")
            take(p + "beta", [[h["beta"]]])
            bias = None if h.get("bias") is None else take(p + "bias", h["bias"])
            wq = np.array([[_f64(_frac(v, p + "wq") * beta, f"{p}wq[{i}][{j}]*beta") for j, v in enumerate(r)]
                           for i, r in enumerate(h["wq"])], dtype=np.float64)
            heads.append(Head(wq=wq, wk=wk, wv=wv, wo=wo, bias=bias))
        post_w = post_b = None
        if "post" in layer:
            post_w = take(f"layer{li}.post.W", layer["post"]["W"])
            post_b = take(f"layer{li}.post.B", layer["post"]["B"])
        lay = Layer(heads=tuple(heads), query_rows=tuple(layer["query_rows"]), key_rows=tuple(layer["key_rows"]),
                    d_in=width, d_heads=heads[0].wo.shape[1], post_w=post_w, post_b=post_b)
        layers.append(lay)
        width = lay.d_out
    readout = tuple((int(r), int(c)) for r, c in net["readout"])
    rl = None
    if "readout_linear" in net:
        rl = take("readout.linear", [[o["bias"]] + list(o["weights"]) for o in net["readout_linear"]])
    lin_arr = np.stack(lin) if lin else np.zeros((0, T, d))
    return Net(const=const, linear=lin_arr, layers=tuple(layers), readout=readout,
               final_softmax=bool(net.get("final_softmax", False)), readout_linear=rl, tensors=tensors,
               exact=exact, name=str(cons.get("name", "")), certificate_sha256=doc["sha256"],
               weights_sha256=cons["weights_sha256"], schema_version=int(doc.get("schema_version", 0)), doc=doc)


# ---------------------------------------------------------------- the claim

_INFIX = {"add": " + ", "sub": " - ", "mul": "*", "div": "/"}


def expr_text(t) -> str:
    """Readable text of a certificate's target expression tree (JSON): infix operands that are not
    atoms are parenthesised, so the text reads unambiguously (e.g. ``range(-1, 1, x0)``)."""
    if not isinstance(t, dict):
        return "?"
    if "num" in t:
        return str(t["num"])
    if "var" in t or "const" in t:
        return str(t.get("var", t.get("const")))
    op, args = t.get("op"), t.get("args") or []
    if op in _INFIX:
        return _INFIX[op].join(expr_text(a) if _atomic(a) else f"({expr_text(a)})" for a in args)
    if op == "neg":
        return f"-({expr_text(args[0])})" if args else "?"
    if op == "pow" and len(args) == 2:
        return f"({expr_text(args[0])})^{expr_text(args[1])}"
    return f"{op}({', '.join(expr_text(a) for a in args)})"


def _atomic(t) -> bool:
    if not isinstance(t, dict):
        return True
    if "num" in t:
        return str(t["num"]).isdigit()
    return "var" in t or "const" in t or t.get("op") not in (*_INFIX, "neg", "pow")


def claim(doc) -> dict:
    """What was certified, from the certificate's fields alone (no weight is parsed)."""
    res = doc.get("result") if isinstance(doc.get("result"), dict) else {}
    cons = doc.get("construction") if isinstance(doc.get("construction"), dict) else {}
    out = {"format": EXPORT_FORMAT, "status": doc.get("status"), "construction": cons.get("name"),
           "certificate_sha256": doc.get("sha256"), "weights_sha256": cons.get("weights_sha256"),
           "schema_version": doc.get("schema_version"), "eps": doc.get("eps"), "norm": doc.get("norm"),
           "domain": doc.get("domain"), "inputs": doc.get("inputs"),
           "target": [expr_text(t) for t in doc.get("target") or []],
           "max_bound": res.get("max_bound")}
    if "norm_bound" in res:
        out["norm_bound"] = res["norm_bound"]
    return out


def metadata(net: Net, export: str) -> dict:
    """What every export carries: the claim, the tensors' hash and the wiring (rows, readout)."""
    return {**claim(net.doc), "export": export, "tensors_sha256": tensors_sha256(net.tensors),
            "layers": [{"query_rows": list(l.query_rows), "key_rows": list(l.key_rows), "heads": len(l.heads),
                        "post": l.post_w is not None} for l in net.layers],
            "readout": [list(rc) for rc in net.readout], "final_softmax": net.final_softmax,
            "readout_linear": net.readout_linear is not None}


def metadata_text(net: Net, export: str) -> str:
    return canonical(metadata(net, export)).decode("ascii")
