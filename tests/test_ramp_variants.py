"""ramp-seq and ramp-multihead: exact structure, CLI certify/check/refute, box soundness."""
import json
from fractions import Fraction

import numpy as np
import pytest

import constructions
from certificates.cli.main import main
from tests import soundcheck
from verify.search.certify import certify
from verify.forward import forward_float, forward_mp
from verify.enclose.linearize import affine_form
from verify.search.sampling import max_error_sampled

SEQ = ["ramp-seq", "--set", "p=9"]
MH = ["ramp-multihead"]


def test_multihead_logits_are_shifted_gaussians():
    """Head h's logit is gamma((x-L_h0)^2 - (x-L_hj)^2) exactly, anchors on [a_h, b_h]."""
    c = constructions.build("ramp-multihead", n=5, H=3, kappa=2)
    a, b, n, H = Fraction(-1), Fraction(1), 5, 3
    dH = (b - a) / (H * (n - 1))
    gamma = 2 / dH ** 2
    heads, = affine_form(c.network)
    assert len(heads) == H
    for h, head in enumerate(heads):
        L = [a + h * (b - a) / H + j * dH for j in range(n)]
        for j in range(n):
            assert head.c[j] == -gamma * (L[j] ** 2 - L[0] ** 2)
            assert head.G[j] == (2 * gamma * (L[j] - L[0]),)
            assert head.e[j] == L[j] - L[0] + a / H and head.F[j] == (0,)


def test_multihead_float_mp_agree_and_telescoping():
    c = constructions.build("ramp-multihead", n=6, H=4, kappa=30)
    xs = ["-2", "-1", "-1/3", "0", "2/7", "1", "3/2"]
    yf = forward_float(c.network, np.array([[float(Fraction(x))] for x in xs]))[:, 0]
    ym = [float(forward_mp(c.network, [Fraction(x)], 40)[0]) for x in xs]
    assert np.allclose(yf, ym, rtol=0, atol=1e-13)
    # large kappa: a staircase over all H*n anchors, error just under Delta_H/2 = 2/(4*5)/2
    err, _, _ = max_error_sampled(c, 20001)
    assert 0.04 < err <= 0.05


def test_seq_tokens_are_independent():
    """Token i's output depends on x_i only and equals the 1-D ramp at w_i x_i + t_i."""
    c = constructions.build("ramp-seq", n=2, p=9, kappa=8, w="1,2", t="0,-1/2")
    r = constructions.build("ramp", p=9, kappa=8, lo=-3, hi=3)
    X = np.array([[0.3, -0.7], [0.3, 0.9], [-1.0, 0.25]])
    y = forward_float(c.network, X)
    y0 = forward_float(r.network, X[:, :1])[:, 0]
    y1 = forward_float(r.network, (2 * X[:, 1:] - 0.5))[:, 0]
    assert np.allclose(y[:, 0], y0, atol=1e-14) and np.allclose(y[:, 1], y1, atol=1e-14)


@pytest.mark.parametrize("argv,eps,bad", [(SEQ, "0.1", "0.066"), (MH, "0.02", "0.0165")])
def test_cli_certify_check_refute(tmp_path, capsys, argv, eps, bad):
    out = tmp_path / "c.json"
    assert main(["certify"] + argv + ["--eps", eps, "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    capsys.readouterr()
    assert main(["certify"] + argv + ["--eps", bad, "--format", "json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "REFUTED" and info["witness_lower_bound"] > float(bad)


@pytest.mark.parametrize("argv,needle", [
    (["certify", "ramp-seq", "--set", "w=1", "--eps", "0.1"], "expected 2"),
    (["certify", "ramp-seq", "--set", "w=1,0", "--eps", "0.1"], "nonzero"),
    (["certify", "ramp-multihead", "--set", "H=0", "--eps", "0.1"], "H must"),
    (["certify", "ramp-multihead", "--set", "n=1", "--eps", "0.1"], "at least 2"),
])
def test_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err


@pytest.mark.parametrize("name,params,ratio", [
    ("ramp-seq", dict(n=2, p=5, kappa="27/10", w="3/2,-1", t="1/4,0"), 1.9),
    ("ramp-multihead", dict(n=4, H=3, kappa="27/10"), 1.1),
    ("ramp-multihead", dict(n=7, H=5, kappa=1, a="-1/2", b=2, lo=-1, hi=3), 1.1),
])
def test_boxes_dominate_samples(name, params, ratio):
    """eps a little above the sampled sup, so the boxes are tight where it matters."""
    c = constructions.build(name, **params)
    sup, _, _ = max_error_sampled(c, 40_000)
    res = certify(c, repr(sup * ratio), progress=False)
    assert res.status == "CERTIFIED", res.reason
    sampled, bound = soundcheck.check_float(c, res, per_dim=9 if len(c.domain) == 1 else 5)
    assert sampled > 0.5 * bound  # the bounds are not vacuous (bound/sampled < 2)
    soundcheck.check_mp(c, res)


@pytest.mark.parametrize("n,H,kappa", [(2, 3, "1"), (5, 4, "27/10"), (9, 2, "8"), (4, 8, "1/2"), (3, 1, "20")])
def test_multihead_apriori_bound_holds_on_dense_sample(n, H, kappa):
    c = constructions.build("ramp-multihead", n=n, H=H, kappa=kappa, lo=-3, hi=3)
    err, _, _ = max_error_sampled(c, 200_001)
    assert err <= c.apriori_float()


# ---- issue 15 item 12: an UNKNOWN never reports a largest bound of 0 ----

def test_analytic_unknown_reports_the_real_best_bound(capsys):
    """`certify ramp --set p=5 --set kappa=1/2 --method analytic --eps 0.39` printed a largest bound of 0:
    no cell's closed form is below eps, so no piece was kept.  Every cell is still bounded (its z3
    lemmas proved), and the largest of those bounds is reported."""
    args = ["certify", "ramp", "--set", "p=5", "--set", "kappa=1/2", "--method", "analytic", "--eps", "0.39"]
    assert main(args + ["--format", "json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "UNKNOWN" and info["max_bound"] >= 0.39 and np.isfinite(info["max_bound"])
    assert info["max_bound"] >= info["observed_error"] > 0
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "largest proved bound" in out and "largest proved bound 0," not in out and "--method auto" in out


def test_analytic_unknown_with_unreached_cells_reports_inf():
    """A paving fallback that gives up leaves cells never bounded: their bound is unknown, so inf."""
    from verify.analytic.certify import certify_analytic
    c = constructions.build("ramp", p=41, kappa=8)
    res = certify_analytic(c, "0.0136", method="auto", max_boxes=20)
    assert res.status == "UNKNOWN" and res.max_bound == float("inf") and "not reached" in res.reason


def test_a_method_that_cannot_handle_the_construction_names_the_one_that_can(capsys):
    assert main(["certify", "ramp-seq", "--method", "analytic", "--eps", "0.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--method analytic handles" in err and "use --method paving" in err
    assert main(["certify", "relu-net", "--method", "analytic", "--eps", "0.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--method analytic handles" in err and "use --method paving" in err
