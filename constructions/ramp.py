"""[UAP] ramp: one softmax head approximates the truncated linear map Range_[a,b](x).

Anchors L_k = a + k*Delta (k = 0..p-1, Delta = (b-a)/(p-1)).  The query token carries
x; anchor k carries (L_k - L_0, L_k^2 - L_0^2) as its key and L_k as its value.  With
query gamma*(2x, -1) the logit is gamma*((x-L_0)^2 - (x-L_k)^2): a discrete Gaussian
centred at x, so F(x) = sum_k softmax_k L_k.  gamma = kappa/Delta^2.
"""
from __future__ import annotations

from fractions import Fraction

from .base import Construction, Param, Spec, register
from .exact import ParameterError
from .formula import Formula, exp, lift
from .network import Embedding, Head, Layer, Network, mat

PAPER = "UAP: Hu, Liu, Chen, Wu, Liu, Universal Approximation with Softmax Attention, arXiv:2504.15956"
CLAIM = "one softmax attention head approximates a truncated linear map Range_[a,b] by anchor interpolation"

# token columns: x, 1, u = L_k - L_0, v = L_k^2 - L_0^2, value
_COLS = 5


def ramp_matrices(a, b, p: int, gamma):
    """W_Q, W_K, W_V, W_O (nested lists) and the anchor rows.

    Works for exact rationals and for sympy symbols alike (one code path for the
    instantiated weights and the symbolic spec).
    """
    delta = (b - a) / (p - 1)
    anchors = [a + k * delta for k in range(p)]
    wq = [[2, 0], [0, -1], [0, 0], [0, 0], [0, 0]]
    wk = [[0, 0], [0, 0], [1, 0], [0, 1], [0, 0]]
    wv = [[0], [0], [0], [0], [1]]
    wo = [[1]]
    rows = [[0, 0, L - anchors[0], L ** 2 - anchors[0] ** 2, L] for L in anchors]
    return wq, wk, wv, wo, rows, gamma


def ramp_network(a: Fraction, b: Fraction, p: int, gamma: Fraction) -> Network:
    wq, wk, wv, wo, rows, _ = ramp_matrices(Fraction(a), Fraction(b), p, Fraction(gamma))
    const = [[0, 1, 0, 0, 0]] + rows
    lin = [[1, 0, 0, 0, 0]] + [[0] * _COLS for _ in rows]
    head = Head(wq=mat(wq), wk=mat(wk), wv=mat(wv), wo=mat(wo), beta=Fraction(gamma))
    layer = Layer(heads=(head,), query_rows=(0,), key_rows=tuple(range(1, p + 1)))
    return Network(embedding=Embedding(const=mat(const), linear=(mat(lin),)),
                   layers=(layer,), readout=((0, 0),))


def ramp_bound(a, b, p, kappa) -> Formula:
    """A-priori bound Delta/2 + 2(b-a) q/(1-q), q = e^{-kappa} (exact; Formula variables allowed)."""
    a, b, p, kappa = (lift(v) for v in (a, b, p, kappa))
    delta = (b - a) / (p - 1)
    q = exp(-kappa)
    return delta / 2 + 2 * (b - a) * q / (1 - q)


def check_ramp_params(a, b, p, kappa, lo, hi):
    if p < 2:
        raise ParameterError(f"ramp: p must be at least 2 anchors, got {p}")
    if not a < b:
        raise ParameterError(f"ramp: need a < b, got a={a}, b={b}")
    if not kappa > 0:
        raise ParameterError(f"ramp: kappa must be positive, got {kappa}")
    if not lo < hi:
        raise ParameterError(f"ramp: empty or inverted domain [lo, hi] = [{lo}, {hi}]")


def build_ramp(a, b, p, kappa, lo, hi) -> Construction:
    check_ramp_params(a, b, p, kappa, lo, hi)
    delta = (b - a) / (p - 1)
    gamma = kappa / delta ** 2
    return Construction(
        name="ramp", paper=PAPER, theorem=CLAIM,
        params=(("a", a), ("b", b), ("p", p), ("kappa", kappa), ("lo", lo), ("hi", hi)),
        network=ramp_network(a, b, p, gamma),
        target=(("range", ("num", Fraction(a)), ("num", Fraction(b)), ("var", "x0")),),
        domain=((Fraction(lo), Fraction(hi)),),
        apriori_bound=ramp_bound(a, b, p, kappa),
        notes=(f"gamma = kappa/Delta^2 = {gamma} (exact)",),
    )


def ramp_symbolic() -> dict:
    """The general construction with symbols a, b, gamma and anchor index k (for LaTeX)."""
    import sympy
    a, b, x, k, p, kappa = sympy.symbols("a b x k p kappa", real=True)
    gamma = sympy.Symbol("gamma", positive=True)
    delta = (b - a) / (p - 1)
    L0, Lk = a, a + k * delta
    wq, wk, wv, wo = (sympy.Matrix(m) for m in ramp_matrices(a, b, 2, gamma)[:4])
    query = sympy.Matrix([[x, 1, 0, 0, 0]])
    anchor = sympy.Matrix([[0, 0, Lk - L0, Lk ** 2 - L0 ** 2, Lk]])
    logit = sympy.factor(sympy.expand(gamma * (query * wq * (anchor * wk).T)[0, 0]))
    names = {"a": a, "b": b, "p": p, "kappa": kappa}
    bound = ramp_bound(*(Formula.var(n) for n in names)).to_sympy(dict(names))
    return {
        "query token": query, "anchor token k": anchor,
        "W_Q (times gamma)": wq, "W_K": wk, "W_V": wv, "W_O": wo,
        "logit_k": sympy.Eq(sympy.Symbol("s_k"), logit),
        "check": sympy.Eq(sympy.simplify(logit - gamma * ((x - L0) ** 2 - (x - Lk) ** 2)), 0),
        "gamma": sympy.Eq(gamma, kappa / delta ** 2),
        "target": sympy.Min(sympy.Max(x, a), b),
        "a-priori bound": bound,
    }


register(Spec(
    name="ramp", summary="single head ~ truncated linear map Range_[a,b](x)",
    paper=PAPER, theorem=CLAIM,
    params=(
        Param("a", "rational", "-1", "left end of the ramp"),
        Param("b", "rational", "1", "right end of the ramp"),
        Param("p", "int", "41", "number of anchors (>= 2)"),
        Param("kappa", "rational", "8", "sharpness gamma*Delta^2"),
        Param("lo", "rational", "-2", "domain left end"),
        Param("hi", "rational", "2", "domain right end"),
    ),
    builder=build_ramp, symbolic=ramp_symbolic,
    size=lambda p: p["p"] + 1,
))
