"""[MAP] max-affine constructions: exact spec, grid certifier, independent grid checker, L_p."""
from __future__ import annotations

import copy
import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from certificates.check.document import Invalid, check_doc
from certificates.model import certificate_doc, digest
from constructions.exact import ParameterError
from constructions.expr import mp_eval
from verify.enclose.affine import AffineBounder
from verify.search.certify import certify
from verify.forward import float_weights, forward_float, forward_mp
from verify.enclose.grid import GridBounder
from verify.enclose.linearize import affine_form
from verify.lp import certify_lp
from verify.search.paving import Domain
from verify.enclose.target import float_eval

F2 = "sin(x0)*cos(2*x1)"


def _resign(doc):
    doc["sha256"] = digest(doc)
    return doc


@pytest.fixture(scope="module")
def c1():
    return constructions.build("max-affine", f="sin(3*x0)", G=32, kappa=3)


@pytest.fixture(scope="module")
def c2():
    return constructions.build("max-affine", f=F2, G=8)


@pytest.fixture(scope="module")
def r1(c1):
    return certify(c1, "0.05", progress=False)


@pytest.fixture(scope="module")
def r2(c2):
    return certify(c2, "0.15", progress=False)


def test_spec_logits_values_and_self_key(c2):
    """Anchor logits are exactly beta(2c.x - |c|^2) + lam, the query token is a key with logit 0."""
    net = c2.network
    layer = net.layers[0]
    assert layer.key_rows[0] == layer.query_rows[0] == 0  # self-attention, no mask
    (head,), = affine_form(net)
    p = dict(c2.params)
    beta, lam, G = p["beta"], p["lam"], p["G"]
    assert head.c[0] == 0 and head.G[0] == (0, 0) and head.e[0] == 0
    cen = [Fraction(-1) + Fraction(2 * k, G - 1) for k in range(G)]
    for j in (1, 2, 9, 64):
        k0, k1 = divmod(j - 1, G)
        c = (cen[k0], cen[k1])
        assert head.G[j] == (2 * beta * c[0], 2 * beta * c[1])
        assert head.c[j] == -beta * (c[0] ** 2 + c[1] ** 2) + lam
        assert head.e[j].denominator <= 2 ** 40
        with mpmath.workdps(30):
            ev = mpmath.mpf(head.e[j].numerator) / head.e[j].denominator
            assert abs(ev - mp_eval(c2.target[0], {"x0": c[0], "x1": c[1]})) <= mpmath.mpf(2) ** -40
    assert lam > 0 and "self-attention" in " ".join(c2.notes)
    assert net.n_tokens == 1 + G * G


def test_float_forward_matches_mpmath(c2):
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (5, 2))
    y = forward_float(c2.network, X)[:, 0]
    for x, yf in zip(X, y):
        ym = forward_mp(c2.network, [Fraction(v) for v in x], 40)[0]
        assert abs(float(ym) - yf) < 1e-12


def test_certify_and_check_1d(c1, r1):
    assert r1.status == "CERTIFIED" and r1.evidence["bounder"] == "grid"
    rep = check_doc(json.loads(json.dumps(certificate_doc(c1, r1))))
    assert rep.ok and rep.checked_max_bound < 0.05
    X = np.linspace(-1, 1, 200_001)
    sup = np.max(np.abs(forward_float(c1.network, X[:, None])[:, 0] - np.sin(3 * X)))
    assert sup <= r1.max_bound < 0.05


def test_certify_and_check_2d(c2, r2):
    assert r2.status == "CERTIFIED"
    assert check_doc(certificate_doc(c2, r2)).ok


def test_certify_and_check_3d():
    c = constructions.build("max-affine", f="x0*x1+x2/2", G=4)
    r = certify(c, "0.3", progress=False)
    assert r.status == "CERTIFIED" and r.evidence["grid"][0]["shape"] == [4, 4, 4]
    assert check_doc(certificate_doc(c, r)).ok


def test_seq2seq_and_cross_attention_certify_and_check():
    s = constructions.build("max-affine-seq", f="sin(x0+x1); x0*x1", G=6)
    assert s.network.n_tokens == 2 * (1 + 36)
    rs = certify(s, "0.2", progress=False)
    assert rs.status == "CERTIFIED" and len(rs.evidence["grid"]) == 2
    assert rs.evidence["grid"][0]["copies"]  # the other position's anchors: a shifted copy
    assert check_doc(certificate_doc(s, rs)).ok
    x = constructions.build("cross-attention", f=F2, G=8)
    assert 0 not in x.network.layers[0].key_rows
    rx = certify(x, "0.15", progress=False)
    assert rx.status == "CERTIFIED" and check_doc(certificate_doc(x, rx)).ok


@pytest.mark.parametrize("name,kw,eps", [("max-affine", dict(f="sin(3*x0)", G=32, kappa=3), "0.01"),
                                         ("max-affine", dict(f=F2, G=8), "0.03")])
def test_eps_below_true_sup_is_refuted(name, kw, eps):
    c = constructions.build(name, **kw)
    r = certify(c, eps, progress=False)
    assert r.status == "REFUTED" and r.witness_lower > float(eps)
    with mpmath.workdps(40):
        y = forward_mp(c.network, list(r.witness), 40)[0]
        f = mp_eval(c.target[0], {n: v for n, v in zip(c.inputs, r.witness)})
        assert abs(y - f) >= r.witness_lower


def test_missing_lambda_gives_error_about_half():
    """lam = 0: the query token's own key wins near x = 0, where f = 1; error ~0.5, not < eps."""
    c = constructions.build("max-affine", f="cos(x0)", G=16, lam="0", centres="cells")
    r = certify(c, "0.05", progress=False)
    assert r.status == "REFUTED" and 0.4 < r.witness_lower and abs(float(r.witness[0])) < 0.2
    r = certify(c, "3/5", progress=False)
    assert r.status == "CERTIFIED" and 0.4 < r.max_bound < 0.6
    ok = certify(constructions.build("max-affine", f="cos(x0)", G=16, centres="cells"), "0.1", progress=False)
    assert ok.status == "CERTIFIED"


def _leaf_points(dom, leaf, rng, extra=6):
    """Corners, face centres, the centre and random points of one leaf (exact rationals)."""
    box = dom.exact_box(leaf.i, leaf.k)
    D = len(box)
    pts = []
    for corner in range(2 ** D):
        pts.append([box[d][(corner >> d) & 1] for d in range(D)])
    mid = [(a + b) / 2 for a, b in box]
    pts.append(mid)
    for d in range(D):
        for side in (0, 1):
            p = list(mid)
            p[d] = box[d][side]
            pts.append(p)
    for _ in range(extra):
        pts.append([a + (b - a) * Fraction(int(rng.integers(0, 2 ** 20)), 2 ** 20) for a, b in box])
    return pts


@pytest.mark.parametrize("which", ["c1", "c2"])
def test_sampled_error_never_exceeds_box_bound(which, request):
    """Dense float64 samples (corners, faces, centres, random) <= bound + 1e-12; mpmath on the tightest."""
    c = request.getfixturevalue(which)
    r = request.getfixturevalue("r1" if which == "c1" else "r2")
    dom = Domain(c.domain)
    rng = np.random.default_rng(7)
    pts, owner = [], []
    for n, leaf in enumerate(r.leaves):
        for p in _leaf_points(dom, leaf, rng):
            pts.append([float(v) for v in p])
            owner.append(n)
    X = np.array(pts)
    err = np.abs(forward_float(c.network, X, np, float_weights(c.network))[:, 0]
                 - float_eval(c.target[0], {f"x{d}": X[:, d] for d in range(X.shape[1])}, np))
    bounds = np.array([l.bound for l in r.leaves])[owner]
    assert np.all(err <= bounds + 1e-12), float(np.max(err - bounds))
    slack = bounds - err
    tight = sorted(set(np.array(owner)[np.argsort(slack)[:40]].tolist()))[:8]
    with mpmath.workdps(40):
        for n in tight:
            for p in _leaf_points(dom, r.leaves[n], rng, extra=2):
                y = forward_mp(c.network, p, 40)[0]
                f = mp_eval(c.target[0], {f"x{d}": v for d, v in enumerate(p)})
                assert abs(y - f) <= mpmath.mpf(r.leaves[n].bound), (p, r.leaves[n].bound)


def test_grid_bounds_sound_and_no_looser_than_general_path(c2):
    rng = np.random.default_rng(11)
    lo = rng.uniform(-1, 0.95, (300, 2))
    hi = lo + rng.uniform(0, 0.05, (300, 2))
    g = GridBounder(c2).error_bounds(lo, hi)[0]
    a = AffineBounder(c2).error_bounds(lo, hi)[0]
    assert np.all(g <= a * (1 + 1e-6) + 1e-12)
    t = rng.uniform(0, 1, (300, 1))
    X = lo + (hi - lo) * t
    e = np.abs(forward_float(c2.network, X)[:, 0] - np.sin(X[:, 0]) * np.cos(2 * X[:, 1]))
    assert np.all(e <= g)


def test_checker_rejects_false_grid_claims(c2, r2):
    doc = certificate_doc(c2, r2)
    bad = copy.deepcopy(doc)
    bad["evidence"]["grid"][0]["shape"] = [4, 16]  # not the grid the weights form
    with pytest.raises(Invalid):
        check_doc(_resign(bad))
    bad = copy.deepcopy(doc)
    bad["evidence"]["grid"][0]["main"] = 0  # would make the self token a grid anchor
    with pytest.raises(Invalid):
        check_doc(_resign(bad))
    bad = copy.deepcopy(doc)
    bad["evidence"]["grid"][0]["window"] = [1, 1]  # sound but too loose: some box exceeds eps
    with pytest.raises(Invalid):
        check_doc(_resign(bad))
    bad = copy.deepcopy(doc)
    bad["evidence"]["bounder"] = "magic"
    with pytest.raises(Invalid):
        check_doc(_resign(bad))


def test_lp_certificate_2d_and_tampering():
    """L2 holds at 0.2 while the sup error is ~0.41 (lam = 0); tampering with norm or p is rejected."""
    c = constructions.build("max-affine", f="cos(x0)*cos(x1)", G=8, lam="0", centres="cells", values="average")
    r = certify_lp(c, "0.2", 2)
    assert r.status == "CERTIFIED" and r.max_bound > 0.4 and r.norm_bound < Fraction(1, 5)
    doc = certificate_doc(c, r)
    assert doc["norm"] == {"kind": "Lp", "p": "2"}
    assert check_doc(doc).ok
    for norm in ({"kind": "Lp", "p": "1"}, {"kind": "Lp", "p": "3"}, {"kind": "Linf"},
                 {"kind": "Lp", "p": "1/2"}, {"kind": "Lp"}):
        bad = copy.deepcopy(doc)
        bad["norm"] = norm
        with pytest.raises(Invalid):
            check_doc(_resign(bad))
    bad = copy.deepcopy(doc)
    bad["result"]["norm_bound"] = "1/10"
    with pytest.raises(Invalid):
        check_doc(_resign(bad))


def test_user_partition_general_path(tmp_path):
    """A user max-affine partition (exact JSON) certifies through the general affine path."""
    cells = [Fraction(-3, 4), Fraction(-1, 4), Fraction(1, 4), Fraction(3, 4)]
    part = {"a": [[str(2 * c)] for c in cells], "b": [str(-c * c) for c in cells],
            "values": [str(c / 2) for c in cells]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(part))
    c = constructions.build("max-affine", f="x0/2", partition=str(path), beta="64", lam="12")
    assert dict(c.meta).get("grid") is None
    r = certify(c, "0.15", progress=False)
    assert r.status == "CERTIFIED" and "bounder" not in r.evidence
    assert check_doc(certificate_doc(c, r)).ok
    path.write_text('{"a": [[0.5]], "b": ["0"], "values": ["1"]}')
    with pytest.raises(ParameterError):
        constructions.build("max-affine", f="x0", partition=str(path))


def test_bad_parameters_are_one_line_errors():
    for kw in (dict(f="sin(x0)*x4"), dict(f="x0", G=-1), dict(f="x0", values="mean"),
               dict(f="x0", B="0"), dict(f="x0", beta="-1")):
        with pytest.raises(ParameterError):
            constructions.build("max-affine", **kw)


@pytest.mark.slow
def test_acceptance_2d_certify_and_check():
    c = constructions.build("max-affine", f="sin(2*x0)*cos(3*x1)", B=1)
    r = certify(c, "0.05", progress=False)
    assert r.status == "CERTIFIED"
    assert check_doc(certificate_doc(c, r)).ok


def test_recipe_apriori_bound_below_eps_and_certifies():
    """G = 0 takes the a-priori recipe; its stored bound is below eps and the certifier agrees."""
    c = constructions.build("max-affine", f="sin(x0)/2", G=0, eps="1/5", centres="cells")
    assert dict(c.params)["G"] == 15 and c.apriori_float() < 0.2
    r = certify(c, "1/5", progress=False)
    assert r.status == "CERTIFIED" and r.max_bound <= c.apriori_float()


def test_tune_beats_recipe_tokens():
    from verify.tune_map import tune
    out = tune("max-affine", {"f": "sin(3*x0)"}, "1/20", time_limit=60)
    assert out is not None and out["result"].status == "CERTIFIED"
    assert out["recipe_tokens"] >= 5 * out["tokens"]
    assert check_doc(certificate_doc(out["construction"], out["result"])).ok


def test_cli_tune_and_certify_lp(tmp_path, capsys):
    from certificates.cli.main import main
    out = tmp_path / "t.json"
    assert main(["tune", "max-affine", "--set", "f=sin(3*x0)", "--eps", "1/20", "-o", str(out),
                 "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["token_ratio"] >= 5 and main(["check", str(out)]) == 0
    capsys.readouterr()
    assert main(["certify-lp", "max-affine", "--set", "f=cos(x0)", "--set", "G=16", "--set", "lam=0",
                 "--set", "centres=cells", "--eps", "1/5", "--p", "2", "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    assert main(["tune", "max-affine", "--set", "f=x0"]) == 2  # the [MAP] branch needs --eps
    assert main(["certify-lp", "max-affine", "--set", "f=x0", "--eps", "-1"]) == 2
    assert main(["certify", "max-affine", "--set", "f=x0+", "--eps", "0.1"]) == 2


SOUND_CASES = [
    ("max-affine-seq", dict(f="sin(x0+x1); x0*x1", G=6), "0.2"),
    ("cross-attention", dict(f="exp(x0)*x1", G=7, kappa="3/2"), "0.5"),
    ("max-affine", dict(f="x0*x1+x2/2", G=4), "0.3"),
    ("max-affine", dict(f="abs(x0)-x1", G=5, kappa="1", lam="3", centres="cells"), "0.6"),
    ("max-affine", dict(f="tanh(4*x0)", G=9, kappa="6", lo="-1/2", hi="3/4"), "0.3"),
]


@pytest.mark.parametrize("name,kw,eps", SOUND_CASES)
def test_sampled_error_never_exceeds_box_bound_variants(name, kw, eps):
    """Every output of seq2seq / cross-attention / 3-D / weak-lambda cases, sampled at corners,
    faces, centres and random points of every leaf, stays below that leaf's proved bound."""
    c = constructions.build(name, **kw)
    r = certify(c, eps, progress=False)
    assert r.status == "CERTIFIED", (r.status, r.max_bound, r.observed)
    dom = Domain(c.domain)
    rng = np.random.default_rng(5)
    pts, owner = [], []
    for n, leaf in enumerate(r.leaves):
        for p in _leaf_points(dom, leaf, rng, extra=2):
            pts.append([float(v) for v in p])
            owner.append(n)
    X = np.array(pts)
    Y = forward_float(c.network, X)
    env = {f"x{d}": X[:, d] for d in range(X.shape[1])}
    err = np.max(np.stack([np.abs(Y[:, o] - float_eval(t, env, np)) for o, t in enumerate(c.target)]), axis=0)
    bounds = np.array([l.bound for l in r.leaves])[owner]
    assert np.all(err <= bounds + 1e-12), float(np.max(err - bounds))


# ---- issue 15 item 10: d_o > 1 has several readouts per query row ----

SEQ_DO2 = dict(f="x0; x1; x0*x1; cos(x0-x1)", d_o=2, G=5)


def test_seq2seq_with_two_outputs_per_token_certifies_and_checks(tmp_path, capsys):
    """`certify max-affine-seq --set d_o=2` used to stop at "grid path: one head per readout and one
    claim per readout" (the metadata holds one claim per query row, the network one readout per
    (row, output)).  Each readout now takes the claim that verifies exactly for its head."""
    from certificates.cli.main import main
    out = tmp_path / "s.json"
    rc = main(["certify", "max-affine-seq", "--set", "f=x0; x1; x0*x1; cos(x0-x1)", "--set", "d_o=2",
               "--set", "G=5", "--eps", "0.2", "-o", str(out)])
    assert rc == 0, capsys.readouterr()
    assert main(["check", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["evidence"]["bounder"] == "grid"
    assert [g["main"] for g in doc["evidence"]["grid"]] == [2, 2, 27, 27]   # readouts (0,0) (0,1) (1,0) (1,1)


def test_a_grid_claim_that_does_not_verify_falls_back_to_the_general_path():
    """No grid claim verifies: the general affine bounder certifies and no grid evidence is written."""
    import dataclasses
    from verify.enclose.bounder import make_bounder
    s = constructions.build("max-affine-seq", **SEQ_DO2)
    meta = dict(s.meta)
    bad = [dict(g, main=g["main"] + 1) for g in meta["grid"]]   # off by one key: never a product grid
    s2 = dataclasses.replace(s, meta=tuple((k, bad if k == "grid" else v) for k, v in s.meta))
    assert isinstance(make_bounder(s2), AffineBounder) and not isinstance(make_bounder(s2), GridBounder)
    r = certify(s2, "0.2", progress=False)
    assert r.status == "CERTIFIED" and r.evidence == {}
    doc = certificate_doc(s2, r)
    assert "grid" not in doc["evidence"] and doc["evidence"].get("bounder", "affine") != "grid"
    assert check_doc(doc).ok
