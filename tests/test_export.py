"""Exports run in their real frameworks and agree with the float64 reference (issue 6).

Every export is loaded in torch / onnxruntime / flax / safetensors / numpy, evaluated at
many points including the certificate's witness, and compared with
``verify.forward.forward_float`` of the certified float64 network: |framework - reference|
<= TOL and |framework - target| < eps + TOL.  TOL = 1e-9 (measured differences ~1e-14).
"""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import constructions
from certificates.export import certdata
from certificates.model import certificate_doc, load, save
from constructions.float64 import is_float64, to_float64
from verify.search.certify import certify
from verify.forward import forward_float
from verify.enclose.target import float_eval

from export_nets import two_head, two_layer

TOL = 1e-9


def _hand_made_result(construction, eps):
    """A stand-in CERTIFIED result for a network the certifier cannot handle (structure tests only)."""
    from types import SimpleNamespace
    return SimpleNamespace(status="CERTIFIED", eps=Fraction(eps), max_bound=Fraction(0), observed=Fraction(0),
                           witness=[Fraction(1, 3)], leaves=[], tree="L", boxes_evaluated=0, seconds=0.0)


class Case:
    """A certified float64 construction with its certificate document and test points."""

    def __init__(self, construction, eps, tmp, certified=True):
        self.c, self.certified = construction, certified
        res = certify(construction, eps, progress=False) if certified else _hand_made_result(construction, eps)
        assert res.status == "CERTIFIED", res.reason
        self.eps = float(Fraction(eps))
        self.path = tmp / f"{construction.name}.cert.json"
        save(certificate_doc(construction, res), self.path)
        self.doc = load(self.path)
        assert self.doc["construction"]["weights_sha256"] == construction.network.weights_hash()
        (lo, hi), = construction.domain
        witness = float(Fraction(self.doc["result"]["witness"][0]))
        rng = np.random.default_rng(6)
        xs = np.concatenate([[witness, float(lo), float(hi), 0.0], np.linspace(float(lo), float(hi), 4001),
                             rng.uniform(float(lo), float(hi), 2000)])
        self.X = xs[:, None]
        self.witness = witness
        self.ref = forward_float(construction.network, self.X)
        self.target = np.stack([float_eval(t, {"x0": xs}, np) for t in construction.target], axis=1)


_CASES: dict = {}


def _case(name, tmp_path_factory) -> Case:
    if name not in _CASES:
        tmp = tmp_path_factory.mktemp("export")
        if name == "ramp":
            c = Case(to_float64(constructions.build("ramp", a="-1", b="1", p=41, kappa=8, lo=-2, hi=2)), "1/50", tmp)
        elif name == "two-head":
            c = Case(to_float64(two_head()), "1/20", tmp)
        elif name == "ramp-multihead":  # [UAP] construction with a position-dependent logit bias
            c = Case(to_float64(constructions.build("ramp-multihead", H=4, n=9)), "1/50", tmp)
        elif name == "max-affine":  # [MAP] construction: self-attention, the query token is also a key
            c = Case(to_float64(constructions.build("max-affine", f="sin(3*x0)", G=32, kappa=3)), "1/20", tmp)
        else:  # not certifiable (two layers): a hand-made document, to test that exporters follow any structure
            c = Case(to_float64(two_layer()), "100", tmp, certified=False)
        _CASES[name] = c
    return _CASES[name]


@pytest.fixture(scope="module", params=["ramp", "two-head", "ramp-multihead", "max-affine", "two-layer"])
def case(request, tmp_path_factory):
    return _case(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def ramp_case(tmp_path_factory):
    return _case("ramp", tmp_path_factory)


def check_outputs(y, case):
    """The verification every export must pass: near the float64 reference, and within eps + TOL."""
    y = np.asarray(y, dtype=np.float64).reshape(case.ref.shape)
    assert np.all(np.isfinite(y)), "framework output is not finite"
    gap = np.abs(y - case.ref)
    assert gap.max() <= TOL, f"export differs from the float64 reference by {gap.max():.3g} > {TOL}"
    err = np.abs(y - case.target)
    assert err.max() < case.eps + TOL, f"export error {err.max():.6g} >= eps + TOL"
    assert abs(y[0, 0] - case.ref[0, 0]) <= TOL  # the certificate's witness
    return gap.max()


# ---------------------------------------------------------------- exact transform

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


def test_exporter_refuses_weights_that_are_not_float64(ramp41_cert, tmp_path, capsys):
    from certificates.cli.main import main
    out = tmp_path / "m.safetensors"
    assert main(["export", str(ramp41_cert), "--to", "safetensors", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--float64" in err and "not a float64 value" in err
    assert not out.exists()


def test_export_rejects_tampered_certificate(case, tmp_path, capsys):
    from certificates.cli.main import main
    doc = json.loads(case.path.read_text())
    doc["construction"]["network"]["layers"][0]["heads"][0]["wo"][0][0] = "2"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["export", str(bad), "--to", "npz", "-o", str(tmp_path / "m.npz")]) == 1
    assert main(["export", str(bad), "--to", "npz", "--no-check", "-o", str(tmp_path / "m.npz")]) == 1
    assert not (tmp_path / "m.npz").exists()
    assert "INVALID" in capsys.readouterr().out


# ---------------------------------------------------------------- frameworks

def test_torch_mha_and_sdpa_match_reference(case, tmp_path):
    torch = pytest.importorskip("torch")
    from certificates.cli.main import main
    from certificates.export import torch_model
    path = tmp_path / "m.pt"
    assert main(["export", str(case.path), "--to", "torch", "-o", str(path), "--no-check"]) == 0
    ckpt = torch_model.load_checkpoint(path)
    assert all(layer["head_dim"] in (16, 256, 4096) for layer in ckpt["layers"])
    mha = torch.nn.MultiheadAttention(ckpt["layers"][0]["embed_dim"], ckpt["layers"][0]["num_heads"], bias=False,
                                      batch_first=True, dtype=torch.float64)
    mha.load_state_dict(ckpt["layers"][0]["mha"])  # a plain MHA state_dict, strict
    X = torch.from_numpy(case.X)
    with torch.no_grad():
        for model in (torch_model.AttncertMHA(ckpt), torch_model.AttncertMHA(ckpt, need_weights=True),
                      torch_model.AttncertSDPA(ckpt)):
            check_outputs(model(X).numpy(), case)


def test_torch_loader_script(case, tmp_path, capsys):
    pytest.importorskip("torch")
    from certificates.export import torch_export, torch_model
    path = tmp_path / "m.pt"
    path.write_bytes(torch_export.to_bytes(case.doc))
    assert torch_model.main([str(path), repr(case.witness)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["certificate_sha256"] == case.doc["sha256"]
    assert abs(out["outputs"][0] - case.ref[0, 0]) <= TOL


def test_torch_without_sqrt_head_dim_compensation_fails_loudly(case):
    torch = pytest.importorskip("torch")
    import io
    from certificates.export import torch_export, torch_model
    ckpt = torch.load(io.BytesIO(torch_export.to_bytes(case.doc, compensate=False)), weights_only=True)
    with torch.no_grad():
        y = torch_model.AttncertMHA(ckpt)(torch.from_numpy(case.X)).numpy()
    with pytest.raises(AssertionError, match="differs from the float64 reference"):
        check_outputs(y, case)


@pytest.mark.parametrize("attention_op", [False, True], ids=["matmul-softmax", "opset23-attention"])
def test_onnx_graph_checks_and_runs_in_onnxruntime(case, tmp_path, attention_op):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from certificates.cli.main import main
    path = tmp_path / "m.onnx"
    assert main(["export", str(case.path), "--to", "onnx", "-o", str(path), "--no-check"]
                + (["--onnx-attention"] if attention_op else [])) == 0
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version == 23 if attention_op else 17 <= m.opset_import[0].version <= 21
    assert all(i.data_type in (onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64) for i in m.graph.initializer)
    float_attrs = [(n.op_type, a.name, a.f) for n in m.graph.node for a in n.attribute
                   if a.type in (onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS, onnx.AttributeProto.TENSOR)]
    n_heads = sum(len(layer["heads"]) for layer in case.doc["construction"]["network"]["layers"])
    assert float_attrs == ([("Attention", "scale", 1.0)] * n_heads if attention_op else [])
    assert ("Softmax" in {n.op_type for n in m.graph.node}) != attention_op
    assert json.loads({p.key: p.value for p in m.metadata_props}["attncert"])["certificate_sha256"] == case.doc["sha256"]
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        check_outputs(sess.run(None, {"x": case.X})[0], case)


def test_flax_mhdpa_matches_reference_in_float64(case, tmp_path):
    jax = pytest.importorskip("jax")
    pytest.importorskip("flax")
    jax.config.update("jax_enable_x64", True)
    from certificates.cli.main import main
    from certificates.export import flax_model
    path = tmp_path / "m.msgpack"
    assert main(["export", str(case.path), "--to", "flax", "-o", str(path), "--no-check"]) == 0
    for fn in (flax_model.float64_attention, None):  # our float64 softmax, then flax's own
        model = flax_model.load(path, attention_fn=fn)
        params = model.tree["layers"]["0"]["params"]
        H, E = int(model.tree["layers"]["0"]["num_heads"]), int(model.tree["layers"]["0"]["head_dim"])
        assert params["query"]["kernel"].shape[1:] == (H, E) and params["out"]["kernel"].shape[:2] == (H, E)
        y = model(case.X)
        assert y.dtype == np.float64
        check_outputs(np.asarray(y), case)


def test_flax_without_sqrt_head_dim_compensation_fails_loudly(case):
    jax = pytest.importorskip("jax")
    pytest.importorskip("flax")
    jax.config.update("jax_enable_x64", True)
    from certificates.export import flax_export, flax_model
    model = flax_model.AttncertFlax(flax_export.tree(case.doc, compensate=False), flax_model.float64_attention)
    with pytest.raises(AssertionError, match="differs from the float64 reference"):
        check_outputs(np.asarray(model(case.X)), case)


def _numpy_forward(tensors, meta, X):
    """Plain NumPy forward pass over an export's tensors (as a user would write it)."""
    Z = tensors["embed.const"] + sum(X[:, i, None, None] * tensors[f"embed.linear.{i}"]
                                     for i in range(X.shape[1]))
    for li, layer in enumerate(meta["layers"]):
        Zq, Zk = Z[:, layer["query_rows"]], Z[:, layer["key_rows"]]
        Y = 0
        for hi in range(layer["heads"]):
            t = lambda k: tensors[f"layer{li}.head{hi}.{k}"]
            S = t("beta")[0, 0] * (Zq @ t("wq")) @ np.swapaxes(Zk @ t("wk"), 1, 2)
            if f"layer{li}.head{hi}.bias" in tensors:
                S = S + t("bias")
            A = np.exp(S - S.max(axis=2, keepdims=True))
            Y = Y + (A / A.sum(axis=2, keepdims=True)) @ (Zk @ t("wv")) @ t("wo")
        Z = Y
    return np.stack([Z[:, r, c] for r, c in meta["readout"]], axis=1)


def test_safetensors_and_npz_load_and_match_reference(case, tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from certificates.export import npz_export, safetensors_export
    st, nz = tmp_path / "m.safetensors", tmp_path / "m.npz"
    st.write_bytes(safetensors_export.to_bytes(case.doc))
    nz.write_bytes(npz_export.to_bytes(case.doc))
    with safe_open(str(st), "np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert list(meta) == ["attncert"] and all(t.dtype == np.float64 for t in tensors.values())
    info = json.loads(meta["attncert"])
    assert info["certificate_sha256"] == case.doc["sha256"] and info["schema_version"] == 1
    check_outputs(_numpy_forward(tensors, info, case.X), case)
    z = np.load(nz, allow_pickle=False)
    arrays = {k: z[k] for k in z.files if not k.endswith(".exact") and k != "attncert.meta"}
    for k, v in arrays.items():  # exact strings are the certificate's, and the floats are them exactly
        assert all(Fraction(s) == Fraction(float(f)) for s, f in zip(z[k + ".exact"].ravel(), v.ravel()))
    check_outputs(_numpy_forward(arrays, json.loads(str(z["attncert.meta"])), case.X), case)


# ---------------------------------------------------------------- determinism and the weights check

def test_exports_are_byte_identical(case):
    import zipfile, io
    from certificates.export import flax_export, npz_export, onnx_export, safetensors_export, torch_export
    with zipfile.ZipFile(io.BytesIO(npz_export.to_bytes(case.doc))) as zf:  # fixed timestamps: no clock
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    for mod in (safetensors_export, npz_export, torch_export, onnx_export, flax_export):
        assert mod.to_bytes(case.doc) == mod.to_bytes(json.loads(json.dumps(case.doc))), mod.__name__
    assert onnx_export.to_bytes(case.doc, True) == onnx_export.to_bytes(case.doc, True)


def test_safetensors_bytes_identical_across_processes(case, tmp_path):
    import subprocess, sys
    from certificates.export import safetensors_export
    out = tmp_path / "p.safetensors"
    r = subprocess.run([sys.executable, "-m", "certificates.cli", "export", str(case.path), "--to", "safetensors",
                        "-o", str(out), "--no-check"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == safetensors_export.to_bytes(case.doc)


@pytest.mark.slow
def test_all_exports_byte_identical_across_processes(ramp_case, tmp_path):
    """Another process, later, writes the same bytes in every format (about 10 s: torch and jax imports)."""
    import subprocess, sys, zipfile
    from certificates.export import FORMATS
    case = ramp_case
    code = ("import sys, importlib, certificates.model as m\n"
            "doc = m.load(sys.argv[1])\n"
            "for f in sys.argv[3:]:\n"
            "    mod = importlib.import_module(f'certificates.export.{f}_export')\n"
            "    open(f'{sys.argv[2]}/{f}.bin', 'wb').write(mod.to_bytes(doc))\n")
    r = subprocess.run([sys.executable, "-c", code, str(case.path), str(tmp_path), *FORMATS],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import importlib
    for f in FORMATS:
        here = importlib.import_module(f"certificates.export.{f}_export").to_bytes(case.doc)
        assert (tmp_path / f"{f}.bin").read_bytes() == here, f
    with zipfile.ZipFile(tmp_path / "npz.bin") as zf:  # fixed timestamps: no clock in the file
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def _resave(path, tensors, meta):
    from safetensors.numpy import save_file
    save_file(tensors, str(path), metadata=meta)


def test_check_weights_bit_for_bit(case, tmp_path, capsys):
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from certificates.cli.main import main
    from certificates.export.weights_check import check_weights
    st = tmp_path / "m.safetensors"
    assert main(["export", str(case.path), "--to", "safetensors", "-o", str(st), "--no-check"]) == 0
    assert check_weights(st, case.doc) == []
    if case.certified:  # the Arb checker handles one-layer certificates only
        assert main(["check", "--weights", str(st), str(case.path)]) == 0
    with safe_open(str(st), "np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for name in tensors:  # one ulp in any single tensor is caught
        changed = {k: v.copy() for k, v in tensors.items()}
        flat = changed[name].reshape(-1)
        flat[0] = np.nextafter(flat[0], np.inf)
        bad = tmp_path / f"bad-{name}.safetensors"
        _resave(bad, changed, meta)
        problems = check_weights(bad, case.doc)
        assert problems and name in problems[0], problems
    if case.certified:
        assert main(["check", "--weights", str(bad), str(case.path)]) == 1
        assert "does not match" in capsys.readouterr().out
    less = {k: v for k, v in tensors.items() if k != "embed.const"}
    _resave(tmp_path / "less.safetensors", less, meta)
    assert any("missing" in p for p in check_weights(tmp_path / "less.safetensors", case.doc))
    other = dict(meta, attncert=meta["attncert"].replace(case.doc["sha256"], "0" * 64))
    _resave(tmp_path / "meta.safetensors", tensors, other)
    assert any("certificate_sha256" in p for p in check_weights(tmp_path / "meta.safetensors", case.doc))
    zero = {k: (v * 0 if k.endswith("wo") else v) for k, v in tensors.items()}  # +0.0 vs -0.0 differ too
    zero = {k: (-v if k.endswith("wo") else v) for k, v in zero.items()}
    _resave(tmp_path / "neg0.safetensors", zero, meta)
    assert check_weights(tmp_path / "neg0.safetensors", case.doc)
    assert main(["check", "--weights", str(case.path), str(case.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "safetensors" in err


def test_check_weights_npz(case, tmp_path):
    from certificates.cli.main import main
    from certificates.export.weights_check import check_weights
    nz = tmp_path / "m.npz"
    assert main(["export", str(case.path), "--to", "npz", "-o", str(nz), "--no-check"]) == 0
    assert check_weights(nz, case.doc) == []
    if case.certified:
        assert main(["check", "--weights", str(nz), str(case.path)]) == 0
    z = dict(np.load(nz, allow_pickle=False))
    z["embed.const.exact"] = z["embed.const.exact"].copy()
    z["embed.const.exact"][0, 0] = "1/3"
    np.savez(tmp_path / "bad.npz", **z)
    assert any("exact strings" in p for p in check_weights(tmp_path / "bad.npz", case.doc))
    import zipfile
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:  # a zip that is no npz (a torch .pt is one)
        zf.writestr("archive/data.pkl", b"not read")
    assert main(["check", "--weights", str(tmp_path / "other.zip"), str(case.path)]) == 2


# ---------------------------------------------------------------- structure of the code

def test_exporters_do_not_import_verify_or_heavy_frameworks_eagerly():
    import subprocess, sys
    code = ("import sys, certificates.cli.main, certificates.cli.export, certificates.export.certdata, "
            "certificates.export.weights_check, certificates.export.safetensors_export, "
            "certificates.export.npz_export, certificates.export.torch_export, certificates.export.onnx_export, "
            "certificates.export.flax_export\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('verify', 'constructions', 'torch', 'jax', 'flax', 'onnx', 'onnxruntime', 'safetensors'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_certify_float64_then_export_and_check_end_to_end(tmp_path, capsys):
    from certificates.cli.main import main
    cert, st = tmp_path / "c.json", tmp_path / "m.safetensors"
    assert main(["certify", "ramp", "--set", "p=17", "--set", "kappa=27/10", "--float64", "--eps", "0.009",
                 "-o", str(cert)]) == 0
    doc = load(cert)
    assert doc["construction"]["params"]["float64"] == "1"
    assert all(h["beta"] == "1" for layer in doc["construction"]["network"]["layers"] for h in layer["heads"])
    assert main(["export", str(cert), "--to", "safetensors", "-o", str(st)]) == 0
    assert main(["check", "--weights", str(st), str(cert)]) == 0
    assert "bit for bit" in capsys.readouterr().out


def test_export_bad_options_exit_2_one_line(case, tmp_path, capsys):
    from certificates.cli.main import main
    out = str(tmp_path / "m.npz")
    assert main(["export", str(case.path), "--to", "npz", "--onnx-attention", "-o", out]) == 2
    assert main(["export", str(tmp_path / "missing.json"), "--to", "npz", "-o", out]) == 2
    assert main(["export", str(case.path), "--to", "tflite", "-o", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "onnx only" in err[0] and "cannot read" in err[1] and "invalid choice" in err[-1]
    assert sum(line.startswith("attncert: error") for line in err) == 2 and not (tmp_path / "m.npz").exists()


def test_sqrt_head_dim_compensation_is_exact_or_refused():
    from certificates.export.certdata import ExportError
    from certificates.export.torch_export import head_dim, scaled
    assert head_dim([2, 1], 1, (5, 1)) == 16 and head_dim([17], 1, (5,)) == 256 and head_dim([3], 2, (40,)) == 256
    assert head_dim([3], 1, (1,), base=4) == 4 and head_dim([5], 1, (1,), base=4) == 16
    w = np.array([[0.1, -3.0e-310, 6400.0]])
    assert all(Fraction(float(a)) == 4 * Fraction(float(b)) for a, b in zip(scaled(w, 4).ravel(), w.ravel()))
    with pytest.raises(ExportError, match="overflows"):
        scaled(np.array([[1.5e308]]), 4)


def test_float64_keeps_post_maps_and_exporters_refuse_what_they_do_not_model(tmp_path, capsys):
    """relu-net (two layers with a post map) certifies in float64; exporters refuse it (exit 2)."""
    from certificates.cli.main import main
    c = to_float64(constructions.build("relu-net", f="sin(3*x0)", lo=-1, hi=2, variant=2))
    assert all(layer.post is None or all(Fraction(float(v)) == v for row in layer.post[0] for v in row)
               for layer in c.network.layers)
    assert any(layer.post is not None for layer in c.network.layers)
    res = certify(c, "1/20", progress=False)
    assert res.status == "CERTIFIED"
    path = tmp_path / "rn.json"
    save(certificate_doc(c, res), path)
    capsys.readouterr()
    assert main(["export", str(path), "--to", "safetensors", "-o", str(tmp_path / "rn.st")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "post" in err
    assert not (tmp_path / "rn.st").exists()
