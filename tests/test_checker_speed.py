"""The checker's fast paths (lumped tail keys, presorted constant values, --workers) stay sound:
the lumped head bound encloses dense high-precision samples, and a parallel run reports what the
serial run does."""
from __future__ import annotations

import copy
import json
import pathlib
import random
from fractions import Fraction

import mpmath
import pytest
from flint import arb, ctx, fmpq

from certificates.check.core import PREC, Invalid, PreparedHeads, _head_bound, sha
from certificates.check.document import check_doc

LIB = pathlib.Path(__file__).resolve().parent.parent / "certificates" / "library"


def _fq(f: Fraction) -> fmpq:
    return fmpq(f.numerator, f.denominator)


def _ramp_head(p, kappa, rng, const=False):
    """A 1-D ramp-like head: logits kappa*(j/p)*x - kappa*(j/p)^2/2 (peaked near x = j/p),
    affine values, or constant ones with ``const``."""
    c, G, e, F = [], [], [], []
    for j in range(p):
        t = Fraction(j, p - 1) * 4 - 2
        c.append(_fq(-kappa * t * t / 2))
        G.append([_fq(kappa * t)])
        e.append(fmpq(rng.randint(-50, 50), 17))
        F.append([fmpq(rng.randint(-3, 3), 7) if rng.random() < 0.5 else fmpq(0)])
    if const:
        F = [[fmpq(0)] for _ in F]
    return c, G, e, F


@pytest.fixture
def arb_prec():
    """The checker's working precision for the test, restored after it."""
    old = ctx.prec
    ctx.prec = PREC
    yield
    ctx.prec = old


def _dense(c, G, e, F, x):
    mpmath.mp.prec = 200
    s = [mpmath.mpf(int(cj.p)) / int(cj.q) + mpmath.mpf(int(Gj[0].p)) / int(Gj[0].q) * x for cj, Gj in zip(c, G)]
    m = max(s)
    w = [mpmath.exp(v - m) for v in s]
    v = [mpmath.mpf(int(ej.p)) / int(ej.q) + mpmath.mpf(int(Fj[0].p)) / int(Fj[0].q) * x for ej, Fj in zip(e, F)]
    return mpmath.fsum(a * b for a, b in zip(w, v)) / mpmath.fsum(w)


@pytest.mark.parametrize("kappa,const", [(30, True), (30, False), (10 ** 6, True), (10 ** 6, False), (3, True)])
def test_lumped_bound_encloses_dense_samples(kappa, const, arb_prec):
    rng = random.Random(kappa + const)
    c, G, e, F = _ramp_head(61, kappa, rng, const)
    prep = PreparedHeads([[(c, G, e, F)]])
    for _ in range(25):
        a = Fraction(rng.randint(-2000, 1990), 1000)
        b = a + Fraction(rng.randint(1, 40), 1000)
        qbox = [(fmpq(a.numerator, a.denominator), fmpq(b.numerator, b.denominator))]
        mpmath.mp.prec = 200
        xs = [mpmath.mpf(a.numerator) / a.denominator + (mpmath.mpf(b.numerator) / b.denominator
              - mpmath.mpf(a.numerator) / a.denominator) * k / 16 for k in range(17)]
        ys = [_dense(c, G, e, F, x) for x in xs]
        # the hint: the key with the largest logit at the centre (any hint is sound)
        mid = (a + b) / 2
        ks = max(range(len(c)), key=lambda j: float(c[j]) + float(G[j][0]) * float(mid))
        for hint in (ks, rng.randrange(len(c))):
            lo, hi = _head_bound(prep, 0, hint, qbox)
            for y in ys:
                assert lo.lower() <= arb(mpmath.nstr(y, 60)) + arb("1e-30")
                assert hi.upper() >= arb(mpmath.nstr(y, 60)) - arb("1e-30")


def _ramp_doc():
    path = LIB / "ramp-p41-kappa27_10.json"
    return json.loads(path.read_text())


def test_serial_and_workers_give_identical_reports():
    doc = _ramp_doc()
    a = check_doc(doc, "x").to_json()
    b = check_doc(doc, "x", workers=2).to_json()
    assert a == b


def test_tampered_bound_rejected_serial_and_parallel():
    doc = copy.deepcopy(_ramp_doc())
    bounds = doc["evidence"]["bounds"]
    n = len(bounds) * 3 // 4      # in the second chunk
    bounds[n] = "1/1000000000000"
    doc["sha256"] = sha({k: v for k, v in doc.items() if k != "sha256"})
    msgs = []
    for workers in (None, 2):
        with pytest.raises(Invalid) as ex:
            check_doc(doc, "x", workers=workers)
        msgs.append(str(ex.value))
    assert msgs[0] == msgs[1]
    assert f"box {n}" in msgs[0]


# ------------------------------------------------------------------ the float screen and the fast paths


def _random_rat(rng, scale):
    """A random rational of magnitude about ``scale`` (often not a float), sometimes zero."""
    if rng.random() < 0.1:
        return Fraction(0)
    return Fraction(rng.randint(-10 ** 12, 10 ** 12), rng.choice([1, 3, 7, 10 ** 12 + 39, 3 ** 30])) * scale / 10 ** 6


@pytest.mark.parametrize("D", [1, 2, 3])
def test_float_screen_error_bound_holds_exactly(D):
    """Every exact end of c_j + G_j.x (and of the differences to a hint key) over a box lies within
    the screen's error bound of its float value: checked in exact rational arithmetic."""
    from certificates.check.core import _AffineScreen
    rng = random.Random(100 + D)
    for trial in range(12):
        scale = Fraction(10) ** rng.randint(-8, 8)
        n = rng.randint(1, 30)
        c = [_random_rat(rng, scale) for _ in range(n)]
        G = [[_random_rat(rng, scale) for _ in range(D)] for _ in range(n)]
        scr = _AffineScreen([_fq(x) for x in c], [[_fq(x) for x in r] for r in G])
        assert scr.ok
        for _ in range(8):
            box = []
            for _ in range(D):
                a = _random_rat(rng, Fraction(10) ** rng.randint(-3, 3))
                box.append((a, a + abs(_random_rat(rng, Fraction(1, 10 ** rng.randint(0, 6)))) + Fraction(1, 10 ** 9)))
            qbox = [(_fq(a), _fq(b)) for a, b in box]
            for ks in (None, rng.randrange(n)):
                hi, lo, err = scr.ends(qbox, ks)
                for j in range(n):
                    cj = c[j] - (c[ks] if ks is not None else 0)
                    gj = [G[j][i] - (G[ks][i] if ks is not None else 0) for i in range(D)]
                    ehi = cj + sum(max(g * a, g * b) for g, (a, b) in zip(gj, box))
                    elo = cj + sum(min(g * a, g * b) for g, (a, b) in zip(gj, box))
                    assert abs(Fraction(float(hi[j])) - ehi) <= Fraction(float(err[j]))
                    assert abs(Fraction(float(lo[j])) - elo) <= Fraction(float(err[j]))


def test_float_screen_refuses_subnormal_coefficients():
    from certificates.check.core import _AffineScreen
    assert not _AffineScreen([fmpq(1)], [[fmpq(1, 2 ** 1040)]]).ok
    assert not _AffineScreen([fmpq(2 ** 1100)], [[fmpq(1)]]).ok
    assert _AffineScreen([fmpq(0)], [[fmpq(0)]]).ok


@pytest.mark.parametrize("kappa,const", [(30, True), (30, False), (10 ** 4, True), (10 ** 4, False)])
def test_screened_head_bound_equals_the_unscreened_one(kappa, const, monkeypatch, arb_prec):
    """The screen only saves work: the same keys are bounded one by one, and the bounds agree with
    the key-by-key ones up to the tail's e^-60 scale."""
    from certificates.check import core
    rng = random.Random(kappa * 3 + const)
    c, G, e, F = _ramp_head(81, kappa, rng, const)
    heads = [[(c, G, e, F)]]
    for _ in range(20):
        a = Fraction(rng.randint(-2000, 1990), 1000)
        b = a + Fraction(rng.randint(1, 40), 1000)
        qbox = [(_fq(a), _fq(b))]
        ks = rng.randrange(len(c))
        fast = core.head_parts(core.PreparedHeads(heads), 0, ks, qbox)
        monkeypatch.setattr(core, "SCREEN_MIN_KEYS", 10 ** 9)
        slow = core.head_parts(core.PreparedHeads(heads), 0, ks, qbox)
        monkeypatch.undo()
        assert fast[2] == slow[2]                      # the same keys one by one
        assert len(fast[3]) == len(slow[3])            # a tail in both or in neither
        for x, y in ((fast[0], slow[0]), (fast[1], slow[1])):
            assert abs(x - y) < arb("1e-20")


@pytest.mark.parametrize("kappa,const", [(30, True), (30, False), (10 ** 6, True), (3, False)])
def test_point_head_bound_encloses_the_exact_output(kappa, const, arb_prec):
    from certificates.check.core import point_head_bound
    rng = random.Random(kappa + 7 * const)
    c, G, e, F = _ramp_head(61, kappa, rng, const)
    prep = PreparedHeads([[(c, G, e, F)]])
    for _ in range(30):
        x = Fraction(rng.randint(-2000, 2000), 1000)
        mpmath.mp.prec = 200
        y = _dense(c, G, e, F, mpmath.mpf(x.numerator) / x.denominator)
        for ks in (max(range(len(c)), key=lambda j: float(c[j]) + float(G[j][0]) * float(x)),
                   rng.randrange(len(c))):
            lo, hi = point_head_bound(prep, 0, ks, [(_fq(x), _fq(x))])
            yy = arb(mpmath.nstr(y, 60))
            assert lo.lower() <= yy + arb("1e-30") and hi.upper() >= yy - arb("1e-30")
            assert (hi - lo).upper() < arb("1e-15") * (1 + abs(yy))


def test_knapsack_lower_is_the_negated_upper_end(arb_prec):
    from certificates.check.core import knapsack_lower, knapsack_upper
    rng = random.Random(5)
    for _ in range(500):
        n = rng.randint(1, 12)
        w = [rng.random() for _ in range(n)]
        l = [arb(fmpq(int(x * 10 ** 6), 2 * 10 ** 6 * n)).lower() for x in w]
        u = [arb.min(arb(fmpq(int(x * 10 ** 6), 10 ** 6)) * 3 / n, arb(1)).upper() for x in w]
        v = [arb(fmpq(rng.randint(-100, 100), rng.randint(1, 7))).upper() for _ in range(n)]
        if rng.random() < 0.3:
            v = [x + arb(0, 1e-40) for x in v]    # balls: the sign of v_j - t may be undecided
        lo = knapsack_lower(l, u, v)
        assert lo.mid() == (-knapsack_upper(l, u, [-x for x in v])).mid()
        # and it is a lower end of every feasible point: a = l + (1 - sum l) spread by u - l
        a = [float(x.mid()) for x in l]
        rest = 1 - sum(a)
        for j in rng.sample(range(n), n):
            add = min(rest, float(u[j].mid()) - a[j])
            a[j] += add
            rest -= add
        if rest <= 1e-12:
            val = sum(arb(aj) * vj for aj, vj in zip(a, v))
            assert lo <= val + arb("1e-12")


def test_corner_product_is_the_hull_of_the_four_corners():
    from certificates.check.core import corner_product, _hull, interval_product
    rng = random.Random(1)

    def r():
        return arb(0) if rng.random() < 0.15 else arb(fmpq(rng.randint(-50, 50), rng.randint(1, 9)))
    for _ in range(5000):
        a = sorted([r(), r()], key=float)
        b = sorted([r(), r()], key=float)
        want = _hull((a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]))
        for f in (corner_product, interval_product):
            lo, hi = f(a[0], a[1], b[0], b[1])
            assert lo == want[0] and hi == want[1]
    # balls and reversed ends take the hull; non-finite ends give NaN
    lo, hi = interval_product(arb(1, 0.5), arb(2), arb(-1), arb(3))
    assert lo <= arb(-2) and hi >= arb(6)
    assert interval_product(arb("inf"), arb(1), arb(1), arb(2))[0].is_nan()


@pytest.mark.parametrize("p", [41, 201])      # the Python-float screen (up to 128 keys) and NumPy's
def test_screened_keys_are_proved_below_the_tail_gap(p):
    """Every key the screen lumps has exact gap end below TAIL_GAP over the box, its bound M is at
    least their largest exact end, and the hint key is never lumped."""
    from certificates.check.core import TAIL_GAP
    rng = random.Random(p)
    c, G, e, F = _ramp_head(p, 10 ** 3, rng)
    prep = PreparedHeads([[(c, G, e, F)]])
    lumped = 0
    for _ in range(40):
        a = Fraction(rng.randint(-2000, 1990), 1000)
        b = a + Fraction(rng.randint(1, 400), 10 ** rng.randint(3, 6))
        qbox = [(_fq(a), _fq(b))]
        ks = rng.randrange(p)
        prep._last_screen.clear()
        cand, n_tail, M = prep.screen(0, ks, qbox)
        assert ks in cand and n_tail == p - len(cand)
        dc, dG = prep.gaps(0, ks)
        tail = [j for j in range(p) if j not in set(cand)]
        lumped += len(tail)
        for j in tail:
            hi = dc[j] + max(dG[j][0] * qbox[0][0], dG[j][0] * qbox[0][1])
            assert hi < TAIL_GAP and arb(hi) <= M
    assert lumped > 0


def test_expression_fast_paths_give_the_same_enclosures():
    """arbexpr's interval product (the corner that holds each extreme) equals the hull of the four
    corners, and the constant leaves kept between evaluations change no bound."""
    from certificates.check import arbexpr
    rng = random.Random(4)

    def r():
        return arb(0) if rng.random() < 0.2 else arb(fmpq(rng.randint(-30, 30), rng.randint(1, 7))).lower()
    for _ in range(5000):
        x = tuple(sorted([r(), r()], key=float))
        y = tuple(sorted([r(), r()], key=float))
        ps = [x[0] * y[0], x[0] * y[1], x[1] * y[0], x[1] * y[1]]
        got = arbexpr._imul2(x, y)
        assert got[0] == min(p.lower() for p in ps) and got[1] == max(p.upper() for p in ps)
    lo, hi = arbexpr._imul2((arb(1, 0.5), arb(2)), (arb(-1), arb(3)))   # a ball: every corner
    assert lo <= arb(-2) and hi >= arb(6)
    tree = {"op": "add", "args": [{"num": "1/3"}, {"op": "mul", "args": [{"num": "-7/5"}, {"op": "range", "args": [
        {"num": "0"}, {"num": "1/8"}, {"op": "sub", "args": [{"var": "x0"}, {"const": "pi"}]}]}]}]}
    g = arbexpr.arb_compile(tree)
    env = {"x0": (fmpq(3), fmpq(3) + fmpq(1, 7))}
    first = g.bounds(env), g.bounds_and_gradient(env, ["x0"])
    again = g.bounds(env), g.bounds_and_gradient(env, ["x0"])
    fresh = arbexpr.arb_compile(tree)
    assert str(first) == str(again) == str((fresh.bounds(env), fresh.bounds_and_gradient(env, ["x0"])))
