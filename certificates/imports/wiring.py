"""A state_dict plus a small wiring description: how nn.Linear / nn.MultiheadAttention connect.

A state_dict holds weights, not the forward pass; the wiring says what the forward pass is, in
the terms of the network model, and names the modules by their state_dict prefixes:

    {"inputs": 1,
     "tokens": [{"linear": "embed.token_proj", "scale": "embed.modulation"},
                {"param": "embed.interp_tokens"}],
     "layers": [{"attention": "attn", "type": "linears", "heads": 1}],
     "output": {"rows": [0], "columns": [0]}}

* ``tokens``: the token matrix, rows in order.  ``{"linear": M}``: one row, ``nn.Linear`` M
  applied to x (optionally times a parameter, entry by entry: ``"scale": P``); ``{"param": P}``:
  the rows of a parameter (T, d); ``{"input": true}``: x itself as one row.
* ``layers``: ``{"attention": PREFIX, "type": "mha" | "linears", "heads": H}``: an
  ``nn.MultiheadAttention`` (``PREFIX.in_proj_weight``, ``PREFIX.out_proj.weight``, biases if
  present) or four ``nn.Linear`` named ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` under
  PREFIX (rename with ``"q"``, ``"k"``, ``"v"``, ``"o"``); logits scaled by 1/sqrt(head_dim)
  (the float64 value; ``"scale": "1/4"`` sets it exactly).  ``"query_rows"``, ``"key_rows"``:
  rows of the layer's input (default all).  ``"post": M``: an ``nn.Linear`` on every output row.
* ``output``: ``"rows"`` (positions among the last layer's query rows) and ``"columns"``
  (default all), row-major, then optionally ``"linear": M``, an ``nn.Linear`` over them.

Every listed parameter must exist with the right shape; each float is taken exactly.
"""
from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np

from .base import ImportFailure, exact, read_model_bytes
from .engine import Engine
from .symbolic import Lin, add_const, input_tensor, lift_const, scale

_TOP = {"inputs", "tokens", "layers", "output", "name"}
_LAYER = {"attention", "type", "heads", "scale", "query_rows", "key_rows", "post", "q", "k", "v", "o"}


def load_wiring(path) -> dict:
    """Parse a wiring file: JSON, or YAML (with PyYAML, safe_load only)."""
    data = read_model_bytes(path, max_bytes=1 << 20)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFailure(f"--wiring {path}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        try:
            import yaml
        except ImportError:
            raise ImportFailure(f"--wiring {path}: not JSON ({e.msg}); YAML needs PyYAML") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e2:
            raise ImportFailure(f"--wiring {path}: neither JSON nor YAML ({str(e2).splitlines()[0][:80]})") from None
    if not isinstance(doc, dict):
        raise ImportFailure(f"--wiring {path}: not a mapping with tokens, layers and output")
    return doc


def _rows(spec, n, what):
    if spec is None or spec == "all":
        return list(range(n))
    if not isinstance(spec, list) or not spec or any(type(r) is not int or not -n <= r < n for r in spec):
        raise ImportFailure(f"wiring: {what} must be 'all' or a list of indices in 0..{n - 1}")
    return [r % n for r in spec]


class _State:
    def __init__(self, state: dict):
        self.state = state
        self.used = set()

    def get(self, name, ndim=None, optional=False):
        if name not in self.state:
            if optional:
                return None
            near = sorted(k for k in self.state if k.split(".")[-1] == name.split(".")[-1])[:3]
            raise ImportFailure(f"wiring names {name!r}, which the state_dict does not have"
                                + (f" (similar: {', '.join(near)})" if near else ""))
        a = self.state[name]
        if ndim is not None and a.ndim != ndim:
            raise ImportFailure(f"state_dict entry {name} has {a.ndim} dimensions, expected {ndim}")
        self.used.add(name)
        return exact(a, f"state_dict entry {name}")

    def linear(self, prefix):
        W = self.get(prefix + ".weight", 2)
        b = self.get(prefix + ".bias", 1, optional=True)
        if b is not None and b.shape[0] != W.shape[0]:
            raise ImportFailure(f"{prefix}.bias does not match {prefix}.weight")
        return W, b


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _affine(eng, t: Lin, W, b):
    """t @ W^T + b (an nn.Linear on the last axis)."""
    if t.shape[-1] != W.shape[1]:
        raise ImportFailure(f"an nn.Linear with {W.shape[1]} inputs applied to rows of width {t.shape[-1]}")
    out = eng.matmul(t, W.T)
    return out if b is None else add_const(out, b)


def _attention(eng, st, Z: Lin, spec, li, notes):
    prefix = spec.get("attention")
    if not isinstance(prefix, str):
        raise ImportFailure(f"wiring: layers[{li}] needs \"attention\": the module's state_dict prefix (\"\" for "
                            "the top level)")
    kind = spec.get("type", "mha")
    H = spec.get("heads", 1)
    if type(H) is not int or H < 1:
        raise ImportFailure(f"wiring: layers[{li}].heads must be a positive integer")
    T = Z.shape[0]
    qr, kr = _rows(spec.get("query_rows"), T, "query_rows"), _rows(spec.get("key_rows"), T, "key_rows")
    Zq = Z.restructure(lambda a: np.take(a, qr, axis=0))
    Zk = Z.restructure(lambda a: np.take(a, kr, axis=0))
    if kind == "mha":
        W = st.get(_join(prefix, "in_proj_weight"), 2, optional=True)
        if W is not None:
            D = W.shape[1]
            if W.shape[0] != 3 * D:
                raise ImportFailure(f"{prefix}.in_proj_weight is not (3 embed_dim, embed_dim)")
            Wq, Wk, Wv = W[:D], W[D:2 * D], W[2 * D:]
        else:
            Wq, Wk, Wv = (st.get(_join(prefix, f"{n}_proj_weight"), 2) for n in "qkv")
        bias = st.get(_join(prefix, "in_proj_bias"), 1, optional=True)
        Dq = Wq.shape[0]
        bq, bk, bv = (None, None, None) if bias is None else (bias[:Dq], bias[Dq:2 * Dq], bias[2 * Dq:])
        Wo, bo = st.linear(_join(prefix, "out_proj"))
        bk_ = st.get(_join(prefix, "bias_k"), optional=True)
        if bk_ is not None:
            raise ImportFailure(f"{prefix}: add_bias_kv (learned extra key/value rows) is not read")
    elif kind == "linears":
        names = {r: spec.get(r, d) for r, d in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj"))}
        (Wq, bq), (Wk, bk), (Wv, bv) = (st.linear(_join(prefix, names[r])) for r in "qkv")
        Wo, bo = st.linear(_join(prefix, names["o"]))
    else:
        raise ImportFailure(f"wiring: layers[{li}].type must be 'mha' or 'linears', not {kind!r}")
    Dq, Dv = Wq.shape[0], Wv.shape[0]
    if Wk.shape[0] != Dq or Dq % H or Dv % H:
        raise ImportFailure(f"{prefix}: query/key widths {Dq}, {Wk.shape[0]} and value width {Dv} do not split into "
                            f"{H} heads")
    dh, dv = Dq // H, Dv // H
    Q = _affine(eng, Zq, Wq, bq).restructure(lambda a: a.reshape(len(qr), H, dh).transpose(1, 0, 2))
    K = _affine(eng, Zk, Wk, bk).restructure(lambda a: a.reshape(len(kr), H, dh).transpose(1, 2, 0))
    V = _affine(eng, Zk, Wv, bv).restructure(lambda a: a.reshape(len(kr), H, dv).transpose(1, 0, 2))
    logits = eng.logits(Q, K)
    if spec.get("scale") is not None:
        from constructions.exact import ParameterError, parse_rational
        try:
            beta = parse_rational(str(spec["scale"]))
        except ParameterError as e:
            raise ImportFailure(f"wiring: layers[{li}].scale: {e}") from None
    else:
        beta = Fraction(1.0 / math.sqrt(dh))
        if beta * beta * dh != 1:
            notes.append(f"layer {li}: logit scale 1/sqrt({dh}) taken as its float64 value {float(beta)!r}")
    logits = eng.logit_scale(logits, np.array(beta, dtype=object))
    att = eng.attend(eng.softmax(logits, -1), V)                      # (H, L, dv)
    Y = att.restructure(lambda a: a.transpose(1, 0, 2).reshape(len(qr), H * dv))
    Y = _affine(eng, Y, Wo, bo)
    if spec.get("post") is not None:
        W, b = st.linear(spec["post"])
        Y = _affine(eng, Y, W, b)
    return Y


def build_from_wiring(state: dict, wiring: dict):
    """(Network, notes) of a state_dict (name -> NumPy array) wired as ``wiring`` says."""
    from .assemble import assemble
    extra = sorted(set(wiring) - _TOP)
    if extra:
        raise ImportFailure(f"wiring: unknown key {extra[0]!r} (known: {', '.join(sorted(_TOP))})")
    st = _State(state)
    toks = wiring.get("tokens")
    if not isinstance(toks, list) or not toks:
        raise ImportFailure("wiring: \"tokens\" must list the token rows")
    n = wiring.get("inputs")
    if n is None:
        first = next((t for t in toks if isinstance(t, dict) and "linear" in t), None)
        if first is None:
            raise ImportFailure("wiring: give \"inputs\" (the number of real inputs)")
        n = st.get(first["linear"] + ".weight", 2).shape[1]
    if type(n) is not int or n < 1:
        raise ImportFailure("wiring: \"inputs\" must be a positive integer")
    eng = Engine(n)
    x = input_tensor(eng.inp, (n,), 0)
    rows = []
    for i, t in enumerate(toks):
        if not isinstance(t, dict) or len({"linear", "param", "input"} & set(t)) != 1:
            raise ImportFailure(f"wiring: tokens[{i}] must be one of {{\"linear\": M}}, {{\"param\": P}}, "
                                "{\"input\": true}")
        if "linear" in t:
            W, b = st.linear(t["linear"])
            r = _affine(eng, x, W, b)
            if t.get("scale") is not None:
                r = scale(eng.canon(r), st.get(t["scale"]).reshape(-1))
            rows.append(r.restructure(lambda a: a.reshape(1, -1)))
        elif "param" in t:
            P = st.get(t["param"])
            if P.ndim == 1:
                P = P.reshape(1, -1)
            if P.ndim != 2:
                raise ImportFailure(f"wiring: tokens[{i}]: parameter {t['param']} is not (rows, width)")
            rows.append(lift_const(P, eng.inp))
        else:
            rows.append(x.restructure(lambda a: a.reshape(1, -1)))
    widths = {r.shape[-1] for r in rows}
    if len(widths) != 1:
        raise ImportFailure(f"wiring: token rows have different widths {sorted(widths)}")
    Z = eng.concat(rows, 0)
    notes = []
    layers = wiring.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ImportFailure("wiring: \"layers\" must list at least one attention layer")
    for li, spec in enumerate(layers):
        if not isinstance(spec, dict) or set(spec) - _LAYER:
            raise ImportFailure(f"wiring: layers[{li}] has an unknown key "
                                f"{sorted(set(spec) - _LAYER)[0] if isinstance(spec, dict) else ''!r}")
        Z = _attention(eng, st, Z, spec, li, notes)
    out = wiring.get("output") or {}
    if not isinstance(out, dict):
        raise ImportFailure("wiring: \"output\" must be a mapping")
    R, C = Z.shape
    rr, cc = _rows(out.get("rows"), R, "output.rows"), _rows(out.get("columns"), C, "output.columns")
    Y = Z.restructure(lambda a: a[np.ix_(rr, cc)].reshape(-1))
    if out.get("linear") is not None:
        W, b = st.linear(out["linear"])
        if W.shape[1] != Y.shape[0]:
            raise ImportFailure(f"output.linear {out['linear']} takes {W.shape[1]} entries, the output has {Y.shape[0]}")
        Y = eng.matmul(Y, W.T)
        if b is not None:
            Y = add_const(Y, b)
    net = assemble(eng, [Y], notes)
    unused = sorted(set(state) - st.used)
    if unused:
        notes.append(f"state_dict entries the wiring does not use: {', '.join(unused[:5])}"
                     + (" ..." if len(unused) > 5 else ""))
    return net, notes
