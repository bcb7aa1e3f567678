"""The ramp spec: exact logits, backends that agree, and the a-priori bound."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy

import constructions
from constructions.base import REGISTRY
from tests.conftest import dense_sup_error
from verify.forward import forward_float, forward_mp
from verify.enclose.linearize import affine_form


def test_logits_are_the_discrete_gaussian(ramp41):
    """logit_k(x) = gamma((x-L0)^2 - (x-L_k)^2), checked exactly in rationals."""
    a, b, p = Fraction(-1), Fraction(1), 41
    delta = (b - a) / (p - 1)
    gamma = Fraction(8) / delta ** 2
    (head,), = affine_form(ramp41.network)
    for k in range(p):
        L = a + k * delta
        # affine in x: gamma*(2x(L-L0) - (L^2 - L0^2))
        assert head.c[k] == -gamma * (L ** 2 - a ** 2)
        assert head.G[k] == (2 * gamma * (L - a),)
        assert head.e[k] == L and head.F[k] == (0,)
    assert all(isinstance(v, Fraction) for row in ramp41.network.embedding.const for v in row)


def test_float_and_mpmath_agree(ramp41):
    xs = ["-2", "-1", "-3/7", "0", "1/3", "0.999", "2"]
    X = np.array([[float(Fraction(x))] for x in xs])
    yf = forward_float(ramp41.network, X)[:, 0]
    ym = [float(forward_mp(ramp41.network, [Fraction(x)], 40)[0]) for x in xs]
    assert np.allclose(yf, ym, rtol=0, atol=1e-13)


def test_apriori_bound_holds_on_dense_sample():
    for p, kappa in [(5, 1), (9, "27/10"), (41, 8), (17, 20)]:
        c = constructions.build("ramp", p=p, kappa=kappa)
        sup, _ = dense_sup_error(c, n=200_001)
        assert sup <= c.apriori_float()


def test_symbolic_spec_prints_latex():
    spec = REGISTRY["ramp"].symbolic()
    assert spec["check"] == sympy.true or spec["check"] is sympy.true or bool(spec["check"])
    text = sympy.latex(spec["logit_k"])
    assert "gamma" in text


@pytest.mark.parametrize("params,msg", [
    (dict(p=1), "at least 2"), (dict(lo=2, hi=-2), "inverted"), (dict(a=1, b=-1), "a < b"),
    (dict(kappa=0), "positive"), (dict(p="2.5"), "integer"), (dict(kappa="nan"), "exact"),
])
def test_bad_parameters(params, msg):
    with pytest.raises(ValueError, match=msg):
        constructions.build("ramp", **params)
