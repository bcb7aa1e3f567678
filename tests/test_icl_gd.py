"""icl-gd: one softmax layer ~ one GD step; quadratic logits; CLI certify/check/refute; soundness."""
import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from certificates.cli.main import main
from constructions.expr import mp_eval
from tests import soundcheck
from verify.search.certify import certify
from verify.forward import forward_float, forward_mp
from verify.enclose.layered import LayeredBounder
from verify.search.sampling import max_error_sampled
from verify.enclose.target import float_eval


def test_logits_are_quadratic_gaussians_over_own_block():
    """At a prompt, token i's softmax over its own anchors is the discrete Gaussian in r_i."""
    c = constructions.build("icl-gd", n=2, p=5)
    w, x1, y1, x2, y2 = (Fraction(1, 3), Fraction(3, 4), Fraction(1, 5), Fraction(5, 8), Fraction(2, 5))
    y = forward_mp(c.network, [w, x1, y1, x2, y2], 50)[0]
    # reference: the same interpolation written out by hand (block leakage is below e^-60)
    notes = c.notes[0]
    rlo = min(a * b for a in (0, Fraction(1, 2)) for b in (Fraction(1, 2), 1)) - Fraction(1, 2)
    rhi = max(a * b for a in (0, Fraction(1, 2)) for b in (Fraction(1, 2), 1))
    assert f"[{rlo}, {rhi}]" in notes
    delta = (rhi - rlo) / 4
    gamma = Fraction(27, 10) / delta ** 2
    ref = mpmath.mpf(0)
    mp = lambda q: mpmath.mpf(q.numerator) / q.denominator
    with mpmath.workdps(50):
        for x, yy in ((x1, y1), (x2, y2)):
            r = w * x - yy
            L = [rlo + k * delta for k in range(5)]
            s = [mp(gamma * (2 * Lk * r - Lk * Lk)) for Lk in L]
            m = max(s)
            e = [mpmath.exp(v - m) for v in s]
            ramp = sum(ei * mp(Lk) for ei, Lk in zip(e, L)) / sum(e)
            ref += (mp(w) - mp(x) * ramp / 2) / 2
        assert abs(y - ref) < mpmath.mpf(10) ** -25


@pytest.mark.parametrize("loss", ["squared", "logcosh"])
def test_gd_step_error_small(loss):
    c = constructions.build("icl-gd", loss=loss, p=9)
    err, _, _ = max_error_sampled(c, 100_000)
    assert 0.001 < err < 0.006          # a sharp GD step on the whole prompt box


@pytest.mark.parametrize("loss", ["squared", "logcosh"])
def test_cli_certify_check_refute(tmp_path, capsys, loss):
    out = tmp_path / "c.json"
    base = ["icl-gd", "--set", "p=5", "--set", f"loss={loss}"]
    assert main(["certify"] + base + ["--eps", "0.3", "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["domain"]) == 5 and doc["construction"]["network"]["readout_linear"]
    capsys.readouterr()
    assert main(["certify"] + base + ["--eps", "0.004", "--format", "json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "REFUTED" and info["witness_lower_bound"] > 0.004


def test_narrow_boxes_are_tight_and_dominate_mp_samples():
    """On narrow boxes the bound is within 3x of the error and above every 40-digit sample."""
    c = constructions.build("icl-gd", loss="logcosh", p=5)
    b = LayeredBounder(c)
    rng = np.random.default_rng(3)
    lo = np.array([float(a) for a, _ in c.domain])
    wid = np.array([float(h - a) for a, h in c.domain])
    side = 2.0 ** -12
    X = lo + rng.random((40, 5)) * wid * (1 - side)
    bounds, _ = b.error_bounds(X, X + wid * side)
    with mpmath.workdps(40):
        for x0, bd in zip(X, bounds):
            errs = []
            for t in (0.0, 0.5, 1.0):
                pt = [Fraction(v) + Fraction(t) * Fraction(wv * side) for v, wv in zip(x0, wid)]
                y = forward_mp(c.network, pt, 40)[0]
                f = mp_eval(c.target[0], {f"x{i}": v for i, v in enumerate(pt)})
                errs.append(abs(y - f))
            assert max(errs) <= mpmath.mpf(bd)
            assert bd < 3 * float(max(errs)) + 1e-3


def test_certified_boxes_dominate_float_samples():
    c = constructions.build("icl-gd", p=5)
    res = certify(c, "0.3", progress=False)
    assert res.status == "CERTIFIED"
    soundcheck.check_float(c, res, per_dim=3)


@pytest.mark.parametrize("argv,needle", [
    (["certify", "icl-gd", "--set", "n=5", "--eps", "0.1"], "n must"),
    (["certify", "icl-gd", "--set", "loss=hinge", "--eps", "0.1"], "loss"),
    (["certify", "icl-gd", "--set", "xlo=1", "--eps", "0.1"], "inverted"),
])
def test_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err


def _trees():
    c = constructions.build("icl-gd", loss="logcosh")
    yield c.target[0]
    yield ("sub", ("add", ("var", "x0"), ("mul", ("num", Fraction(2, 3)), ("var", "x1"))),
           ("neg", ("mul", ("sin", ("var", "x0")), ("num", Fraction(-5)))))
    yield ("neg", ("add", ("var", "x2"), ("mul", ("var", "x1"), ("var", "x0")), ("num", Fraction(1, 7))))


@pytest.mark.parametrize("tree", list(_trees()))
def test_linear_split_is_an_identity_and_checker_agrees(tree):
    from certificates.check.layered import split_linear_json
    from constructions.expr import to_json
    from verify.enclose.linear_split import split_linear
    coef, rest = split_linear(tree)
    jcoef, jrest = split_linear_json(to_json(tree))
    assert {k: Fraction(int(v.p), int(v.q)) for k, v in jcoef.items()} == coef
    assert (jrest is None) == (rest is None) and (rest is None or to_json(rest) == jrest)
    rng = np.random.default_rng(0)
    with mpmath.workdps(40):
        for _ in range(5):
            pt = {f"x{i}": Fraction(int(rng.integers(-99, 99)), 37) for i in range(5)}
            lin = sum(a * pt[v] for v, a in coef.items())
            lhs = mp_eval(tree, pt)
            rhs = mpmath.mpf(lin.numerator) / lin.denominator + (0 if rest is None else mp_eval(rest, pt))
            assert abs(lhs - rhs) < mpmath.mpf(10) ** -30


def test_linear_cancellation_only_when_it_matches():
    """A target whose w coefficient differs (2w instead of w) must not certify near the GD error."""
    import dataclasses
    c = constructions.build("icl-gd", p=5)
    t = c.target[0]
    bad = dataclasses.replace(c, target=(("sub", ("mul", ("num", Fraction(2)), ("var", "x0")), t[2]),))
    res = certify(bad, "0.1", progress=False, max_boxes=50_000)
    assert res.status == "REFUTED" and res.witness_lower > 0.1   # |N - f| ~ w reaches 1/2
    res = certify(bad, "0.6", progress=False)
    assert res.status == "CERTIFIED"
    soundcheck.check_float(bad, res, per_dim=3)


def test_d2_network_is_the_gd_step_at_40_digits():
    """d = 2 (w, x_i in R^2), n = 3: each output is w_c - (eta/n) sum_i r_i x_ic up to the ramp error
    of the anchor interpolation (well below Delta), at random prompts, in 40-digit arithmetic."""
    c = constructions.build("icl-gd", d=2, n=3)
    assert len(c.domain) == 2 + 3 * 3 and len(c.target) == 2
    assert dict(c.params)["d"] == 2
    rng = np.random.default_rng(5)
    with mpmath.workdps(40):
        for _ in range(4):
            pt = [a + (b - a) * Fraction(int(rng.integers(0, 33)), 32) for a, b in c.domain]
            ys = forward_mp(c.network, pt, 40)
            w = pt[:2]
            for o in range(2):
                step = w[o]
                for i in range(3):
                    x, y = pt[2 + 3 * i: 4 + 3 * i], pt[4 + 3 * i]
                    step -= Fraction(1, 2) / 3 * (w[0] * x[0] + w[1] * x[1] - y) * x[o]
                assert abs(ys[o] - mpmath.mpf(step.numerator) / step.denominator) < 0.01
                env = {f"x{k}": mpmath.mpf(v.numerator) / v.denominator for k, v in enumerate(pt)}
                assert abs(mp_eval(c.target[o], env) - mpmath.mpf(step.numerator) / step.denominator) < 1e-30


def test_d1_is_unchanged_by_the_d_parameter():
    """d = 1 (the default) builds the very network, target and params it did before d existed."""
    c = constructions.build("icl-gd")
    assert "d" not in dict(c.params) and len(c.domain) == 5 and len(c.target) == 1
    assert c.network.readout == ((0, 0), (1, 0))


def test_d2_certify_and_check(tmp_path):
    out = tmp_path / "d2.json"
    assert main(["certify", "icl-gd", "--set", "d=2", "--set", "p=5", "--eps", "0.6", "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["domain"]) == 8 and len(doc["target"]) == 2


def test_bad_d(capsys):
    assert main(["certify", "icl-gd", "--set", "d=5", "--eps", "0.1"]) == 2
    assert "d must" in capsys.readouterr().err


def test_d2_n3_eleven_inputs_certify_and_check(tmp_path):
    """d = 2, n = 3 has 11 inputs: the paving's tree names dimension 10 "a" (it once crashed)."""
    out = tmp_path / "d2n3.json"
    assert main(["certify", "icl-gd", "--method", "paving", "--set", "d=2", "--set", "n=3", "--set", "p=5",
                 "--eps", "0.6", "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["domain"]) == 11 and "a" in doc["evidence"]["tree"]
