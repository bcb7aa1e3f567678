"""attncert import: trained models read exactly, certified, and export's round trip.

No mocks: torch models are built here, exported with the real torch.onnx.export, read back by
the importer, certified by the real certifier and checked by the independent checker; the
certified bound is compared with a dense float64 sample of |model - target| computed by torch
itself.  Every library certificate exported to ONNX, torch and safetensors imports back to the
same exact network (same weights sha256).  Bad input is exit 2, one line, no traceback.
"""
from __future__ import annotations

import json
import os
import warnings
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from certificates.cli.main import main  # noqa: E402
from certificates.imports import ImportFailure, document, import_bytes, import_model  # noqa: E402
from certificates.model import digest, load, save  # noqa: E402
from constructions.imported import build_imported  # noqa: E402
from verify.forward import forward_float  # noqa: E402

from export_nets import LIBRARY  # noqa: E402

torch.set_num_threads(1)
CLAMP = "min(max(x0, -1), 1)"


def _cli(argv, capsys):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _export(model, path, example, dynamic=None, opset=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {} if opset is None else {"opset_version": opset}
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes=dynamic if dynamic is not None else {"x": {0: "N"}, "y": {0: "N"}}, **kw)
    return path


class UAPShape(nn.Module):
    """The [UAP] code's model: Linear(x) * modulation, learned interpolation tokens, one self-attention
    layer with biased q/k/v/out projections and logits / sqrt(head_dim); first token, channel 0."""

    def __init__(self, p=8, hidden=16, heads=1):
        super().__init__()
        self.heads, self.hidden = heads, hidden
        self.token_proj = nn.Linear(1, hidden)
        self.modulation = nn.Parameter(torch.ones(1, hidden))
        self.interp_tokens = nn.Parameter(torch.linspace(-1.0, 1.0, p).unsqueeze(1).expand(p, hidden).clone())
        self.q_proj, self.k_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.v_proj, self.out_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

    def forward(self, x):
        N = x.shape[0]
        tok = self.token_proj(x.unsqueeze(1)) * self.modulation
        Z = torch.cat([tok, self.interp_tokens.unsqueeze(0).expand(N, -1, -1)], dim=1)
        L, H = Z.shape[1], self.heads
        dh = self.hidden // H
        split = lambda t: t.view(N, L, H, dh).transpose(1, 2)
        Q, K, V = split(self.q_proj(Z)), split(self.k_proj(Z)), split(self.v_proj(Z))
        att = F.softmax(Q @ K.transpose(-2, -1) / (dh ** 0.5), dim=-1)
        out = (att @ V).transpose(1, 2).contiguous().view(N, L, self.hidden)
        return self.out_proj(out)[:, 0, 0:1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A briefly trained UAP-shaped model of Range_[-1,1] on [-2, 2], exported to ONNX."""
    torch.manual_seed(0)
    model = UAPShape(p=6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.linspace(-2, 2, 512)[:, None]
    for _ in range(250):
        opt.zero_grad()
        loss = torch.mean((model(x)[:, 0] - x[:, 0].clamp(-1, 1)) ** 2)
        loss.backward()
        opt.step()
    folder = tmp_path_factory.mktemp("trained")
    return model.eval(), _export(model, folder / "uap.onnx", torch.zeros(3, 1)), folder


def _torch_sup(model, lo=-2.0, hi=2.0, n=200_001):
    """Dense float64 sample of |model - Range_[-1,1]|, computed by torch itself (weights widened exactly)."""
    m64 = UAPShape(p=model.interp_tokens.shape[0], hidden=model.hidden, heads=model.heads).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    xs = torch.linspace(lo, hi, n, dtype=torch.float64)[:, None]
    with torch.no_grad():
        y = m64(xs)[:, 0]
    return float(torch.max(torch.abs(y - xs[:, 0].clamp(-1, 1))))


def test_trained_model_certified_bound_covers_the_torch_sample(trained, capsys):
    model, path, folder = trained
    net = folder / "net.json"
    code, out, err = _cli(["import", path, "-o", net], capsys)
    assert code == 0, err
    sup = _torch_sup(model)
    eps = Fraction(sup * 1.05).limit_denominator(10 ** 6) + Fraction(1, 10 ** 6)
    cert = folder / "c.json"
    code, out, err = _cli(["certify", net, "--set", f"f={CLAMP}", "--domain", "x0=-2:2", "--eps", str(eps),
                           "-o", cert], capsys)
    assert code == 0, out + err
    doc = load(cert)
    bound = float(Fraction(doc["result"]["max_bound"]))
    assert bound >= sup - 1e-12, (bound, sup)          # a sample above the proved bound is a soundness bug
    assert bound <= 1.05 * sup + 1e-5
    assert doc["construction"]["name"] == "imported"
    assert doc["domain"] == [["-2", "2"]]
    code, out, err = _cli(["check", cert], capsys)
    assert code == 0, out + err
    code, out, err = _cli(["audit", cert, "--format", "json"], capsys)
    assert code == 0, out + err
    entry = json.loads(out)[0]
    assert entry["status"] == "OK" and "no construction parameters to rebuild" in entry["reason"]


def test_imported_network_matches_torch_in_float64(trained):
    model, path, _ = trained
    imp = import_model(path)
    xs = np.linspace(-2, 2, 4001)
    m64 = UAPShape(p=6).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        ref = m64(torch.from_numpy(xs[:, None]))[:, 0].numpy()
    got = forward_float(imp.network, xs[:, None])[:, 0]
    assert np.max(np.abs(got - ref)) < 1e-12
    # the weights are the float32 values themselves, as exact rationals: W_Q is q_proj.weight^T with
    # q_proj.bias as the row of the ones column, times beta = 1/sqrt(16) = 1/4 folded in exactly
    head = imp.network.layers[0].heads[0]
    w = model.q_proj.weight.detach().numpy().T
    b = model.q_proj.bias.detach().numpy()
    assert [[4 * v for v in row] for row in head.wq] == \
        [[Fraction(float(v)) for v in row] for row in w] + [[Fraction(float(v)) for v in b]]


def test_two_heads_and_a_second_input_dimension(tmp_path, capsys):
    """Two heads (beta = 1/sqrt(2) as the float32 constant's exact value), two inputs on a per-dimension box."""
    torch.manual_seed(3)

    class TwoIn(UAPShape):
        def __init__(self):
            super().__init__(p=5, hidden=4, heads=2)
            self.token_proj = nn.Linear(2, 4)

        def forward(self, x):
            N = x.shape[0]
            tok = self.token_proj(x).unsqueeze(1) * self.modulation
            Z = torch.cat([tok, self.interp_tokens.unsqueeze(0).expand(N, -1, -1)], dim=1)
            L = Z.shape[1]
            split = lambda t: t.view(N, L, 2, 2).transpose(1, 2)
            Q, K, V = split(self.q_proj(Z)), split(self.k_proj(Z)), split(self.v_proj(Z))
            att = F.softmax(Q @ K.transpose(-2, -1) / (2 ** 0.5), dim=-1)
            return self.out_proj((att @ V).transpose(1, 2).contiguous().view(N, L, 4))[:, 0, 0:1]

    model = TwoIn().eval()
    path = _export(model, tmp_path / "two.onnx", torch.zeros(3, 2))
    imp = import_model(path)
    assert imp.network.n_inputs == 2 and len(imp.network.layers[0].heads) == 2
    beta = imp.network.layers[0].heads[0].beta
    assert beta == 1 / Fraction(float(np.float32(2 ** 0.5)))
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(-1, 0, 3000), rng.uniform(0, 2, 3000)])
    with torch.no_grad():
        y32 = model(torch.from_numpy(X.astype(np.float32)))[:, 0].numpy()
    assert np.max(np.abs(forward_float(imp.network, X)[:, 0] - y32)) < 1e-5
    net = tmp_path / "net.json"
    save(document(imp), net)
    y = forward_float(imp.network, X)[:, 0]
    eps = float(np.max(np.abs(y - 0.0))) * 1.2 + 0.05
    code, out, err = _cli(["certify", net, "--set", "f=0", "--domain", "x0=-1:0,x1=0:2", "--eps", f"{eps:.6f}",
                           "-o", tmp_path / "c.json"], capsys)
    assert code == 0, out + err
    doc = load(tmp_path / "c.json")
    assert doc["domain"] == [["-1", "0"], ["0", "2"]]
    assert _cli(["check", tmp_path / "c.json"], capsys)[0] == 0


# ------------------------------------------------------------------------------------------ round trip

@pytest.mark.parametrize("fmt", ["onnx", "torch", "safetensors"])
@pytest.mark.parametrize("cert", LIBRARY, ids=[p.name.removesuffix(".json") for p in LIBRARY])
def test_export_then_import_gives_the_same_network(cert, fmt):
    import importlib
    doc = load(cert)
    data = importlib.import_module(f"certificates.export.{fmt}_export").to_bytes(doc)
    imp = import_bytes(data, f"model.{fmt}")
    assert imp.network.weights_hash() == doc["construction"]["weights_sha256"]


def test_import_of_an_imported_certificate_exports_and_imports_back(trained, tmp_path, capsys):
    """Imported -> certified -> exported (safetensors, ONNX) -> imported: the same weights again."""
    model, path, folder = trained
    imp = import_model(path)
    c = build_imported(document(imp), CLAMP, "x0=-2:2")
    import verify
    from certificates.confirm import confirmed_document
    res = verify.certify(c, "3", progress=False)
    cert = tmp_path / "c.json"
    save(confirmed_document(c, res), cert)
    for fmt, ext in (("safetensors", "safetensors"), ("onnx", "onnx"), ("torch", "pt")):
        out = tmp_path / f"back.{ext}"
        code, o, err = _cli(["export", cert, "--to", fmt, "-o", out], capsys)
        assert code == 0, o + err
        assert import_model(out).network.weights_hash() == imp.network.weights_hash()
    code, o, err = _cli(["plot", cert, "-o", tmp_path / "c.png"], capsys)
    assert code == 0 or "matplotlib" in err


# ------------------------------------------------------------------------------------------ state_dict + wiring

class MHAModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 8)
        self.anchors = nn.Parameter(torch.randn(6, 8))
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        Z = torch.cat([self.embed(x).unsqueeze(1), self.anchors.unsqueeze(0).expand(x.shape[0], -1, -1)], 1)
        y, _ = self.mha(Z[:, :1], Z, Z, need_weights=False)
        return self.head(y[:, 0])


WIRING = {"inputs": 2, "tokens": [{"linear": "embed"}, {"param": "anchors"}],
          "layers": [{"attention": "mha", "type": "mha", "heads": 2, "query_rows": [0]}],
          "output": {"linear": "head"}}


@pytest.mark.parametrize("how", ["pt", "safetensors", "onnx"])
def test_multihead_attention_state_dict_with_wiring_and_onnx(how, tmp_path, capsys):
    torch.manual_seed(1)
    model = MHAModel().eval()
    X = np.random.default_rng(2).uniform(-1, 1, (2000, 2))
    m64 = MHAModel().double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        ref = m64(torch.from_numpy(X))[:, 0].numpy()
    wiring = tmp_path / "wiring.json"
    wiring.write_text(json.dumps(WIRING))
    if how == "pt":
        path = tmp_path / "m.pt"
        torch.save(model.state_dict(), path)
    elif how == "safetensors":
        from safetensors.torch import save_file
        path = tmp_path / "m.safetensors"
        save_file(model.state_dict(), str(path))
    else:
        path = _export(model, tmp_path / "m.onnx", torch.zeros(3, 2))
    argv = ["import", path, "-o", tmp_path / "net.json"] + ([] if how == "onnx" else ["--wiring", wiring])
    code, out, err = _cli(argv, capsys)
    assert code == 0, err
    from constructions.imported import load_network_document
    from constructions.network import Network
    net = Network.from_json(load_network_document(tmp_path / "net.json")["network"])
    tol = 1e-12 if how != "onnx" else 1e-7   # the ONNX graph scales q and k by float32 sqrt constants
    assert np.max(np.abs(forward_float(net, X)[:, 0] - ref)) < tol


def test_state_dict_without_wiring_is_exit_2(tmp_path, capsys):
    torch.save(MHAModel().state_dict(), tmp_path / "m.pt")
    line = _one_line_error(*_cli(["import", tmp_path / "m.pt", "-o", tmp_path / "n.json"], capsys)[::2])
    assert "--wiring" in line


def test_pickled_module_is_refused(tmp_path, capsys):
    torch.save(MHAModel(), tmp_path / "whole.pt")
    line = _one_line_error(*_cli(["import", tmp_path / "whole.pt", "-o", tmp_path / "n.json"], capsys)[::2])
    assert "weights_only" in line


# ------------------------------------------------------------------------------------------ refusals


class WithLayerNorm(UAPShape):
    def __init__(self):
        super().__init__(p=4, hidden=4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        tok = self.norm(self.token_proj(x.unsqueeze(1)))
        Z = torch.cat([tok, self.interp_tokens.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
        att = F.softmax(self.q_proj(Z) @ self.k_proj(Z).transpose(-2, -1), dim=-1)
        return (att @ self.v_proj(Z))[:, 0, 0:1]


class WithGelu(WithLayerNorm):
    def forward(self, x):
        tok = F.gelu(self.token_proj(x.unsqueeze(1)))
        Z = torch.cat([tok, self.interp_tokens.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
        att = F.softmax(self.q_proj(Z) @ self.k_proj(Z).transpose(-2, -1), dim=-1)
        return (att @ self.v_proj(Z))[:, 0, 0:1]


class Squared(WithLayerNorm):
    def forward(self, x):
        tok = self.token_proj((x * x).unsqueeze(1))
        Z = torch.cat([tok, self.interp_tokens.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
        att = F.softmax(self.q_proj(Z) @ self.k_proj(Z).transpose(-2, -1), dim=-1)
        return (att @ self.v_proj(Z))[:, 0, 0:1]


class Tokens(nn.Module):
    """x (N, S): S tokens of width 1, self-attention, the first token's output."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(1, 2), nn.Linear(1, 2), nn.Linear(1, 1)

    def forward(self, x):
        Z = x.unsqueeze(-1)
        att = F.softmax(self.q(Z) @ self.k(Z).transpose(-2, -1), dim=-1)
        return (att @ self.v(Z))[:, 0]


@pytest.mark.parametrize("model, opset, names", [
    (WithLayerNorm(), 17, ("LayerNormalization",)),
    (WithGelu(), 17, ("Erf", "Gelu")),
    (Squared(), None, ("Mul",)),
    (nn.Sequential(nn.Linear(1, 4), nn.Linear(4, 1)), None, ("does not depend on any attention",)),
], ids=["layernorm", "gelu", "not-affine-in-x", "no-softmax"])
def test_unmappable_models_are_exit_2_naming_why(model, opset, names, tmp_path, capsys):
    path = _export(model, tmp_path / "m.onnx", torch.zeros(3, 1), opset=opset)
    line = _one_line_error(*_cli(["import", path, "-o", tmp_path / "n.json"], capsys)[::2])
    assert any(n in line for n in names), line
    assert not (tmp_path / "n.json").exists()


def test_dynamic_shape_is_exit_2_unless_fixed(tmp_path, capsys):
    path = _export(Tokens(), tmp_path / "t.onnx", torch.zeros(2, 3), dynamic={"x": {0: "N", 1: "S"}})
    line = _one_line_error(*_cli(["import", path, "-o", tmp_path / "n.json"], capsys)[::2])
    assert "'S'" in line and "--dim" in line
    code, out, err = _cli(["import", path, "-o", tmp_path / "n.json", "--dim", "S=3"], capsys)
    assert code == 0, err
    net = json.loads((tmp_path / "n.json").read_text())
    assert net["inputs"] == ["x0", "x1", "x2"]


def test_nan_weight_is_exit_2(tmp_path, capsys):
    torch.manual_seed(0)
    model = UAPShape(p=4, hidden=4)
    with torch.no_grad():
        model.k_proj.weight[1, 2] = float("nan")
    path = _export(model, tmp_path / "nan.onnx", torch.zeros(3, 1))
    line = _one_line_error(*_cli(["import", path, "-o", tmp_path / "n.json"], capsys)[::2])
    assert "NaN" in line


def test_corrupt_files_are_exit_2(trained, tmp_path, capsys):
    _, path, _ = trained
    data = path.read_bytes()
    cases = {"truncated.onnx": data[: len(data) // 2], "garbage.onnx": b"\x08" + os.urandom(300),
             "random.bin": b"\x00\x01" + os.urandom(200), "empty.onnx": b"",
             "broken.pt": b"PK\x03\x04" + os.urandom(100)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        _one_line_error(*_cli(["import", tmp_path / name, "-o", tmp_path / "n.json"], capsys)[::2])
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        line = _one_line_error(*_cli(["import", tmp_path / "fifo", "-o", tmp_path / "n.json"], capsys)[::2])
        assert "FIFO" in line


def test_network_file_and_certify_refusals(trained, tmp_path, capsys):
    _, path, _ = trained
    net = tmp_path / "net.json"
    save(document(import_model(path)), net)
    cases = [
        (["--set", f"f={CLAMP}", "--eps", "1"], "--domain"),
        (["--set", f"f={CLAMP}", "--domain", "x0=2:-2", "--eps", "1"], "inverted"),
        (["--set", f"f={CLAMP}", "--domain", "x0=-2:2,x1=0:1", "--eps", "1"], "x1"),
        (["--set", "f=sin(x0);x0", "--domain", "x0=-2:2", "--eps", "1"], "output"),
        (["--set", "p=3", "--set", f"f={CLAMP}", "--domain=-2:2", "--eps", "1"], "only --set f"),
    ]
    for extra, word in cases:
        line = _one_line_error(*_cli(["certify", net] + extra, capsys)[::2])
        assert word in line, line
    doc = json.loads(net.read_text())
    doc["network"]["layers"][0]["heads"][0]["wk"][0][0] = "12345"
    (tmp_path / "edited.json").write_text(json.dumps(doc))
    line = _one_line_error(*_cli(["certify", tmp_path / "edited.json", "--set", f"f={CLAMP}", "--domain=-2:2",
                                  "--eps", "1"], capsys)[::2])
    assert "sha256" in line
    line = _one_line_error(*_cli(["certify", "ramp", "--domain=-2:2", "--eps", "1"], capsys)[::2])
    assert "imported network" in line


def test_audit_detects_an_imported_certificate_whose_weights_changed(trained, tmp_path, capsys):
    _, path, _ = trained
    imp = import_model(path)
    c = build_imported(document(imp), CLAMP, "x0=-2:2")
    import verify
    from certificates.confirm import confirmed_document
    doc = confirmed_document(c, verify.certify(c, "3", progress=False))
    save(doc, tmp_path / "ok.json")
    assert _cli(["audit", tmp_path / "ok.json"], capsys)[0] == 0
    doc["construction"]["params"]["weights_sha256"] = "0" * 64
    doc["sha256"] = digest(doc)
    save(doc, tmp_path / "bad.json")
    code, out, err = _cli(["audit", tmp_path / "bad.json"], capsys)
    assert code == 1 and "DRIFT" in out and "imported model's" in out


def test_import_failure_names_op_and_node():
    e = ImportFailure("why it fails", "LayerNormalization", "/norm/LayerNorm")
    assert str(e) == "cannot import: op LayerNormalization (node '/norm/LayerNorm'): why it fails"


def test_yaml_wiring(tmp_path, capsys):
    yaml = pytest.importorskip("yaml")
    torch.manual_seed(4)
    model = MHAModel().eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(WIRING))
    code, out, err = _cli(["import", tmp_path / "m.pt", "--wiring", tmp_path / "w.yaml", "-o", tmp_path / "n.json"],
                          capsys)
    assert code == 0, err
    same = import_model(tmp_path / "m.pt", wiring=WIRING)
    assert json.loads((tmp_path / "n.json").read_text())["weights_sha256"] == same.network.weights_hash()


def test_attncert_torch_export_whose_mha_weights_were_edited_is_exit_2(tmp_path, capsys):
    import io
    from certificates.export import torch_export
    doc = load(LIBRARY[0])
    ck = torch.load(io.BytesIO(torch_export.to_bytes(doc)), weights_only=True)
    ck["layers"][0]["mha"]["in_proj_weight"][0, 0] += 1.0
    torch.save(ck, tmp_path / "edited.pt")
    line = _one_line_error(*_cli(["import", tmp_path / "edited.pt", "-o", tmp_path / "n.json"], capsys)[::2])
    assert "disagree" in line


@pytest.mark.slow
def test_bench_import_is_within_2x_of_native():
    import subprocess
    import sys
    from export_nets import ROOT
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_import.py"), "--p", "300", "--repeat", "1",
                          "--formats", "onnx,safetensors"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_trained_vs_exact_script_runs(tmp_path):
    import subprocess
    import sys
    from export_nets import ROOT
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "trained_vs_exact.py"), "--tokens", "5",
                          "--steps", "200", "--out", str(tmp_path / "t.md")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "exit 0" in (tmp_path / "t.md").read_text()
