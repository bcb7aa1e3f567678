"""Certify/refute the ramp against independent dense evaluations (acceptance 2-4)."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from tests.conftest import dense_sup_error
from verify.search.certify import certify
from verify.forward import forward_mp


def mp_error(c, x, dps=40):
    with mpmath.workdps(dps):
        y = forward_mp(c.network, [x], dps)[0]
        a, b = Fraction(c.param_dict()["a"]), Fraction(c.param_dict()["b"])
        f = min(max(x, a), b)
        return abs(y - mpmath.mpf(f.numerator) / f.denominator)


def test_acceptance_certifies_and_reports(ramp41):
    res = certify(ramp41, "0.02", progress=False)
    assert res.status == "CERTIFIED"
    assert res.observed <= res.max_bound < 0.02
    sup, _ = dense_sup_error(ramp41)
    assert sup <= res.max_bound


def test_below_true_sup_is_refuted_with_proved_witness(ramp41):
    sup, xstar = dense_sup_error(ramp41)
    res = certify(ramp41, repr(sup * 0.98), progress=False)
    assert res.status == "REFUTED"
    assert res.witness_lower > sup * 0.98
    # the witness is re-checked independently in 40-digit mpmath
    assert mp_error(ramp41, res.witness[0]) > mpmath.mpf(repr(sup * 0.98))


@pytest.mark.parametrize("p,kappa", [(41, 8), (9, "27/10"), (17, 1), (5, "1/2")])
def test_tight_at_1_02_times_true_sup(p, kappa):
    """Certify succeeds at 1.02 x the true sup error (found by an independent dense sample)."""
    c = constructions.build("ramp", p=p, kappa=kappa)
    sup, xstar = dense_sup_error(c)
    # the dense float sample is an estimate: confirm it at high precision
    assert abs(float(mp_error(c, Fraction(xstar))) - sup) < 1e-12
    res = certify(c, repr(sup * 1.02), progress=False)
    assert res.status == "CERTIFIED", res.reason
    assert sup <= res.max_bound < sup * 1.02


@pytest.mark.parametrize("p,kappa", [(41, 8), (9, "27/10")])
def test_never_certifies_below_true_sup(p, kappa):
    c = constructions.build("ramp", p=p, kappa=kappa)
    sup, _ = dense_sup_error(c)
    for f in (0.999, 0.9, 0.5):
        res = certify(c, repr(sup * f), progress=False)
        assert res.status != "CERTIFIED"


def test_budget_gives_unknown(ramp41):
    res = certify(ramp41, "0.0135", max_boxes=50, progress=False)
    assert res.status == "UNKNOWN"
    assert res.max_bound >= 0.0135 and "budget" in res.reason
