"""Safe target expressions: parser, JSON form, and soundness of the three evaluators.

Soundness tests compare enclosures with mpmath values at 50 digits and with Arb
balls: a sampled value outside a proved enclosure is a soundness bug, never noise.
"""
from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy
from flint import arb, ctx as flint_ctx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from certificates.check.arbexpr import ArbExprError, arb_compile, arb_eval, arb_interval, arb_variables
from constructions.expr import ExprError, from_json, mp_eval, parse, to_json, to_str, to_sympy, variables
from verify.enclose import ifunc
from verify.enclose import interval as iv
from verify.enclose.target import float_eval, interval_eval


def num(p, q=1):
    return ("num", Fraction(p, q))


def var(name):
    return ("var", name)


# ---------------------------------------------------------------- parser

@pytest.mark.parametrize("text, value", [
    ("0.125", Fraction(1, 8)), ("1e-3", Fraction(1, 1000)), ("1.5E2", Fraction(150)),
    (".5", Fraction(1, 2)), ("7.", Fraction(7)), ("-0.5", Fraction(-1, 2)), ("1/3", Fraction(1, 3)),
    ("0.1", Fraction(1, 10)), ("-2/-4", Fraction(1, 2)), ("12345678901234567890.5", Fraction(24691357802469135781, 2)),
    ("2.5e-1/5", Fraction(1, 20)), ("1e300*1e300", None),
])
def test_numbers_are_exact(text, value):
    t = parse(text)
    if value is None:
        assert t == ("mul", num(10 ** 300), num(10 ** 300))
    else:
        assert t == ("num", value)


def test_examples_and_precedence():
    x0, x1, x2 = var("x0"), var("x1"), var("x2")
    assert parse("sin(2*x0)*cos(3*x1)") == ("mul", ("sin", ("mul", num(2), x0)), ("cos", ("mul", num(3), x1)))
    assert parse("min(max(x0,-1),1)") == ("min", ("max", x0, num(-1)), num(1))
    assert parse("x0^2 + 0.125*exp(-x1)") == (
        "add", ("pow", x0, num(2)), ("mul", num(1, 8), ("exp", ("neg", x1))))
    assert parse("-x0^2") == ("neg", ("pow", x0, num(2)))
    assert parse("x0**2") == parse("x0^2")
    assert parse("x0^-2") == parse("x0^(-2)") == ("pow", x0, num(-2))
    assert parse("x0 - x1 - x2") == ("sub", ("sub", x0, x1), x2)
    assert parse("x0 + x1 + x2") == ("add", x0, x1, x2)
    assert parse("(x0 + x1) + x2") == ("add", ("add", x0, x1), x2)
    assert parse("x0*x1*x2/4") == ("div", ("mul", x0, x1, x2), num(4))
    assert parse("-x0*x1") == ("mul", ("neg", x0), x1)
    assert parse("range(-1, 1, x0)") == ("range", num(-1), num(1), x0)
    assert parse("relu(x0) + pi") == ("add", ("relu", x0), ("pi",))
    assert parse(" \tx0\n") == x0
    assert parse("a*b", variables=("a", "b")) == ("mul", var("a"), var("b"))


BAD = [
    ("__import__('os')", "__import__"), ("x0.__class__", "'.'"), ("lambda", "lambda"),
    ("lambda: 1", "lambda"), ("foo(x0)", "foo"), ("(x0", "')'"), ("x0)", "')'"),
    ("nan", "nan"), ("inf", "inf"), ("1/0", "division by zero"), ("x0/0", "division by zero"),
    ("x0/0.0", "division by zero"), ("0^-1", "division by zero"), ("x0^0.5", "exponent"),
    ("x0^x1", "exponent"), ("2^3^2", "exponent"), ("x0^2000", "exponent"),
    ("sin(x0, x1)", "sin"), ("range(x0)", "range"), ("min()", "unexpected"),
    ("", "end of input"), ("2x0", "'x0'"), ("x0 x1", "'x1'"), ("sin", "sin"), ("sin x0", "sin"),
    ("x0(1)", "x0"), ("pi(2)", "pi"), ("exec", "exec"), ("os.system", "os"), ("x0[0]", "'['"),
    ("'a'", "\"'\""), ("1e5000", "exponent"), ("y", "'y'"), ("x01", "x01"), ("e", "'e'"),
    ("\u0663", "character"), ("x0 = 1", "'='"), ("x0;x1", "';'"), ("1..2", "'.2'"),
    ("x0 +* x1", "'*'"), ("x0 ++", "end of input"), ("$x0", "'$'"),
]


@pytest.mark.parametrize("text, named", BAD)
def test_rejections_name_the_problem(text, named):
    with pytest.raises(ExprError, match=re.escape(named)) as e:
        parse(text)
    assert "\n" not in str(e.value)


def test_unknown_variable_when_names_given():
    with pytest.raises(ExprError, match="x0"):
        parse("x0 + a", variables=("a",))
    with pytest.raises(ExprError, match="sin"):
        parse("sin", variables=("sin",))


def test_limits():
    with pytest.raises(ExprError, match="longer"):
        parse("x0+" * 5000 + "x0")
    with pytest.raises(ExprError, match="nested"):
        parse("(" * 500 + "x0" + ")" * 500)
    with pytest.raises(ExprError, match="nested"):
        parse("-" * 1000 + "x0")
    with pytest.raises(ExprError, match="nested"):
        parse("sin(" * 300 + "x0" + ")" * 300)
    with pytest.raises(ExprError, match="nested"):  # a flat text can still build a deep tree
        parse("-".join(["x0"] * 300))
    with pytest.raises(ExprError, match="too long"):
        parse("1" * 3000)
    assert len(parse("+".join(["x0"] * 3000))) == 3001  # wide is fine
    assert parse("(" * 150 + "x0" + ")" * 150) == var("x0")


def test_variables_and_sympy():
    t = parse("range(-1/2, 1, x0*x1) + relu(x2) - pi*abs(x0)^2/sqrt(x1)")
    assert variables(t) == {"x0", "x1", "x2"}
    x0, x1, x2 = sympy.symbols("x0 x1 x2", real=True)
    s = to_sympy(t, {"x0": x0, "x1": x1, "x2": x2})
    expect = (sympy.Min(sympy.Max(x0 * x1, sympy.Rational(-1, 2)), 1) + sympy.Max(x2, 0)
              - sympy.pi * sympy.Abs(x0) ** 2 / sympy.sqrt(x1))
    assert sympy.simplify(s - expect) == 0
    pt = {"x0": Fraction(3, 4), "x1": Fraction(5, 2), "x2": Fraction(-1, 3)}
    with mpmath.workdps(40):
        ref = mp_eval(t, pt)
        got = sympy.N(s.subs({x0: sympy.Rational(3, 4), x1: sympy.Rational(5, 2),
                              x2: sympy.Rational(-1, 3)}), 40)
        assert abs(ref - mpmath.mpf(str(got))) < mpmath.mpf(10) ** -35
    assert to_sympy(parse("x0")) .is_real


def test_mp_eval_domain_errors_are_nan():
    for text in ["sqrt(x0 - 1)", "log(x0 - 0.5)", "1/(x0 - 0.5)", "(x0 - 0.5)^(-2)", "0*log(x0-1)"]:
        assert mpmath.isnan(mp_eval(parse(text), {"x0": 0.5}))
    assert mp_eval(parse("sqrt(x0 - 0.5)"), {"x0": 0.5}) == 0


# ---------------------------------------------------------------- trees and round trips

_UNARY = ["sin", "cos", "exp", "log", "sqrt", "tanh", "abs", "relu", "neg"]
_BINARY = ["add", "mul", "sub", "div", "min", "max"]

leaves = st.one_of(
    st.sampled_from([var("x0"), var("x1"), ("pi",)]),
    st.builds(lambda p, q: num(p, q), st.integers(-9, 9), st.sampled_from([1, 1, 2, 3, 4, 8, 10])),
)


def _extend(children):
    return st.one_of(
        st.builds(lambda op, c: (op, c), st.sampled_from(_UNARY), children),
        st.builds(lambda op, a, b: (op, a, b), st.sampled_from(_BINARY), children, children),
        st.builds(lambda op, a, b, c: (op, a, b, c), st.sampled_from(["add", "mul", "min", "max"]),
                  children, children, children),
        st.builds(lambda a, n: ("pow", a, num(n)), children, st.integers(-2, 4)),
        st.builds(lambda a, b, c: ("range", a, b, c), children, children, children),
    )


trees = st.recursive(leaves, _extend, max_leaves=7)


def canonical(t):
    """Fold what the parser folds: neg of a number, number over number."""
    if t[0] in ("num", "var", "pi"):
        return t
    kids = tuple(canonical(c) for c in t[1:])
    if t[0] == "neg" and kids[0][0] == "num":
        return ("num", -kids[0][1])
    if t[0] == "div" and kids[0][0] == "num" and kids[1][0] == "num":
        return ("num", kids[0][1] / kids[1][1]) if kids[1][1] else kids[0]
    if t[0] == "div" and kids[1] == num(0):
        return ("div", kids[0], num(1))
    if t[0] == "pow" and kids[0] == num(0) and kids[1][1] < 0:
        return ("pow", kids[0], num(-kids[1][1]))
    return (t[0],) + kids


@settings(max_examples=300, deadline=None)
@given(trees)
def test_round_trips(t):
    t = canonical(t)
    text = to_str(t)
    assert parse(text) == t, text
    obj = to_json(t)
    assert from_json(json.loads(json.dumps(obj))) == t
    assert arb_variables(obj) == variables(t)


def test_round_trip_of_numbers():
    for q in [Fraction(1, 3), Fraction(-1, 3), Fraction(1, 8), Fraction(-5, 2), Fraction(10 ** 40, 3),
              Fraction(1, 2 ** 40), Fraction(3, 10 ** 25), Fraction(-7), Fraction(0), Fraction(2 ** 8000, 3)]:
        for t in [("num", q), ("mul", ("num", q), var("x0")), ("pow", ("num", q), num(3)),
                  ("sub", var("x0"), ("num", q)), ("div", var("x0"), ("num", q)) if q else var("x0")]:
            assert parse(to_str(t)) == t, to_str(t)[:80]
    assert to_str(num(1, 8)) == "0.125"
    assert to_json(num(-1, 3)) == {"num": "-1/3"}
    assert to_json(num(4)) == {"num": "4"}
    assert to_json(("pi",)) == {"const": "pi"}


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="x01239.eE+-*/^(),_ pisncoqrtmaxlg'\"[]", max_size=40))
def test_any_text_parses_or_raises_expr_error(text):
    try:
        t = parse(text)
    except ExprError as e:
        assert "\n" not in str(e)
        return
    assert from_json(to_json(t)) == t


# ---------------------------------------------------------------- strict JSON validation

GOOD = {"op": "add", "args": [{"var": "x0"}, {"num": "-3/4"}]}
BAD_JSON = [
    {"op": "eval", "args": [{"var": "x0"}]},
    {"op": "sin", "args": [{"var": "x0"}, {"var": "x1"}]},
    {"op": "add", "args": [{"var": "x0"}]},
    {"op": "range", "args": [{"var": "x0"}, {"var": "x0"}]},
    {"op": "min", "args": []},
    {"op": "sin", "args": {"0": {"var": "x0"}}},
    {"op": "sin", "args": [{"var": "x0"}], "extra": 1},
    {"op": "pow", "args": [{"var": "x0"}, {"num": "1/2"}]},
    {"op": "pow", "args": [{"var": "x0"}, {"var": "x1"}]},
    {"op": "pow", "args": [{"var": "x0"}, {"num": "5000"}]},
    {"op": ["sin"], "args": [{"var": "x0"}]},
    {"num": "1.5"}, {"num": "1/0"}, {"num": "0x10"}, {"num": "1e3"}, {"num": " 1"},
    {"num": "1/-2"}, {"num": "--1"}, {"num": "+1"}, {"num": "1\n"}, {"num": "nan"}, {"num": "inf"},
    {"num": "\u0663"}, {"num": 1}, {"num": 0.5}, {"num": True}, {"num": "9" * 6000},
    {"var": "sin"}, {"var": "x 0"}, {"var": 0}, {"var": "__class__.x"}, {"const": "e"},
    {"num": "1", "var": "x0"}, {}, [], "x0", 1, None,
]


@pytest.mark.parametrize("obj", BAD_JSON, ids=lambda o: json.dumps(o)[:40])
def test_json_rejections_both_validators(obj):
    with pytest.raises(ExprError):
        from_json(obj)
    with pytest.raises(ArbExprError):
        arb_eval(obj, {"x0": arb(1), "x1": arb(2)})


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
              st.sampled_from(["x0", "sin", "add", "pow", "1/2", "-3", "1/0", "pi"])),
    lambda c: st.one_of(st.lists(c, max_size=3),
                        st.dictionaries(st.sampled_from(["op", "args", "num", "var", "const", "x"]), c,
                                        max_size=2)),
    max_leaves=10)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_any_json_validates_or_raises(obj):
    try:
        t = from_json(obj)
    except ExprError:
        t = None
    try:   # every variable gets a value: a missing one is not a validation failure
        b = arb_eval(obj, {name: arb(1) for name in arb_variables(obj)})
    except ArbExprError:
        assert t is None  # the checker accepts all that from_json accepts
        return
    assert isinstance(b, arb)
    if t is not None:
        assert to_json(t) == obj


@pytest.mark.parametrize("s", ["2/4", "-0", "007", "3/1", "-6/3", "0/5", "1/01"])
def test_from_json_wants_canonical_numbers(s):
    with pytest.raises(ExprError, match="lowest terms"):
        from_json({"num": s})
    assert arb_eval({"num": s}, {}).is_finite()  # the checker only needs the exact value


def test_json_depth_limit_both_validators():
    obj = {"var": "x0"}
    for _ in range(250):
        obj = {"op": "neg", "args": [obj]}
    with pytest.raises(ExprError, match="nested"):
        from_json(obj)
    with pytest.raises(ArbExprError, match="nested"):
        arb_eval(obj, {"x0": arb(1)})


def test_json_accepts_and_restricts_variables():
    assert from_json(GOOD) == ("add", var("x0"), num(-3, 4))
    with pytest.raises(ExprError, match="x0"):
        from_json(GOOD, variables=("x1",))
    with pytest.raises(ArbExprError, match="x0"):
        arb_eval(GOOD, {"x1": arb(1)})
    assert arb_eval(GOOD, {"x0": arb(1)}).overlaps(arb(0.25))


# ---------------------------------------------------------------- soundness of enclosures

def _exact(x):
    """An exact (radius 0) arb as an mpmath number, for exact comparisons."""
    man, exp = x.man_exp()
    return mpmath.mpf((int(man), int(exp)))


def _mp_point(t, pt):
    with mpmath.workdps(50):
        return mp_eval(t, {k: mpmath.mpf(float(v)) for k, v in pt.items()})


boxes = st.lists(
    st.tuples(st.floats(-4, 4), st.floats(-4, 4), st.floats(-4, 4), st.floats(-4, 4),
              st.sampled_from([1.0, 1.0, 1e-3, 0.0])),
    min_size=1, max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, boxes, st.randoms(use_true_random=False))
def test_interval_and_arb_enclose_dense_samples(t, raw, rnd):
    # box ends: one end random, the other within a random width (sometimes tiny or zero)
    ends = {}
    for name, (i, j) in (("x0", (0, 1)), ("x1", (2, 3))):
        lo = np.array([min(r[i], r[i] + (r[j] - r[i]) * r[4]) for r in raw])
        hi = np.array([max(r[i], r[i] + (r[j] - r[i]) * r[4]) for r in raw])
        ends[name] = (lo, hi)
    lo, hi = interval_eval(t, ends, np)
    assert lo.shape == hi.shape == (len(raw),)
    obj = to_json(t)
    f = arb_compile(obj)
    for k in range(len(raw)):
        box = {n: (float(e[0][k]), float(e[1][k])) for n, e in ends.items()}
        ok = math.isfinite(lo[k]) and math.isfinite(hi[k])
        event(f"float enclosure {'finite' if ok else 'failed'}")
        if ok:
            assert lo[k] <= hi[k]
        old = flint_ctx.prec
        try:
            flint_ctx.prec = 200
            ball = f({n: arb_interval(a, b) for n, (a, b) in box.items()})
            event(f"arb ball {'finite' if ball.is_finite() else 'failed'}")
            if ok and ball.is_finite():  # both enclose the range, so they meet
                assert ball.lower() <= hi[k] and ball.upper() >= lo[k]
            grid = {n: sorted({a, b} | {a + (b - a) * s for s in (0.25, 0.5, 0.75)}
                              | {rnd.uniform(a, b) for _ in range(2)}) for n, (a, b) in box.items()}
            pts = [{"x0": u, "x1": v} for u in grid["x0"] for v in grid["x1"]]
            for pt in pts:
                ref = _mp_point(t, pt)
                if ok:
                    assert not mpmath.isnan(ref), (to_str(t), pt)
                    assert lo[k] <= ref <= hi[k], (to_str(t), pt, lo[k], hi[k], ref)
                    # the Arb ball of the point holds the true value too, so it meets [lo, hi]
                    # (containment would be wrong when the value sits exactly on an end)
                    pb = f({n: arb(v) for n, v in pt.items()})
                    assert pb.is_finite() and pb.lower() <= hi[k] and lo[k] <= pb.upper(), (to_str(t), pt)
                if ball.is_finite():
                    assert not mpmath.isnan(ref)
                    slack = mpmath.mpf(10) ** -45 * (1 + abs(ref))  # ref is rounded at 50 digits
                    assert _exact(ball.lower()) <= ref + slack, (to_str(t), pt)
                    assert ref - slack <= _exact(ball.upper()), (to_str(t), pt)
        finally:
            flint_ctx.prec = old


@settings(max_examples=50, deadline=None)
@given(trees, st.floats(-4, 4), st.floats(-4, 4))
def test_float_eval_matches_reference(t, a, b):
    v = float_eval(t, {"x0": np.array([a]), "x1": np.array([b])}, np)[0]
    ref = _mp_point(t, {"x0": a, "x1": b})
    if mpmath.isnan(ref) or not math.isfinite(v) or abs(ref) > 1e100:
        return
    assert abs(v - float(ref)) <= 1e-6 * (1 + abs(float(ref)))


def _true_trig_range(fn, a, b):
    """Exact extreme values of sin/cos over [a, b] with mpmath (ends and interior extrema)."""
    with mpmath.workdps(60):
        a, b = mpmath.mpf(a), mpmath.mpf(b)
        vals = [fn(a), fn(b)]
        shift = mpmath.pi / 2 if fn is mpmath.sin else 0
        k = mpmath.ceil((a - shift) / mpmath.pi)
        while shift + k * mpmath.pi <= b:
            vals.append(fn(shift + k * mpmath.pi))
            k += 1
        return min(vals), max(vals)


# left ends at or a few ulps beside float multiples of pi/2, also far out (k up to 10^6)
near_extrema = st.builds(lambda k, steps: float(np.nextafter(k * (math.pi / 2), math.copysign(np.inf, steps)))
                         if steps else k * (math.pi / 2),
                         st.integers(-10 ** 6, 10 ** 6), st.integers(-3, 3))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["sin", "cos"]),
       st.one_of(st.floats(-50, 50), st.sampled_from([k * math.pi / 2 for k in range(-8, 9)]), near_extrema),
       st.one_of(st.floats(0, 10), st.just(0.0), st.floats(0, 1e-9), st.floats(0, 1e-15)))
def test_sin_cos_ranges_including_extrema(name, a, w):
    b = a + w
    lo, hi = getattr(ifunc, name)((np.array([a]), np.array([b])), np)
    tlo, thi = _true_trig_range(getattr(mpmath, name), a, b)
    assert lo[0] <= tlo and thi <= hi[0]
    assert -1 <= lo[0] <= hi[0] <= 1


def test_sin_cos_specific_boxes():
    def s(a, b, fn=ifunc.sin):
        lo, hi = fn((np.array([a], dtype=float), np.array([b], dtype=float)), np)
        return lo[0], hi[0]
    assert s(1.5, 1.6)[1] == 1.0 and s(1.5, 1.6)[0] < math.sin(1.5)
    assert s(-2.0, -1.0)[0] == -1.0
    assert s(0.0, 7.0) == (-1.0, 1.0)
    assert s(-1e300, 1e300) == (-1.0, 1.0)
    assert s(-math.inf, 0.0) == (-1.0, 1.0)
    lo, hi = s(0.1, 0.2)  # monotone piece: tight
    assert math.sin(0.1) - 1e-15 < lo < math.sin(0.1) and math.sin(0.2) < hi < math.sin(0.2) + 1e-15
    assert s(3.0, 3.3, ifunc.cos)[0] == -1.0 and s(-0.1, 0.1, ifunc.cos)[1] == 1.0
    lo, hi = s(1e6, 1e6 + 1e-3)
    assert hi - lo < 1e-2
    assert all(math.isnan(v) for v in s(math.nan, 1.0))


def test_pow_even_odd_and_zero():
    a = (np.array([-2.0, -3.0, 1.0, -1.0]), np.array([3.0, -1.0, 2.0, -0.5]))
    lo, hi = ifunc.pow_int(a, 2, np)
    assert lo[0] == 0 and 9 <= hi[0] < 9 + 1e-14
    assert lo[1] <= 1 <= 9 <= hi[1] and lo[1] > 0.99
    lo, hi = ifunc.pow_int(a, 3, np)
    assert lo[0] <= -8 and hi[0] >= 27 and lo[1] <= -27 and hi[1] >= -1
    lo, hi = ifunc.pow_int(a, -1, np)
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and lo[2] <= 0.5 and hi[2] >= 1
    lo, hi = ifunc.pow_int(a, 1, np)
    assert (lo == a[0]).all() and (hi == a[1]).all()


# ---------------------------------------------------------------- NaN handling

_NAN = (np.array([np.nan, 0.0]), np.array([np.nan, 1.0]))


@pytest.mark.parametrize("fn", [
    lambda a: ifunc.sqrt(a, np), lambda a: ifunc.log(a, np), lambda a: ifunc.sin(a, np),
    lambda a: ifunc.cos(a, np), lambda a: ifunc.tanh(a, np), lambda a: ifunc.abs_(a, np),
    lambda a: ifunc.relu(a, np), lambda a: iv.exp(a, np), lambda a: ifunc.pow_int(a, 0, np),
    lambda a: ifunc.pow_int(a, 2, np), lambda a: ifunc.pow_int(a, 3, np),
    lambda a: ifunc.pow_int(a, -2, np), lambda a: ifunc.min_(a, (np.zeros(2), np.zeros(2)), np),
    lambda a: ifunc.max_(a, (np.ones(2), np.ones(2)), np),
    lambda a: ifunc.div(a, (np.ones(2), np.ones(2)), np),
    lambda a: ifunc.div((np.ones(2), np.ones(2)), (a[0] + 2, a[1] + 2), np),
    lambda a: ifunc.range_((np.zeros(2), np.zeros(2)), (np.ones(2), np.ones(2)), a, np),
    lambda a: iv.mul(a, (np.zeros(2), np.zeros(2)), np),
])
def test_nan_never_becomes_a_number(fn):
    lo, hi = fn(_NAN)
    assert np.isnan(lo[0]) and np.isnan(hi[0])


def test_domain_errors_fail():
    lo, hi = ifunc.sqrt((np.array([-1.0, -1e-300, 0.0]), np.array([1.0, 1.0, 4.0])), np)
    assert np.isnan(lo[:2]).all() and np.isnan(hi[:2]).all() and lo[2] == 0 and 2 <= hi[2] < 2 + 1e-15
    lo, hi = ifunc.log((np.array([0.0, -1.0, 1.0]), np.array([1.0, 1.0, 1.0])), np)
    assert np.isnan(lo[:2]).all() and np.isnan(hi[:2]).all() and lo[2] <= 0 <= hi[2]
    lo, hi = ifunc.div((np.ones(2), np.ones(2)), (np.array([-1.0, 0.0]), np.array([1.0, 0.0])), np)
    assert np.isnan(lo).all() and np.isnan(hi).all()
    # through the tree walkers: 0 * sqrt(negative) is undefined, not 0
    t = parse("0*sqrt(x0) + min(log(x0), 1)")
    lo, hi = interval_eval(t, {"x0": (np.array([-2.0]), np.array([-1.0]))}, np)
    assert not iv.finite((lo, hi), np)[0]
    assert not arb_eval(to_json(t), {"x0": arb_interval(-2.0, -1.0)}).is_finite()
    assert not arb_eval(to_json(parse("x0^0")), {"x0": arb.nan()}).is_finite()
    assert np.isnan(float_eval(parse("sqrt(x0)"), {"x0": np.array([-1.0])}, np)).all()


def test_arb_sqrt_of_box_touching_zero():
    obj = to_json(parse("sqrt(x0) + sqrt(abs(x1)) + sqrt(x1^2) + sqrt(relu(x1))"))
    b = arb_eval(obj, {"x0": arb_interval(0, 2), "x1": arb_interval(-1, 1)})
    assert b.is_finite() and b.lower() <= 0.0 and b.upper() >= math.sqrt(2) + 3
    lo, hi = interval_eval(from_json(obj), {"x0": (np.zeros(1), 2 * np.ones(1)),
                                            "x1": (-np.ones(1), np.ones(1))}, np)
    assert -1e-300 < lo[0] <= 0 and hi[0] >= math.sqrt(2) + 3


def test_constants_enclose_exactly():
    for q in [Fraction(1, 3), Fraction(-2, 7), Fraction(1, 8), Fraction(10 ** 400), Fraction(-10 ** 400),
              Fraction(1, 10 ** 400), Fraction(0), Fraction(2 ** 53 + 1)]:
        lo, hi = ifunc.const(q, (2,), np)
        assert lo.shape == (2,)
        assert (math.isinf(lo[0]) or Fraction(lo[0]) <= q) and (math.isinf(hi[0]) or q <= Fraction(hi[0]))
        if abs(q) < 1e300:
            assert np.nextafter(lo[0], np.inf) >= hi[0]  # at most one ulp wide
    lo, hi = ifunc.pi((), np)
    with mpmath.workdps(40):
        assert mpmath.mpf(float(lo)) < mpmath.pi < mpmath.mpf(float(hi))


# ---------------------------------------------------------------- library ulp margins

def _reference(name, xs):
    from mpmath.libmp import from_float, mpf_cos, mpf_exp, mpf_log, mpf_sin, mpf_sqrt, mpf_tanh, round_nearest
    f = {"exp": mpf_exp, "sin": mpf_sin, "cos": mpf_cos, "log": mpf_log, "tanh": mpf_tanh,
         "sqrt": mpf_sqrt}[name]
    return [f(from_float(float(x)), 120, round_nearest) for x in xs]


def _points(name, rng, n):
    if name == "exp":
        return np.concatenate([rng.uniform(-700, 700, n // 2), rng.uniform(-2, 2, n // 2)])
    if name in ("log", "sqrt"):
        return np.concatenate([np.exp(rng.uniform(-700, 700, n // 2)), rng.uniform(0.5, 2, n // 2)])
    if name == "tanh":
        return np.concatenate([rng.uniform(-20, 20, n // 2),
                               np.sign(rng.uniform(-1, 1, n // 2)) * np.exp(rng.uniform(-700, 0, n // 2))])
    # sin/cos: ordinary arguments, large ones, and arguments right next to multiples of pi/2
    k = rng.integers(-10 ** 5, 10 ** 5, n // 4)
    near = k * (math.pi / 2) + rng.uniform(-1e-6, 1e-6, n // 4)
    return np.concatenate([rng.uniform(-10, 10, n // 4), rng.uniform(-1e6, 1e6, n // 4), near,
                           np.nextafter(k * (math.pi / 2), np.inf)])


@pytest.mark.parametrize("name", ["exp", "sin", "cos", "log", "tanh", "sqrt"])
def test_library_ulp_widening_against_mpmath(name):
    """~200k points in all: the widened point enclosure of each library function holds."""
    from mpmath.libmp import from_float, mpf_cmp
    rng = np.random.default_rng(list(b"ulps" + name.encode()))
    xs = _points(name, rng, 36_000)
    fn = {"exp": iv.exp, "sin": ifunc.sin, "cos": ifunc.cos, "log": ifunc.log, "tanh": ifunc.tanh,
          "sqrt": ifunc.sqrt}[name]
    lo, hi = fn((xs, xs), np)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    ref = _reference(name, xs)
    bad = [i for i in range(len(xs))
           if mpf_cmp(from_float(float(lo[i])), ref[i]) > 0 or mpf_cmp(ref[i], from_float(float(hi[i]))) > 0]
    assert not bad, (name, xs[bad[:5]])


_LONG = np.finfo(np.longdouble).nmant >= 63   # x86-64 80-bit (or quad) long double


@pytest.mark.skipif(not _LONG, reason="needs an extended-precision long double as a fast reference")
@pytest.mark.parametrize("name", ["exp", "sin", "cos", "log", "tanh", "sqrt"])
def test_library_error_on_millions_of_points_stays_inside_the_widening(name):
    """4 million points per function: the float64 library result (NumPy's SIMD/SVML kernels on
    this CPU) is measured in ulps against the long-double function (error ~2^-11 of a double
    ulp, so a fast and faithful yardstick); the worst stays below the widening minus one ulp,
    and the enclosures at the 50 worst points are re-checked against 120-bit mpmath."""
    from mpmath.libmp import from_float, mpf_cmp
    rng = np.random.default_rng(list(b"millions" + name.encode()))
    xs = _points(name, rng, 4_000_000)
    f = {"exp": np.exp, "sin": np.sin, "cos": np.cos, "log": np.log, "tanh": np.tanh, "sqrt": np.sqrt}[name]
    with np.errstate(all="ignore"):
        r = f(xs)
        ref = f(xs.astype(np.longdouble))
    keep = np.isfinite(r) & (np.abs(r) >= np.finfo(np.float64).tiny)   # normal results: ulps are defined
    xs, r, ref = xs[keep], r[keep], ref[keep]
    ulps = np.abs(r.astype(np.longdouble) - ref) / np.spacing(np.abs(r)).astype(np.longdouble)
    margin = iv.EXP_ULPS if name == "exp" else ifunc.SQRT_ULPS if name == "sqrt" else ifunc.LIB_ULPS
    worst = float(ulps.max())
    assert worst < max(margin - 1, 0.5 + 2.0 ** -10), (name, worst, xs[int(np.argmax(ulps))])
    top = xs[np.argsort(ulps)[-50:]]
    fn = {"exp": iv.exp, "sin": ifunc.sin, "cos": ifunc.cos, "log": ifunc.log, "tanh": ifunc.tanh,
          "sqrt": ifunc.sqrt}[name]
    lo, hi = fn((top, top), np)
    for i, ref_i in enumerate(_reference(name, top)):
        assert mpf_cmp(from_float(float(lo[i])), ref_i) <= 0 <= mpf_cmp(from_float(float(hi[i])), ref_i)
