"""The layered networks' centred (mean-value) bound: the searcher's (verify/enclose/layered.py) and
the checker's (certificates/check/layered.py) slopes and centred bounds against 40-digit sampling,
their agreement, a tampered slope refused, and certify-then-check with centred boxes.

A sampled difference quotient above a proved slope, or a sampled error above a proved bound, is a
soundness bug, never noise: (e(x + h u_i) - e(x)) / h is d_i e at some point of the box (mean value
theorem, e is smooth there), so it can never exceed sup_B |d_i e|.
"""
import copy
import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from flint import ctx, fmpq

import constructions
from certificates.check.core import Invalid, sha
from certificates.check.document import check_doc
from certificates.check.layered import (LayeredNet, layered_box_bound, layered_centred_bound, layered_slopes,
                                        split_targets)
from certificates.model import certificate_doc
from constructions.base import Construction
from constructions.expr import mp_eval, to_json
from constructions.network import Embedding, Head, Layer, Network, mat
from verify.enclose.bounder import make_bounder
from verify.enclose.layered import LayeredBounder
from verify.forward import forward_mp
from verify.search.certify import certify
from verify.search.paving import Domain


def _q(x: float):
    f = Fraction(x)
    return fmpq(f.numerator, f.denominator)


def _error_mp(c, pt):
    """max_o |N_o - f_o| at an exact point, at 40 digits."""
    with mpmath.workdps(40):
        ys = forward_mp(c.network, pt, 40)
        env = {f"x{i}": mpmath.mpf(v.numerator) / v.denominator for i, v in enumerate(pt)}
        return [ys[o] - mp_eval(t, env) for o, t in enumerate(c.target)]


def _boxes(c, rng, k, count):
    """``count`` dyadic boxes of side 2^-k of the domain (as float arrays and exact boxes)."""
    lo = np.array([float(a) for a, _ in c.domain])
    wid = np.array([float(b - a) for a, b in c.domain])
    side = wid * 2.0 ** -k
    X = lo + np.floor(rng.random((count, len(lo))) * 2 ** k) * side
    exact = [[(Fraction(X[n, i]), Fraction(X[n, i] + side[i])) for i in range(len(lo))] for n in range(count)]
    return X, X + side, exact


def _checker(c):
    net = json.loads(json.dumps(c.network.to_json()))
    model = LayeredNet(net, len(c.domain))
    tj = [to_json(t) for t in c.target]
    return model, split_targets(model, tj, list(c.domain)), layered_centred_bound(model, tj, list(c.domain))


def _dominates(c, lo_box, slopes, C, rng, n_pts=4):
    """Sampled difference quotients along every input <= the slopes; sampled errors <= C."""
    D = len(lo_box)
    for _ in range(n_pts):
        t = [Fraction(int(v), 64) for v in rng.integers(0, 65, D)]
        pt = [a + (b - a) * s for (a, b), s in zip(lo_box, t)]
        e0 = _error_mp(c, pt)
        assert max(abs(v) for v in e0) <= mpmath.mpf(C), (pt, e0, C)
        for i in range(D):
            a, b = lo_box[i]
            h = (b - a) / 7
            q = list(pt)
            q[i] = pt[i] + h if pt[i] + h <= b else pt[i] - h
            e1 = _error_mp(c, q)
            for o in range(len(e0)):
                quot = abs(e1[o] - e0[o]) / abs(mpmath.mpf(h.numerator) / h.denominator)
                assert quot <= mpmath.mpf(slopes[i]) * (1 + mpmath.mpf(10) ** -12), (i, o, quot, slopes[i])


@pytest.mark.parametrize("k", [3, 6, 10])
def test_icl_gd_slopes_and_centred_bound_dominate_40_digit_samples(k):
    """icl-gd (logcosh, n = 2, p = 5): on boxes of side 2^-k of the prompt box, the searcher's slopes
    bound every sampled difference quotient, C every sampled error, and the checker re-derives the
    same slopes (to 1e-6: the knapsack's greedy t and tanh's enclosure differ in the last digits)
    and a centred bound within REL_SLACK of C."""
    c = constructions.build("icl-gd", loss="logcosh", p=5)
    b = LayeredBounder(c)
    model, split, centred = _checker(c)
    rng = np.random.default_rng(k)
    xl, xh, exact = _boxes(c, rng, k, 3)
    plain, C, slopes, hints = b.centred_bounds(xl, xh)
    assert np.all(np.isfinite(C)) and np.all(slopes >= 0)
    old = ctx.prec
    ctx.prec = 128
    try:
        for n, box in enumerate(exact):
            h = [int(v) for v in hints[n]]
            mine = layered_slopes(model, split, box, h)
            for s_chk, s in zip(mine, slopes[n]):
                assert abs(float(s_chk.mid()) - s) <= 1e-6 * max(s, 1e-300)
            total = centred(box, h, [_q(v) for v in slopes[n]])
            assert float(total.mid()) <= C[n] * (1 + 2.0 ** -20)
            _dominates(c, box, slopes[n], C[n], rng)
    finally:
        ctx.prec = old


def test_centred_bound_shrinks_to_the_error_faster_than_plain():
    """On small boxes the centred bound's excess over the error at the centre is far below the
    plain bound's (it is second order in the width)."""
    c = constructions.build("icl-gd", p=9)
    b = LayeredBounder(c)
    rng = np.random.default_rng(0)
    xl, xh, exact = _boxes(c, rng, 12, 4)
    plain, C, _, _ = b.centred_bounds(xl, xh)
    for n, box in enumerate(exact):
        centre = [(a + bb) / 2 for a, bb in box]
        e = float(max(abs(v) for v in _error_mp(c, centre)))
        assert e <= C[n] and e <= plain[n, 0]
        assert C[n] - e < 0.25 * (plain[n, 0] - e) + 1e-9


def _rand(rng, r, c, scale=2):
    return mat([[Fraction(int(rng.integers(-8, 9)), 4) * scale for _ in range(c)] for _ in range(r)])


def _two_layer(rng, final_softmax, linear):
    """A random two-input, two-layer network with post maps, biases and a final softmax or not."""
    T, d = 3, 2
    emb = Embedding(const=_rand(rng, T, d, 1), linear=(_rand(rng, T, d, 1), _rand(rng, T, d, 1)))
    h1 = Head(wq=_rand(rng, d, 2), wk=_rand(rng, d, 2), wv=_rand(rng, d, 2, 1), wo=_rand(rng, 2, 2, 1),
              beta=Fraction(3, 4), bias=_rand(rng, 3, 3))
    l1 = Layer(heads=(h1,), query_rows=(0, 1, 2), key_rows=(0, 1, 2), post=(_rand(rng, 2, 3, 1), _rand(rng, 3, 3, 1)))
    h2 = Head(wq=_rand(rng, 3, 2), wk=_rand(rng, 3, 2), wv=_rand(rng, 3, 2, 1), wo=_rand(rng, 2, 2, 1),
              beta=Fraction(1, 2), bias=None)
    h3 = Head(wq=_rand(rng, 3, 2), wk=_rand(rng, 3, 2), wv=_rand(rng, 3, 2, 1), wo=_rand(rng, 2, 2, 1),
              beta=Fraction(1, 4), bias=_rand(rng, 2, 3))
    post2 = (_rand(rng, 2, 3, 1), _rand(rng, 2, 3, 1)) if final_softmax else None
    l2 = Layer(heads=(h2, h3), query_rows=(0, 1), key_rows=(0, 1, 2), post=post2)
    readout = ((0, 0), (1, 1), (0, 1))
    rl = ((Fraction(1, 3), (Fraction(1), Fraction(-2), Fraction(1, 2))),) if linear else None
    return Network(embedding=emb, layers=(l1, l2), readout=readout, final_softmax=final_softmax, readout_linear=rl)


@pytest.mark.parametrize("seed", range(4))
def test_random_layered_networks_slopes_dominate_samples(seed):
    """Random two-layer networks (post maps, a final softmax or not, a linear readout or not) with
    a smooth target: searcher slopes and C dominate 40-digit samples; the checker's slopes are
    the same enclosures (to 1e-6) and its centred bound agrees."""
    rng = np.random.default_rng(100 + seed)
    net = _two_layer(rng, final_softmax=bool(seed % 2), linear=seed >= 2)
    n_out = 1 if net.readout_linear else len(net.readout)
    tgt = ("mul", ("num", Fraction(1, 3)), ("sin", ("add", ("var", "x0"), ("mul", ("var", "x0"), ("var", "x1")))))
    c = Construction(name="random", paper="", theorem="", params=(), network=net, target=(tgt,) * n_out,
                     domain=((Fraction(-1), Fraction(1)), (Fraction(0), Fraction(1))), apriori_bound=None)
    b = LayeredBounder(c)
    model, split, centred = _checker(c)
    old = ctx.prec
    ctx.prec = 128
    try:
        for k in (2, 5, 9):
            xl, xh, exact = _boxes(c, rng, k, 2)
            _, C, slopes, hints = b.centred_bounds(xl, xh)
            for n, box in enumerate(exact):
                if not np.isfinite(C[n]):
                    continue
                h = [int(v) for v in hints[n]]
                mine = layered_slopes(model, split, box, h)
                for s_chk, s in zip(mine, slopes[n]):
                    assert abs(float(s_chk.mid()) - s) <= 1e-6 * s + 1e-300
                total = centred(box, h, [_q(v) for v in slopes[n]])
                assert float(total.mid()) <= C[n] * (1 + 2.0 ** -20)
                _dominates(c, box, slopes[n], C[n], rng, n_pts=2)
    finally:
        ctx.prec = old


def _reseal(doc):
    doc["sha256"] = sha({k: v for k, v in doc.items() if k != "sha256"})
    return doc


@pytest.fixture(scope="module")
def icl_doc():
    """icl-gd n = 1, p = 5 certified at 0.06 with centred boxes (a few of its leaves)."""
    c = constructions.build("icl-gd", n=1, p=5)
    res = certify(c, "0.06", progress=False, enclosure="centred")
    assert res.status == "CERTIFIED"
    return c, res, json.loads(json.dumps(certificate_doc(c, res)))


def test_certify_then_check_with_centred_layered_boxes(icl_doc):
    c, res, doc = icl_doc
    centred_leaves = [l for l in res.leaves if l.slopes]
    assert centred_leaves and len(doc["evidence"]["slopes"]) == len(res.leaves)
    rep = check_doc(doc)
    assert rep.ok and rep.details["centred_boxes"] == len(centred_leaves)
    assert float(rep.checked_max_bound) <= float(Fraction(doc["result"]["max_bound"])) * (1 + 2.0 ** -20)
    # the centred leaves' stated bounds are below their plain bounds (that is why they are centred)
    plain = make_bounder(c, enclosure="plain")
    for l in centred_leaves[:5]:
        box = Domain(c.domain).exact_box(l.i, l.k)
        bl, bh = np.array([[float(a) for a, _ in box]]), np.array([[float(b) for _, b in box]])
        assert l.bound < plain.error_bounds(bl, bh)[0][0]


def test_tampered_layered_slope_is_refused(icl_doc):
    _, _, doc = icl_doc
    slopes = doc["evidence"]["slopes"]
    k = next(n for n, s in enumerate(slopes) if s and any(Fraction(v) > 0 for v in s))
    i = max(range(len(slopes[k])), key=lambda j: Fraction(slopes[k][j]))
    bad = copy.deepcopy(doc)
    v = Fraction(bad["evidence"]["slopes"][k][i]) / 2
    bad["evidence"]["slopes"][k][i] = f"{v.numerator}/{v.denominator}"
    with pytest.raises(Invalid, match=f"box {k} \\(centred\\).*stored slope"):
        check_doc(_reseal(bad))
    # a wrong number of slopes for a box
    bad = copy.deepcopy(doc)
    bad["evidence"]["slopes"][k] = bad["evidence"]["slopes"][k][:-1]
    with pytest.raises(Invalid, match="slopes"):
        check_doc(_reseal(bad))
    # a centred box whose stated bound is lowered below the checker's C*
    bad = copy.deepcopy(doc)
    b = Fraction(bad["evidence"]["bounds"][k]) * Fraction(9, 10)
    bad["evidence"]["bounds"][k] = f"{b.numerator}/{b.denominator}"
    with pytest.raises(Invalid, match=f"box {k}: stored bound"):
        check_doc(_reseal(bad))


def test_checker_point_bound_is_the_centre_term():
    """The checker's C* at a degenerate box is its plain bound there (r = 0): no slope term."""
    c = constructions.build("icl-gd", n=1, p=5)
    model, split, centred = _checker(c)
    bound = layered_box_bound(model, [to_json(t) for t in c.target], list(c.domain))
    x = [Fraction(1, 3), Fraction(3, 4), Fraction(1, 5)]
    box = [(v, v) for v in x]
    b = LayeredBounder(c)
    _, h = b.output_bounds(np.array([[float(v) for v in x]]), np.array([[float(v) for v in x]]))
    old = ctx.prec
    ctx.prec = 128
    try:
        hints = [int(v) for v in h[0]]
        slopes = layered_slopes(model, split, box, hints)
        total = centred(box, hints, [_q(float(s.upper()) * 2) for s in slopes])
        assert total == bound(box, hints) or abs(float((total - bound(box, hints)).mid())) < 1e-30
    finally:
        ctx.prec = old
