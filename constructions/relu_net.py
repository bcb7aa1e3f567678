"""[UAP] relu-net: attention alone approximates f through its piecewise-linear interpolant.

On nodes z_u = lo + u h (u = 0..m) with exact rational values F_u (f at the node by
mpmath at 60 digits, rounded to the 2^-40 grid and recorded), the interpolant is the
one-hidden-layer ReLU net g(x) = F_0 + sum_u s_u Range_[0,h](x - z_u), since
Range_[0,h](y) = ReLU(y) - ReLU(y - h).  Every unit is a ramp over n anchors
L_j = j Delta (Delta = h/(n-1)), realised in one of two ways:

(1) one attention layer, a row-wise softmax, a linear readout: the layer copies (x, 1)
    to one row per unit, a position-dependent affine map turns row u into the anchor
    logits gamma(2(x - z_u) L_j - L_j^2), the softmax interpolates, and the readout
    sums F_0 + sum_u s_u sum_j L_j softmax_uj;
(2) two attention layers with a linear map in between: layer 1 copies (x, 1) to n
    rows, the map appends the position j, and layer 2 has one head per unit with query
    2 gamma (x - z_u), key j Delta, position bias -gamma L_j^2 and value F_0/m + s_u L_j.

The first layer's output enters the next logits; the certifier bounds the composition.
The error |f - attention| is what is certified; the chain |f - g| and |g - attention|
is reported.  The first layer attends to a single key, so it copies (x, 1) exactly.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath

from .base import Construction, Param, Spec, register
from .exact import ParameterError
from .expr import ExprError, mp_eval, parse, variables
from .network import Embedding, Head, Layer, Network, mat
from .ramp import PAPER

CLAIM = ("attention alone is a universal approximator: (1) one attention layer followed by a softmax "
         "and a linear readout, (2) two attention layers with linear maps between them; each ReLU unit "
         "of a piecewise-linear interpolant is a ramp by anchor interpolation")
GRID = 2 ** 40


def node_values(tree, nodes) -> tuple:
    """f at each node, evaluated at 60 digits and rounded to the 2^-40 grid (exact rationals)."""
    out = []
    with mpmath.workdps(60):
        for z in nodes:
            v = mp_eval(tree, {"x0": z})
            if not mpmath.isfinite(v):
                raise ParameterError(f"relu-net: f is not finite at the node x0 = {z}")
            out.append(Fraction(int(mpmath.nint(v * GRID)), GRID))
    return tuple(out)


def interpolant_tree(F, nodes, h):
    """g(x) = F_0 + sum_u s_u range(0, h, x0 - z_u) as an expression tree."""
    terms = [("num", F[0])]
    for u in range(len(nodes) - 1):
        s = (F[u + 1] - F[u]) / h
        if s != 0:
            terms.append(("mul", ("num", s), ("range", ("num", Fraction(0)), ("num", h),
                                              ("sub", ("var", "x0"), ("num", nodes[u])))))
    return terms[0] if len(terms) == 1 else ("add",) + tuple(terms)


def _copy_layer(rows: int) -> Layer:
    """Every row attends to row 0 only (one key, weight exactly 1) and copies its (x, 1)."""
    zero = mat([[0], [0]])
    eye = mat([[1, 0], [0, 1]])
    return Layer(heads=(Head(wq=zero, wk=zero, wv=eye, wo=eye, beta=Fraction(1)),),
                 query_rows=tuple(range(rows)), key_rows=(0,))


def variant1(F, nodes, h, n, gamma) -> Network:
    m = len(nodes) - 1
    L = [j * h / (n - 1) for j in range(n)]
    W = [[2 * gamma * Lj for Lj in L], [-gamma * Lj ** 2 for Lj in L]]
    B = [[-2 * gamma * nodes[u] * Lj for Lj in L] for u in range(m)]
    layer = _copy_layer(m)
    layer = Layer(heads=layer.heads, query_rows=layer.query_rows, key_rows=layer.key_rows,
                  post=(mat(W), mat(B)))
    readout = tuple((u, j) for u in range(m) for j in range(n))
    weights = tuple((F[u + 1] - F[u]) / h * L[j] for u in range(m) for j in range(n))
    return Network(embedding=Embedding(const=mat([[0, 1]] * m), linear=(mat([[1, 0]] * m),)),
                   layers=(layer,), readout=readout, final_softmax=True,
                   readout_linear=((F[0], weights),))


def variant2(F, nodes, h, n, gamma) -> Network:
    m = len(nodes) - 1
    delta = h / (n - 1)
    L = [j * delta for j in range(n)]
    first = _copy_layer(n)
    first = Layer(heads=first.heads, query_rows=first.query_rows, key_rows=first.key_rows,
                  post=(mat([[1, 0, 0], [0, 1, 0]]), mat([[0, 0, j] for j in range(n)])))
    heads = []
    for u in range(m):
        s = (F[u + 1] - F[u]) / h
        heads.append(Head(wq=mat([[2], [-2 * nodes[u]], [0]]), wk=mat([[0], [0], [delta]]),
                          wv=mat([[0], [F[0] / m], [s * delta]]), wo=mat([[1]]), beta=gamma,
                          bias=mat([[-gamma * Lj ** 2 for Lj in L]])))
    second = Layer(heads=tuple(heads), query_rows=(0,), key_rows=tuple(range(n)))
    return Network(embedding=Embedding(const=mat([[0, 1]] * n), linear=(mat([[1, 0]] * n),)),
                   layers=(first, second), readout=((0, 0),))


def build_relu_net(f, lo, hi, variant, units, n, kappa) -> Construction:
    try:
        tree = parse(f)
    except ExprError as e:
        raise ParameterError(f"relu-net: f: {e}") from None
    if not variables(tree) <= {"x0"}:
        raise ParameterError("relu-net: f must be a function of x0 only (1-D)")
    if variant not in (1, 2):
        raise ParameterError(f"relu-net: variant must be 1 or 2, got {variant}")
    if not 1 <= units <= 512:
        raise ParameterError(f"relu-net: units must be between 1 and 512, got {units}")
    if n < 2:
        raise ParameterError(f"relu-net: n must be at least 2 anchors per unit, got {n}")
    if not kappa > 0:
        raise ParameterError(f"relu-net: kappa must be positive, got {kappa}")
    if not lo < hi:
        raise ParameterError(f"relu-net: empty or inverted domain [lo, hi] = [{lo}, {hi}]")
    lo, hi, kappa = Fraction(lo), Fraction(hi), Fraction(kappa)
    h = (hi - lo) / units
    nodes = tuple(lo + u * h for u in range(units + 1))
    F = node_values(tree, nodes)
    gamma = kappa / (h / (n - 1)) ** 2
    net = (variant1 if variant == 1 else variant2)(F, nodes, h, n, gamma)
    g = interpolant_tree(F, nodes, h)
    return Construction(
        name="relu-net", paper=PAPER, theorem=CLAIM,
        params=(("f", f), ("lo", lo), ("hi", hi), ("variant", variant), ("units", units), ("n", n),
                ("kappa", kappa)),
        network=net, target=(tree,), domain=((lo, hi),),
        apriori_bound=None,
        notes=(f"variant {variant}: h = {h}, Delta = h/(n-1) = {h / (n - 1)}, gamma = {gamma} (exact)",
               "node values f(z_u) rounded to the 2^-40 grid: " + ",".join(str(v) for v in F),
               "no a-priori bound for a general f: the certificate bounds |f - attention| directly"),
        chain=(("g: piecewise-linear interpolant (one-hidden-layer ReLU net)", g),),
    )


register(Spec(
    name="relu-net", summary="attention alone ~ f via its ReLU interpolant (variant 1: +softmax, 2: two layers)",
    paper=PAPER, theorem=CLAIM,
    params=(
        Param("f", "expr", "sin(3*x0)", "target f(x0), a safe expression"),
        Param("lo", "rational", "-1", "domain left end"),
        Param("hi", "rational", "2", "domain right end"),
        Param("variant", "int", "1", "1: one layer + softmax + readout; 2: two attention layers"),
        Param("units", "int", "24", "ReLU units = interpolation intervals"),
        Param("n", "int", "9", "anchors per unit"),
        Param("kappa", "rational", "8", "sharpness gamma*Delta^2 of every unit"),
    ),
    builder=build_relu_net,
    size=lambda p: p["units"] * (p["n"] + 1),
))
