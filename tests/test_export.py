"""Exports: every certificate in every format, run in its real framework, its claim, the weights check.

The framework runs of docs/formats.md's loaders on every library certificate are in
test_formats_doc.py; this module adds the framework paths that the documented loaders do not
take (MHA with need_weights, the opset-23 Attention node, Flax with our own float64
softmax), a hand-made two-layer network with every optional part, negative controls per
format, ``check --weights`` in every format (one ulp in any tensor), ``attncert info``,
refusals (exit 2, one line, in under a second) and determinism.  No mocks: every framework
is the real one, on CPU.
"""
from __future__ import annotations

import io
import json
import re
import shlex
import time
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

import constructions
from certificates.export import FORMATS, certdata
from certificates.model import certificate_doc, load, save
from constructions.float64 import is_float64, to_float64

from export_nets import (LIBRARY, ROOT, SUFFIX, TOL, Case, check_outputs, library_case, library_params, two_layer)

LIB = ROOT / "certificates" / "library"
MULTIHEAD = LIB / "ramp-multihead-H4-n9.json"   # four heads, each with a logit bias
RAMP = LIB / "ramp-p41-kappa8.json"             # head dim 16 in torch, 4 in Flax: the sqrt(head_dim) control
N_EXTRA = 2_000                                  # points for the secondary framework paths


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module", params=library_params(heavy_slow=False))
def case(request):
    return library_case(request.param[0], N_EXTRA)


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    """two_layer(): post map, final softmax, linear readout, biases, two layers (not certified)."""
    c = to_float64(two_layer())
    res = SimpleNamespace(status="CERTIFIED", eps=Fraction(100), max_bound=Fraction(0), observed=Fraction(0),
                          witness=[Fraction(1, 3)], leaves=[], tree="L", boxes_evaluated=0, seconds=0.0)
    path = tmp_path_factory.mktemp("hand") / "two-layer.json"
    save(certificate_doc(c, res), path)
    return Case(path, 2_000)


def _cli(argv, capsys):
    from certificates.cli.main import main
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------- the exact transform

def test_to_float64_is_exact_rounding_of_beta_folded_weights():
    c = constructions.build("ramp", p=41, kappa=8)
    f = to_float64(c)
    assert not is_float64(c.network) and is_float64(f.network) and to_float64(f).network == f.network
    assert dict(f.params)["float64"] == 1 and f.name == c.name and f.domain == c.domain
    for (name, m), (_, m64) in zip(c.network.tensors().items(), f.network.tensors().items()):
        beta = c.network.layers[0].heads[0].beta if name.endswith(".wq") else 1
        for row, row64 in zip(m, m64):
            for v, v64 in zip(row, row64):
                if name.endswith(".beta"):
                    assert v64 == 1
                    continue
                exact = v * beta
                assert Fraction(float(exact)) == v64  # nearest float64, kept exactly
                assert abs(v64 - exact) <= abs(exact) * Fraction(1, 2 ** 53)


# ---------------------------------------------------------------- every library certificate, every format

@pytest.mark.parametrize("path", LIBRARY, ids=[p.name.removesuffix(".json") for p in LIBRARY])
def test_every_library_certificate_exports_to_every_format_with_its_claim(path):
    """All five formats (and the Attention-node ONNX), each carrying the claim in its own metadata."""
    pytest.importorskip("torch"), pytest.importorskip("onnx"), pytest.importorskip("flax")
    from certificates.export import files
    doc = load(path)
    want = certdata.claim(doc)
    for key in ("certificate_sha256", "weights_sha256", "eps", "norm", "domain", "target", "status",
                "schema_version"):
        assert want[key] not in (None, [], ""), key
    import importlib
    for fmt, opts in [(f, {}) for f in FORMATS] + [("onnx", {"attention_op": True})]:
        data = importlib.import_module(f"certificates.export.{fmt}_export").to_bytes(doc, **opts)
        assert files.sniff(data) == fmt
        claim = json.loads(files.contents(data, fmt).claim_text)
        assert {k: claim[k] for k in want} == want and claim["export"] == fmt
        assert claim["status"] == "CERTIFIED" and claim["format"] == "attncert-export/2"


def test_claim_in_each_format_own_metadata(folder):
    pytest.importorskip("torch"), pytest.importorskip("onnx"), pytest.importorskip("flax")
    case = library_case(MULTIHEAD, N_EXTRA)
    sha = case.doc["sha256"]
    from safetensors import safe_open
    with safe_open(str(case.export("safetensors", folder)), "np") as f:
        assert list(f.metadata()) == ["attncert"] and sha in f.metadata()["attncert"]
    import onnx
    m = onnx.load(str(case.export("onnx", folder)))
    assert json.loads({p.key: p.value for p in m.metadata_props}["attncert"])["certificate_sha256"] == sha
    import torch
    assert json.loads(torch.load(case.export("torch", folder), weights_only=True)["attncert"])["eps"] == "1/50"
    from flax.serialization import msgpack_restore
    tree = msgpack_restore(case.export("flax", folder).read_bytes())
    assert json.loads(tree["attncert"])["target"] == ["range(-1, 1, x0)"]
    z = np.load(case.export("npz", folder), allow_pickle=False)
    assert json.loads(str(z["attncert"]))["domain"] == [["-2", "2"]]


# ---------------------------------------------------------------- framework paths beyond the documented loaders

def test_torch_mha_with_weights_and_a_strict_bare_state_dict(case, folder):
    torch = pytest.importorskip("torch")
    from certificates.export import torch_model
    ckpt = torch_model.load_checkpoint(case.export("torch", folder))
    for layer in ckpt["layers"]:
        assert layer["head_dim"] in (1, 16, 256, 4096) and layer["embed_dim"] == layer["num_heads"] * layer["head_dim"]
        mha = torch.nn.MultiheadAttention(layer["embed_dim"], layer["num_heads"], bias=False, batch_first=True,
                                          dtype=torch.float64)
        mha.load_state_dict(layer["mha"])  # a plain MHA state_dict, strict
    with torch.no_grad():
        check_outputs(torch_model.AttncertMHA(ckpt, need_weights=True)(torch.from_numpy(case.X)), case,
                      "torch MHA need_weights=True")


def test_onnx_graph_full_check_and_attention_node(case, folder):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    for attention_op in (False, True):
        path = case.export("onnx", folder, **({"attention_op": True} if attention_op else {}))
        m = onnx.load(str(path))
        onnx.checker.check_model(m, full_check=True)
        assert len(m.graph.input) == 1 and len(m.graph.output) == 1  # one graph, x -> y
        assert m.opset_import[0].version == (23 if attention_op else 17)
        assert all(i.data_type in (onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64) for i in m.graph.initializer)
        float_attrs = [(n.op_type, a.name, a.f) for n in m.graph.node for a in n.attribute
                       if a.type in (onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS, onnx.AttributeProto.TENSOR)]
        n_heads = sum(len(layer["heads"]) for layer in case.doc["construction"]["network"]["layers"])
        assert float_attrs == ([("Attention", "scale", 1.0)] * n_heads if attention_op else [])
        if attention_op:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            check_outputs(sess.run(None, {"x": case.X})[0], case, "onnxruntime opset-23 Attention")


def test_flax_with_our_float64_attention(case, folder):
    jax = pytest.importorskip("jax")
    pytest.importorskip("flax")
    jax.config.update("jax_enable_x64", True)
    from certificates.export import flax_model
    module, variables = flax_model.load(case.export("flax", folder), attention_fn=flax_model.float64_attention)
    y = jax.jit(module.apply)(variables, case.X)
    assert y.dtype == np.float64
    check_outputs(np.asarray(y), case, "flax, own float64 attention")


def test_hand_made_two_layer_network_runs_in_every_framework(hand_made, folder):
    """Post map, final softmax, linear readout, two layers, biases, d_k != d_v, three query rows."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from certificates.export import flax_model, numpy_model, torch_model
    c = hand_made
    assert c.ref.shape == (len(c.X), 2) and np.ptp(c.ref) > 0.1
    for fmt in ("safetensors", "npz"):
        w, meta = numpy_model.load(c.export(fmt, folder))
        check_outputs(numpy_model.forward(w, meta, c.X), c, fmt)
    ckpt = torch_model.load_checkpoint(c.export("torch", folder))
    with torch.no_grad():
        for model in (torch_model.AttncertMHA(ckpt), torch_model.AttncertMHA(ckpt, True), torch_model.AttncertSDPA(ckpt)):
            check_outputs(model(torch.from_numpy(c.X)), c, type(model).__name__)
    for opts in ({}, {"attention_op": True}):
        for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
            so = ort.SessionOptions()
            so.graph_optimization_level = level
            sess = ort.InferenceSession(str(c.export("onnx", folder, **opts)), so, providers=["CPUExecutionProvider"])
            check_outputs(sess.run(None, {"x": c.X})[0], c, f"onnx {opts} {level}")
    for fn in (None, flax_model.float64_attention):
        module, variables = flax_model.load(c.export("flax", folder), attention_fn=fn)
        check_outputs(np.asarray(jax.jit(module.apply)(variables, c.X)), c, f"flax {fn}")


def test_torch_loader_script(folder, capsys):
    pytest.importorskip("torch")
    from certificates.export import torch_model
    case = library_case(LIB / "icl-gd-n2-d1.json", N_EXTRA)
    assert torch_model.main([str(case.export("torch", folder))] + [repr(float(v)) for v in case.X[0]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["certificate_sha256"] == case.doc["sha256"]
    assert abs(out["outputs"][0] - case.ref[0, 0]) <= TOL
    assert torch_model.main([str(folder / "missing.pt"), "0.5"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ---------------------------------------------------------------- negative controls: each format's wrong loader fails

def _fails(y, case, what):
    with pytest.raises(AssertionError, match="differs from the float64 reference"):
        check_outputs(y, case, what)


# The controls: dropping the bias (ramp-multihead: four heads with their own biases), swapping two
# heads' query projections (relu-net v2's second layer: 24 heads that differ in W_Q and W_V; its
# heads share one bias and ramp-multihead's heads share W_Q..W_O, so swapping biases there would
# change nothing), and dropping the sqrt(head_dim) compensation (ramp: head dim 16 in torch, 4 in Flax).
TWO_LAYERS = LIB / "relu-net-sin3x-v2.json"


def test_negative_controls_numpy_formats(folder):
    from certificates.export import numpy_model
    case, rn = library_case(MULTIHEAD, N_EXTRA), library_case(TWO_LAYERS, N_EXTRA)
    for fmt in ("safetensors", "npz"):
        w, meta = numpy_model.load(case.export(fmt, folder))
        check_outputs(numpy_model.forward(w, meta, case.X), case, fmt)
        no_bias = {k: v for k, v in w.items() if not k.endswith(".bias")}
        _fails(numpy_model.forward(no_bias, meta, case.X), case, f"{fmt} without the bias")
        w, meta = numpy_model.load(rn.export(fmt, folder))
        check_outputs(numpy_model.forward(w, meta, rn.X), rn, fmt)
        swapped = dict(w, **{"layer1.head0.wq": w["layer1.head1.wq"], "layer1.head1.wq": w["layer1.head0.wq"]})
        _fails(numpy_model.forward(swapped, meta, rn.X), rn, f"{fmt} with two heads swapped")


def test_negative_controls_torch(folder):
    torch = pytest.importorskip("torch")
    from torch.nn import functional as F
    from certificates.export import torch_export, torch_model
    case = library_case(MULTIHEAD, N_EXTRA)
    X = torch.from_numpy(case.X)
    N = len(X)
    ck = torch_model.load_checkpoint(case.export("torch", folder))
    L = ck["layers"][0]
    mha = torch_model.mha_module(L)

    def run_mha(mask3d):  # the documented bare-MHA pass of this one-layer network, with a given 3-D mask
        with torch.no_grad():
            Z = F.pad(torch_model.embed(ck["embed.const"], ck["embed.linear"], X), (0, L["embed_dim"] - 3))
            q, k = Z[:, L["query_rows"]], Z[:, L["key_rows"]]
            Y = mha(q, k, k, attn_mask=mask3d, need_weights=False)[0][..., :L["d_heads"]]
            return torch_model.readout(ck, torch_model.post(L, Y))

    mask = L["attn_mask"]
    check_outputs(run_mha(mask.repeat(N, 1, 1)), case, "MHA, mask repeated batch-major")
    _fails(run_mha(None), case, "MHA without its attn_mask")
    _fails(run_mha(mask.repeat_interleave(N, 0)), case, "MHA with the mask repeated head-major")
    with torch.no_grad():
        check_outputs(torch_model.AttncertSDPA(ck)(X), case, "SDPA")
        for h in L["heads"]:
            h["bias"] = None
        _fails(torch_model.AttncertSDPA(ck)(X), case, "SDPA without the bias")

    rn = library_case(TWO_LAYERS, N_EXTRA)
    ck = torch_model.load_checkpoint(rn.export("torch", folder))
    L, Xr = ck["layers"][1], torch.from_numpy(rn.X)
    E, w = L["head_dim"], L["mha"]["in_proj_weight"]
    with torch.no_grad():
        check_outputs(torch_model.AttncertMHA(ck)(Xr), rn, "MHA, two layers")
        w[:2 * E] = torch.cat([w[E:2 * E], w[:E]])  # head 1's W_Q rows where head 0's belong, and back
        _fails(torch_model.AttncertMHA(ck)(Xr), rn, "MHA with two heads' W_Q swapped")
        h0, h1 = L["heads"][0], L["heads"][1]
        h0["wq"], h1["wq"] = h1["wq"], h0["wq"]
        _fails(torch_model.AttncertSDPA(ck)(Xr), rn, "SDPA with two heads' W_Q swapped")

    ramp = library_case(RAMP, N_EXTRA)
    bad = torch.load(io.BytesIO(torch_export.to_bytes(ramp.doc, compensate=False)), weights_only=True)
    assert bad["layers"][0]["head_dim"] == 16
    with torch.no_grad():
        _fails(torch_model.AttncertMHA(bad)(torch.from_numpy(ramp.X)), ramp, "MHA without sqrt(head_dim)")


def test_negative_controls_onnx(folder):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import numpy_helper
    case = library_case(MULTIHEAD, N_EXTRA)

    def run(m, c=case):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": c.X})[0]

    m = onnx.load(str(case.export("onnx", folder)))
    check_outputs(run(m), case, "onnx")
    for n in m.graph.node:  # the bias Add reads S and the bias: drop the bias
        if n.op_type == "Add" and n.input[1].endswith(".bias"):
            n.op_type = "Identity"
            del n.input[1:]
    _fails(run(m), case, "onnx without the bias")
    rn = library_case(TWO_LAYERS, N_EXTRA)
    m = onnx.load(str(rn.export("onnx", folder)))
    check_outputs(run(m, rn), rn, "onnx, two layers")
    inits = {i.name: i for i in m.graph.initializer}
    q0, q1 = (numpy_helper.to_array(inits[f"layer1.head{h}.wq_beta"]) for h in (0, 1))
    inits["layer1.head0.wq_beta"].CopyFrom(numpy_helper.from_array(q1, "layer1.head0.wq_beta"))
    inits["layer1.head1.wq_beta"].CopyFrom(numpy_helper.from_array(q0, "layer1.head1.wq_beta"))
    _fails(run(m, rn), rn, "onnx with two heads swapped")
    ramp = library_case(RAMP, N_EXTRA)
    att = onnx.load(str(ramp.export("onnx", folder, attention_op=True)))
    check_outputs(run(att, ramp), ramp, "onnx Attention")
    for n in att.graph.node:  # Attention's default scale is 1/sqrt(head_dim)
        if n.op_type == "Attention":
            (i,) = [i for i, a in enumerate(n.attribute) if a.name == "scale"]
            del n.attribute[i]
    _fails(run(att, ramp), ramp, "onnx Attention without scale=1.0")


def test_negative_controls_flax(folder):
    jax = pytest.importorskip("jax")
    pytest.importorskip("flax")
    jax.config.update("jax_enable_x64", True)
    from certificates.export import flax_export, flax_model
    case = library_case(MULTIHEAD, N_EXTRA)
    module, variables = flax_model.load(case.export("flax", folder))
    f = jax.jit(module.apply)
    check_outputs(np.asarray(f(variables, case.X)), case, "flax")
    p = variables["params"]
    _fails(np.asarray(f({"params": dict(p, layer_0_bias=0 * p["layer_0_bias"])}, case.X)), case, "flax, no bias")
    rn = library_case(TWO_LAYERS, N_EXTRA)
    module, variables = flax_model.load(rn.export("flax", folder))
    f = jax.jit(module.apply)
    check_outputs(np.asarray(f(variables, rn.X)), rn, "flax, two layers")
    p = variables["params"]
    q = np.array(p["layer_1"]["query"]["kernel"])  # (in, heads, head_dim)
    q[:, [0, 1]] = q[:, [1, 0]]
    p = dict(p, layer_1=dict(p["layer_1"], query={"kernel": q}))
    _fails(np.asarray(f({"params": p}, rn.X)), rn, "flax, two heads swapped")
    ramp = library_case(RAMP, N_EXTRA)
    tree = flax_export.tree(ramp.doc, compensate=False)
    m = flax_model.AttncertFlax(config=tree["config"])
    _fails(np.asarray(jax.jit(m.apply)({"params": tree["params"]}, ramp.X)), ramp, "flax without sqrt(head_dim)")


# ---------------------------------------------------------------- check --weights: every format, one ulp in any tensor

def _mutate_ulp(a: np.ndarray) -> np.ndarray:
    b = np.array(a, copy=True)
    flat = b.reshape(-1)
    if b.dtype.kind == "f":
        flat[-1] = np.nextafter(flat[-1], np.inf)
    else:
        flat[-1] = flat[-1] + 1 if b.dtype.kind in "iu" else ("7" if flat[-1] != "7" else "8")
    return b


def _rewrite(fmt, data: bytes, path: str, mutate) -> bytes:
    """The export's bytes with the entry at ``path`` changed by ``mutate`` (written by the framework itself)."""
    parts = path.split("/")
    if fmt == "safetensors":
        from safetensors.numpy import load, save
        from certificates.export.files import contents
        t = load(data)
        t[path] = mutate(t[path])
        return save(t, metadata={"attncert": contents(data, fmt).claim_text})
    if fmt == "npz":
        z = dict(np.load(io.BytesIO(data), allow_pickle=False))
        z[path] = mutate(z[path])
        buf = io.BytesIO()
        np.savez(buf, **z)
        return buf.getvalue()
    if fmt == "onnx":
        import onnx
        from onnx import numpy_helper
        m = onnx.load_model_from_string(data)
        (init,) = [i for i in m.graph.initializer if i.name == path]
        init.CopyFrom(numpy_helper.from_array(mutate(numpy_helper.to_array(init)), path))
        return m.SerializeToString()
    if fmt == "torch":
        import torch
        obj = torch.load(io.BytesIO(data), weights_only=True)
        box = obj
        for k in parts[:-1]:
            box = box[int(k)] if isinstance(box, list) else box[k]
        box[parts[-1]] = torch.from_numpy(mutate(box[parts[-1]].numpy()))
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()
    from flax.serialization import msgpack_restore, msgpack_serialize
    obj = msgpack_restore(data)
    box = obj
    for k in parts[:-1]:
        box = box[k]
    box[parts[-1]] = mutate(box[parts[-1]])
    return msgpack_serialize(obj)


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_weights_rejects_one_ulp_in_any_tensor(fmt, folder, tmp_path, capsys):
    pytest.importorskip({"torch": "torch", "onnx": "onnx", "flax": "flax"}.get(fmt, "safetensors"))
    from certificates.export.files import contents
    from certificates.export.weights_check import check_weights, compare, expected_contents
    for path in (MULTIHEAD, LIB / "relu-net-sin3x-v1.json", LIB / "relu-net-sin3x-v2.json"):
        case = library_case(path, N_EXTRA)
        good = case.export(fmt, folder)
        assert check_weights(good, case.doc) == []
        want = expected_contents(case.doc, fmt)
        data = good.read_bytes()
        arrays = [k for k, v in want.entries.items() if isinstance(v, np.ndarray)
                  and not re.search(r"head([3-9]|1[0-9]|2[0-9])\b", k)]  # relu-net v2: heads 0-2 of 24
        assert len(arrays) >= 5
        for name in arrays:  # one ulp (or one unit, or one character) in any single tensor is caught, by name
            bad = compare(contents(_rewrite(fmt, data, name, _mutate_ulp), fmt), want)
            assert bad and name in bad[0], (name, bad)
    # the command line: exit 0 for the file as written, 1 naming the tensor for one ulp
    case = library_case(MULTIHEAD, N_EXTRA)
    good = case.export(fmt, folder)
    rc, out, _ = _cli(["check", "--weights", good, case.path], capsys)
    assert rc == 0 and "bit for bit" in out
    name = {"safetensors": "layer0.head2.bias", "npz": "layer0.head2.bias", "onnx": "layer0.head2.bias",
            "torch": "layers/0/mha/in_proj_weight", "flax": "params/layer_0/query/kernel"}[fmt]
    bad = tmp_path / ("bad" + SUFFIX[fmt])
    bad.write_bytes(_rewrite(fmt, good.read_bytes(), name, _mutate_ulp))
    rc, out, _ = _cli(["check", "--weights", bad, case.path], capsys)
    assert rc == 1 and f"tensor {name} differs" in out, out


def test_check_weights_sign_of_zero_missing_extra_claim_and_other_certificate(folder, tmp_path):
    from safetensors.numpy import load as st_load, save as st_save
    from certificates.export.files import contents
    from certificates.export.weights_check import check_weights
    case = library_case(MULTIHEAD, N_EXTRA)
    data = case.export("safetensors", folder).read_bytes()
    claim = contents(data, "safetensors").claim_text
    t = st_load(data)

    def problems(tensors, meta_text=claim):
        p = tmp_path / "x.safetensors"
        p.write_bytes(st_save(tensors, metadata={"attncert": meta_text}))
        return check_weights(p, case.doc)

    assert problems(t) == []
    z = dict(t)
    z["layer0.head0.wk"] = z["layer0.head0.wk"].copy()
    z["layer0.head0.wk"][0, 0] = -0.0  # +0.0 in the certificate: differs bit for bit
    assert "layer0.head0.wk" in problems(z)[0]
    assert any("embed.const is missing" in p for p in problems({k: v for k, v in t.items() if k != "embed.const"}))
    assert any("unexpected entry extra" in p for p in problems(dict(t, extra=np.zeros(2))))
    assert any("claim certificate_sha256" in p
               for p in problems(t, claim.replace(case.doc["sha256"], "0" * 64)))
    assert any("claim eps" in p for p in problems(t, claim.replace('"eps":"1/50"', '"eps":"1/10"')))
    other = library_case(RAMP, N_EXTRA)
    assert check_weights(other.export("safetensors", folder), case.doc)  # another certificate's export


def test_certify_float64_then_export_and_check_end_to_end(tmp_path, capsys):
    cert = tmp_path / "c.json"
    rc, _, _ = _cli(["certify", "ramp", "--set", "p=17", "--set", "kappa=27/10", "--float64", "--eps", "0.009",
                     "-o", cert], capsys)
    assert rc == 0
    doc = load(cert)
    assert doc["construction"]["params"]["float64"] == "1"
    for fmt in ("safetensors", "onnx"):
        out = tmp_path / ("m" + SUFFIX[fmt])
        assert _cli(["export", cert, "--to", fmt, "-o", out], capsys)[0] == 0
        rc, text, _ = _cli(["check", "--weights", out, cert], capsys)
        assert rc == 0 and "bit for bit" in text


# ---------------------------------------------------------------- attncert info

@pytest.mark.parametrize("fmt", FORMATS + ("certificate",))
def test_info_prints_the_claim_of_any_export(fmt, folder, capsys):
    pytest.importorskip({"torch": "torch", "onnx": "onnx", "flax": "flax"}.get(fmt, "numpy"))
    case = library_case(LIB / "relu-net-sin3x-v1.json", N_EXTRA)
    path = case.path if fmt == "certificate" else case.export(fmt, folder)
    rc, out, err = _cli(["info", path], capsys)
    assert rc == 0 and not err
    for text in ("relu-net", "CERTIFIED", "1/20", "L_inf", "x0 in [-1, 2]", "sin(3*x0)", case.doc["sha256"],
                 case.doc["construction"]["weights_sha256"], "schema version"):
        assert text in out, text
    rc, out, _ = _cli(["info", path, "--format", "json"], capsys)
    info = json.loads(out)
    assert rc == 0 and info["format"] == fmt and info["kind"] == ("certificate" if fmt == "certificate" else "export")
    assert {k: info["claim"][k] for k in certdata.claim(case.doc)} == certdata.claim(case.doc)


# ---------------------------------------------------------------- refusals and bad input: exit 2, one line

def test_non_float64_certificate_is_refused_with_the_command_that_makes_one(ramp41_cert, tmp_path, capsys,
                                                                           monkeypatch, folder):
    out = tmp_path / "m.safetensors"
    t0 = time.perf_counter()
    rc, _, err = _cli(["export", ramp41_cert, "--to", "safetensors", "-o", out], capsys)
    assert rc == 2 and time.perf_counter() - t0 < 1.0
    assert "\n" not in err.strip() and "not a float64 value" in err and not out.exists()
    cmd = err.strip().split("make one with: ", 1)[1]
    assert cmd.startswith("attncert certify ramp ") and "--float64" in cmd and "--eps 1/50" in cmd
    rc, _, err2 = _cli(["check", "--weights", library_case(RAMP, N_EXTRA).export("npz", folder), ramp41_cert], capsys)
    assert rc == 2 and cmd in err2
    monkeypatch.chdir(tmp_path)  # the command, word for word, makes a certificate that exports
    argv = shlex.split(cmd)
    assert _cli(argv[1:], capsys)[0] == 0
    assert _cli(["export", argv[-1], "--to", "onnx", "-o", "m.onnx"], capsys)[0] == 0


def test_refusal_is_immediate_even_for_big_non_float64_certificates(tmp_path, capsys):
    """relu-net v2 (two layers) in exact rationals: refused before any Arb re-check."""
    from verify.search.certify import certify
    c = constructions.build("relu-net", f="sin(3*x0)", lo=-1, hi=2, variant=2)
    res = certify(c, "1/20", progress=False)
    assert res.status == "CERTIFIED"
    path = tmp_path / "rn.json"
    save(certificate_doc(c, res), path)
    for fmt in FORMATS:
        t0 = time.perf_counter()
        rc, _, err = _cli(["export", path, "--to", fmt, "-o", tmp_path / ("m" + SUFFIX[fmt])], capsys)
        assert rc == 2 and time.perf_counter() - t0 < 1.0, fmt
        assert len(err.strip().splitlines()) == 1 and "--set variant=2" in err and "--float64" in err


def _resigned(doc):
    """``doc`` with its hashes recomputed (to reach the structure checks past the hash checks)."""
    import hashlib
    from certificates.model import digest
    doc["construction"]["weights_sha256"] = hashlib.sha256(
        certdata.canonical(doc["construction"]["network"])).hexdigest()
    doc["sha256"] = digest(doc)
    return doc


def test_a_field_no_format_can_express_is_refused_by_name(tmp_path, capsys):
    doc = json.loads(RAMP.read_text())
    doc["construction"]["network"]["layers"][0]["heads"][0]["gate"] = "1"
    path = tmp_path / "x.json"
    path.write_text(json.dumps(_resigned(doc)))
    t0 = time.perf_counter()
    rc, _, err = _cli(["export", path, "--to", "onnx", "-o", tmp_path / "m.onnx"], capsys)
    assert rc == 2 and time.perf_counter() - t0 < 1.0
    assert "layer0.head0.gate" in err and len(err.strip().splitlines()) == 1


def test_sqrt_head_dim_compensation_is_exact_or_refused_by_name(tmp_path, capsys):
    from certificates.export.certdata import ExportError
    from certificates.export.torch_export import head_dim, scaled
    assert head_dim([2, 1], 1, (5, 1)) == 16 and head_dim([17], 1, (5,)) == 256 and head_dim([3], 2, (40,)) == 256
    assert head_dim([1], 4, (3, 1)) == 1 and head_dim([1], 24, (3,)) == 1
    assert head_dim([3], 1, (1,), base=4) == 4 and head_dim([5], 1, (1,), base=4) == 16
    w = np.array([[0.1, -3.0e-310, 6400.0]])
    assert all(Fraction(float(a)) == 4 * Fraction(float(b)) for a, b in zip(scaled(w, 4).ravel(), w.ravel()))
    with pytest.raises(ExportError, match="overflows"):
        scaled(np.array([[1.5e308]]), 4)
    doc = json.loads(RAMP.read_text())
    doc["construction"]["network"]["layers"][0]["heads"][0]["wq"][0][0] = str(int(1.5e308))
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_resigned(doc)))
    rc, _, err = _cli(["export", path, "--no-check", "--to", "torch", "-o", tmp_path / "m.pt"], capsys)
    assert rc == 2 and "layer0.head0.wq" in err and "overflows" in err
    assert _cli(["export", path, "--no-check", "--to", "onnx", "-o", tmp_path / "m.onnx"], capsys)[0] == 0


def _foreign_files(tmp_path) -> dict:
    import zipfile
    out = {"missing": tmp_path / "missing.pt", "directory": tmp_path, "empty": tmp_path / "empty.bin",
           "text": tmp_path / "notes.txt", "random": tmp_path / "random.bin"}
    out["empty"].write_bytes(b"")
    out["text"].write_text("hello\n")
    out["random"].write_bytes(bytes(range(7, 250)) * 3)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("a.txt", "not an npz")
    out["zip"] = tmp_path / "other.zip"
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    out["npz without claim"] = tmp_path / "plain.npz"
    from safetensors.numpy import save_file
    save_file({"w": np.zeros(3)}, str(tmp_path / "plain.safetensors"))
    out["safetensors without claim"] = tmp_path / "plain.safetensors"
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "plain.safetensors").read_bytes()[:-5])
    out["truncated safetensors"] = tmp_path / "cut.safetensors"
    try:
        import torch
        torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "plain.pt")
        out["torch state_dict"] = tmp_path / "plain.pt"
        torch.save({"x": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")  # a module: refused by weights_only
        out["torch pickled module"] = tmp_path / "pickled.pt"
    except ImportError:
        pass
    try:
        import onnx
        from onnx import TensorProto, helper
        g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1])])
        onnx.save(helper.make_model(g), str(tmp_path / "plain.onnx"))
        out["onnx without claim"] = tmp_path / "plain.onnx"
    except ImportError:
        pass
    try:
        from flax.serialization import msgpack_serialize
        (tmp_path / "plain.msgpack").write_bytes(msgpack_serialize({"params": {"w": np.zeros(2)}}))
        out["msgpack without claim"] = tmp_path / "plain.msgpack"
    except ImportError:
        pass
    return out


def test_unreadable_or_foreign_model_files_exit_2_with_one_line(tmp_path, capsys):
    files = _foreign_files(tmp_path)
    assert len(files) >= 10
    for what, path in files.items():
        for argv in (["info", path], ["check", "--weights", path, RAMP]):
            rc, out, err = _cli(argv, capsys)
            assert rc == 2, (what, argv, out, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (what, err)
            assert err.startswith("attncert: error: "), (what, err)


def test_check_weights_with_a_certificate_as_weights_file(capsys):
    rc, _, err = _cli(["check", "--weights", RAMP, RAMP], capsys)
    assert rc == 2 and "is a certificate, not a weights file" in err


def test_export_rejects_tampered_certificate(tmp_path, capsys):
    doc = json.loads(MULTIHEAD.read_text())
    doc["construction"]["network"]["layers"][0]["heads"][0]["wo"][0][0] = "2"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    for extra in ([], ["--no-check"]):
        rc, out, _ = _cli(["export", bad, "--to", "npz", "-o", tmp_path / "m.npz"] + extra, capsys)
        assert rc == 1 and "INVALID" in out
    assert not (tmp_path / "m.npz").exists()


def test_export_bad_options_exit_2_one_line(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert _cli(["export", RAMP, "--to", "npz", "--onnx-attention", "-o", out], capsys)[2].count("\n") == 1
    rc, _, err = _cli(["export", tmp_path / "missing.json", "--to", "npz", "-o", out], capsys)
    assert rc == 2 and "cannot read" in err and err.count("\n") == 1
    rc, _, err = _cli(["export", RAMP, "--to", "tflite", "-o", out], capsys)
    assert rc == 2 and "invalid choice" in err
    assert not out.exists()


# ---------------------------------------------------------------- determinism and structure

def test_exports_are_byte_identical(folder):
    import importlib
    import zipfile
    case = library_case(LIB / "relu-net-sin3x-v2.json", N_EXTRA)
    with zipfile.ZipFile(case.export("npz", folder)) as zf:  # fixed timestamps: no clock
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    for fmt in FORMATS:
        mod = importlib.import_module(f"certificates.export.{fmt}_export")
        assert mod.to_bytes(case.doc) == mod.to_bytes(json.loads(json.dumps(case.doc))), fmt


@pytest.mark.slow
def test_all_exports_byte_identical_across_processes(tmp_path):
    """Another process, later, writes the same bytes in every format (about 10 s: torch and jax imports)."""
    import importlib
    import subprocess
    import sys
    code = ("import sys, importlib, certificates.model as m\n"
            "doc = m.load(sys.argv[1])\n"
            "for f in sys.argv[3:]:\n"
            "    mod = importlib.import_module(f'certificates.export.{f}_export')\n"
            "    open(f'{sys.argv[2]}/{f}.bin', 'wb').write(mod.to_bytes(doc))\n")
    r = subprocess.run([sys.executable, "-c", code, str(MULTIHEAD), str(tmp_path), *FORMATS],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = load(MULTIHEAD)
    for f in FORMATS:
        here = importlib.import_module(f"certificates.export.{f}_export").to_bytes(doc)
        assert (tmp_path / f"{f}.bin").read_bytes() == here, f


def test_exporters_and_readers_do_not_import_verify_or_heavy_frameworks_eagerly():
    import subprocess
    import sys
    code = ("import sys, certificates.cli.main, certificates.cli.export, certificates.cli.info, "
            "certificates.export.certdata, certificates.export.files, certificates.export.numpy_model, "
            "certificates.export.weights_check, certificates.export.safetensors_export, "
            "certificates.export.npz_export, certificates.export.torch_export, certificates.export.onnx_export, "
            "certificates.export.flax_export\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('verify', 'constructions', 'torch', 'jax', 'flax', 'onnx', 'onnxruntime', 'safetensors'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_module_files_import_only_their_framework():
    """torch_model.py, flax_model.py and numpy_model.py can be copied next to an export."""
    import ast
    allowed = {"torch_model": {"torch"}, "flax_model": {"jax", "flax"}, "numpy_model": {"numpy", "safetensors"}}
    for name, ok in allowed.items():
        tree = ast.parse((ROOT / "certificates" / "export" / f"{name}.py").read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        import sys
        third_party = {m for m in mods if m not in sys.stdlib_module_names and m != "__future__"}
        assert third_party <= ok, (name, third_party)
