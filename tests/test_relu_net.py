"""relu-net: both variants certify from the CLI with the chain of terms; refutation; box soundness."""
import json
from fractions import Fraction

import numpy as np
import pytest

import constructions
from certificates.check.document import Invalid, check_doc
from certificates.cli.main import main
from certificates.model import certificate_doc, digest
from constructions.expr import mp_eval
from tests import soundcheck
from verify.search.certify import certify
from verify.forward import forward_float, forward_mp
from verify.search.sampling import max_error_sampled
from verify.enclose.target import float_eval

ACCEPT = ["relu-net", "--set", "f=sin(3*x0)", "--set", "lo=-1", "--set", "hi=2"]


@pytest.mark.parametrize("variant", [1, 2])
def test_acceptance_certify_and_chain_in_check_json(tmp_path, capsys, variant):
    out = tmp_path / "c.json"
    assert main(["certify"] + ACCEPT + ["--set", f"variant={variant}", "--eps", "0.05", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["check", "--format", "json", str(out)]) == 0
    rep, = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["checked_max_bound"] < 0.05
    term, = rep["chain"]
    # |f - g| is at least the true interpolation error (sin(3x) on h = 1/8: about 0.0175)
    assert 0.017 < term["f_minus_g"] and 0 < term["g_minus_network"]
    doc = json.loads(out.read_text())
    assert doc["construction"]["network"].get("final_softmax", False) is (variant == 1)
    assert len(doc["construction"]["network"]["layers"]) == variant


def test_variants_compute_the_same_function():
    """Both networks realise F_0 + sum_u s_u ramp_u(x); they agree to float precision."""
    c1 = constructions.build("relu-net", variant=1, units=6, n=5)
    c2 = constructions.build("relu-net", variant=2, units=6, n=5)
    X = np.linspace(-1, 2, 101)[:, None]
    y1 = forward_float(c1.network, X)[:, 0]
    y2 = forward_float(c2.network, X)[:, 0]
    assert np.allclose(y1, y2, atol=1e-12)
    for x in ["-1", "1/3", "7/5"]:
        m1 = forward_mp(c1.network, [Fraction(x)], 40)[0]
        m2 = forward_mp(c2.network, [Fraction(x)], 40)[0]
        assert abs(m1 - m2) < 1e-30


def test_interpolant_nodes_are_recorded_and_exact():
    c = constructions.build("relu-net", f="exp(x0)", lo=0, hi=1, units=4)
    _, g = c.chain[0]
    for u in range(5):
        z = Fraction(u, 4)
        gz = mp_eval(g, {"x0": z})
        assert abs(gz - mp_eval(("exp", ("var", "x0")), {"x0": z})) <= 2.0 ** -40
    assert "2^-40" in c.notes[1]


@pytest.mark.parametrize("variant", [1, 2])
def test_refuted_below_the_sup(capsys, variant):
    c = constructions.build("relu-net", variant=variant, units=8, n=5)
    sup, _, _ = max_error_sampled(c, 50_001)
    argv = ["certify", "relu-net", "--set", f"variant={variant}", "--set", "units=8", "--set", "n=5",
            "--eps", repr(sup * 0.97), "--format", "json"]
    assert main(argv) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "REFUTED" and info["witness_lower_bound"] > sup * 0.97


@pytest.mark.parametrize("variant,params", [
    (1, dict(f="sin(3*x0)", lo=-1, hi=2, units=10, n=5, kappa="27/10")),
    (2, dict(f="sin(3*x0)", lo=-1, hi=2, units=10, n=5, kappa="27/10")),
    (2, dict(f="x0^2 - tanh(2*x0)", lo=-1, hi=1, units=6, n=4, kappa=3)),
])
def test_boxes_dominate_samples(variant, params):
    c = constructions.build("relu-net", variant=variant, **params)
    sup, _, _ = max_error_sampled(c, 40_000)
    res = certify(c, repr(sup * 1.1), progress=False)
    assert res.status == "CERTIFIED", res.reason
    sampled, bound = soundcheck.check_float(c, res)
    assert sampled > 0.7 * bound
    soundcheck.check_mp(c, res, top=4)


def test_tampered_layered_certificate_rejected():
    c = constructions.build("relu-net", variant=2, units=6, n=4)
    res = certify(c, "0.3", progress=False)
    doc = certificate_doc(c, res)
    check_doc(doc)
    bad = json.loads(json.dumps(doc))
    bad["result"]["chain"][0]["g_minus_network"] = "0"
    bad["sha256"] = digest(bad)
    with pytest.raises(Invalid, match="g_minus_network"):
        check_doc(bad)
    bad = json.loads(json.dumps(doc))
    bad["evidence"]["bounds"][0] = "0"
    bad["sha256"] = digest(bad)
    with pytest.raises(Invalid):
        check_doc(bad)
    bad = json.loads(json.dumps(doc))
    bad["evidence"]["hints"][0] = bad["evidence"]["hints"][0][:-1]
    bad["sha256"] = digest(bad)
    with pytest.raises(Invalid, match="hints"):
        check_doc(bad)


@pytest.mark.parametrize("argv,needle", [
    (["certify", "relu-net", "--set", "variant=3", "--eps", "0.1"], "variant"),
    (["certify", "relu-net", "--set", "f=sin(x1)", "--eps", "0.1"], "x0 only"),
    (["certify", "relu-net", "--set", "f=log(x0)", "--eps", "0.1"], "not finite"),
    (["certify", "relu-net", "--set", "f=__import__('os')", "--eps", "0.1"], "f:"),
])
def test_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err


def test_one_layer_json_unchanged_and_new_fields_only_when_used():
    """Additive model: a plain network emits none of the new keys, so its hash is unchanged."""
    r = constructions.build("ramp", p=5)
    doc = r.network.to_json()
    assert set(doc) == {"embedding", "layers", "readout"}
    assert set(doc["layers"][0]) == {"query_rows", "key_rows", "heads"}
    assert r.network.is_plain
    c = constructions.build("relu-net", variant=1, units=3, n=3)
    d = c.network.to_json()
    assert d["final_softmax"] is True and "post" in d["layers"][0] and not c.network.is_plain
