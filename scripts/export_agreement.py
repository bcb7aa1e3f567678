"""Figures for the exporters: every export run in its framework vs the float64 reference.

For each certificate (default: every certificate in certificates/library/, which must be
float64), exports every format, runs each in its framework (NumPy for safetensors and npz;
torch MHA with need_weights off and on, torch SDPA; onnxruntime at ORT_DISABLE_ALL and
default, and the opset-23 Attention graph; Flax with flax's attention and our float64
softmax) at the witness, every domain corner and N random points, and prints max |framework
- reference| per framework, max |framework - target| over all of them, and eps.  Then the
negative controls on ramp-multihead / relu-net v2 / ramp (bias dropped, two heads swapped,
sqrt(head_dim) compensation dropped).

    python scripts/export_agreement.py [--points N] [CERT.json ...]
"""
from __future__ import annotations

import argparse
import io
import itertools
import os
import sys
import time
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from certificates.export import flax_export, npz_export, onnx_export, safetensors_export, torch_export  # noqa: E402
from certificates.model import load  # noqa: E402
from constructions.expr import from_json  # noqa: E402
from constructions.network import Embedding, Head, Layer, Network  # noqa: E402
from verify.enclose.target import float_eval  # noqa: E402
from verify.forward import forward_float  # noqa: E402


def _m(rows):
    return tuple(tuple(Fraction(v) for v in r) for r in rows)


def network(n) -> Network:
    """The certificate's network as exact data (parsed here, independently of the exporters)."""
    layers = tuple(Layer(heads=tuple(Head(wq=_m(h["wq"]), wk=_m(h["wk"]), wv=_m(h["wv"]), wo=_m(h["wo"]),
                                          beta=Fraction(h["beta"]), bias=None if h.get("bias") is None else _m(h["bias"]))
                                     for h in layer["heads"]),
                         query_rows=tuple(layer["query_rows"]), key_rows=tuple(layer["key_rows"]),
                         post=None if "post" not in layer else (_m(layer["post"]["W"]), _m(layer["post"]["B"])))
                   for layer in n["layers"])
    rl = None if "readout_linear" not in n else tuple(
        (Fraction(o["bias"]), tuple(Fraction(v) for v in o["weights"])) for o in n["readout_linear"])
    return Network(embedding=Embedding(const=_m(n["embedding"]["const"]),
                                       linear=tuple(_m(e) for e in n["embedding"]["linear"])),
                   layers=layers, readout=tuple(tuple(rc) for rc in n["readout"]),
                   final_softmax=bool(n.get("final_softmax", False)), readout_linear=rl)


def points(doc, n: int) -> np.ndarray:
    dom = [(float(Fraction(a)), float(Fraction(b))) for a, b in doc["domain"]]
    witness = [float(Fraction(v)) for v in doc["result"]["witness"]]
    corners = [list(c) for c in itertools.product(*dom)]
    rand = np.random.default_rng(14).uniform([a for a, _ in dom], [b for _, b in dom], size=(n, len(dom)))
    return np.concatenate([np.array([witness] + corners, dtype=np.float64), rand])


def runs(doc, X, controls: bool = False) -> dict:
    """Outputs of every framework path (or of the negative controls) at X."""
    import jax
    import onnxruntime as ort
    import torch
    from certificates.export import flax_model, numpy_model, torch_model
    out, tmp = {}, {}
    for mod, suffix in ((safetensors_export, "safetensors"), (npz_export, "npz")):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"attncert-agreement-{os.getpid()}.{suffix}")
        with open(path, "wb") as fh:
            fh.write(mod.to_bytes(doc))
        tmp[suffix] = numpy_model.load(path)
        os.unlink(path)
    ck = torch.load(io.BytesIO(torch_export.to_bytes(doc)), weights_only=True)
    x = torch.from_numpy(X)
    onnx_bytes = onnx_export.to_bytes(doc)
    tree = flax_export.tree(doc)
    if not controls:
        for name, (w, meta) in tmp.items():
            out[f"numpy ({name})"] = numpy_model.forward(w, meta, X)
        with torch.no_grad():
            out["torch MHA"] = torch_model.AttncertMHA(ck)(x).numpy()
            out["torch MHA need_weights"] = torch_model.AttncertMHA(ck, need_weights=True)(x).numpy()
            out["torch SDPA scale=1"] = torch_model.AttncertSDPA(ck)(x).numpy()
        for name, level in (("ORT_DISABLE_ALL", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                            ("ORT default", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
            so = ort.SessionOptions()
            so.graph_optimization_level = level
            out["onnxruntime " + name] = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"]).run(
                None, {"x": X})[0]
        out["onnxruntime Attention op"] = ort.InferenceSession(
            onnx_export.to_bytes(doc, attention_op=True), providers=["CPUExecutionProvider"]).run(None, {"x": X})[0]
        for name, fn in (("flax MHDPA", None), ("flax MHDPA own softmax", flax_model.float64_attention)):
            m = flax_model.AttncertFlax(config=tree["config"], **({"attention_fn": fn} if fn else {}))
            out[name] = np.asarray(jax.jit(m.apply)({"params": tree["params"]}, X))
        return out
    # negative controls: what a wrong loader computes
    w, meta = tmp["safetensors"]
    p = tree["params"]
    if any(k.endswith(".bias") for k in w):
        out["numpy, bias dropped"] = numpy_model.forward({k: v for k, v in w.items() if not k.endswith(".bias")},
                                                         meta, X)
        with torch.no_grad():
            for layer in ck["layers"]:
                layer["attn_mask"] = None
            out["torch MHA, attn_mask dropped"] = torch_model.AttncertMHA(ck)(x).numpy()
        z = {k: (0 * v if k.endswith("_bias") else v) for k, v in p.items()}
        out["flax, bias dropped"] = np.asarray(jax.jit(flax_model.AttncertFlax(config=tree["config"]).apply)(
            {"params": z}, X))
    last = len(meta["layers"]) - 1
    if meta["layers"][last]["heads"] > 1:
        h0, h1 = f"layer{last}.head0.wq", f"layer{last}.head1.wq"
        out["numpy, two heads' W_Q swapped"] = numpy_model.forward(dict(w, **{h0: w[h1], h1: w[h0]}), meta, X)
    ck = torch.load(io.BytesIO(torch_export.to_bytes(doc, compensate=False)), weights_only=True)
    if any(layer["head_dim"] > 1 for layer in ck["layers"]):
        with torch.no_grad():
            out["torch MHA, no sqrt(head_dim)"] = torch_model.AttncertMHA(ck)(x).numpy()
        bad = flax_export.tree(doc, compensate=False)
        out["flax, no sqrt(head_dim)"] = np.asarray(jax.jit(flax_model.AttncertFlax(config=bad["config"]).apply)(
            {"params": bad["params"]}, X))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("certs", nargs="*")
    ap.add_argument("--points", type=int, default=10_000, help="random points per certificate (default 10000)")
    args = ap.parse_args(argv)
    import jax
    jax.config.update("jax_enable_x64", True)
    lib = os.path.join(ROOT, "certificates", "library")
    certs = args.certs or sorted(os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".json"))
    table = []
    for path in certs:
        doc = load(path)
        t0 = time.perf_counter()
        X = points(doc, args.points)
        ref = forward_float(network(doc["construction"]["network"]), X)
        tgt = np.stack([float_eval(from_json(t), {v: X[:, i] for i, v in enumerate(doc["inputs"])}, np)
                        * np.ones(len(X)) for t in doc["target"]], axis=1)
        out = runs(doc, X)
        gaps = {k: float(np.abs(y - ref).max()) for k, y in out.items()}
        err = max(float(np.abs(y - tgt).max()) for y in out.values())
        table.append((os.path.basename(path).removesuffix(".json"), len(X), gaps, err, doc["eps"],
                      time.perf_counter() - t0))
        controls = runs(doc, X, controls=True) if os.path.basename(path) in (
            "ramp-multihead-H4-n9.json", "relu-net-sin3x-v2.json", "ramp-p41-kappa8.json") else {}
        for k, y in controls.items():
            gap = np.abs(y - ref).max()
            print(f"  control {os.path.basename(path)}: {k:34} max |fw - ref| {gap:9.3g}   "
                  f"max |fw - target| {np.abs(y - tgt).max():.4g}"
                  + ("   (no effect on this network)" if gap <= 1e-9 else ""), flush=True)
    names = list(table[0][2])
    print(f"\n{'certificate':28} {'points':>6} " + " ".join(f"{n[:14]:>14}" for n in names)
          + f" {'max |fw-target|':>15} {'eps':>8}")
    for name, n, gaps, err, eps, _ in table:
        print(f"{name:28} {n:6d} " + " ".join(f"{gaps[k]:14.2g}" for k in names) + f" {err:15.6g} {eps:>8}")
    worst = max(max(g.values()) for _, _, g, _, _, _ in table)
    print(f"\nworst max |framework - reference| over all: {worst:.3g} (tolerance 1e-9); "
          f"every max |framework - target| <= eps: {all(e <= float(Fraction(eps)) for *_, e, eps, _ in table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
