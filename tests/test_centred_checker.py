"""The checker's centred (mean-value) bound: the Arb derivative enclosure of a target against
mpmath, ``centred_box_bound`` against dense 40-digit mpmath sampling of small constructions, and
certificates whose boxes carry slopes (accepted; every tampering INVALID).

Difference quotients are the reference for derivatives: for a Lipschitz function the quotient
(f(b) - f(a)) / (b - a) over a segment inside the box is an average of the derivative along it,
so it lies in every enclosure of the derivative over the box (kinks included): a quotient
outside an enclosure, or a sampled error above a proved bound, is a soundness bug, never noise.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import random
import time
from fractions import Fraction as F

import mpmath
import numpy as np
import pytest
from flint import arb, ctx, fmpq

import constructions
from certificates.check.arbexpr import ArbExprError, arb_compile
from certificates.check.centred import box_slopes, centred_box_bound, centred_parts
from certificates.check.core import PREC, Invalid, affine_heads, box_bound, float_up, leaves, prepare_heads
from certificates.check.document import check_doc, estimate_work
from certificates.model import certificate_doc, digest
from constructions.expr import from_json, mp_eval, to_json
from verify.forward import forward_mp
from verify.search.certify import certify

DPS = 50


@pytest.fixture(autouse=True)
def _prec():
    old = ctx.prec
    ctx.prec = PREC
    yield
    ctx.prec = old


def mpf_of(x):
    """An arb's midpoint (an exact point for the checker's ends) as an mpf, exactly."""
    m, e = x.mid().man_exp()
    return mpmath.ldexp(mpmath.mpf(int(m)), int(e))


def M(q):
    """An exact rational as an mpf at the working precision."""
    q = F(q)
    return mpmath.mpf(q.numerator) / q.denominator


def up(x) -> F:
    """An exact rational >= the upper end of an arb."""
    m, e = x.upper().mid().man_exp()
    v = F(int(m)) * F(2) ** int(e)
    return v


# ------------------------------------------------------------------ the derivative enclosure

def V(i):
    return {"var": f"x{i}"}


def N(q):
    q = F(q)
    return {"num": str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"}


def op(name, *args):
    return {"op": name, "args": list(args)}


BOX = [(F(1, 3), F(1, 2)), (F(-1, 5), F(3, 7))]          # x1 straddles 0
WIDE = [(F(0), F(1)), (F(-1, 2), F(1, 2))]

# (name, expression, box): every op, smooth and at kinks (the box straddles or touches them)
CASES = [
    ("add", op("add", V(0), op("mul", N(3), V(1)), N("1/7")), BOX),
    ("sub", op("sub", V(0), op("mul", V(0), V(1))), BOX),
    ("neg", op("neg", op("mul", V(0), V(1))), BOX),
    ("mul-nary", op("mul", V(0), V(1), V(0), N(2)), BOX),
    ("div", op("div", V(0), op("add", V(1), N(2))), BOX),
    ("div-by-x", op("div", V(1), V(0)), BOX),
    ("pow3", op("pow", op("add", V(0), V(1)), N(3)), BOX),
    ("pow2-straddle", op("pow", V(1), N(2)), BOX),
    ("pow-neg", op("pow", V(0), N(-2)), BOX),
    ("pow-neg3", op("pow", op("sub", V(0), op("mul", N("1/2"), V(1))), N(-3)), BOX),
    ("pow0", op("pow", V(1), N(0)), BOX),
    ("sin", op("sin", op("mul", N(5), V(0), V(1))), BOX),
    ("sin-wide", op("sin", op("mul", N(20), V(0))), WIDE),
    ("cos", op("cos", op("add", V(0), op("mul", N(4), V(1)))), BOX),
    ("cos-wide", op("cos", op("mul", N(9), V(0), V(1))), WIDE),
    ("exp", op("exp", op("mul", V(0), V(1))), BOX),
    ("log", op("log", op("add", V(0), V(1), N(1))), BOX),
    ("sqrt", op("sqrt", op("add", V(0), V(1))), BOX),
    ("tanh", op("tanh", op("mul", N(3), V(0), V(1))), BOX),
    ("pi", op("mul", {"const": "pi"}, V(0), V(1)), BOX),
    ("abs-kink", op("abs", op("sub", V(0), N("2/5"))), BOX),
    ("abs-straddle", op("abs", op("mul", V(0), V(1))), BOX),
    ("abs-neg", op("abs", op("sub", V(1), N(1))), BOX),
    ("relu-straddle", op("relu", op("add", V(1), op("mul", N("1/10"), V(0)))), BOX),
    ("relu-on", op("relu", V(0)), BOX),
    ("relu-off", op("relu", op("sub", V(1), N(1))), BOX),
    ("min", op("min", V(0), V(1), N("1/4")), BOX),
    ("max", op("max", V(0), op("mul", N(2), V(1))), BOX),
    ("max-1", op("max", op("sin", V(1))), BOX),
    ("range", op("range", N("-1/10"), N("1/10"), V(1)), BOX),
    ("range-vars", op("range", V(1), N("9/20"), V(0)), BOX),
    ("nested", op("mul", op("cos", V(0)), op("abs", op("sub", V(1), N("1/9"))),
                  op("exp", op("neg", op("pow", V(0), N(2))))), BOX),
]


def _env(box):
    return {f"x{i}": (fmpq(a.numerator, a.denominator), fmpq(b.numerator, b.denominator)) for i, (a, b) in enumerate(box)}


def _mp(expr, x):
    return mp_eval(from_json(expr), {f"x{i}": v for i, v in enumerate(x)})


def _inside(d, g, tol):
    lo, hi = mpf_of(g[0]), mpf_of(g[1])
    return lo - tol * (1 + abs(d)) <= d <= hi + tol * (1 + abs(d))


def _quotients(fn, box, i, rng, n=12):
    """Central difference quotients along x_i at points strictly inside the box, and one-sided
    quotients at the box's centre line and at random points (all segments inside the box)."""
    out = []
    with mpmath.workdps(DPS):
        h = mpmath.mpf(10) ** -18
        for k in range(n):
            x = [M(a) + (M(b) - M(a)) * mpmath.mpf((k + 0.5) / n if j == i else rng.random())
                 for j, (a, b) in enumerate(box)]
            xp, xm = list(x), list(x)
            xp[i] += h
            xm[i] -= h
            out.append((fn(xp) - fn(xm)) / (2 * h))
            out.append((fn(xp) - fn(x)) / h)
            out.append((fn(x) - fn(xm)) / h)
    return out


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_derivative_enclosure_holds_every_difference_quotient(name):
    expr, box = {c[0]: (c[1], c[2]) for c in CASES}[name]
    e = arb_compile(expr)
    env = _env(box)
    val, grad = e.bounds_and_gradient(env, ["x0", "x1"])
    assert val[0] == e.bounds(env)[0] and val[1] == e.bounds(env)[1]   # the same value enclosure
    assert len(grad) == 2 and all(g[0].is_finite() and g[1].is_finite() for g in grad), grad
    rng = random.Random(7)
    for i in range(2):
        assert grad[i][0] <= grad[i][1]
        for d in _quotients(lambda x: _mp(expr, x), box, i, rng):
            assert _inside(d, grad[i], mpmath.mpf(10) ** -12), (name, i, d, grad[i])


def _grad(expr, box, names=("x0", "x1"), domain=None):
    e = arb_compile(expr)
    if domain is not None:
        e = e.on_domain(domain)
    return e.bounds_and_gradient(_env(box), list(names))


def _pt(g):
    return (float(g[0].mid()), float(g[1].mid()))


def test_kinks_give_the_hull_of_the_one_sided_derivatives():
    _, g = _grad(op("abs", V(1)), BOX)
    assert _pt(g[1]) == (-1.0, 1.0) and _pt(g[0]) == (0.0, 0.0)
    _, g = _grad(op("relu", V(1)), BOX)
    assert _pt(g[1]) == (0.0, 1.0)
    # touching the kink is not straddling it: relu(u) = u and |u| = u where u >= 0
    _, g = _grad(op("relu", V(1)), [(F(0), F(1)), (F(0), F(1, 2))])
    assert _pt(g[1]) == (1.0, 1.0)
    _, g = _grad(op("abs", V(1)), [(F(0), F(1)), (F(0), F(1, 2))])
    assert _pt(g[1]) == (1.0, 1.0)
    _, g = _grad(op("relu", V(1)), [(F(0), F(1)), (F(-1), F(0))])
    assert _pt(g[1]) == (0.0, 0.0)
    # max of arguments whose ranges overlap: the hull; disjoint: the winner's derivative only
    _, g = _grad(op("max", V(0), op("mul", N(2), V(1))), BOX)
    assert _pt(g[0]) == (0.0, 1.0) and _pt(g[1]) == (0.0, 2.0)
    _, g = _grad(op("max", V(0), op("sub", V(1), N(1))), BOX)
    assert _pt(g[0]) == (1.0, 1.0) and _pt(g[1]) == (0.0, 0.0)
    # ranges that only touch (at a dyadic point: Arb's ends of 1/3 would overlap by an ulp):
    # max(x0, x1) with x1 <= 1/4 <= x0 is x0
    _, g = _grad(op("max", V(0), V(1)), [(F(1, 4), F(1, 2)), (F(0), F(1, 4))])
    assert _pt(g[0]) == (1.0, 1.0) and _pt(g[1]) == (0.0, 0.0)
    _, g = _grad(op("max", V(0), V(1)), [(F(1, 3), F(1, 2)), (F(0), F(1, 3))])   # overlap by an ulp: the hull
    assert _pt(g[0]) == (0.0, 1.0) and _pt(g[1]) == (0.0, 1.0)
    _, g = _grad(op("min", V(0), V(1)), [(F(1, 4), F(1, 2)), (F(0), F(1, 4))])
    assert _pt(g[0]) == (0.0, 0.0) and _pt(g[1]) == (1.0, 1.0)
    # range(lo, hi, x): x below, inside, above, and across both kinks
    for (a, b), want in [((F(-3), F(-2)), (0.0, 0.0)), ((F(-1), F(1)), (1.0, 1.0)),
                         ((F(2), F(3)), (0.0, 0.0)), ((F(-2), F(2)), (0.0, 1.0))]:
        _, g = _grad(op("range", N(-1), N(1), V(0)), [(a, b)], names=("x0",))
        assert _pt(g[0]) == want


def test_one_sided_quotients_at_the_kink_lie_in_the_enclosure():
    cases = [(op("abs", op("sub", V(0), N("1/3"))), F(1, 3)), (op("relu", op("sub", V(0), N("1/3"))), F(1, 3)),
             (op("range", N(0), N("1/2"), V(0)), F(1, 2)), (op("range", N(0), N("1/2"), V(0)), F(0)),
             (op("max", V(0), op("sub", N(1), V(0))), F(1, 2)), (op("min", V(0), op("mul", N(2), V(0))), F(0))]
    for expr, k in cases:
        box = [(k - F(1, 4), k + F(1, 4))]
        _, g = _grad(expr, box, names=("x0",))
        with mpmath.workdps(DPS):
            h = mpmath.mpf(10) ** -15
            kk = M(k)
            right = (_mp(expr, [kk + h]) - _mp(expr, [kk])) / h
            left = (_mp(expr, [kk]) - _mp(expr, [kk - h])) / h
            assert right != left
            for d in (left, right):
                assert _inside(d, g[0], mpmath.mpf(10) ** -12), (expr, d, g[0])


def _nan(g):
    return not (g[0].is_finite() and g[1].is_finite())


def test_singular_arguments_give_nan_and_nan_stays_nan():
    unit = [(F(0), F(1)), (F(-1, 2), F(1, 2))]
    val, g = _grad(op("sqrt", V(0)), unit)            # the value is defined, the slope is not
    assert val[0].is_finite() and _nan(g[0]) and _nan(g[1])
    val, g = _grad(op("log", V(0)), unit)
    assert _nan(val) and _nan(g[0]) and _nan(g[1])
    val, g = _grad(op("div", N(1), V(1)), unit)
    assert _nan(val) and _nan(g[0])
    val, g = _grad(op("pow", V(1), N(-2)), unit)
    assert _nan(val) and _nan(g[1])
    val, g = _grad(op("mul", N(0), op("sqrt", op("sub", V(0), N(2)))), unit)   # 0 * NaN is NaN
    assert _nan(val) and _nan(g[0])
    val, g = _grad(op("mul", N(0), op("sqrt", V(0))), unit)    # a finite value, a NaN slope
    assert val[0].is_finite() and _nan(g[0]) and _nan(g[1])
    val, g = _grad(op("min", op("sqrt", V(0)), N(5)), unit)     # the live argument's NaN stays
    assert _nan(g[0])
    val, g = _grad(op("add", op("sqrt", V(0)), V(1)), unit)
    assert _nan(g[0]) and _nan(g[1])
    val, g = _grad(op("abs", op("sqrt", V(0))), unit)
    assert _nan(g[0])
    # the domain guard cuts sqrt's argument at its exact minimum on the domain: the value is
    # finite at the domain's end, the slope is unbounded there and finite away from it
    expr = op("sqrt", op("add", op("mul", N(3), V(0)), N(1)))
    dom = [(F(-1, 3), F(1))]
    val, g = _grad(expr, [(F(-1, 3), F(0))], names=("x0",), domain=dom)
    assert val[0].is_finite() and val[1].is_finite() and _nan(g[0])
    val, g = _grad(expr, [(F(0), F(1))], names=("x0",), domain=dom)
    assert _pt(g[0]) == pytest.approx((1.5 / 2, 1.5)) and not _nan(g[0])


def test_names_select_the_partials_and_deep_trees_do_not_recurse_out():
    e = op("mul", V(0), V(1))
    _, g = _grad(e, BOX, names=("x1",))
    assert len(g) == 1 and _pt(g[0]) == (1 / 3, 0.5)
    with pytest.raises(ArbExprError):
        _grad(e, BOX, names=("x2",))
    deep = V(0)
    for _ in range(199):
        deep = op("neg", deep)
    _, g = _grad(deep, BOX)
    assert _pt(g[0]) == (-1.0, -1.0)


# ------------------------------------------------------------------ the centred bound vs sampling

SMALL = {
    "ramp-9": ("ramp", {"p": 9, "kappa": "27/10"}),
    "ramp-5-sharp": ("ramp", {"p": 5, "kappa": 10 ** 6}),
    "maxaff-sin": ("max-affine", {"f": "sin(3*x0)", "G": 6}),
    "maxaff-cosx1": ("max-affine", {"f": "cos(x0)*x1", "G": 4}),
    "maxaff-abs": ("max-affine", {"f": "abs(x0-1/3)", "G": 6}),
    "ramp-multihead": ("ramp-multihead", {}),
}


class Setup:
    def __init__(self, key):
        name, kw = SMALL[key]
        self.c = constructions.build(name, **kw)
        self.D = len(self.c.domain)
        self.heads = affine_heads(self.c.network.to_json(), self.D)
        self.prep = prepare_heads(self.heads)
        self.targets = [arb_compile(to_json(t)).on_domain(self.c.domain) for t in self.c.target]

    def hints(self, box):
        """The leading key of every head at the box's exact centre."""
        cen = [fmpq(((a + b) / 2).numerator, ((a + b) / 2).denominator) for a, b in box]
        out = []
        for per in self.heads:
            for c, G, _, _ in per:
                lg = [c[j] + sum((G[j][i] * cen[i] for i in range(self.D)), fmpq(0)) for j in range(len(c))]
                out.append(max(range(len(c)), key=lambda j: lg[j]))
        return out

    def error(self, x):
        """max_o |N_o(x) - f_o(x)| in mpmath (the network's own forward pass, not the checker's heads)."""
        return max(abs(v) for v in self.errors(x))

    def errors(self, x):
        y = forward_mp(self.c.network, x, dps=DPS)
        with mpmath.workdps(DPS):
            pt = {f"x{i}": v for i, v in enumerate(x)}
            return [y[o] - mp_eval(t, pt) for o, t in enumerate(self.c.target)]

    def boxes(self, seed, n):
        """Small boxes at random places (and at the domain's ends), widths 2^-2 .. 2^-12 of the domain."""
        rng = random.Random(seed)
        out = []
        for k in range(n):
            box = []
            for a, b in self.c.domain:
                w = (b - a) / 2 ** rng.randint(2, 12)
                lo = a + (b - a - w) * F(rng.randint(0, 2 ** 20), 2 ** 20)
                if k % 5 == 0:
                    lo = a if k % 10 == 0 else b - w
                box.append((lo, lo + w))
            out.append(box)
        return out


@pytest.fixture(scope="module", params=sorted(SMALL))
def setup(request):
    return Setup(request.param)


def _grid(box, m):
    axes = [[M(a) + (M(b) - M(a)) * k / (m - 1) for k in range(m)] for a, b in box]
    pts = [[]]
    for ax in axes:
        pts = [p + [v] for p in pts for v in ax]
    return pts


def test_centred_bound_is_never_below_a_sampled_error_and_slopes_hold_every_quotient(setup):
    s = setup
    m = 33 if s.D == 1 else 9
    checked = 0
    for box in s.boxes(11, 10):
        hints = s.hints(box)
        C, slopes, e_c = centred_parts(box, s.heads, s.targets, hints, s.prep)
        if not C.is_finite():
            continue
        checked += 1
        with mpmath.workdps(DPS):
            Cm = mpf_of(C.upper())
            assert s.error([(a + b) / 2 for a, b in box]) <= mpf_of(e_c.upper())
            for x in _grid(box, m):
                err = s.error(x)
                assert err <= Cm, (box, x, err, Cm)
            # every difference quotient of every output's error along x_i lies within +-slope_i
            h = mpmath.mpf(10) ** -20
            rng = random.Random(3)
            for i in range(s.D):
                sl = mpf_of(slopes[i].upper())
                for _ in range(3 if s.D == 1 else 2):
                    x = [M(a) + (M(b) - M(a)) * mpmath.mpf(rng.uniform(0.01, 0.99))
                         for a, b in box]
                    xp, xm = list(x), list(x)
                    xp[i] += h
                    xm[i] -= h
                    for ep, em in zip(s.errors(xp), s.errors(xm)):
                        d = (ep - em) / (2 * h)
                        assert abs(d) <= sl * (1 + mpmath.mpf(10) ** -12), (box, i, d, sl)
        # the plain bound and the centred one both hold; on the same box the centred bound adds
        # slope * radius to the centre's bound
        assert C >= e_c
    assert checked >= 8


def test_centred_box_bound_confirms_stored_slopes_and_rejects_lowered_ones():
    s = Setup("maxaff-cosx1")
    box = [(F(1, 8), F(1, 8) + F(1, 64)), (F(-3, 4), F(-3, 4) + F(1, 32))]
    hints = s.hints(box)
    C, slopes, _ = centred_parts(box, s.heads, s.targets, hints, s.prep)
    stored = [up(x) for x in slopes]
    got = centred_box_bound(box, s.heads, s.targets, hints, s.prep, [fmpq(q.numerator, q.denominator) for q in stored])
    assert got.upper() == C.upper()
    as_strings = [f"{q.numerator}/{q.denominator}" for q in stored]
    assert centred_box_bound(box, s.heads, s.targets, hints, None, as_strings).upper() == C.upper()
    for i in range(2):
        low = list(stored)
        low[i] = stored[i] * (1 - F(1, 2 ** 12))
        with pytest.raises(Invalid, match=f"input {i}: stored slope"):
            centred_box_bound(box, s.heads, s.targets, hints, s.prep, [fmpq(q.numerator, q.denominator) for q in low])
    with pytest.raises(Invalid, match="slopes for a 2-D box"):
        centred_box_bound(box, s.heads, s.targets, hints, s.prep, [fmpq(1)])
    # a higher stored slope is fine (C* uses the checker's own slopes)
    high = [fmpq(10 ** 6)] * 2
    assert centred_box_bound(box, s.heads, s.targets, hints, s.prep, high).upper() == C.upper()


def test_lumped_tail_keys_keep_the_derivative_sound():
    """ramp with kappa=10^6: most keys' gaps end below -60 on small boxes, so head_parts lumps
    them; the slopes must still hold every sampled quotient (checked above) and be finite."""
    s = Setup("ramp-5-sharp")
    from certificates.check.core import head_parts
    box = [(F(1, 3), F(1, 3) + F(1, 2 ** 10))]
    hints = s.hints(box)
    parts = head_parts(s.prep, 0, hints[0], [(fmpq(1, 3), fmpq(1, 3) + fmpq(1, 2 ** 10))])
    assert len(parts[3]) > len(parts[2])        # a tail entry
    slopes = box_slopes(box, s.heads, s.targets, hints, s.prep)
    assert slopes[0].is_finite()
    with mpmath.workdps(DPS):
        h = mpmath.mpf(10) ** -20
        for t in (0.1, 0.5, 0.9):
            x = M(box[0][0]) + M(box[0][1] - box[0][0]) * t
            d = (s.errors([x + h])[0] - s.errors([x - h])[0]) / (2 * h)
            assert abs(d) <= mpf_of(slopes[0].upper())


# ------------------------------------------------------------------ tightness and cost

def _peak(c, n=401):
    from verify.enclose.target import float_eval
    from verify.forward import forward_float
    g = np.linspace(float(c.domain[0][0]), float(c.domain[0][1]), n)
    X = np.array([(a, b) for a in g for b in g])
    e = np.abs(forward_float(c.network, X)[:, 0] - float_eval(c.target[0], {"x0": X[:, 0], "x1": X[:, 1]}, np))
    k = int(np.argmax(e))
    return X[k], e


@pytest.mark.parametrize("kw", [{"f": "cos(x0)*x1", "G": 4}, {"G": 8},
                                pytest.param({"G": 20}, marks=pytest.mark.slow)], ids=["cosx1-G4", "G8", "G20"])
def test_centred_bound_is_much_tighter_near_the_peak_of_max_affine_2d(kw, capsys):
    """Near the error's peak both bounds approach the sup; their excess over the sampled sup of
    the box is first order in the width for the plain bound, second order for the centred one."""
    from verify.enclose.target import float_eval
    from verify.forward import forward_float
    c = constructions.build("max-affine", **kw)
    D = 2
    heads = affine_heads(c.network.to_json(), D)
    prep = prepare_heads(heads)
    tg = [arb_compile(to_json(t)).on_domain(c.domain) for t in c.target]
    s = Setup.__new__(Setup)
    s.heads, s.D = heads, D
    p, _ = _peak(c)
    pc = [F(round(v * 400), 400) for v in p]
    rows = []
    for k in (6, 8, 10, 12):
        r = F(1, 2 ** k)
        box = [(max(v - r, F(-1)), min(v + r, F(1))) for v in pc]
        hints = s.hints(box)
        plain = box_bound(box, heads, tg, hints, prep)
        C, _, _ = centred_parts(box, heads, tg, hints, prep)
        g = [np.linspace(float(a), float(b), 41) for a, b in box]
        X = np.array([(a, b) for a in g[0] for b in g[1]])
        sup = float(np.max(np.abs(forward_float(c.network, X)[:, 0]
                                  - float_eval(c.target[0], {"x0": X[:, 0], "x1": X[:, 1]}, np))))
        ex_p, ex_c = float(plain.mid()) - sup, float(C.mid()) - sup
        rows.append((k, float(plain.mid()), float(C.mid()), sup, ex_p / max(ex_c, 1e-300)))
    with capsys.disabled():
        print(f"\nmax-affine {kw}: width 2^-k, plain, centred, sampled sup, excess ratio plain/centred")
        for row in rows:
            print("  k=%d plain %.6g centred %.6g sup %.6g ratio %.1f" % row)
    assert all(r[2] >= r[3] for r in rows)            # sound
    assert rows[-1][2] < rows[-1][1] and rows[-2][2] < rows[-2][1]   # tighter on small boxes
    assert rows[-1][4] > 10 and rows[-2][4] > 4          # excess: second order vs first order


def test_cost_of_a_centred_box_against_a_plain_box(capsys):
    s = Setup("maxaff-cosx1")
    boxes = s.boxes(5, 40)
    hints = [s.hints(b) for b in boxes]
    t = time.perf_counter()
    for b, h in zip(boxes, hints):
        box_bound(b, s.heads, s.targets, h, s.prep)
    plain = time.perf_counter() - t
    t = time.perf_counter()
    for b, h in zip(boxes, hints):
        centred_parts(b, s.heads, s.targets, h, s.prep)
    cen = time.perf_counter() - t
    with capsys.disabled():
        print(f"\nchecker per box (max-affine cos(x0)*x1 G=4, D=2, 16 keys): plain {1e3 * plain / 40:.2f} ms, "
              f"centred {1e3 * cen / 40:.2f} ms, ratio {cen / plain:.2f} (estimate_work counts 2 + 2D = 6)")
    assert cen / plain < 3 * (2 + 2 * s.D)


# ------------------------------------------------------------------ certificates with slopes

def _plain_certify(c, eps):
    kw = {"enclosure": "plain"} if "enclosure" in inspect.signature(certify).parameters else {}
    res = certify(c, eps, progress=False, **kw)
    assert res.status == "CERTIFIED"
    doc = certificate_doc(c, res)
    for ev in [doc["evidence"]] + doc["evidence"].get("groups", []):
        ev.pop("slopes", None)          # today's plain evidence, whatever the search does now
    return _reseal(doc)


def _q(x: F) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _reseal(doc):
    evs = doc["evidence"].get("groups") or [doc["evidence"]]
    doc["result"]["max_bound"] = _q(max(F(b) for ev in evs for b in ev["bounds"]))
    doc["sha256"] = digest(doc)
    return doc


def _stated(C) -> F:
    """A stated bound slightly above C*: the float above it, raised by 2^-12 of itself."""
    return F(float_up(C)) * (1 + F(1, 2 ** 12))


def _centre_some(doc, pick, outputs=None):
    """Give the picked boxes of the paving (or of each group) slopes computed by the checker's own
    centred code, and bounds just above C*; returns {(group, box): (C*, slopes)}."""
    domain = [(F(a), F(b)) for a, b in doc["domain"]]
    D = len(domain)
    eps = F(doc["eps"])
    heads_all = affine_heads(doc["construction"]["network"], D)
    targets = [arb_compile(t).on_domain(domain) for t in doc["target"]]
    evs = doc["evidence"].get("groups") or [doc["evidence"]]
    done = {}
    for gi, ev in enumerate(evs):
        outs = ev.get("outputs", list(range(len(heads_all))))
        heads = [heads_all[o] for o in outs]
        tg = [targets[o] for o in outs]
        prep = prepare_heads(heads)
        boxes = leaves(ev["tree"], domain, D)
        slopes = [[] for _ in boxes]
        for n, box in enumerate(boxes):
            if not pick(n):
                continue
            C, s, _ = centred_parts(box, heads, tg, ev["hints"][n], prep)
            if not C.is_finite() or not _stated(C) < eps:
                continue
            slopes[n] = [_q(F(float_up(x))) for x in s]
            ev["bounds"][n] = _q(_stated(C))
            done[(gi, n)] = (C, s)
        ev["slopes"] = slopes
    _reseal(doc)
    return done


@pytest.fixture(scope="module")
def ramp_doc():
    return _plain_certify(constructions.build("ramp", p=9, kappa="27/10"), "1/5")


@pytest.fixture(scope="module")
def maxaff_doc():
    c = constructions.build("max-affine", f="cos(x0)*x1", G=4)
    c = dataclasses.replace(c, meta=tuple((k, v) for k, v in c.meta if k != "grid"))   # the affine bounder
    doc = _plain_certify(c, "1/5")
    assert doc["evidence"].get("bounder", "affine") == "affine"
    return doc


@pytest.fixture(scope="module")
def centred_maxaff(maxaff_doc):
    doc = copy.deepcopy(maxaff_doc)
    done = _centre_some(doc, lambda n: n % 2 == 0)
    assert len(done) >= 10
    return doc, done


def test_certificates_with_centred_boxes_are_accepted(ramp_doc, maxaff_doc, centred_maxaff):
    doc = copy.deepcopy(ramp_doc)
    done = _centre_some(doc, lambda n: n % 3 != 1)
    assert done
    rep = check_doc(doc)
    assert rep.ok and rep.details["centred_boxes"] == len(done)
    doc, done = centred_maxaff
    rep = check_doc(doc)
    assert rep.ok and rep.details["centred_boxes"] == len(done)
    assert check_doc(doc, workers=2).ok                      # the parallel path reads slopes too
    assert check_doc(maxaff_doc).ok and "centred_boxes" not in check_doc(maxaff_doc).details


def _bad(doc, fn):
    d = copy.deepcopy(doc)
    fn(d)
    _reseal(d)
    return d


def test_lowering_any_slope_is_invalid(centred_maxaff):
    doc, done = centred_maxaff
    keys = sorted(done)
    rng = random.Random(1)
    for g, n in [keys[0], keys[-1]] + rng.sample(keys, 4):
        for i in range(2):
            def lower(d, n=n, i=i):
                s = F(d["evidence"]["slopes"][n][i])
                d["evidence"]["slopes"][n][i] = _q(s * (1 - F(1, 2 ** 12)) if s > 0 else F(-1, 10 ** 30))
            with pytest.raises(Invalid, match=f"box {n} \\(centred\\): input {i}: stored slope"):
                check_doc(_bad(doc, lower))
    with pytest.raises(Invalid, match="stored slope"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"][keys[-1][1]].__setitem__(0, "0")), workers=2)


def test_a_bound_below_the_centred_bound_is_invalid(centred_maxaff):
    doc, done = centred_maxaff
    for g, n in sorted(done)[:3]:
        C, _ = done[(g, n)]
        low = F(float(C.mid())) * (1 - F(1, 2 ** 10))
        with pytest.raises(Invalid, match=f"box {n}: stored bound .* below the re-derived"):
            check_doc(_bad(doc, lambda d: d["evidence"]["bounds"].__setitem__(n, _q(low))))


def test_slopes_of_the_wrong_shape_are_invalid(centred_maxaff, ramp_doc):
    doc, done = centred_maxaff
    n = sorted(done)[0][1]
    with pytest.raises(Invalid, match="slope entries for"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"].pop()))
    with pytest.raises(Invalid, match="slope entries for"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"].append([])))
    with pytest.raises(Invalid, match="lists 1 slopes"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"][n].pop()))
    with pytest.raises(Invalid, match="lists 3 slopes"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"][n].append("1")))
    with pytest.raises(Invalid, match="schema"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"][n].__setitem__(0, 1)))
    with pytest.raises(Invalid, match="schema"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"].__setitem__(n, "1")))
    d1 = copy.deepcopy(ramp_doc)
    _centre_some(d1, lambda k: True)
    with pytest.raises(Invalid, match="lists 2 slopes"):
        check_doc(_bad(d1, lambda d: d["evidence"]["slopes"][0].append("1")))
    # without its slopes a box is plain again: a bound that only the centred form justifies fails
    domain = [(F(a), F(b)) for a, b in doc["domain"]]
    heads = affine_heads(doc["construction"]["network"], 2)
    tg = [arb_compile(t).on_domain(domain) for t in doc["target"]]
    boxes = leaves(doc["evidence"]["tree"], domain, 2)
    loose = [k for _, k in sorted(done)
             if box_bound(boxes[k], heads, tg, doc["evidence"]["hints"][k]).mid() > 1.001 * float(F(doc["evidence"]["bounds"][k]))]
    assert loose
    with pytest.raises(Invalid, match=f"box {loose[0]}: stored bound"):
        check_doc(_bad(doc, lambda d: d["evidence"]["slopes"].__setitem__(loose[0], [])))


def test_slopes_with_grid_layered_or_lp_evidence_are_invalid(ramp_doc):
    # a real grid certificate (max-affine with its grid bounder)
    c = constructions.build("max-affine", f="sin(3*x0)", G=6)
    grid = _plain_certify(c, "1/2")
    assert grid["evidence"]["bounder"] == "grid" and check_doc(grid).ok
    # a grid paving may carry centred boxes (their hints are the affine ones, one per head); all
    # plain entries leave it as it was, and a centred box with grid hints is refused
    assert check_doc(_bad(grid, lambda d: d["evidence"].__setitem__(
        "slopes", [[] for _ in d["evidence"]["bounds"]]))).ok
    with pytest.raises(Invalid, match="box 0 \\(centred\\)|hints"):
        check_doc(_bad(grid, lambda d: d["evidence"].__setitem__(
            "slopes", [["1"]] + [[] for _ in d["evidence"]["bounds"][1:]])))
    # a layered network (relu-net: a final softmax and a linear readout): its slopes are re-derived
    # by the layered centred bound, so a made-up slope below the checker's is refused
    relu = _plain_certify(constructions.build("relu-net", f="sin(3*x0)", variant=1, units=6, n=5), "1/2")
    assert check_doc(relu).ok
    with pytest.raises(Invalid, match="box 0 \\(centred\\).*stored slope"):
        check_doc(_bad(relu, lambda d: d["evidence"].__setitem__("slopes", [["1"]] + [[] for _ in d["evidence"]["bounds"][1:]])))
    # an L_p norm
    doc = copy.deepcopy(ramp_doc)
    _centre_some(doc, lambda k: True)
    doc["norm"] = {"kind": "Lp", "p": "2"}
    doc["result"]["norm_bound"] = doc["result"]["max_bound"]
    with pytest.raises(Invalid, match="Linf"):
        check_doc(_reseal(doc))


def test_output_groups_carry_slopes_too():
    doc = _plain_certify(constructions.build("ramp-seq"), "1/5")
    assert doc["evidence"]["method"] == "outputs"
    done = _centre_some(doc, lambda n: True)   # where C* < eps: the flat ends of output 1's ramp
    assert done and all(F(s) >= 0 for grp in doc["evidence"]["groups"] for e in grp["slopes"] for s in e)
    rep = check_doc(doc)
    assert rep.ok and rep.details["centred_boxes"] == len(done)
    g, n = sorted(done)[-1]

    def lower(d):
        grp = d["evidence"]["groups"][g]
        grp["slopes"][n] = [_q(F(s) * (1 - F(1, 2 ** 12))) if F(s) > 0 else "-1" for s in grp["slopes"][n]]
    with pytest.raises(Invalid, match=f"group {g} .*box {n} \\(centred\\).*stored slope"):
        check_doc(_bad(doc, lower))
    for k in range(2):
        with pytest.raises(Invalid, match=f"group {k}: .* slope entries"):
            check_doc(_bad(doc, lambda d, k=k: d["evidence"]["groups"][k]["slopes"].pop()))
        with pytest.raises(Invalid, match=f"group {k}: box 0 lists 1 slopes"):
            check_doc(_bad(doc, lambda d, k=k: d["evidence"]["groups"][k]["slopes"].__setitem__(0, ["1"])))


def test_work_estimate_counts_centred_boxes(centred_maxaff, maxaff_doc):
    doc, done = centred_maxaff
    plain = estimate_work(maxaff_doc, 2)
    cen = estimate_work(doc, 2)
    every = copy.deepcopy(maxaff_doc)
    every["evidence"]["slopes"] = [["1", "1"]] * len(every["evidence"]["bounds"])
    none = copy.deepcopy(maxaff_doc)
    none["evidence"]["slopes"] = [[]] * len(none["evidence"]["bounds"])
    assert estimate_work(none, 2) == plain < cen < estimate_work(every, 2)
    base = copy.deepcopy(maxaff_doc)
    base["evidence"]["bounds"] = []
    fixed = estimate_work(base, 2) - len(base["evidence"]["tree"]) // 10
    per_plain = (plain - fixed) / len(maxaff_doc["evidence"]["bounds"])
    per_cen = (estimate_work(every, 2) - fixed) / len(maxaff_doc["evidence"]["bounds"])
    assert per_cen / per_plain == pytest.approx(2 + 2 * 2, rel=0.05)
