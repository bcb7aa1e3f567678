"""Networks for the export tests: a hand-made two-head network with a logit bias.

Range_[-1,1](x) = (Range_[-1,0](x) + 1/2) + (Range_[0,1](x) - 1/2): each head is a ramp
over its own anchors, and a bias of -64 hides the other head's anchors from it.
"""
from __future__ import annotations

from fractions import Fraction


from constructions.base import Construction
from constructions.network import Embedding, Head, Layer, Network, mat

# columns: x, 1, u1, v1, val1, u2, v2, val2
_W = 8


def two_head(p: int = 9, kappa=Fraction(8)) -> Construction:
    halves = [(Fraction(-1), Fraction(0), Fraction(1, 2)), (Fraction(0), Fraction(1), Fraction(-1, 2))]
    const = [[0, 1] + [0] * 6]
    lin = [[1] + [0] * 7]
    spans = []
    for h, (a, b, shift) in enumerate(halves):
        delta = (b - a) / (p - 1)
        start = len(const)
        for k in range(p):
            L = a + k * delta
            row = [0] * _W
            row[2 + 3 * h], row[3 + 3 * h], row[4 + 3 * h] = L - a, L * L - a * a, L + shift
            const.append(row)
            lin.append([0] * _W)
        spans.append(range(start, start + p))
    keys = tuple(range(1, len(const)))
    heads = []
    for h, (a, b, _) in enumerate(halves):
        gamma = kappa / ((b - a) / (p - 1)) ** 2
        wq = [[2, 0], [0, -1]] + [[0, 0]] * 6
        wk = [[0, 0] for _ in range(_W)]
        wk[2 + 3 * h], wk[3 + 3 * h] = [1, 0], [0, 1]
        wv = [[0] for _ in range(_W)]
        wv[4 + 3 * h] = [1]
        bias = [[0 if k in spans[h] else -64 for k in keys]]
        heads.append(Head(wq=mat(wq), wk=mat(wk), wv=mat(wv), wo=mat([[1]]), beta=gamma, bias=mat(bias)))
    net = Network(embedding=Embedding(const=mat(const), linear=(mat(lin),)),
                  layers=(Layer(heads=tuple(heads), query_rows=(0,), key_rows=keys),), readout=((0, 0),))
    return Construction(name="two-head-test", paper="(test network)", theorem="two half-ramps sum to a ramp",
                        params=(("p", p), ("kappa", kappa)), network=net,
                        target=(("range", ("num", Fraction(-1)), ("num", Fraction(1)), ("var", "x0")),),
                        domain=((Fraction(-2), Fraction(2)),), apriori_bound=1)


def two_layer() -> Construction:
    """A small two-layer network (d_k != d_v, a bias, several query rows) with dyadic weights.

    The certifier handles one layer only, so this one is used to test that the exporters
    follow any Network structure; its "certificate" is made by hand in the test.
    """
    F = lambda rows: mat([[Fraction(v).limit_denominator(64) for v in r] for r in rows])
    const = F([[0, 1, 0.5], [1, 0, -0.25], [0.5, 0.5, 1], [-1, 0.75, 0]])
    lin = F([[1, 0, 0], [0, 0.5, 0], [0, 0, -1], [0.25, 0, 0]])
    h0 = Head(wq=F([[1, 0], [0, 2], [0.5, 0]]), wk=F([[0, 1], [1, 0], [0, 0.5]]),
              wv=F([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), wo=F([[1, 0], [0, 1], [0.5, 0.5]]), beta=Fraction(3),
              bias=F([[0, -1, 0.5], [0, 0, 0], [1, 0, -2]]))
    h1 = Head(wq=F([[0.5, 0], [0, 1], [1, 1]]), wk=F([[1, 0], [0, -1], [0.25, 0]]),
              wv=F([[0, 1, 0], [1, 0, 0], [0, 0, 2]]), wo=F([[1, 0], [0, -1], [0, 0.5]]), beta=Fraction(1, 2))
    h2 = Head(wq=F([[2], [1]]), wk=F([[1], [0.5]]), wv=F([[1, 0], [0, 1]]), wo=F([[1], [1]]), beta=Fraction(4))
    net = Network(embedding=Embedding(const=const, linear=(lin,)),
                  layers=(Layer(heads=(h0, h1), query_rows=(0, 1, 2), key_rows=(1, 2, 3)),
                          Layer(heads=(h2,), query_rows=(0, 2), key_rows=(0, 1, 2))),
                  readout=((0, 0), (1, 0)))
    return Construction(name="two-layer-test", paper="(test network)", theorem="(structure only)",
                        params=(), network=net, target=(("var", "x0"), ("var", "x0")),
                        domain=((Fraction(-1), Fraction(1)),), apriori_bound=1)
