"""Targets proved defined on the domain before the search (issue 15 item 15).

sqrt(x0 + 1) on [-1, 1] is defined everywhere, but an outward-rounded box at x0 = -1 has a
slightly negative argument, so its enclosure was NaN and the paving never finished.  The search
first proves, exactly, a bound of every sqrt/log argument and divisor over the whole domain, and
clamps the enclosures there; where the target is undefined it stops with exit 2, naming the point.
"""
import dataclasses
import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from certificates.check.document import check_doc
from certificates.cli.main import main
from certificates.model import certificate_doc
from constructions.exact import ParameterError
from constructions.expr import mp_eval, parse, to_json
from verify.enclose.defined import GUARD_TAGS, UndefinedTarget, defined_targets
from verify.enclose.target import interval_eval
from verify.search.certify import certify
from verify.search.paving import Domain


def _with_target(c, text, domain=None):
    c2 = dataclasses.replace(c, target=(parse(text),))
    return dataclasses.replace(c2, domain=domain) if domain is not None else c2


@pytest.fixture(scope="module")
def ramp():
    return constructions.build("ramp", p=41, kappa=8)     # Range_[-1,1] on [-2, 2]


def _guards(tree):
    found = []
    stack = [tree]
    while stack:
        t = stack.pop()
        if t[0] in GUARD_TAGS:
            found.append((t[0], t[1]))
            stack.append(t[2])
        elif t[0] not in ("num", "var", "pi"):
            stack.extend(c for c in t[1:] if isinstance(c, tuple))
    return found


def test_the_issue_command_certifies_and_checks(tmp_path, capsys):
    out = tmp_path / "sq.json"
    rc = main(["certify", "max-affine", "--set", "f=sqrt(x0+1)", "--set", "B=1", "--set", "L=1",
               "--set", "G=100", "--eps", "0.05", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and text.startswith("CERTIFIED"), text
    assert main(["check", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["target"] == [to_json(parse("sqrt(x0+1)"))]   # guards never leave the search


def test_a_sqrt_at_the_domain_end_certifies(ramp):
    c = _with_target(ramp, "range(-1, 1, x0) + sqrt(x0 + 2)/1000")
    r = certify(c, "0.02", progress=False)
    assert r.status == "CERTIFIED", (r.status, r.reason, r.max_bound)
    assert check_doc(json.loads(json.dumps(certificate_doc(c, r)))).ok


@pytest.mark.parametrize("text,kind,m", [
    ("sqrt(x0 + 2)", "atleast", Fraction(0)),                    # affine: the exact minimum
    ("log(3*x0 + 7)", "atleast", Fraction(1)),
    ("1/(x0 - 3)", "atmost", Fraction(-1)),
    ("1/(x0 + 5/2)", "atleast", Fraction(1, 2)),
    ("sqrt(4 - x0^2)", "atleast", Fraction(0)),                  # exact interval arithmetic
    ("sqrt((x0 + 2)*(2 - x0))", "atleast", Fraction(0)),
    ("x0^-3 + 0*x0", None, None),                               # x0 = 0 is in the domain: see below
])
def test_guards_hold_exactly(ramp, text, kind, m):
    c = _with_target(ramp, text)
    if kind is None:
        with pytest.raises(UndefinedTarget):
            defined_targets(c)
        return
    (tree,) = defined_targets(c)
    assert (kind, m) in _guards(tree)


def test_guards_of_transcendental_arguments_are_rigorous(ramp):
    (tree,) = defined_targets(_with_target(ramp, "log(2 + sin(x0)) + sqrt(exp(x0))"))
    ms = sorted(m for k, m in _guards(tree) if k == "atleast")
    assert len(ms) == 2
    assert 0 < float(ms[0]) <= mpmath.exp(-2)                   # sqrt's argument e^x >= e^-2 on [-2, 2]
    assert 0.99 < float(ms[1]) <= 1                             # log's argument 2 + sin x >= 1 (sin(-pi/2) = -1)


@pytest.mark.parametrize("text,point,what", [
    ("sqrt(x0)", (-2,), "sqrt"),
    ("log(x0 + 2)", (-2,), "log"),
    ("1/(3*x0 - 1)", (Fraction(1, 3),), "divisor"),            # the exact zero of an affine divisor
    ("1/(x0*x0 - 1)", None, "divisor"),                         # found at a bisection point
    ("sqrt(1 - x0^2)", None, "sqrt"),
])
def test_undefined_targets_name_the_point(ramp, text, point, what):
    c = _with_target(ramp, text)
    with pytest.raises(UndefinedTarget) as e:
        certify(c, "0.1", progress=False)
    assert isinstance(e.value, ParameterError) and what in str(e.value) and str(e.value).count("\n") == 0
    if point is not None:
        assert e.value.point == point
    x = {"x0": mpmath.mpf(e.value.point[0].numerator) / e.value.point[0].denominator}
    with pytest.raises((ValueError, ZeroDivisionError, TypeError)):   # really undefined there
        v = mp_eval(parse(text), x)
        if not mpmath.isfinite(v) or isinstance(v, mpmath.mpc):
            raise ValueError(v)


def test_undefined_target_is_exit_2_with_the_point(tmp_path, capsys):
    """Through the CLI (an imported network takes any target): one line on stderr, exit 2."""
    out = tmp_path / "r.json"
    assert main(["certify", "ramp", "--set", "p=9", "--float64", "--eps", "0.2", "-o", str(out)]) == 0
    st = tmp_path / "r.safetensors"
    assert main(["export", str(out), "--to", "safetensors", "-o", str(st)]) == 0
    net = tmp_path / "net.json"
    assert main(["import", str(st), "-o", str(net)]) == 0
    capsys.readouterr()
    rc = main(["certify", str(net), "--set", "f=range(-1, 1, x0) + 1/(3*x0 - 1)", "--domain", "x0=-2:2",
               "--eps", "0.2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "undefined at x = (1/3)" in err


def test_a_bound_that_cannot_be_proved_leaves_the_target_unguarded(ramp):
    """(x0 - 1)^2 touches 0 inside: interval arithmetic cannot prove it >= 0, and no point shows it
    negative, so no guard (the enclosure stays as it was: NaN where the argument may dip below 0)."""
    c = _with_target(ramp, "sqrt(x0^2 - 2*x0 + 1)")
    (tree,) = defined_targets(c)
    assert _guards(tree) == []


@pytest.mark.parametrize("text", ["sqrt(x0 + 2)", "log(x0 + 5/2) * sqrt(4 - x0*x0)", "1/(x0 - 3) + sqrt(sqrt(x0+2))",
                                  "x1/(x0 + 3)^3 - log(x1 + 1)"])
def test_guarded_enclosures_contain_the_true_values(text):
    """Random boxes inside the domain (and boxes at its ends): the guarded enclosure contains
    mpmath's value at sampled points.  A sampled value outside is a soundness bug."""
    dom = ((Fraction(-2), Fraction(2)), (Fraction(0), Fraction(1)))
    c = constructions.build("max-affine", f="x0*x1", lo="-2", hi="2", G=2)
    c = dataclasses.replace(c, domain=dom, target=(parse(text),))
    (tree,) = defined_targets(c)
    assert _guards(tree)
    d = Domain(dom)
    rng = np.random.default_rng(3)
    K = rng.integers(0, 12, (400, 2))
    I = (rng.random((400, 2)) * 2.0 ** K).astype(np.int64)
    I[:50, 0] = 0                                          # boxes at the low end of x0
    xl, xh = d.enclose(I, K)
    lo, hi = interval_eval(tree, {"x0": (xl[:, 0], xh[:, 0]), "x1": (xl[:, 1], xh[:, 1])})
    assert np.all(np.isfinite(lo) & np.isfinite(hi))
    with mpmath.workdps(40):
        _contains(tree, text, d, I, K, lo, hi, rng)


def _contains(tree, text, d, I, K, lo, hi, rng):
    for n in range(len(I)):
        box = d.exact_box(I[n].tolist(), K[n].tolist())
        for s in (0, 0.5, 1, rng.random()):
            pt = {f"x{j}": mpmath.mpf(a.numerator) / a.denominator + s * (mpmath.mpf((b - a).numerator) / (b - a).denominator)
                  for j, (a, b) in enumerate(box)}
            v = mp_eval(parse(text), pt)
            assert lo[n] <= v <= hi[n], (text, box, v, lo[n], hi[n])


def test_nan_stays_nan_through_a_guard():
    from verify.enclose.defined import guard_interval
    lo, hi = guard_interval("atleast", Fraction(0), (np.array([np.nan, -1e-300]), np.array([1.0, np.nan])))
    assert np.isnan(lo).all() and np.isnan(hi).all()
    lo, hi = guard_interval("atmost", Fraction(-1, 3), (np.array([-2.0]), np.array([0.5])))
    assert lo[0] == -2.0 and hi[0] >= -1 / 3 and Fraction(hi[0]) >= Fraction(-1, 3)


def test_the_checker_accepts_a_sqrt_at_a_non_dyadic_domain_end():
    c = constructions.build("ramp", p=9, kappa="27/10", lo="-1/3", hi="2")
    c = _with_target(c, "range(-1, 1, x0) + sqrt(3*x0 + 1)/1000")
    r = certify(c, "0.03", progress=False)
    assert r.status == "CERTIFIED"
    assert check_doc(json.loads(json.dumps(certificate_doc(c, r)))).ok


def test_the_checker_guard_cuts_only_what_the_domain_excludes():
    from flint import arb, fmpq
    from certificates.check.arbexpr import arb_compile
    from constructions.expr import parse, to_json

    def bounds(text, domain, box):
        f = arb_compile(to_json(parse(text))).on_domain(domain)
        return f.bounds({"x0": (fmpq(*box[0]), fmpq(*box[1]))})

    lo, hi = bounds("sqrt(3*x0 + 1)", [(Fraction(-1, 3), Fraction(2))], ((-1, 3), (-1, 3)))
    assert lo.is_finite() and lo >= 0 and hi >= 0 and hi < arb("1e-7")   # sqrt of ~2^-50
    lo, hi = bounds("sqrt(3*x0 + 1)", [(Fraction(-1, 3), Fraction(2))], ((-1, 3), (1, 3)))
    assert lo <= 0 and hi >= arb(2).sqrt().lower()          # sqrt(2) at x0 = 1/3 is inside
    # undefined on the domain: the guard never makes a number of it
    lo, _ = bounds("sqrt(x0)", [(Fraction(-1), Fraction(1))], ((-1, 1), (0, 1)))
    assert not lo.is_finite()
    lo, _ = bounds("log(3*x0 - 1)", [(Fraction(1, 3), Fraction(1))], ((1, 3), (1, 2)))
    assert not lo.is_finite()                                 # log(0) at x0 = 1/3
    lo, hi = bounds("log(3*x0 - 1/2)", [(Fraction(1, 3), Fraction(1))], ((1, 3), (1, 2)))
    assert lo.is_finite() and lo <= arb(fmpq(1, 2)).log() and hi >= arb(fmpq(1, 2)).log()
