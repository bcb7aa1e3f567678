"""Shared by the export tests: the library certificates as test cases, points, references, snippets.

A ``Case`` is one float64 certificate with its evaluation points (the witness, every domain
corner and ``n`` seeded uniform points), the float64 reference forward pass of its network
(``verify.forward.forward_float`` over a Network parsed here from the JSON, independently
of the exporters) and the target's values.  ``check_outputs`` is the comparison every export
must pass.  ``two_layer`` is a hand-made network (several layers, biases, several query
rows, d_k != d_v) for structure tests.
"""
from __future__ import annotations

import itertools
import pathlib
import re
from fractions import Fraction

import numpy as np

from constructions.base import Construction
from constructions.network import Embedding, Head, Layer, Network, mat

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = sorted((ROOT / "certificates" / "library").glob("*.json"))
TOL = 1e-9
N_POINTS = 10_000       # random points per certificate (plus the witness and every corner)
N_POINTS_HEAVY = 1_000  # default-suite points for certificates with more than HEAVY_TOKENS tokens
HEAVY_TOKENS = 100
SUFFIX = {"safetensors": ".safetensors", "npz": ".npz", "torch": ".pt", "onnx": ".onnx", "flax": ".msgpack"}


def _m(rows):
    return mat([[Fraction(v) for v in r] for r in rows])


def network_from_json(n) -> Network:
    """The certificate's network as exact data (the tests' own parser, not the exporters')."""
    layers = []
    for layer in n["layers"]:
        heads = tuple(Head(wq=_m(h["wq"]), wk=_m(h["wk"]), wv=_m(h["wv"]), wo=_m(h["wo"]), beta=Fraction(h["beta"]),
                           bias=None if h.get("bias") is None else _m(h["bias"])) for h in layer["heads"])
        post = None if "post" not in layer else (_m(layer["post"]["W"]), _m(layer["post"]["B"]))
        layers.append(Layer(heads=heads, query_rows=tuple(layer["query_rows"]), key_rows=tuple(layer["key_rows"]),
                            post=post))
    rl = None if "readout_linear" not in n else tuple(
        (Fraction(o["bias"]), tuple(Fraction(v) for v in o["weights"])) for o in n["readout_linear"])
    return Network(embedding=Embedding(const=_m(n["embedding"]["const"]),
                                       linear=tuple(_m(e) for e in n["embedding"]["linear"])),
                   layers=tuple(layers), readout=tuple(tuple(rc) for rc in n["readout"]),
                   final_softmax=bool(n.get("final_softmax", False)), readout_linear=rl)


def n_tokens(path) -> int:
    import json
    return len(json.loads(pathlib.Path(path).read_text())["construction"]["network"]["embedding"]["const"])


class Case:
    """A float64 certificate, its points, its float64 reference outputs and its target values."""

    def __init__(self, path, n: int = N_POINTS, doc=None):
        from certificates.model import load
        from constructions.expr import from_json
        from verify.enclose.target import float_eval
        from verify.forward import forward_float
        self.path = pathlib.Path(path)
        self.name = self.path.name.removesuffix(".json")
        self.doc = doc if doc is not None else load(self.path)
        self.net = network_from_json(self.doc["construction"]["network"])
        self.eps = float(Fraction(self.doc["eps"]))
        self.linf = self.doc["norm"]["kind"] == "Linf"
        dom = [(float(Fraction(a)), float(Fraction(b))) for a, b in self.doc["domain"]]
        witness = [float(Fraction(v)) for v in self.doc["result"]["witness"]]
        corners = [list(c) for c in itertools.product(*dom)]
        rng = np.random.default_rng(14)
        rand = rng.uniform([a for a, _ in dom], [b for _, b in dom], size=(n, len(dom)))
        self.X = np.concatenate([np.array([witness] + corners, dtype=np.float64), rand])
        self.n_special = 1 + len(corners)
        self.ref = forward_float(self.net, self.X)
        names = self.doc["inputs"]
        targets = [from_json(t) for t in self.doc["target"]]
        self.target = np.stack([float_eval(t, {v: self.X[:, i] for i, v in enumerate(names)}, np)
                                * np.ones(len(self.X)) for t in targets], axis=1)
        self.exports: dict = {}

    def export(self, fmt: str, folder, **options) -> pathlib.Path:
        """The export's file (made once per case, format and options)."""
        key = (fmt, tuple(sorted(options.items())))
        if key not in self.exports:
            import importlib
            mod = importlib.import_module(f"certificates.export.{fmt}_export")
            p = pathlib.Path(folder) / (self.name + ("-" + "-".join(options) if options else "") + SUFFIX[fmt])
            p.write_bytes(mod.to_bytes(self.doc, **options))
            self.exports[key] = p
        return self.exports[key]


def check_outputs(y, case: Case, what: str = "export") -> float:
    """|framework - float64 reference| <= TOL everywhere (witness and corners included) and,
    for a sup-norm certificate, |framework - target| <= eps + TOL.  Returns the first gap."""
    if hasattr(y, "detach"):
        y = y.detach().numpy()
    y = np.asarray(y, dtype=np.float64)
    assert y.shape == case.ref.shape, f"{what}: output shape {y.shape}, reference {case.ref.shape}"
    assert np.all(np.isfinite(y)), f"{what}: output is not finite"
    gap = np.abs(y - case.ref)
    assert gap.max() <= TOL, (f"{what}: differs from the float64 reference by {gap.max():.3g} > {TOL} "
                              f"(at x = {case.X[int(np.argmax(gap.max(axis=1)))].tolist()})")
    assert gap[:case.n_special].max() <= TOL  # the witness and every corner
    if case.linf:
        err = np.abs(y - case.target).max()
        assert err <= case.eps + TOL, f"{what}: error {err:.6g} > eps {case.eps} + {TOL}"
    return float(gap.max())


# ---------------------------------------------------------------- documented snippets

_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
_LABEL = re.compile(r"# (numpy|safetensors|npz|torch|onnx|flax)\b[^\n]*")


def snippets(path) -> list:
    """``(label, format, code)`` of every python block whose first line is ``# FORMAT ...``."""
    out = []
    for code in _BLOCK.findall(pathlib.Path(path).read_text()):
        first = code.splitlines()[0] if code.strip() else ""
        m = _LABEL.fullmatch(first.strip())
        if m:
            out.append((first.strip()[2:], m.group(1), code))
    return out


def run_snippet(code: str, files: dict, X, namespace: dict | None = None):
    """Execute a documented snippet with its file names replaced; returns its ``y``."""
    for name, real in files.items():
        code = code.replace(f'"{name}"', repr(str(real)))
    ns = dict(namespace or {})
    ns["X"] = X
    exec(compile(code, "<snippet>", "exec"), ns)  # noqa: S102 (our own documentation, under test)
    return ns["y"], ns


# ---------------------------------------------------------------- a hand-made network

def two_layer() -> Construction:
    """A small two-layer network (d_k != d_v, a bias, several query rows) with dyadic weights.

    Not certified (eps is 100): used to test that the exporters follow any Network structure,
    with a post map in layer 0, a final softmax and a linear readout too; its "certificate"
    is made by hand in the test.
    """
    F = lambda rows: mat([[Fraction(v).limit_denominator(64) for v in r] for r in rows])
    const = F([[0, 1, 0.5], [1, 0, -0.25], [0.5, 0.5, 1], [-1, 0.75, 0]])
    lin = F([[1, 0, 0], [0, 0.5, 0], [0, 0, -1], [0.25, 0, 0]])
    h0 = Head(wq=F([[1, 0], [0, 2], [0.5, 0]]), wk=F([[0, 1], [1, 0], [0, 0.5]]),
              wv=F([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), wo=F([[1, 0], [0, 1], [0.5, 0.5]]), beta=Fraction(3),
              bias=F([[0, -1, 0.5], [0, 0, 0], [1, 0, -2]]))
    h1 = Head(wq=F([[0.5, 0], [0, 1], [1, 1]]), wk=F([[1, 0], [0, -1], [0.25, 0]]),
              wv=F([[0, 1, 0], [1, 0, 0], [0, 0, 2]]), wo=F([[1, 0], [0, -1], [0, 0.5]]), beta=Fraction(1, 2))
    post = (F([[1, 0.5, 0], [0, 1, -1]]), F([[0, 0.25, 0], [0.5, 0, 0], [0, 0, 1]]))
    h2 = Head(wq=F([[2], [1], [0]]), wk=F([[1], [0.5], [1]]), wv=F([[1, 0], [0, 1], [1, 1]]), wo=F([[1, 0], [1, -1]]),
              beta=Fraction(4), bias=F([[0, 0.5, -1], [1, 0, 0]]))
    net = Network(embedding=Embedding(const=const, linear=(lin,)),
                  layers=(Layer(heads=(h0, h1), query_rows=(0, 1, 2), key_rows=(1, 2, 3), post=post),
                          Layer(heads=(h2,), query_rows=(0, 2), key_rows=(0, 1, 2))),
                  readout=((0, 0), (1, 0), (1, 1)), final_softmax=True,
                  readout_linear=((Fraction(1, 2), (Fraction(1), Fraction(-1), Fraction(2))),
                                  (Fraction(0), (Fraction(1, 4), Fraction(0), Fraction(1)))))
    return Construction(name="two-layer-test", paper="(test network)", theorem="(structure only)",
                        params=(), network=net, target=(("var", "x0"), ("var", "x0")),
                        domain=((Fraction(-1), Fraction(1)),), apriori_bound=1)


# ---------------------------------------------------------------- cases, shared by the test modules

_CASES: dict = {}


def library_case(path, n: int = N_POINTS) -> Case:
    """The Case of a library certificate with ``n`` random points (built once per session)."""
    key = (str(path), n)
    if key not in _CASES:
        _CASES[key] = Case(path, n)
    return _CASES[key]


def library_params(heavy_slow: bool = True) -> list:
    """pytest params over certificates/library/*.json: (path, n points).  A certificate with more
    than HEAVY_TOKENS tokens runs N_POINTS_HEAVY points by default and N_POINTS marked slow."""
    import pytest
    out = []
    for p in LIBRARY:
        name = p.name.removesuffix(".json")
        if n_tokens(p) > HEAVY_TOKENS:
            out.append(pytest.param((p, N_POINTS_HEAVY), id=name))
            if heavy_slow:
                out.append(pytest.param((p, N_POINTS), id=name + "-10k", marks=pytest.mark.slow))
        else:
            out.append(pytest.param((p, N_POINTS), id=name))
    return out
