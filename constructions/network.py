"""The attention network as exact data: rational matrices, no floats.

Forward pass, defined once (row-vector tokens):
  Z = C + sum_i x_i E_i                         (affine embedding of the input x)
  per layer: Y = sum_h softmax_keys(beta_h (Z[q] Wq_h)(Z[k] Wk_h)^T + B_h) (Z[k] Wv_h) Wo_h
  output y = [Y_last[r, c] for (r, c) in readout]
Every backend (mpmath, NumPy, CuPy, the certifier and the checker) computes exactly this.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction

Mat = tuple  # tuple[tuple[Fraction, ...], ...]


def mat(rows) -> Mat:
    """Freeze a nested sequence of exact numbers into a tuple matrix of Fractions."""
    out = []
    for row in rows:
        r = []
        for v in row:
            if isinstance(v, float):
                raise TypeError("floats never enter a weight")
            if hasattr(v, "p") and hasattr(v, "q"):
                v = Fraction(int(v.p), int(v.q))
            r.append(Fraction(v))
        out.append(tuple(r))
    return tuple(out)


def shape(m: Mat) -> tuple[int, int]:
    return (len(m), len(m[0]) if m else 0)


def _enc(m: Mat):
    return [[str(v) for v in row] for row in m]


@dataclass(frozen=True)
class Head:
    """One softmax head; ``beta`` is the inverse temperature folded in front of QK^T."""
    wq: Mat
    wk: Mat
    wv: Mat
    wo: Mat
    beta: Fraction
    bias: Mat | None = None  # additive logit bias, (query rows) x (key rows)


@dataclass(frozen=True)
class Layer:
    """Heads summed; rows ``query_rows`` attend over rows ``key_rows`` (cross-attention when they differ)."""
    heads: tuple
    query_rows: tuple
    key_rows: tuple
    post: tuple | None = None  # optional (W, B): the layer output Y becomes Y W + B (B per query row)


@dataclass(frozen=True)
class Embedding:
    """Token matrix affine in the input: ``const + sum_i x_i * linear[i]``."""
    const: Mat
    linear: tuple


@dataclass(frozen=True)
class Network:
    embedding: Embedding
    layers: tuple
    readout: tuple  # ((row, column), ...) of the last layer's output
    final_softmax: bool = False  # optional row-wise softmax over the columns of the last output
    readout_linear: tuple | None = None  # optional ((bias, (w per readout entry, ...)), ...) per output

    def tensors(self) -> dict:
        """Named exact tensors in a canonical order (used for hashing and export)."""
        out = {"embed.const": self.embedding.const}
        for i, e in enumerate(self.embedding.linear):
            out[f"embed.linear.{i}"] = e
        for li, layer in enumerate(self.layers):
            for hi, h in enumerate(layer.heads):
                p = f"layer{li}.head{hi}."
                out[p + "wq"], out[p + "wk"], out[p + "wv"], out[p + "wo"] = h.wq, h.wk, h.wv, h.wo
                out[p + "beta"] = ((h.beta,),)
                if h.bias is not None:
                    out[p + "bias"] = h.bias
            if layer.post is not None:
                out[f"layer{li}.post.W"], out[f"layer{li}.post.B"] = layer.post
        if self.readout_linear is not None:
            out["readout.linear"] = tuple((b,) + tuple(w) for b, w in self.readout_linear)
        return out

    def to_json(self) -> dict:
        """Exact JSON form: every number a "p/q" string.

        The optional fields (a layer's ``post``, ``final_softmax``, ``readout_linear``)
        appear only when used, so one-layer networks keep their JSON and hash.
        """
        doc = {
            "embedding": {"const": _enc(self.embedding.const),
                          "linear": [_enc(e) for e in self.embedding.linear]},
            "layers": [{
                "query_rows": list(layer.query_rows),
                "key_rows": list(layer.key_rows),
                "heads": [{"wq": _enc(h.wq), "wk": _enc(h.wk), "wv": _enc(h.wv), "wo": _enc(h.wo),
                           "beta": str(h.beta),
                           "bias": None if h.bias is None else _enc(h.bias)} for h in layer.heads],
            } for layer in self.layers],
            "readout": [list(rc) for rc in self.readout],
        }
        for li, layer in enumerate(self.layers):
            if layer.post is not None:
                doc["layers"][li]["post"] = {"W": _enc(layer.post[0]), "B": _enc(layer.post[1])}
        if self.final_softmax:
            doc["final_softmax"] = True
        if self.readout_linear is not None:
            doc["readout_linear"] = [{"bias": str(b), "weights": [str(v) for v in w]}
                                     for b, w in self.readout_linear]
        return doc

    @classmethod
    def from_json(cls, obj) -> "Network":
        """The inverse of ``to_json``: every number parsed as an exact rational, nothing evaluated.

        Raises ValueError (ParameterError) or KeyError/TypeError on a malformed document."""
        from .exact import parse_rational

        def m(rows):
            return mat([[parse_rational(v) for v in row] for row in rows])
        emb = obj["embedding"]
        layers = []
        for layer in obj["layers"]:
            heads = tuple(Head(wq=m(h["wq"]), wk=m(h["wk"]), wv=m(h["wv"]), wo=m(h["wo"]),
                               beta=parse_rational(h["beta"]), bias=None if h["bias"] is None else m(h["bias"]))
                          for h in layer["heads"])
            post = None if "post" not in layer else (m(layer["post"]["W"]), m(layer["post"]["B"]))
            layers.append(Layer(heads=heads, query_rows=tuple(layer["query_rows"]),
                                key_rows=tuple(layer["key_rows"]), post=post))
        readout_linear = None
        if "readout_linear" in obj:
            readout_linear = tuple((parse_rational(o["bias"]), tuple(parse_rational(v) for v in o["weights"]))
                                   for o in obj["readout_linear"])
        return cls(embedding=Embedding(const=m(emb["const"]), linear=tuple(m(e) for e in emb["linear"])),
                   layers=tuple(layers), readout=tuple(tuple(rc) for rc in obj["readout"]),
                   final_softmax=bool(obj.get("final_softmax", False)), readout_linear=readout_linear)

    @property
    def is_plain(self) -> bool:
        """One layer, no post map, no final softmax, entry readout: the affine certifier's shape."""
        return (len(self.layers) == 1 and self.layers[0].post is None and not self.final_softmax
                and self.readout_linear is None)

    def weights_hash(self) -> str:
        """SHA-256 of the canonical JSON of the exact weights."""
        return sha256_canonical(self.to_json())

    @property
    def n_inputs(self) -> int:
        return len(self.embedding.linear)

    @property
    def n_tokens(self) -> int:
        return len(self.embedding.const)


def canonical_bytes(obj) -> bytes:
    """Canonical JSON: sorted keys, no spaces, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def sha256_canonical(obj) -> str:
    return hashlib.sha256(canonical_bytes(obj)).hexdigest()
