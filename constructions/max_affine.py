"""[MAP] max-affine partition: one softmax head approximates f by a (soft) piecewise-constant map.

A sum-of-linear map writes the query token [x; 1] and one anchor token per cell i,
[a_i; s_i; v_i] with s_i = -(b_i + lam/beta).  The head's logit for anchor i is
beta*(a_i.x + b_i) + lam; for the nearest-centre (Voronoi) partition of a regular
grid a_i = 2c_i, b_i = -|c_i|^2, so the logit is lam + beta*(|x|^2 - |x - c_i|^2)
and the cells are the grid cubes.  The query token is ALSO a key (self-attention,
no mask) with logit 0 and value 0: without the boost lam it wins wherever
max_i(a_i.x + b_i) < 0 (e.g. near x = 0) and the error there is about |f|.
Values are exact rationals: f(c_i) (or the cell average of f) rounded to 2^-40,
so the rounding is part of the certified error |network - f|.
"""
from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import mpmath

from .base import Construction, Param, Spec, register
from .exact import ParameterError, parse_int, parse_rational
from .files import read_regular, unique_keys
from .expr import ExprError, mp_eval, parse, variables
from .float64 import is_float64, round_f64, to_float64
from .formula import Formula, exp
from .network import Embedding, Head, Layer, Network, mat

PAPER = ("MAP: Attention Mechanism, Max-Affine Partition, and Universal Approximation, "
         "arXiv:2504.19901")
CLAIM = ("one softmax attention head with a sum-of-linear preprocessing map approximates any "
         "continuous f by a max-affine partition with cell values")
VALUE_BITS = 40
MAX_TOKENS = 400_000


# Inputs a [MAP] construction may have: the paving grows with D, the anchors with G^D (the token
# limit, --max-tokens, refuses a grid too large to build).
MAX_D = 6

def _opt_rational(name, text):
    if text in ("", None):
        return None
    try:
        return parse_rational(text)
    except ParameterError as e:
        raise ParameterError(f"{name}: {e}") from None


def _round_value(v) -> Fraction:
    """A 2^-40-grid rational near the mpmath value v (the rounding is certified, not assumed)."""
    if not mpmath.isfinite(v):
        raise ParameterError("target is not finite at a cell value point")
    return Fraction(int(mpmath.nint(v * 2 ** VALUE_BITS)), 2 ** VALUE_BITS)


def _parse_targets(f: str, D: int, n_out: int):
    parts = [p.strip() for p in f.split(";")]
    if len(parts) != n_out:
        raise ParameterError(f"f: expected {n_out} ';'-separated expression(s), got {len(parts)}")
    names = tuple(f"x{i}" for i in range(D))
    try:
        trees = tuple(parse(p, names) for p in parts)
    except ExprError as e:
        raise ParameterError(f"f: {e}") from None
    return trees


def _map_size(p: dict, seq: bool = False) -> int:
    """Tokens of a [MAP] grid before it is built (0 when G comes from the recipe, sized when built):
    G^D anchors (n G^D for seq2seq) plus the query tokens."""
    G = int(p.get("G") or 0)
    if G <= 0:
        return 0
    if seq:
        n, D = int(p.get("n") or 1), int(p.get("d") or 1) * int(p.get("n") or 1)
        return n * (1 + G ** min(D, 64))
    D = int(p.get("D") or 0) or _infer_D(str(p.get("f", "x0")))
    return G ** min(D, 64) + 1


def _infer_D(f: str) -> int:
    try:
        trees = [parse(p.strip()) for p in f.split(";")]
    except ExprError as e:
        raise ParameterError(f"f: {e}") from None
    idx = [-1]
    for t in trees:
        for v in variables(t):
            if not (v.startswith("x") and v[1:].isdigit()):
                raise ParameterError(f"f: variables must be x0, x1, ...; got {v!r}")
            idx.append(int(v[1:]))
    return max(idx) + 1 if max(idx) >= 0 else 1


def _domain(D, B, lo, hi):
    lo_q, hi_q = _opt_rational("lo", lo), _opt_rational("hi", hi)
    if lo_q is None and hi_q is None:
        if not B > 0:
            raise ParameterError(f"B must be positive, got {B}")
        lo_q, hi_q = -B, B
    elif lo_q is None or hi_q is None:
        raise ParameterError("give both lo and hi (or B)")
    if not lo_q < hi_q:
        raise ParameterError(f"empty or inverted domain [{lo_q}, {hi_q}]")
    return tuple((Fraction(lo_q), Fraction(hi_q)) for _ in range(D))


def grid_centres(domain, G: int, centres: str = "cells"):
    """Centres per dimension of the regular G^D grid (exact).

    "cells": the centres of the G^D grid cubes of the box (step W/G); "nodes": G equally
    spaced points including both ends (step W/(G-1)), i.e. the cubes of a grid on the box
    widened by half a step, which removes the one-sided bias at the domain's faces.
    """
    if centres == "nodes":
        if G < 2:
            raise ParameterError("centres=nodes needs G >= 2")
        return [[a + (b - a) * Fraction(k, G - 1) for k in range(G)] for a, b in domain]
    return [[a + (b - a) * Fraction(2 * k + 1, 2 * G) for k in range(G)] for a, b in domain]


def grid_step(domain, G: int, centres: str) -> Fraction:
    W = max(b - a for a, b in domain)
    return W / (G - 1) if centres == "nodes" else W / G


def cell_values(trees, domain, G: int, mode: str, centres: str = "cells", cen=None):
    """Values per output, per cell (C order): f at the centre, or the cell average of f.

    Averages are over the cell clipped to the domain (nodes: the end cells are half cells).
    ``cen`` (per-dimension centre lists) defaults to ``grid_centres(domain, G, centres)``.
    """
    D = len(domain)
    cen = grid_centres(domain, G, centres) if cen is None else cen
    h = [grid_step(domain, G, centres)] * D
    out = []
    with mpmath.workdps(30):
        if mode == "average":  # 4-point Gauss-Legendre per dimension (exact for degree 7)
            nodes = [(mpmath.mpf(-0.8611363115940526), mpmath.mpf(0.3478548451374538)),
                     (mpmath.mpf(-0.3399810435848563), mpmath.mpf(0.6521451548625461)),
                     (mpmath.mpf(0.3399810435848563), mpmath.mpf(0.6521451548625461)),
                     (mpmath.mpf(0.8611363115940526), mpmath.mpf(0.3478548451374538))]
        for tree in trees:
            vals = []
            for idx in itertools.product(range(G), repeat=D):
                c = [cen[d][k] for d, k in enumerate(idx)]
                if mode == "center":
                    vals.append(_round_value(mp_eval(tree, {f"x{d}": c[d] for d in range(D)})))
                    continue
                acc = mpmath.mpf(0)
                for combo in itertools.product(nodes, repeat=D):
                    w = mpmath.mpf(1)
                    pt = {}
                    for d, (t, wt) in enumerate(combo):
                        a_, b_ = max(c[d] - h[d] / 2, domain[d][0]), min(c[d] + h[d] / 2, domain[d][1])
                        mid, half = (a_ + b_) / 2, (b_ - a_) / 2
                        pt[f"x{d}"] = mpmath.mpf(mid.numerator) / mid.denominator + t * (
                            mpmath.mpf(half.numerator) / half.denominator)
                        w *= wt / 2
                    acc += w * mp_eval(tree, pt)
                vals.append(_round_value(acc))
            out.append(vals)
    return out


def _rational_up(x: float, den: int = 1024) -> Fraction:
    return Fraction(math.ceil(x * den), den)


def tau(u):
    return 2 * exp(-2 * u) / (1 - exp(-4 * u))


def recipe(domain, eps, L, osc, R):
    """G, beta, lam from the a-priori bound: G = ceil(6BL/eps) (B = half-width), beta, lam rational."""
    D = len(domain)
    W = max(b - a for a, b in domain)
    G = max(2, math.ceil(3 * W * L / eps))
    h = W / G
    kappa = max(math.log(2) / 4, 0.5 * math.log(16 * D * float(osc) / float(eps))) if osc > 0 else math.log(2) / 4
    kappa_q = _rational_up(kappa)
    beta = kappa_q / h ** 2
    rho2 = D * h ** 2 / 4
    lam = _rational_up(float(beta * rho2) + math.log(8 * max(float(R), 1e-300) / float(eps)) + 1e-9)
    return G, beta, max(lam, Fraction(0))


def apriori(D, h, beta, lam, L, osc, R, self_key=True):
    """omega_f(3h/2) + D tau(beta h^2) osc + 2R e^{-(lam - beta rho^2)} (exact Formula); None
    (no a-priori bound) without a Lipschitz bound L."""
    if L is None:
        return None
    S = Formula.num
    hh = S(h)
    u = S(beta) * hh ** 2
    expr = S(L) * 3 * hh / 2 + D * tau(u) * S(osc)
    if self_key:
        rho2 = D * hh ** 2 / 4
        expr = expr + 2 * S(R) * exp(-(S(lam) - S(beta) * rho2))
    return expr


def load_partition(path: str, D: int):
    """A user max-affine partition from JSON {"a": [[..]], "b": [..], "values": [[..]] or [..]}.

    Numbers must be exact: integers or "p/q" strings (floats are rejected).
    """
    try:
        text = read_regular(path, 64 << 20, ParameterError, "partition").decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParameterError(f"partition: cannot read {path}: {e}") from None

    def nofloat(s):
        raise ParameterError(f"partition: float literal {s!r}; write exact \"p/q\" strings")
    try:
        obj = json.loads(text, parse_float=nofloat, parse_constant=nofloat, object_pairs_hook=unique_keys(ParameterError))
    except json.JSONDecodeError as e:
        raise ParameterError(f"partition: not valid JSON: {e.msg}") from None
    if not isinstance(obj, dict) or not {"a", "b", "values"} <= set(obj):
        raise ParameterError("partition: need an object with keys a, b, values")

    def q(v, where):
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ParameterError(f"partition: {where}: expected an integer or \"p/q\" string")
        return parse_rational(str(v))
    a, b, vals = obj["a"], obj["b"], obj["values"]
    if not (isinstance(a, list) and isinstance(b, list) and isinstance(vals, list)) or not a:
        raise ParameterError("partition: a, b, values must be non-empty lists")
    if len(a) != len(b) or len(vals) != len(a):
        raise ParameterError("partition: a, b and values must have one entry per cell")
    A = []
    for i, row in enumerate(a):
        if not isinstance(row, list) or len(row) != D:
            raise ParameterError(f"partition: a[{i}] must have {D} entries")
        A.append(tuple(q(v, f"a[{i}]") for v in row))
    Bv = [q(v, f"b[{i}]") for i, v in enumerate(b)]
    V = [[q(v, f"values[{i}]")] if not isinstance(v, list) else [q(w, f"values[{i}]") for w in v]
         for i, v in enumerate(vals)]
    if len({len(v) for v in V}) != 1:
        raise ParameterError("partition: every cell needs the same number of values")
    return A, Bv, [list(col) for col in zip(*V)]


def _exact(v) -> Fraction:
    """An exact weight as a Fraction (as ``network.mat`` does: floats never enter a weight)."""
    if type(v) is Fraction:
        return v
    if isinstance(v, float):
        raise TypeError("floats never enter a weight")
    if hasattr(v, "p") and hasattr(v, "q"):
        return Fraction(int(v.p), int(v.q))
    return Fraction(v)


def map_network(A, Bv, values, beta, lam, *, n: int = 1, self_keys: bool = True):
    """The exact one-head network.

    Inputs: D = len(A[0]) numbers.  ``n`` query tokens (positions); anchor (i, j') for each
    cell i and position j' (only j' = j is boosted by lam for query j).  ``values[o]`` holds
    output o's cell values; with n > 1 it is indexed [o + d_o*j'].  Columns:
    [x (D) | 1 | pos (n) | a (D) | s | boost (n) | values (d_o)].
    """
    D = len(A[0])
    N = len(A)
    d_o = len(values) // n
    cx, c1, cp = 0, D, D + 1
    ca = cp + n
    cs = ca + D
    cb = cs + 1
    cv = cb + n
    width = cv + d_o
    if (n * (1 + N)) > MAX_TOKENS:
        raise ParameterError(f"{n * (1 + N)} tokens is more than the limit {MAX_TOKENS}")
    # every entry is made a Fraction once here, so the rows are built as tuples directly
    A = [tuple(_exact(v) for v in a) for a in A]
    Bv = [_exact(v) for v in Bv]
    values = [[_exact(v) for v in out] for out in values]
    beta, lam = _exact(beta), _exact(lam)
    const, lins = [], [[] for _ in range(D)]
    zero = [Fraction(0)] * width
    zero_row = tuple(zero)
    for j in range(n):
        row = list(zero)
        row[c1] = Fraction(1)
        row[cp + j] = Fraction(1)
        const.append(tuple(row))
        for i in range(D):
            r = list(zero)
            r[cx + i] = Fraction(1)
            lins[i].append(tuple(r))
    boost = lam / beta
    for jp in range(n):
        for i in range(N):
            row = list(zero)
            for d in range(D):
                row[ca + d] = A[i][d]
            row[cs] = -Bv[i]
            row[cb + jp] = boost
            for o in range(d_o):
                row[cv + o] = values[o + d_o * jp][i]
            const.append(tuple(row))
            for d in range(D):
                lins[d].append(zero_row)
    qdim = D + 1 + n
    wq = [[Fraction(0)] * qdim for _ in range(width)]
    wk = [[Fraction(0)] * qdim for _ in range(width)]
    for i in range(D):
        wq[cx + i][i] = Fraction(1)
        wk[ca + i][i] = Fraction(1)
    wq[c1][D] = Fraction(1)
    wk[cs][D] = Fraction(-1)
    for j in range(n):
        wq[cp + j][D + 1 + j] = Fraction(1)
        wk[cb + j][D + 1 + j] = Fraction(1)
    wv = [[Fraction(1) if (r == cv + o) else Fraction(0) for o in range(d_o)] for r in range(width)]
    wo = [[Fraction(1) if o == p else Fraction(0) for p in range(d_o)] for o in range(d_o)]
    head = Head(wq=mat(wq), wk=mat(wk), wv=mat(wv), wo=mat(wo), beta=Fraction(beta))
    anchors = tuple(range(n, n + n * N))
    keys = (tuple(range(n)) + anchors) if self_keys else anchors
    layer = Layer(heads=(head,), query_rows=tuple(range(n)), key_rows=keys)
    readout = tuple((j, o) for j in range(n) for o in range(d_o))
    return Network(embedding=Embedding(const=tuple(const), linear=tuple(tuple(E) for E in lins)),
                   layers=(layer,), readout=readout)


def grid_meta(G: int, D: int, n: int, N: int, lam, self_keys: bool):
    """Which keys form the product grid, per readout: the certifier's (and checker's) claim to verify."""
    off = n if self_keys else 0
    per = []
    for j in range(n):
        copies = [[off + jp * N, str(lam)] for jp in range(n) if jp != j]
        per.append({"shape": [G] * D, "main": off + j * N, "copies": copies})
    return per


def grid_anchors(cen):
    """(A, Bv) of the nearest-centre partition of the product grid ``cen`` (C order): a = 2c, b = -|c|^2."""
    A, Bv = [], []
    for idx in itertools.product(*(range(len(row)) for row in cen)):
        c = [cen[d][k] for d, k in enumerate(idx)]
        A.append(tuple(2 * v for v in c))
        Bv.append(-sum(v * v for v in c))
    return A, Bv


def _map_meta(cen, values, beta, lam, n, self_keys, network) -> dict:
    """What ``map_network`` was given (and the network it gave), so that ``grid_to_float64`` can redo it in float64."""
    return {"centres": tuple(tuple(row) for row in cen), "values": tuple(tuple(v) for v in values),
            "beta": Fraction(beta), "lam": Fraction(lam), "n": n, "self_keys": self_keys, "network": network}


def dyadic_centres(cen):
    """The centres rounded to one dyadic grid 2^-m, as fine as float64 allows, or None.

    With every centre c = p 2^-m and |p| <= isqrt((2^53 - 1) / D), each 2c and each
    |c|^2 = sum_d p_d^2 2^-2m (D terms) is an exact float64, so the anchors' logits
    are exactly separable.  None when two centres of one dimension merge (or m leaves the
    float64 exponent range); the caller then rounds the weights the general way.
    """
    D = len(cen)
    P = math.isqrt((2 ** 53 - 1) // D)
    M = max(abs(v) for row in cen for v in row)
    m = 0
    if M > 0:  # the largest m with M 2^m + 1/2 <= P
        m = P.bit_length() - (M.numerator.bit_length() - M.denominator.bit_length()) + 2
        while M * Fraction(2) ** m + Fraction(1, 2) > P:
            m -= 1
    if not -900 <= m <= 500:
        return None
    s = Fraction(2) ** m
    out = tuple(tuple(Fraction(round(v * s)) / s for v in row) for row in cen)
    if any(a >= b for row in out for a, b in zip(row, row[1:])):
        return None
    return out


def _fold_beta(net: Network) -> Network:
    """beta folded into W_Q exactly (no rounding)."""
    from dataclasses import replace
    layers = tuple(replace(layer, heads=tuple(replace(h, wq=tuple(tuple(v * h.beta for v in row) for row in h.wq),
                                                      beta=Fraction(1)) for h in layer.heads))
                   for layer in net.layers)
    return replace(net, layers=layers)


def grid_to_float64(construction):
    """The float64 version of a [MAP] grid construction that keeps the grid exact, or None.

    The grid centres become dyadic (``dyadic_centres``), beta becomes float(beta) and is
    folded into W_Q, the boost lam/beta and the cell values are rounded to float64; the
    embedding then holds a = 2c, |c|^2, the boost and the values as exact float64 numbers,
    so the network is its own float64 rounding and its logits are exactly
    lam' + beta'(2c.x - |c|^2) with lam' = beta' * boost': the product grid (and its
    shifted copies for max-affine-seq, shift lam') holds exactly for the rounded weights.
    None when the construction is not the grid its metadata describes or the centres
    cannot be made dyadic; ``constructions.float64.to_float64`` (which finds this function
    in the construction's "float64" metadata) then rounds generically.
    """
    from dataclasses import replace
    meta = dict(construction.meta)
    mm, grid = meta.get("map"), meta.get("grid")
    if mm is None or grid is None:
        return None
    if mm["network"] != construction.network:  # (the same object, normally: then this costs nothing)
        return None  # the network is not (any more) the one the metadata describes
    cen = mm["centres"]
    cen64 = dyadic_centres(cen)
    beta64 = round_f64(mm["beta"])
    if cen64 is None or not beta64 > 0:
        return None
    lam64 = beta64 * round_f64(mm["lam"] / beta64)
    vals64 = [[round_f64(v) for v in out] for out in mm["values"]]
    A64, Bv64 = grid_anchors(cen64)
    net = map_network(A64, Bv64, vals64, beta64, lam64, n=mm["n"], self_keys=mm["self_keys"])
    net64 = _fold_beta(net)
    if not is_float64(net64):  # every weight must already be a float64: nothing is rounded
        return None
    G = [len(row) for row in cen]
    n, N = mm["n"], math.prod(G)
    shift = max(abs(a - b) for r0, r1 in zip(cen, cen64) for a, b in zip(r0, r1))
    new_meta = tuple((k, v) for k, v in construction.meta if k not in ("grid", "map")) + (
        ("grid", grid_meta(G[0], len(G), n, N, lam64, mm["self_keys"])),
        ("map", _map_meta(cen64, vals64, beta64, lam64, n, mm["self_keys"], net64)))
    note = (f"float64: grid centres rounded to one dyadic grid (largest shift {float(shift):.3g}) so that 2c and "
            f"|c|^2 are exact float64s; beta = {float(beta64)!r} folded into W_Q; lam/beta and the cell values "
            f"rounded to float64 (effective lam = {float(lam64)!r}); no other weight rounded, so the product-grid "
            f"factorisation holds exactly for these weights (the a-priori bound is the unrounded one's)")
    params = tuple(p for p in construction.params if p[0] != "float64") + (("float64", 1),)
    return replace(construction, network=net64, params=params, meta=new_meta,
                   notes=tuple(construction.notes) + (note,))


def _finish(c: Construction, float64: int) -> Construction:
    if float64 not in (0, 1):
        raise ParameterError(f"float64 must be 0 or 1, got {float64}")
    return to_float64(c) if float64 else c


def _common(f, D, B, lo, hi, n_out=1):
    if D == 0:
        D = _infer_D(f)
    if not 1 <= D <= MAX_D:
        raise ParameterError(f"D must be between 1 and {MAX_D} (got {D})")
    domain = _domain(D, B, lo, hi)
    trees = _parse_targets(f, D, n_out)
    return D, domain, trees


# Sub-boxes per axis for the interval range and Lipschitz bounds: 8 up to D = 4 (8^4 = 4096
# sub-boxes), then the most that keep pieces^D <= 4096 (5 at D = 5, 4 at D = 6): 8^6 sub-boxes of
# mpmath interval differentiation took over 5 minutes at D = 6.
STAT_BOXES = 8 ** 4


def stat_pieces(D: int) -> int:
    k = 8
    while k > 2 and k ** D > STAT_BOXES:
        k -= 1
    return k


def _stats(trees, domain, L_given):
    from .ivbounds import range_and_lipschitz
    lo_all, hi_all, L_all = None, None, Fraction(0)
    for t in trees:
        lo, hi, L = range_and_lipschitz(t, domain, stat_pieces(len(domain)))
        lo_all = lo if lo_all is None else min(lo, lo_all)
        hi_all = hi if hi_all is None else max(hi, hi_all)
        L_all = None if (L is None or L_all is None) else max(L_all, L)
    # without L (e.g. sqrt at 0) a given G still builds; only the recipe and the a-priori bound need L
    L = L_given if L_given is not None else L_all
    return L, hi_all - lo_all, max(abs(lo_all), abs(hi_all))


def _params_grid(domain, G, beta, kappa, lam, eps_r, stats, centres="cells"):
    L, osc, R = stats
    eps_q = _opt_rational("eps", eps_r)
    beta_q = _opt_rational("beta", beta)
    lam_q = _opt_rational("lam", lam)
    if G == 0:
        if eps_q is None:
            raise ParameterError("give G, or eps for the a-priori recipe")
        if L is None:
            raise ParameterError("f is not Lipschitz on the domain by interval evaluation (e.g. sqrt at 0): "
                                 "give G, or L for the a-priori recipe")
        G, rb, rl = recipe(domain, eps_q, L, osc, R)
        centres = "cells"
        beta_q = rb if beta_q is None else beta_q
        lam_q = rl if lam_q is None else lam_q
    if G < 1:
        raise ParameterError(f"G must be at least 1, got {G}")
    h = grid_step(domain, G, centres)
    if beta_q is None:
        if not kappa > 0:
            raise ParameterError(f"kappa must be positive, got {kappa}")
        beta_q = kappa / h ** 2
    if not beta_q > 0:
        raise ParameterError(f"beta must be positive, got {beta_q}")
    if lam_q is None:
        e = eps_q if eps_q is not None else Fraction(1, 100)
        D = len(domain)
        lam_q = _rational_up(float(beta_q * D * h ** 2 / 4) + math.log(8 * max(float(R), 1e-9) / float(e)))
    if lam_q < 0:
        raise ParameterError(f"lam must be >= 0, got {lam_q}")
    return G, h, beta_q, lam_q, centres


def build_max_affine(f, D, B, lo, hi, G, beta, kappa, lam, eps, L, values, centres, partition, float64=0,
                     _variant="max-affine") -> Construction:
    if values not in ("center", "average"):
        raise ParameterError(f"values must be 'center' or 'average', got {values!r}")
    cross = _variant == "cross-attention"
    D, domain, trees = _common(f, D, B, lo, hi)
    L_q = _opt_rational("L", L)
    notes = []
    if partition:
        A, Bv, vals = load_partition(partition, D)
        if len(vals) != 1:
            raise ParameterError("partition: one value per cell for a scalar target")
        beta_q = _opt_rational("beta", beta) or Fraction(1)
        lam_q = _opt_rational("lam", lam) or Fraction(0)
        if not beta_q > 0 or lam_q < 0:
            raise ParameterError("beta must be positive and lam >= 0")
        net = map_network(A, Bv, vals, beta_q, lam_q, self_keys=not cross)
        params = (("f", f), ("D", D), ("beta", beta_q), ("lam", lam_q), ("partition", partition))
        return _finish(Construction(name=_variant, paper=PAPER, theorem=CLAIM, params=params, network=net,
                                    target=trees, domain=domain, apriori_bound=None,
                                    notes=("user max-affine partition: logits beta*(a_i.x + b_i) + lam; "
                                           "query token is a key with logit 0" if not cross else
                                           "user max-affine partition (cross-attention: no self key)",)), float64)
    stats = _stats(trees, domain, L_q)
    G, h, beta_q, lam_q, centres = _params_grid(domain, G, beta, kappa,
                                                "0" if (cross and lam in ("", None)) else lam, eps, stats, centres)
    cen = grid_centres(domain, G, centres)
    A, Bv = grid_anchors(cen)
    vals = cell_values(trees, domain, G, values, centres, cen)
    net = map_network(A, Bv, vals, beta_q, lam_q, self_keys=not cross)
    L_, osc, R = stats
    notes.append("anchor logits beta*(2c.x - |c|^2) + lam; " + (
        "cross-attention: keys are the anchors only (no self key)" if cross else
        "the query token is also a key (self-attention, no mask) with logit 0 and value 0, "
        "so lam >= beta*rho^2 + ln(8R/eps) is needed; lam = 0 leaves error ~|f| near x = 0"))
    notes.append(f"cell values: {values} of f rounded to 2^-{VALUE_BITS} (rounding is inside the certified error)")
    notes.append(f"L={L_} osc={osc} R={R} (interval bounds); h={h}")
    params = (("f", f), ("D", D), ("lo", domain[0][0]), ("hi", domain[0][1]), ("G", G), ("beta", beta_q),
              ("lam", lam_q), ("values", values), ("centres", centres))
    c = Construction(name=_variant, paper=PAPER, theorem=CLAIM, params=params, network=net,
                     target=trees, domain=domain,
                     apriori_bound=apriori(D, h, beta_q, lam_q, L_, osc, R, self_key=not cross),
                     notes=tuple(notes), meta=(("grid", grid_meta(G, D, 1, G ** D, lam_q, not cross)),
                                               ("map", _map_meta(cen, vals, beta_q, lam_q, 1, not cross, net)),
                                               ("float64", grid_to_float64)))
    return _finish(c, float64)


def build_cross(**kw) -> Construction:
    return build_max_affine(**kw, _variant="cross-attention")


def build_seq(f, d, n, d_o, B, lo, hi, G, beta, kappa, lam, eps, L, values, centres, float64=0) -> Construction:
    """seq2seq: x in R^{d x n} (input x_{i + d*j} = entry i of token j), outputs f_{o + d_o*j}."""
    if values not in ("center", "average"):
        raise ParameterError(f"values must be 'center' or 'average', got {values!r}")
    if d < 1 or n < 1 or d_o < 1:
        raise ParameterError("d, n and d_o must be positive")
    D = d * n
    if D > MAX_D:
        raise ParameterError(f"d*n must be at most {MAX_D} (got {D})")
    D, domain, trees = _common(f, D, B, lo, hi, n_out=d_o * n)
    stats = _stats(trees, domain, _opt_rational("L", L))
    G, h, beta_q, lam_q, centres = _params_grid(domain, G, beta, kappa, lam, eps, stats, centres)
    if lam_q == 0:
        raise ParameterError("seq2seq needs lam > 0 (the boost selects the output position)")
    cen = grid_centres(domain, G, centres)
    A, Bv = grid_anchors(cen)
    vals = cell_values(trees, domain, G, values, centres, cen)
    net = map_network(A, Bv, vals, beta_q, lam_q, n=n)
    L_, osc, R = stats
    params = (("f", f), ("d", d), ("n", n), ("d_o", d_o), ("lo", domain[0][0]), ("hi", domain[0][1]),
              ("G", G), ("beta", beta_q), ("lam", lam_q), ("values", values), ("centres", centres))
    bound = apriori(D, h, beta_q, lam_q, L_, osc, R)
    if bound is not None:
        bound = bound + 2 * Formula.num(R) * (n - 1) * exp(-Formula.num(lam_q))
    c = Construction(name="max-affine-seq", paper=PAPER, theorem=CLAIM, params=params, network=net,
                     target=trees, domain=domain, apriori_bound=bound,
                     notes=("anchors (cell, position j'); query j adds lam only for j' = j; query tokens "
                            "are keys with logit 0 and get no boost", f"tokens n(1 + G^(dn)) = {n * (1 + G ** D)}"),
                     meta=(("grid", grid_meta(G, D, n, G ** D, lam_q, True)),
                           ("map", _map_meta(cen, vals, beta_q, lam_q, n, True, net)),
                           ("float64", grid_to_float64)))
    return _finish(c, float64)


_COMMON = (
    Param("B", "rational", "1", "half-width of the domain box [-B, B]^D"),
    Param("lo", "choice", "", "domain lower end (with hi, instead of B)", "-B"),
    Param("hi", "choice", "", "domain upper end", "B"),
    Param("G", "int", "0", "grid cells per dimension (0: the a-priori recipe from eps)"),
    Param("beta", "choice", "", "inverse temperature (default kappa/h^2)", "kappa/h^2"),
    Param("kappa", "rational", "2", "sharpness beta*h^2 when beta is not given"),
    Param("lam", "choice", "", "boost lambda (default beta*rho^2 + ln(8R/eps))", "beta*rho^2+ln(8R/eps)"),
    Param("eps", "choice", "", "target accuracy for the recipe (default 1/100 for lam only)", "none"),
    Param("L", "choice", "", "l1-gradient Lipschitz bound of f (default: interval evaluation)",
          "interval evaluation"),
    Param("values", "choice", "center", "cell values: center (L-inf) or average (L_p)"),
    Param("centres", "choice", "nodes", "grid centres: nodes (ends included) or cells (cube centres)"),
    Param("float64", "int", "0", "1: the float64 network (dyadic grid centres, beta folded into W_Q, every "
                                 "weight a float64 and the grid exact), as certify --float64 builds it"),
)

register(Spec(
    name="max-affine", summary="one head ~ f on a box of R^D (D <= 6) via a max-affine partition",
    paper=PAPER, theorem=CLAIM,
    params=(Param("f", "expr", "sin(2*x0)*cos(3*x1)", "target in x0..x{D-1}"),
            Param("D", "int", "0", "input dimension (0: from f)", "from f")) + _COMMON[:3]
    + (Param("G", "int", "20", "grid cells per dimension (0: the a-priori recipe from eps)"),) + _COMMON[4:]
    + (Param("partition", "choice", "", "JSON file with a user partition {a, b, values}", "none"),),
    builder=build_max_affine,
    size=_map_size,
))

register(Spec(
    name="cross-attention", summary="[MAP] with queries from x, keys/values from a fixed anchor context",
    paper=PAPER, theorem=CLAIM,
    params=(Param("f", "expr", "sin(2*x0)*cos(3*x1)", "target in x0..x{D-1}"),
            Param("D", "int", "0", "input dimension (0: from f)", "from f")) + _COMMON[:3]
    + (Param("G", "int", "20", "grid cells per dimension"),) + _COMMON[4:]
    + (Param("partition", "choice", "", "JSON file with a user partition {a, b, values}", "none"),),
    builder=build_cross,
    size=_map_size,
))

register(Spec(
    name="max-affine-seq", summary="[MAP] seq2seq f: R^{d x n} -> R^{d_o x n}, d*n <= 6",
    paper=PAPER, theorem=CLAIM,
    params=(Param("f", "expr", "sin(2*x0+x1); cos(x0-x1)", "d_o*n targets separated by ';' (output o of token j is entry o + d_o*j)"),
            Param("d", "int", "1", "features per token"), Param("n", "int", "2", "tokens"),
            Param("d_o", "int", "1", "output features per token")) + _COMMON[:3]
    + (Param("G", "int", "20", "grid cells per dimension"),) + _COMMON[4:],
    builder=build_seq,
    size=lambda p: _map_size(p, seq=True),
))
