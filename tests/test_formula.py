"""Exact a-priori bounds as Formula trees: folding, printing, values, and no CAS on the certify path."""
import pickle
import subprocess
import sys
from fractions import Fraction

import mpmath
import pytest
import sympy

import constructions
from constructions.expr import parse
from constructions.formula import Formula, exp, lift
from constructions.ramp import ramp_bound

F = Fraction


def test_numbers_fold_exactly_and_exp_stays_a_node():
    b = ramp_bound(F(-1), F(1), 41, F(8))
    assert str(b) == "0.025 + 4*exp(-8)/(1 - exp(-8))"
    assert (lift(F(1, 3)) + F(1, 6)).number() == F(1, 2)
    assert exp(0).number() == 1 and exp(F(-8)).tree == ("exp", ("num", F(-8)))
    assert (Formula.var("a") * 1).tree == ("var", "a") and (Formula.var("a") * 0).number() == 0


@pytest.mark.parametrize("name,params", [("ramp", {"p": 41}), ("ramp-multihead", {}), ("icl-gd", {}),
                                         ("max-affine", {}), ("max-affine-seq", {})])
def test_printed_bound_reads_back_with_the_safe_parser_to_the_same_value(name, params):
    c = constructions.build(name, **params)
    tree = parse(c.apriori_text(), variables=())
    with mpmath.workdps(40):
        assert abs(Formula(tree).value() - c.apriori_bound.value()) <= mpmath.mpf(10) ** -35


def test_value_agrees_with_sympy_on_the_symbolic_ramp_bound():
    names = {n: sympy.Symbol(n, real=True) for n in ("a", "b", "p", "kappa")}
    sym = ramp_bound(*(Formula.var(n) for n in names)).to_sympy(dict(names))
    at = {"a": F(-3, 2), "b": F(5, 4), "p": 17, "kappa": F(27, 10)}
    want = sympy.N(sym.subs({names[k]: sympy.Rational(v) for k, v in at.items()}), 40)
    got = ramp_bound(at["a"], at["b"], at["p"], at["kappa"])
    with mpmath.workdps(40):
        assert abs(got.value() - mpmath.mpf(str(want))) <= mpmath.mpf(10) ** -35


def test_apriori_float_is_at_or_above_the_40_digit_value_and_none_is_infinite():
    c = constructions.build("ramp", p=9, kappa="27/10")
    with mpmath.workdps(40):
        assert mpmath.mpf(c.apriori_float()) >= c.apriori_bound.value()
    r = constructions.build("relu-net")
    assert r.apriori_bound is None and r.apriori_float() == float("inf") and r.apriori_text() == "oo"


def test_formula_is_immutable_hashable_and_pickles():
    b = ramp_bound(F(-1), F(1), 9, F(8))
    with pytest.raises(AttributeError):
        b.tree = ("num", F(0))
    assert pickle.loads(pickle.dumps(b)) == b and hash(b) == hash(ramp_bound(F(-1), F(1), 9, F(8)))
    with pytest.raises(TypeError):
        lift(0.5)   # floats never enter an exact bound


def test_build_and_certify_import_no_sympy():
    code = ("import sys, constructions\n"
            "from verify.search.certify import certify\n"
            "from certificates import certificate\n"
            "c = constructions.build('ramp', p=9)\n"
            "certificate(c, certify(c, '0.08', progress=False))\n"
            "assert 'sympy' not in sys.modules, 'sympy imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
