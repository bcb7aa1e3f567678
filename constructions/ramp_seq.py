"""[UAP] ramp-seq: n tokens, each approximating its own Range_[a,b](w_i x_i + t_i).

The linear map writes token i as (y_i, 1, 0, 0, 0) with y_i = w_i x_i + t_i and
appends the p ramp anchor tokens; one head (queries = the n input tokens, keys =
the anchors) gives every token its own discrete-Gaussian interpolation, read out
from that token's row.
"""
from __future__ import annotations

from fractions import Fraction

from .base import Construction, Param, Spec, register
from .exact import ParameterError, parse_rational
from .network import Embedding, Head, Layer, Network, mat
from .ramp import PAPER, check_ramp_params, ramp_bound, ramp_matrices

CLAIM = ("one softmax head applied to a sequence approximates a token-wise truncated linear map "
         "Range_[a,b](w_i x_i + t_i) for every token at once")
_COLS = 5


def parse_list(name: str, text, n: int) -> tuple:
    """A comma-separated list of n exact rationals (one per token)."""
    if not isinstance(text, str):
        raise ParameterError(f"{name}: expected a comma-separated list")
    items = [s for s in text.split(",")]
    if len(items) != n:
        raise ParameterError(f"{name}: expected {n} comma-separated values, got {len(items)}")
    try:
        return tuple(parse_rational(s) for s in items)
    except ParameterError as e:
        raise ParameterError(f"{name}: {e}") from None


def build_ramp_seq(n, a, b, p, kappa, w, t, lo, hi) -> Construction:
    if not 1 <= n <= 16:
        raise ParameterError(f"ramp-seq: n must be between 1 and 16 tokens, got {n}")
    check_ramp_params(a, b, p, kappa, lo, hi)
    ws, ts = parse_list("w", w, n), parse_list("t", t, n)
    if any(v == 0 for v in ws):
        raise ParameterError("ramp-seq: every w_i must be nonzero")
    delta = (b - a) / (p - 1)
    gamma = kappa / delta ** 2
    wq, wk, wv, wo, rows, _ = ramp_matrices(Fraction(a), Fraction(b), p, Fraction(gamma))
    const = [[ts[i], 1, 0, 0, 0] for i in range(n)] + rows
    lins = []
    for i in range(n):
        E = [[0] * _COLS for _ in range(n + p)]
        E[i][0] = ws[i]
        lins.append(mat(E))
    head = Head(wq=mat(wq), wk=mat(wk), wv=mat(wv), wo=mat(wo), beta=Fraction(gamma))
    layer = Layer(heads=(head,), query_rows=tuple(range(n)), key_rows=tuple(range(n, n + p)))
    net = Network(embedding=Embedding(const=mat(const), linear=tuple(lins)), layers=(layer,),
                  readout=tuple((i, 0) for i in range(n)))
    target = tuple(("range", ("num", Fraction(a)), ("num", Fraction(b)),
                    ("add", ("mul", ("num", ws[i]), ("var", f"x{i}")), ("num", ts[i])))
                   for i in range(n))
    return Construction(
        name="ramp-seq", paper=PAPER, theorem=CLAIM,
        params=(("n", n), ("a", a), ("b", b), ("p", p), ("kappa", kappa),
                ("w", ",".join(str(v) for v in ws)), ("t", ",".join(str(v) for v in ts)),
                ("lo", lo), ("hi", hi)),
        network=net, target=target, domain=tuple((Fraction(lo), Fraction(hi)) for _ in range(n)),
        apriori_bound=ramp_bound(a, b, p, kappa),
        notes=(f"gamma = kappa/Delta^2 = {gamma} (exact)",
               "the ramp bound holds for every y, so it holds for each token's y_i = w_i x_i + t_i"),
    )


register(Spec(
    name="ramp-seq", summary="one head on a sequence ~ Range_[a,b](w_i x_i + t_i) per token",
    paper=PAPER, theorem=CLAIM,
    params=(
        Param("n", "int", "2", "number of input tokens (1..16)"),
        Param("a", "rational", "-1", "left end of the ramp"),
        Param("b", "rational", "1", "right end of the ramp"),
        Param("p", "int", "9", "number of anchor tokens (>= 2)"),
        Param("kappa", "rational", "8", "sharpness gamma*Delta^2"),
        Param("w", "expr", "1,2", "per-token slopes w_i, comma-separated exact rationals"),
        Param("t", "expr", "0,-1/2", "per-token offsets t_i, comma-separated exact rationals"),
        Param("lo", "rational", "-1", "domain left end (each x_i)"),
        Param("hi", "rational", "1", "domain right end (each x_i)"),
    ),
    builder=build_ramp_seq,
    size=lambda p: p["n"] + p["p"],
))
