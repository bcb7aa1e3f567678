"""One paving per group of outputs (issue 15 item 11): ramp-seq with n tokens certifies near its
sampled sup, the checker checks each group's paving, and forged group evidence is rejected."""
import copy
import json
from fractions import Fraction

import numpy as np
import pytest

import constructions
import soundcheck
from certificates.check.core import Invalid
from certificates.check.document import check_doc
from certificates.cli.main import main
from certificates.model import certificate_doc, digest
from verify.enclose.target import float_eval
from verify.forward import forward_float
from verify.search.certify import certify
from verify.search.outputs import output_groups

W, T = "100,-1/3,7,2,-5,1,3/2,-1", "0,50,-1,1/2,0,-1/3,1/4,0"


def ramp_seq(n):
    ws, ts = ",".join(W.split(",")[:n]), ",".join(T.split(",")[:n])
    return constructions.build("ramp-seq", n=n, p=17, kappa=5, w=ws, t=ts)


def sampled_sup(c, points=200_001):
    """Dense sup of max_o |N_o - f_o|: output o depends on x_o only, so the diagonal x_0 = ... = x_{n-1}
    runs every output over its whole interval."""
    xs = np.linspace(-1, 1, points)
    X = np.repeat(xs[:, None], len(c.domain), axis=1)
    y = forward_float(c.network, X, np)
    f = np.stack([float_eval(t, {f"x{i}": X[:, i] for i in range(X.shape[1])}, np) for t in c.target], axis=1)
    return float(np.max(np.abs(y - f)))


def reseal(doc):
    doc = copy.deepcopy(doc)
    doc.pop("sha256", None)
    doc["sha256"] = digest(doc)
    return doc


def test_groups_are_the_components_of_shared_inputs():
    dep = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=bool)
    assert output_groups(dep) == [[0], [1, 2], [3], [4]]
    assert output_groups(np.ones((3, 2), dtype=bool)) == [[0, 1, 2]]


@pytest.fixture(scope="module")
def cert4():
    c = ramp_seq(4)
    sup = sampled_sup(c)
    eps = Fraction(sup * 1.05).limit_denominator(10 ** 6)
    r = certify(c, eps, progress=False)
    return c, sup, r, json.loads(json.dumps(certificate_doc(c, r)))


@pytest.mark.parametrize("n", [3, 4])
def test_ramp_seq_certifies_at_1_05_times_the_sampled_sup(n, cert4):
    c, sup, r, doc = cert4 if n == 4 else (None, None, None, None)
    if n == 3:   # the parameters
        c = ramp_seq(3)
        sup = sampled_sup(c)
        r = certify(c, Fraction(sup * 1.05).limit_denominator(10 ** 6), progress=False)
        doc = json.loads(json.dumps(certificate_doc(c, r)))
    assert r.status == "CERTIFIED", r.reason
    assert 0.95 * sup <= r.observed <= r.max_bound < 1.05 * sup
    assert doc["evidence"]["method"] == "outputs"
    assert [g["outputs"] for g in doc["evidence"]["groups"]] == [[o] for o in range(n)]
    rep = check_doc(doc)
    assert rep.ok and rep.details["groups"] == n and rep.boxes == len(r.leaves)
    # each group's boxes bound its own output: dense float and 40-digit samples stay below them
    soundcheck.check_float(c, r, per_dim=3)
    soundcheck.check_mp(c, r, top=3, per_dim=2)


@pytest.mark.slow
def test_ramp_seq_eight_tokens():
    c = ramp_seq(8)
    sup = sampled_sup(c)
    r = certify(c, Fraction(sup * 1.05).limit_denominator(10 ** 6), progress=False)
    assert r.status == "CERTIFIED", r.reason
    assert check_doc(json.loads(json.dumps(certificate_doc(c, r)))).ok


def _forged(doc, how):
    doc = copy.deepcopy(doc)
    groups = doc["evidence"]["groups"]
    if how == "drop a group":
        del groups[-1]
    elif how == "name an output twice":
        groups[1]["outputs"] = [0]
    elif how == "swap the outputs of two groups":
        groups[0]["outputs"], groups[1]["outputs"] = groups[1]["outputs"], groups[0]["outputs"]
    elif how == "lower a bound":
        groups[2]["bounds"][0] = "0"
    elif how == "drop a box":   # group 0 (w = 100) needs many boxes; one box over the domain is too coarse
        groups[0]["tree"] = "L"
        groups[0]["bounds"], groups[0]["hints"] = groups[0]["bounds"][:1], groups[0]["hints"][:1]
    elif how == "no groups":
        doc["evidence"]["groups"] = []
    return reseal(doc)


@pytest.mark.parametrize("how", ["drop a group", "name an output twice", "swap the outputs of two groups",
                                 "lower a bound", "drop a box", "no groups"])
def test_forged_group_evidence_is_rejected(how, cert4):
    _, _, _, doc = cert4
    with pytest.raises(Invalid):
        check_doc(_forged(doc, how))


def test_cli_certify_and_check_a_grouped_certificate(tmp_path, capsys):
    out = tmp_path / "rs3.json"
    rc = main(["certify", "ramp-seq", "--set", "n=3", "--set", "p=17", "--set", "kappa=5",
               "--set", "w=100,-1/3,7", "--set", "t=0,50,-1", "--eps", "0.0239", "-o", str(out)])
    assert rc == 0, capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    assert main(["plot", str(out), "-o", str(tmp_path / "rs3.png")]) == 0
    assert not list(tmp_path.glob("*.partial*"))     # no checkpoint of any group is left behind
    # the joint paving stays available and agrees
    c = ramp_seq(3)
    joint = certify(c, "0.05", progress=False, outputs="joint")
    grouped = certify(c, "0.05", progress=False)
    assert joint.status == grouped.status == "CERTIFIED" and not joint.groups
    assert len(grouped.leaves) < len(joint.leaves)


def test_an_interrupted_grouped_run_resumes_to_the_same_evidence(tmp_path, monkeypatch):
    from verify.search import certify as search
    from verify.search.certify import CertifyInterrupted
    from verify.search.outputs import checkpoint_files
    c, ckpt = ramp_seq(3), str(tmp_path / "c.partial")
    real, calls = search.run_units, {"n": 0}

    def flaky(job, units, executor=None):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt()
        return real(job, units, executor)
    monkeypatch.setattr(search, "run_units", flaky)
    with pytest.raises(CertifyInterrupted) as e:
        certify(c, "0.03", progress=False, checkpoint=ckpt, checkpoint_every=1e9)
    assert e.value.checkpoint == ckpt and checkpoint_files(ckpt)
    monkeypatch.setattr(search, "run_units", real)
    resumed = certify(c, "0.03", progress=False, checkpoint=ckpt, resume=True)
    fresh = certify(c, "0.03", progress=False)
    assert resumed.status == fresh.status == "CERTIFIED"
    assert certificate_doc(c, resumed)["evidence"] == certificate_doc(c, fresh)["evidence"]
    assert not checkpoint_files(ckpt)
