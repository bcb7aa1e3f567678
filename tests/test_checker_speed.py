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


def _ramp_head(p, kappa, rng):
    """A 1-D ramp-like head: logits kappa*(j/p)*x - kappa*(j/p)^2/2 (peaked near x = j/p),
    constant or affine values."""
    c, G, e, F = [], [], [], []
    for j in range(p):
        t = Fraction(j, p - 1) * 4 - 2
        c.append(fmpq(-(kappa * t * t).numerator, (2 * t * t).denominator if False else 1) * 0
                 + fmpq(*(lambda f: (f.numerator, f.denominator))(-kappa * t * t / 2)))
        G.append([fmpq(*(lambda f: (f.numerator, f.denominator))(kappa * t))])
        e.append(fmpq(rng.randint(-50, 50), 17))
        F.append([fmpq(rng.randint(-3, 3), 7) if rng.random() < 0.5 else fmpq(0)])
    return c, G, e, F


def _dense(c, G, e, F, x):
    mpmath.mp.prec = 200
    s = [mpmath.mpf(int(cj.p)) / int(cj.q) + mpmath.mpf(int(Gj[0].p)) / int(Gj[0].q) * x for cj, Gj in zip(c, G)]
    m = max(s)
    w = [mpmath.exp(v - m) for v in s]
    v = [mpmath.mpf(int(ej.p)) / int(ej.q) + mpmath.mpf(int(Fj[0].p)) / int(Fj[0].q) * x for ej, Fj in zip(e, F)]
    return mpmath.fsum(a * b for a, b in zip(w, v)) / mpmath.fsum(w)


@pytest.mark.parametrize("kappa,const", [(30, True), (30, False), (10 ** 6, True), (10 ** 6, False), (3, True)])
def test_lumped_bound_encloses_dense_samples(kappa, const):
    rng = random.Random(kappa + const)
    c, G, e, F = _ramp_head(61, kappa, rng)
    if const:
        F = [[fmpq(0)] for _ in F]
    prep = PreparedHeads([[(c, G, e, F)]])
    old = ctx.prec
    ctx.prec = PREC
    try:
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
    finally:
        ctx.prec = old


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
