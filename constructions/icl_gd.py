"""[UAP] icl-gd: one softmax layer performs one in-context gradient step for linear regression.

The prompt holds w and the pairs (x_i, y_i) (d = 1, n <= 4); inputs are ordered
x0 = w, x(2i+1) = x_i, x(2i+2) = y_i.  Query token i reads (x_i, -y_i, -1); anchor token
(i, k) holds the key (2 L_k w, 2 L_k, L_k^2), so the logit is gamma(2 L_k r_i - L_k^2) =
gamma(r_i^2 - (r_i - L_k)^2) with r_i = w x_i - y_i: quadratic in the prompt.  A logit
bias -G on foreign blocks keeps token i on its own anchors (the block tag), and the value
w - eta l'(L_k) x_i interpolates the gradient term.  The linear readout averages the n
query tokens: w - (eta/n) sum_i l'(r_i) x_i.  Anchors L_k span the exact residual range
of the prompt box.  Losses: squared (l' = r) and logcosh (l' = tanh r, the anchor
values tanh(L_k) rounded to the 2^-40 grid and recorded; the certificate compares
against the exact tanh).
"""
from __future__ import annotations

import math
from fractions import Fraction

import mpmath

from .base import Construction, Param, Spec, register
from .exact import ParameterError
from .formula import Formula, exp
from .network import Embedding, Head, Layer, Network, mat
from .ramp import PAPER

CLAIM = ("one softmax attention layer implements one in-context gradient-descent step "
         "w - (eta/n) sum_i l'(w.x_i - y_i) x_i on the prompt, by anchor interpolation of l'")
GRID = 2 ** 40
LOSSES = ("squared", "logcosh")


def _dloss(loss: str, L: Fraction) -> Fraction:
    if loss == "squared":
        return L
    with mpmath.workdps(60):
        v = mpmath.tanh(mpmath.mpf(L.numerator) / L.denominator)
        return Fraction(int(mpmath.nint(v * GRID)), GRID)


def _dloss_tree(loss, r):
    return r if loss == "squared" else ("tanh", r)


def build_icl_gd(n, loss, eta, p, kappa, wlo, whi, xlo, xhi, ylo, yhi) -> Construction:
    if not 1 <= n <= 4:
        raise ParameterError(f"icl-gd: n must be between 1 and 4 (d = 1), got {n}")
    if loss not in LOSSES:
        raise ParameterError(f"icl-gd: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if p < 2:
        raise ParameterError(f"icl-gd: p must be at least 2 anchors, got {p}")
    if not kappa > 0 or not eta > 0:
        raise ParameterError("icl-gd: kappa and eta must be positive")
    for name, lo, hi in (("w", wlo, whi), ("x", xlo, xhi), ("y", ylo, yhi)):
        if not lo < hi:
            raise ParameterError(f"icl-gd: empty or inverted box for {name}: [{lo}, {hi}]")
    corners = [a * b for a in (wlo, whi) for b in (xlo, xhi)]
    rlo, rhi = min(corners) - yhi, max(corners) - ylo
    delta = (rhi - rlo) / (p - 1)
    L = [rlo + k * delta for k in range(p)]
    gamma = Fraction(kappa) / delta ** 2
    # foreign blocks: logits within a block differ by at most gamma (rhi - rlo)^2; add 60 nats
    G = Fraction(math.ceil(gamma * (rhi - rlo) ** 2 + 60))
    rows = n + n * p
    D = 1 + 2 * n
    const = [[0, 0, -1, 0] for _ in range(n)]
    lin = [[[0] * 4 for _ in range(rows)] for _ in range(D)]
    for i in range(n):
        lin[2 * i + 1][i][0] = 1       # x_i
        lin[2 * i + 2][i][1] = -1      # -y_i
    for i in range(n):
        for k in range(p):
            r = n + i * p + k
            const.append([0, 2 * L[k], L[k] ** 2, 0])
            lin[0][r][0] = 2 * L[k]                    # 2 L_k w
            lin[0][r][3] = 1                            # value: w
            lin[2 * i + 1][r][3] = -eta * _dloss(loss, L[k])   # value: - eta l'(L_k) x_i
    eye = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    bias = [[Fraction(0) if j // p == i else -G for j in range(n * p)] for i in range(n)]
    head = Head(wq=mat(eye), wk=mat(eye), wv=mat([[0], [0], [0], [1]]), wo=mat([[1]]),
                beta=gamma, bias=mat(bias))
    layer = Layer(heads=(head,), query_rows=tuple(range(n)), key_rows=tuple(range(n, rows)))
    net = Network(embedding=Embedding(const=mat(const), linear=tuple(mat(E) for E in lin)),
                  layers=(layer,), readout=tuple((i, 0) for i in range(n)),
                  readout_linear=((Fraction(0), tuple(Fraction(1, n) for _ in range(n))),))
    terms = []
    for i in range(n):
        r = ("sub", ("mul", ("var", "x0"), ("var", f"x{2 * i + 1}")), ("var", f"x{2 * i + 2}"))
        terms.append(("mul", _dloss_tree(loss, r), ("var", f"x{2 * i + 1}")))
    total = terms[0] if n == 1 else ("add",) + tuple(terms)
    target = ("sub", ("var", "x0"), ("mul", ("num", Fraction(eta) / n), total))
    domain = ((wlo, whi),) + tuple(b for _ in range(n) for b in ((xlo, xhi), (ylo, yhi)))
    xmax = max(abs(xlo), abs(xhi))
    R = Formula.num
    q = exp(-R(kappa))
    # per token: eta |x_i| times the ramp error of l' (squared loss: Delta/2 + 2(range) q/(1-q))
    apriori = (R(eta) * R(xmax) * (R(delta) / 2 + 2 * R(rhi - rlo) * q / (1 - q))
               + R(eta) * R(xmax) * R(max(abs(rlo), abs(rhi))) * 2 * p * n * exp(-60)
               if loss == "squared" else None)
    return Construction(
        name="icl-gd", paper=PAPER, theorem=CLAIM,
        params=(("n", n), ("loss", loss), ("eta", eta), ("p", p), ("kappa", kappa), ("wlo", wlo),
                ("whi", whi), ("xlo", xlo), ("xhi", xhi), ("ylo", ylo), ("yhi", yhi)),
        network=net, target=(target,), domain=tuple((Fraction(a), Fraction(b)) for a, b in domain),
        apriori_bound=apriori,
        notes=(f"residual range [{rlo}, {rhi}], Delta = {delta}, gamma = {gamma}, block bias -{G}",
               "inputs: x0 = w, x(2i+1) = x_i, x(2i+2) = y_i",
               "anchor values l'(L_k): " + ",".join(str(_dloss(loss, v)) for v in L)),
    )


register(Spec(
    name="icl-gd", summary="one softmax layer ~ one in-context GD step for linear regression (d = 1)",
    paper=PAPER, theorem=CLAIM,
    params=(
        Param("n", "int", "2", "prompt pairs (1..4), d = 1"),
        Param("loss", "choice", "squared", "squared or logcosh"),
        Param("eta", "rational", "1/2", "step size"),
        Param("p", "int", "9", "anchors per pair"),
        Param("kappa", "rational", "27/10", "sharpness gamma*Delta^2"),
        Param("wlo", "rational", "0", "box: w lower"), Param("whi", "rational", "1/2", "box: w upper"),
        Param("xlo", "rational", "1/2", "box: x_i lower"), Param("xhi", "rational", "1", "box: x_i upper"),
        Param("ylo", "rational", "0", "box: y_i lower"), Param("yhi", "rational", "1/2", "box: y_i upper"),
    ),
    builder=build_icl_gd,
    size=lambda p: p["n"] * (p["p"] + 1),
))
