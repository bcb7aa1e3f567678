"""A hand-made 2-D one-head network for tests of the 2-D paths (no paper construction is 2-D yet).

Anchors L on an n x n grid of [-1, 1]^2; query gamma*(2x, -1), keys (L, |L|^2), so the logits
gamma*(|x|^2 - |x - L|^2) are affine in x after the softmax shift; values L0 + L1 approximate x0 + x1.
"""
from fractions import Fraction as F


from constructions.base import Construction
from constructions.network import Embedding, Head, Layer, Network, mat


def grid2d(kappa=4, n=3) -> Construction:
    pts = [F(-1) + F(2 * i, n - 1) for i in range(n)]
    anchors = [(a, b) for a in pts for b in pts]
    zero = [0] * 7
    const = [[0, 0, 1, 0, 0, 0, 0]] + [[0, 0, 0, a, b, a * a + b * b, a + b] for a, b in anchors]
    lin0 = [[1, 0, 0, 0, 0, 0, 0]] + [zero] * len(anchors)
    lin1 = [[0, 1, 0, 0, 0, 0, 0]] + [zero] * len(anchors)
    wq = [[2, 0, 0], [0, 2, 0], [0, 0, -1]] + [[0, 0, 0]] * 4
    wk = [[0, 0, 0]] * 3 + [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    wv = [[0]] * 6 + [[1]]
    head = Head(wq=mat(wq), wk=mat(wk), wv=mat(wv), wo=mat([[1]]), beta=F(kappa) / F(2, n - 1) ** 2)
    net = Network(Embedding(mat(const), (mat(lin0), mat(lin1))),
                  (Layer((head,), (0,), tuple(range(1, len(anchors) + 1))),), ((0, 0),))
    return Construction(name="grid2d", paper="test only", theorem="2-D anchor interpolation of x0 + x1",
                        params=(("kappa", F(kappa)), ("n", n)), network=net,
                        target=(("add", ("var", "x0"), ("var", "x1")),),
                        domain=((F(-1), F(1)), (F(-1), F(1))), apriori_bound=1)
