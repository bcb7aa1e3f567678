"""Figures for the exporters: each export run in its framework vs the float64 reference.

Certifies ramp (p=41, kappa=8, float64 weights) at eps = 0.02, exports every format, runs
each in its framework at the witness and 20 001 grid points, and prints max |framework -
reference| and max |framework - target|; the uncompensated torch/flax exports are the
negative controls.  Usage: python scripts/export_agreement.py
"""
from __future__ import annotations

import io
import json
from fractions import Fraction

import numpy as np

import constructions
from certificates.export import flax_export, npz_export, onnx_export, safetensors_export, torch_export
from certificates.model import certificate_doc, load
from constructions.float64 import to_float64
from verify.search.certify import certify
from verify.forward import forward_float
from verify.enclose.target import float_eval


def main() -> None:
    import jax
    jax.config.update("jax_enable_x64", True)
    import onnxruntime as ort
    import torch
    from certificates.export import flax_model, torch_model
    c = to_float64(constructions.build("ramp", a="-1", b="1", p=41, kappa=8, lo=-2, hi=2))
    res = certify(c, "1/50", progress=False)
    doc = load(json.dumps(certificate_doc(c, res)).encode())
    xs = np.concatenate([[float(Fraction(doc["result"]["witness"][0]))], np.linspace(-2, 2, 20001)])
    X = xs[:, None]
    ref = forward_float(c.network, X)
    tgt = float_eval(c.target[0], {"x0": xs}, np)[:, None]
    runs = {}
    ck = torch.load(io.BytesIO(torch_export.to_bytes(doc)), weights_only=True)
    with torch.no_grad():
        runs["torch MHA"] = torch_model.AttncertMHA(ck)(torch.from_numpy(X)).numpy()
        runs["torch MHA need_weights"] = torch_model.AttncertMHA(ck, need_weights=True)(torch.from_numpy(X)).numpy()
        runs["torch SDPA scale=1"] = torch_model.AttncertSDPA(ck)(torch.from_numpy(X)).numpy()
        bad = torch.load(io.BytesIO(torch_export.to_bytes(doc, compensate=False)), weights_only=True)
        runs["torch MHA, no sqrt(E) (control)"] = torch_model.AttncertMHA(bad)(torch.from_numpy(X)).numpy()
    onnx_bytes = onnx_export.to_bytes(doc)
    for name, level in (("onnxruntime ORT_DISABLE_ALL", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                        ("onnxruntime default", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        runs[name] = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"]).run(None, {"x": X})[0]
    so = ort.SessionOptions()
    runs["onnxruntime opset-23 Attention"] = ort.InferenceSession(
        onnx_export.to_bytes(doc, attention_op=True), so, providers=["CPUExecutionProvider"]).run(None, {"x": X})[0]
    tree = flax_export.tree(doc)
    runs["flax MHDPA (flax attention)"] = np.asarray(flax_model.AttncertFlax(tree)(X))
    runs["flax MHDPA (own float64 softmax)"] = np.asarray(flax_model.AttncertFlax(tree, flax_model.float64_attention)(X))
    runs["flax, no sqrt(head_dim) (control)"] = np.asarray(
        flax_model.AttncertFlax(flax_export.tree(doc, compensate=False), flax_model.float64_attention)(X))
    print(f"ramp p=41 kappa=8 float64, eps = 0.02, certified bound {float(res.max_bound):.6g}; "
          f"{len(xs)} points incl. witness")
    print(f"{'export':36} {'max |fw - ref|':>15} {'max |fw - target|':>18}")
    for name, y in runs.items():
        print(f"{name:36} {np.abs(y - ref).max():15.3g} {np.abs(y - tgt).max():18.6g}")
    for mod in (safetensors_export, npz_export, torch_export, onnx_export, flax_export):
        print(f"{mod.__name__.split('.')[-1]:20} {len(mod.to_bytes(doc)):7d} bytes, "
              f"deterministic: {mod.to_bytes(doc) == mod.to_bytes(doc)}")


if __name__ == "__main__":
    main()
