"""The residual route for icl-gd: one 1-D paving of psi - g bounds the prompt network's error.

The bound is compared with 40-digit evaluation of the network and the target at random prompts
and at prompts that put every residual r_i at the 1-D error's peak with every x_i at its largest
(where the bound is attained): a sampled error above the bound is a soundness bug.  Tampered
claims, embedded certificates and weights are rejected by the independent checker.
"""
import copy
import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from certificates.check.core import Invalid, sha
from certificates.check.document import check_doc
from certificates.cli.main import main
from certificates.confirm import confirmed_document
from certificates.model import digest
from constructions.expr import mp_eval
from verify.forward import forward_mp
from verify.search.residual import certify_residual, residual_claim


def _mp_error(c, pt):
    with mpmath.workdps(40):
        ys = forward_mp(c.network, pt, 40)
        env = {f"x{i}": mpmath.mpf(v.numerator) / v.denominator for i, v in enumerate(pt)}
        return max(abs(y - mp_eval(t, env)) for y, t in zip(ys, c.target))


def _prompts(c, claim, r_star, rng, count):
    """Random exact prompts, and prompts with every x_i at its largest |x| and every r_i = r*."""
    dom = c.domain
    pts = []
    for _ in range(count):
        pts.append([a + (b - a) * Fraction(int(rng.integers(0, 257)), 256) for a, b in dom])
    for wfrac in (Fraction(0), Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1)):
        p = [a + (b - a) * wfrac for a, b in dom]
        for i, xs in enumerate(claim["x"]):
            for k in xs:
                a, b = dom[k]
                p[k] = b if abs(b) >= abs(a) else a
            y = claim["y"][i]
            p[y] = sum(p[w] * p[x] for w, x in zip(claim["w"], xs)) - r_star
        if all(a <= v <= b for v, (a, b) in zip(p, dom)):
            pts.append(p)
    return pts


@pytest.mark.parametrize("params", [{}, {"d": 2}, {"d": 2, "n": 3}, {"loss": "logcosh"}, {"n": 1, "p": 5}])
def test_bound_holds_and_is_tight_at_40_digits(params):
    c = constructions.build("icl-gd", **params)
    claim = residual_claim(c)
    r = certify_residual(c, Fraction(1, 10))
    assert r.status == "CERTIFIED"
    sub = r.residual[2]
    # the 1-D error's peak from a dense sample of psi - g
    lo, hi = (float(v) for v in claim["residual"])
    rs = np.linspace(lo, hi, 4001)
    from verify.search.sampling import errors_at
    e1 = np.abs(np.asarray(errors_at(r.residual[1], rs[:, None]))).reshape(-1)
    r_star = Fraction(float(rs[int(np.argmax(e1))]))
    pts = _prompts(c, claim, r_star, np.random.default_rng(3), 40)
    worst = float(max(_mp_error(c, p) for p in pts))
    assert worst <= r.max_bound, (worst, r.max_bound)
    # tight: certify just above the sampled sup
    r2 = certify_residual(c, Fraction(worst * 1.05))
    assert r2.status == "CERTIFIED" and worst <= r2.max_bound <= 1.05 * worst
    assert sub.max_bound < 0.1


@pytest.fixture(scope="module")
def icl_doc():
    c = constructions.build("icl-gd")
    r = certify_residual(c, "0.0079")
    return c, confirmed_document(c, r)


def _resign(doc):
    doc["sha256"] = digest(doc)
    return doc


def _resign_sub(doc):
    sub = doc["evidence"]["certificate"]
    sub["construction"]["weights_sha256"] = sha(sub["construction"]["network"])
    _resign(sub)
    return _resign(doc)


def test_the_certificate_checks_at_twice_the_sampled_error(icl_doc):
    _, doc = icl_doc
    rep = check_doc(json.loads(json.dumps(doc)))
    assert rep.ok and rep.details["method"] == "residual"
    assert rep.checked_max_bound < 0.0079 and float(Fraction(doc["result"]["observed_error"])) > 0.0039


TAMPER = {
    "blocks swapped": lambda d: d["evidence"]["claim"]["blocks"][0].__setitem__(0, d["evidence"]["claim"]["blocks"][1][0]),
    "blocks of the two queries exchanged": lambda d: d["evidence"]["claim"]["blocks"].reverse(),
    "bias of another shape": lambda d: (d["construction"]["network"]["layers"][0]["heads"][0]["bias"].pop(),
                                        d["construction"].__setitem__("weights_sha256", sha(d["construction"]["network"]))),
    "eta": lambda d: d["evidence"]["claim"].__setitem__("eta", "1/3"),
    "loss": lambda d: d["evidence"]["claim"].__setitem__("loss", "logcosh"),
    "w and x swapped": lambda d: d["evidence"]["claim"].update(w=[1], x=[[0], [3]]),
    "residual range narrowed": lambda d: d["evidence"]["claim"]["residual"].__setitem__(1, "1/4"),
    "max_bound lowered": lambda d: d["result"].__setitem__("max_bound", "1/1000"),
    "nested residual": lambda d: d["evidence"]["certificate"]["evidence"].__setitem__("method", "residual"),
}


@pytest.mark.parametrize("name", sorted(TAMPER))
def test_tampered_claims_are_rejected(icl_doc, name):
    _, doc = icl_doc
    bad = copy.deepcopy(doc)
    TAMPER[name](bad)
    with pytest.raises(Invalid):
        check_doc(_resign(bad))


def test_an_embedded_network_that_is_not_the_queries_head_is_rejected(icl_doc):
    _, doc = icl_doc
    bad = copy.deepcopy(doc)
    const = bad["evidence"]["certificate"]["construction"]["network"]["embedding"]["const"]
    const[3][2] = str(Fraction(const[3][2]) + Fraction(1, 64))      # anchor 2's value b_2
    with pytest.raises(Invalid, match="key 2 is not the query's anchor"):
        check_doc(_resign_sub(bad))


def test_a_value_that_is_not_w_plus_b_x_is_rejected(icl_doc):
    _, doc = icl_doc
    bad = copy.deepcopy(doc)
    net = bad["construction"]["network"]
    net["embedding"]["const"][3][3] = "1/1024"    # a constant in anchor (0, 1)'s value column
    bad["construction"]["weights_sha256"] = sha(net)
    with pytest.raises(Invalid, match="value"):
        check_doc(_resign(bad))


def test_a_lowered_embedded_bound_is_rejected(icl_doc):
    _, doc = icl_doc
    bad = copy.deepcopy(doc)
    sub = bad["evidence"]["certificate"]
    sub["evidence"]["bounds"] = ["1/100000"] * len(sub["evidence"]["bounds"])
    sub["result"]["max_bound"] = "1/100000"
    with pytest.raises(Invalid):
        check_doc(_resign_sub(bad))


def test_cli_default_route_and_its_limits(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["certify", "icl-gd", "--eps", "0.0079", "-o", str(out)]) == 0
    assert "residual route" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    assert json.loads(out.read_text())["evidence"]["method"] == "residual"
    # below the sampled error the paving refutes it (the residual route cannot)
    assert main(["certify", "icl-gd", "--eps", "0.002"]) == 1
    # a construction without the structure: one line, exit 2
    assert main(["certify", "ramp", "--eps", "0.1", "--method", "residual"]) == 2
    err = capsys.readouterr().err
    assert "declares no residual structure" in err and err.count("\n") == 1
    # the float64 weights keep the structure (the claim is recomputed from the rounded entries), so
    # the exported weights are the certified ones; with n = 3 the readout's 1/3 is rounded: no claim
    from constructions.float64 import to_float64
    f64 = tmp_path / "g64.json"
    assert main(["certify", "icl-gd", "--float64", "--eps", "0.0079", "-o", str(f64)]) == 0
    assert json.loads(f64.read_text())["evidence"]["method"] == "residual"
    assert main(["export", str(f64), "--to", "torch", "-o", str(tmp_path / "g.pt")]) == 0
    assert residual_claim(to_float64(constructions.build("icl-gd", n=3))) is None
