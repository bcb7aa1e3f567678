"""[UAP] icl-gd: one softmax layer performs one in-context gradient step for linear regression.

The prompt holds w in R^d and the pairs (x_i, y_i), x_i in R^d (d <= 4, n <= 4); inputs are
ordered w, then per pair x_i and y_i (d = 1: x0 = w, x(2i+1) = x_i, x(2i+2) = y_i).  Query token i
reads (x_i, -y_i, -1); anchor token (i, k) holds the key (2 L_k w, 2 L_k, L_k^2), so the logit is
gamma(2 L_k r_i - L_k^2) = gamma(r_i^2 - (r_i - L_k)^2) with r_i = w . x_i - y_i: quadratic in the
prompt.  A logit bias -G on foreign blocks keeps token i on its own anchors (the block tag), and
the value w - eta l'(L_k) x_i (d columns) interpolates the gradient term.  The linear readout
averages the n query tokens, one output per coordinate: w - (eta/n) sum_i l'(r_i) x_i.  Anchors
L_k span the exact residual range of the prompt box.  Losses: squared (l' = r) and logcosh
(l' = tanh r, the anchor values tanh(L_k) rounded to the 2^-40 grid and recorded; the
certificate compares against the exact tanh).
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


MAX_D = 4


def build_icl_gd(n, loss, eta, p, kappa, wlo, whi, xlo, xhi, ylo, yhi, d=1) -> Construction:
    if not 1 <= d <= MAX_D:
        raise ParameterError(f"icl-gd: d must be between 1 and {MAX_D}, got {d}")
    if not 1 <= n <= 4:
        raise ParameterError(f"icl-gd: n must be between 1 and 4, got {n}")
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
    # r = sum_c w_c x_c - y: each of the d products ranges over [min corner, max corner]
    rlo, rhi = d * min(corners) - yhi, d * max(corners) - ylo
    delta = (rhi - rlo) / (p - 1)
    L = [rlo + k * delta for k in range(p)]
    gamma = Fraction(kappa) / delta ** 2
    # foreign blocks: logits within a block differ by at most gamma (rhi - rlo)^2; add 60 nats
    G = Fraction(math.ceil(gamma * (rhi - rlo) ** 2 + 60))
    rows = n + n * p
    # inputs: x0..x(d-1) = w, then per pair i: x_i (d inputs) and y_i
    D = d + n * (d + 1)

    def xin(i, c):      # input index of component c of x_i
        return d + i * (d + 1) + c

    def yin(i):         # input index of y_i
        return d + i * (d + 1) + d
    # token columns: 0..d-1 query x_i / key 2 L_k w; d: -y_i / 2 L_k; d+1: -1 / L_k^2; d+2..2d+1: values
    W = 2 * d + 2
    const = [[0] * W for _ in range(n)]
    for i in range(n):
        const[i][d + 1] = -1
    lin = [[[0] * W for _ in range(rows)] for _ in range(D)]
    for i in range(n):
        for c in range(d):
            lin[xin(i, c)][i][c] = 1     # x_i
        lin[yin(i)][i][d] = -1           # -y_i
    for i in range(n):
        for k in range(p):
            r = n + i * p + k
            row = [0] * W
            row[d], row[d + 1] = 2 * L[k], L[k] ** 2
            const.append(row)
            for c in range(d):
                lin[c][r][c] = 2 * L[k]                                # 2 L_k w_c
                lin[c][r][d + 2 + c] = 1                               # value: w_c
                lin[xin(i, c)][r][d + 2 + c] = -eta * _dloss(loss, L[k])   # value: - eta l'(L_k) x_ic
    qk = [[1 if a == b else 0 for b in range(d + 2)] for a in range(W)]
    sel = [[1 if a == d + 2 + b else 0 for b in range(d)] for a in range(W)]
    eye = [[1 if a == b else 0 for b in range(d)] for a in range(d)]
    bias = [[Fraction(0) if j // p == i else -G for j in range(n * p)] for i in range(n)]
    head = Head(wq=mat(qk), wk=mat(qk), wv=mat(sel), wo=mat(eye), beta=gamma, bias=mat(bias))
    layer = Layer(heads=(head,), query_rows=tuple(range(n)), key_rows=tuple(range(n, rows)))
    readout = tuple((i, c) for c in range(d) for i in range(n))      # output c averages entries (., c)
    readout_linear = tuple((Fraction(0), tuple(Fraction(1, n) if rc[1] == c else Fraction(0) for rc in readout))
                           for c in range(d))
    net = Network(embedding=Embedding(const=mat(const), linear=tuple(mat(E) for E in lin)),
                  layers=(layer,), readout=readout, readout_linear=readout_linear)

    def v(k):
        return ("var", f"x{k}")
    targets = []
    for c in range(d):
        terms = []
        for i in range(n):
            dot = [("mul", v(a), v(xin(i, a))) for a in range(d)]
            r = ("sub", dot[0] if d == 1 else ("add",) + tuple(dot), v(yin(i)))
            terms.append(("mul", _dloss_tree(loss, r), v(xin(i, c))))
        total = terms[0] if n == 1 else ("add",) + tuple(terms)
        targets.append(("sub", v(c), ("mul", ("num", Fraction(eta) / n), total)))
    domain = ((wlo, whi),) * d + tuple(b for _ in range(n) for b in ((xlo, xhi),) * d + ((ylo, yhi),))
    xmax = max(abs(xlo), abs(xhi))
    R = Formula.num
    q = exp(-R(kappa))
    # per output: eta |x_ic| times the ramp error of l' (squared loss: Delta/2 + 2(range) q/(1-q))
    apriori = (R(eta) * R(xmax) * (R(delta) / 2 + 2 * R(rhi - rlo) * q / (1 - q))
               + R(eta) * R(xmax) * R(max(abs(rlo), abs(rhi))) * 2 * p * n * exp(-60)
               if loss == "squared" else None)
    params = (("n", n),) + ((("d", d),) if d != 1 else ()) + (
        ("loss", loss), ("eta", eta), ("p", p), ("kappa", kappa), ("wlo", wlo),
        ("whi", whi), ("xlo", xlo), ("xhi", xhi), ("ylo", ylo), ("yhi", yhi))
    names = ("inputs: x0 = w, x(2i+1) = x_i, x(2i+2) = y_i" if d == 1 else
             f"inputs: x0..x{d - 1} = w, then per pair i: x_i = x(d+i(d+1))..x(d+i(d+1)+d-1), "
             f"y_i = x(d+i(d+1)+d) (d = {d})")
    layout = {"blocks": [[i * p + k for k in range(p)] for i in range(n)], "w": list(range(d)),
              "x": [[xin(i, c) for c in range(d)] for i in range(n)], "y": [yin(i) for i in range(n)],
              "loss": loss, "eta": Fraction(eta), "residual": (rlo, rhi)}
    residual = _residual_meta(net, layout)
    return Construction(
        name="icl-gd", paper=PAPER, theorem=CLAIM, meta=(("residual", residual), ("float64", _to_float64)),
        params=params,
        network=net, target=tuple(targets), domain=tuple((Fraction(a), Fraction(b)) for a, b in domain),
        apriori_bound=apriori,
        notes=(f"residual range [{rlo}, {rhi}], Delta = {delta}, gamma = {gamma}, block bias -{G}",
               names,
               "anchor values l'(L_k): " + ",".join(str(_dloss(loss, v)) for v in L)),
    )


def _residual_meta(net, layout):
    """The residual claim of an icl-gd network, read off its exact weights (verify/search/residual.py;
    certificates/check/residual.py checks it): query i's own keys are block i; its logit gap to key
    k is alpha_k + beta_k r_i, alpha_k = gamma (L_0^2 - L_k^2), beta_k = gamma (2 L_k - 2 L_0); every
    key of block i' has the value w_c + b_k x_i'c; a foreign key's gap to key 0 of the query's own
    block is at most gamma (max_R 2 L_k r - L_k^2 + max_R (-2 L_0 r) + L_0^2) - G.  gamma, 2 L_k,
    L_k^2, b_k and G are the network's own entries, so the same reading serves the float64 rounding."""
    n, p, d = len(layout["blocks"]), len(layout["blocks"][0]), len(layout["w"])
    head = net.layers[0].heads[0]
    g = head.beta * head.wq[0][0]
    const, lin = net.embedding.const, net.embedding.linear
    twoL = [const[n + k][d] for k in range(p)]
    sq = [const[n + k][d + 1] for k in range(p)]
    b = [lin[layout["x"][0][0]][n + k][d + 2] for k in range(p)]
    G = -head.bias[0][p] if n > 1 else Fraction(0)   # n = 1: no foreign key
    rlo, rhi = layout["residual"]
    anchors = tuple((g * (sq[0] - sq[k]), g * (twoL[k] - twoL[0]), b[k]) for k in range(p))
    foreign = tuple(g * (max(twoL[k] * rlo, twoL[k] * rhi) - sq[k] + max(-twoL[0] * rlo, -twoL[0] * rhi) + sq[0]) - G
                    for k in range(p))
    return dict(layout, anchors=anchors, foreign_gaps=foreign, weights=net.weights_hash())


def _to_float64(construction):
    """The float64 weights keep the residual structure (gamma' = the folded, rounded gamma; 2 L_k,
    L_k^2 and the value slopes rounded once each, the same in every block), so the claim is read
    again from the rounded entries; None when 1/n is not a float64 (the readout changes)."""
    from dataclasses import replace
    from .float64 import network_to_float64
    net = network_to_float64(construction.network)
    if net.readout_linear != construction.network.readout_linear:
        return None
    old = dict(construction.meta)["residual"]
    layout = {k: old[k] for k in ("blocks", "w", "x", "y", "loss", "eta", "residual")}
    params = tuple(x for x in construction.params if x[0] != "float64") + (("float64", 1),)
    note = ("float64: gamma folded into W_Q, then every weight rounded to the nearest float64 (the residual "
            "structure holds for the rounded weights); the certificate speaks about these exact float64 values")
    return replace(construction, network=net, params=params, meta=(("residual", _residual_meta(net, layout)),),
                   notes=tuple(construction.notes) + (note,))


register(Spec(
    name="icl-gd", summary="one softmax layer ~ one in-context GD step for linear regression (w, x_i in R^d)",
    paper=PAPER, theorem=CLAIM,
    params=(
        Param("n", "int", "2", "prompt pairs (1..4)"),
        Param("loss", "choice", "squared", "squared or logcosh"),
        Param("eta", "rational", "1/2", "step size"),
        Param("p", "int", "9", "anchors per pair"),
        Param("kappa", "rational", "27/10", "sharpness gamma*Delta^2"),
        Param("wlo", "rational", "0", "box: w lower"), Param("whi", "rational", "1/2", "box: w upper"),
        Param("xlo", "rational", "1/2", "box: x_i lower"), Param("xhi", "rational", "1", "box: x_i upper"),
        Param("ylo", "rational", "0", "box: y_i lower"), Param("yhi", "rational", "1/2", "box: y_i upper"),
        Param("d", "int", "1", "dimension of w and of each x_i (1..4); d outputs"),
    ),
    builder=build_icl_gd,
    size=lambda p: p["n"] * (p["p"] + 1),
))
