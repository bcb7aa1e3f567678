"""The checker's core: its error and report types, exact rationals, boxes and trees, the Arb
pieces every evidence kind shares (affine ranges, softmax weights, the knapsack bound, the
one-layer box bound) and the SMT re-runs.  Nothing here is shared with the search in verify/.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction

from flint import arb, ctx, fmpq

PREC = 128
MAX_TREE_DEPTH = 400
# A stored number (box bound, piece bound, chain term) may undercut the checker's own bound by
# at most this fraction of that bound: Arb's balls and the searcher's float64 differ in the last
# bits.  The slack is relative to the number itself, never to eps.
REL_SLACK = fmpq(1, 2 ** 20)
DEFAULT_MAX_WORK = 10 ** 7     # estimated work units (one unit: about one key of one box in Arb, ~10-30 us)
DEFAULT_MAX_P = 64             # largest L_p exponent checked unless raised
MAX_NESTING = 512              # JSON nesting that files may have (model.MAX_NESTING; an expression of depth 200 nests 400 deep)
LEMMA_TIMEOUT_MS = 10_000
LEMMA_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}\Z")
_RAT = re.compile(r"-?[0-9]+(/[0-9]+)?\Z")


class Invalid(Exception):
    """The certificate does not hold or is not what it claims (exit code 1)."""


class BoxError(Exception):
    """A failure inside one box's bound; the paving loop reports it with the box's index."""


class LimitExceeded(ValueError):
    """The check would need more work than allowed (exit code 2): the message names the flag
    that raises the limit (``--max-work``, ``--max-p``).  Nothing is decided about the claim."""


def undercuts(stored, proved) -> bool:
    """Whether a stored upper bound (fmpq) is surely below the checker's own bound (an arb) by
    more than REL_SLACK of the bound's own magnitude."""
    top = proved.upper()
    return arb(stored) < top - abs(top).upper() * arb(REL_SLACK)


def target_error(n_lo, n_hi, target, env):
    """Upper end of sup |N - f| over a box from the network's enclosure [n_lo, n_hi] and the
    target's exact-ended enclosure (``target.bounds(env)``); None when it is not finite."""
    f_lo, f_hi = target.bounds(env)
    if not (f_lo.is_finite() and f_hi.is_finite()):
        return None
    err = arb.max((n_hi - f_lo).upper(), (f_hi - n_lo).upper()).upper()
    return err if err.is_finite() else None


def box_env(box):
    """The target's environment of an exact box: {"x<i>": (lo, hi)} with fmpq ends."""
    return {f"x{i}": (fmpq(lo.numerator, lo.denominator) if isinstance(lo, Fraction) else lo,
                      fmpq(hi.numerator, hi.denominator) if isinstance(hi, Fraction) else hi)
            for i, (lo, hi) in enumerate(box)}


def float_up(x) -> float:
    """A float >= the upper end of an arb (for reports: a checked bound is never rounded down)."""
    top = x.upper()
    f = float(top.mid())
    if math.isfinite(f) and arb(f) < top:
        f = math.nextafter(f, math.inf)
    return f


NOT_VERIFIED = ("construction name, paper, theorem, parameters, a-priori bound and notes: not verified "
                "against the weights (run `attncert audit` to rebuild the weights from them)",
                "stats and versions: informational, not verified")


@dataclass
class CheckReport:
    """Outcome of a check: ``ok`` plus what was verified, for text/json output.

    ``checked_max_bound`` and ``checked_norm_bound`` are the checker's own bounds (floats rounded
    up); ``max_bound`` and ``norm_bound`` are the certificate's stated ones, each confirmed not to
    undercut the checker's by more than REL_SLACK of itself.  ``norm`` is "Linf" or "Lp" (``p``
    its exponent); for Linf the norm bound is the sup bound.  ``witness_error`` is the checker's
    upper bound of the error at the witness, which ``observed_error`` must not exceed.
    ``unverified`` says in words what the certificate states that the checker did not verify.
    """
    path: str
    ok: bool
    message: str
    name: str = ""
    eps: str = ""
    max_bound: str = ""
    checked_max_bound: float = 0.0
    boxes: int = 0
    observed_error: str = ""
    details: dict = field(default_factory=dict)
    norm: str = "Linf"
    p: str = ""
    norm_bound: str = ""
    checked_norm_bound: float = 0.0
    witness_error: float = 0.0
    unverified: tuple = NOT_VERIFIED

    def to_json(self) -> dict:
        """The report as a JSON-ready dict (what ``attncert check --format json`` prints per file)."""
        return {"path": self.path, "ok": self.ok, "name": self.name, "eps": self.eps,
                "norm": self.norm, "p": self.p or None,
                "max_bound": self.max_bound, "checked_max_bound": self.checked_max_bound,
                "norm_bound": self.norm_bound, "checked_norm_bound": self.checked_norm_bound,
                "boxes": self.boxes, "observed_error": self.observed_error,
                "witness_error": self.witness_error, "unverified": list(self.unverified), **self.details}


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def sha(obj) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def rat(s, where) -> fmpq:
    if type(s) is not str or len(s) > 5000 or not _RAT.match(s):
        raise Invalid(f"{where}: not an exact rational string")
    p, _, qq = s.partition("/")
    try:
        pv, qv = int(p), (int(qq) if qq else 1)
    except ValueError:   # more digits than Python converts
        raise Invalid(f"{where}: number too long") from None
    if qv == 0:
        raise Invalid(f"{where}: zero denominator")
    return fmpq(pv, qv)


def fr(x: fmpq) -> Fraction:
    return Fraction(int(x.p), int(x.q))


def q(f: Fraction) -> fmpq:
    return fmpq(f.numerator, f.denominator)


def mat(m, where):
    if type(m) is not list or not m or any(type(r) is not list for r in m):
        raise Invalid(f"{where}: not a matrix")
    width = len(m[0])
    if width == 0 or any(len(r) != width for r in m):
        raise Invalid(f"{where}: ragged or empty matrix")
    return [[rat(v, where) for v in r] for r in m]


def exact_cell(raw, where):
    """A box of stored rational strings as exact Fractions."""
    return [(fr(rat(a, where)), fr(rat(b, where))) for a, b in raw]


_DIMS = "0123456789abcdefghijklmnopqrstuvwxyz"   # a tree's dimension characters, in order


def leaves(tree: str, domain, D: int):
    """Exact boxes of the bisection tree's leaves, in preorder; rejects malformed trees."""
    out = []
    stack = [(tuple(domain), 0)]
    pos = 0
    while stack:
        box, depth = stack.pop()
        if pos >= len(tree):
            raise Invalid("evidence tree ends early: some boxes are missing")
        tok = tree[pos]
        pos += 1
        if tok == "L":
            out.append(box)
            continue
        d = _DIMS.find(tok)   # 0-9, then a-z: at most 36 inputs
        if not 0 <= d < D:
            raise Invalid(f"evidence tree splits dimension {tok} of a {D}-D domain")
        if depth >= MAX_TREE_DEPTH:
            raise Invalid("evidence tree too deep")
        lo, hi = box[d]
        mid = (lo + hi) / 2
        left = box[:d] + ((lo, mid),) + box[d + 1:]
        right = box[:d] + ((mid, hi),) + box[d + 1:]
        stack.append((right, depth + 1))
        stack.append((left, depth + 1))
    if pos != len(tree):
        raise Invalid("evidence tree has trailing tokens")
    return out


TILING_LEAF = 6


def _q(v) -> fmpq:
    return v if isinstance(v, fmpq) else fmpq(v.numerator, v.denominator)


class Tiling:
    """Exact check that boxes tile a box, and an index that finds the box containing another.

    The boxes are split recursively by axis-parallel cuts at their own faces (a k-d tree): a
    cut at s sends each box with lo < s to the left and each with hi > s to the right (a box
    across the cut goes both ways, clipped), so two boxes whose interiors meet always share a
    child.  Every cut lies between the smallest upper and the largest lower face in its axis,
    so each child is strictly smaller; when no axis has such a cut, all the boxes share an
    interior point.  A leaf of at most TILING_LEAF boxes is checked pairwise for overlap, and
    for cover by exact volume within its own region (a few small rationals, never one global
    sum).  Coordinates are replaced by their exact ranks per axis first, so the splitting is
    integer work (exact values are fmpq, compared in C).  Guillotine tilings (bisection trees,
    grids, Voronoi cubes, stacked slabs) take O(n log^2 n); ``budget`` caps the work on anything
    else (LimitExceeded, never a hang).
    """

    def __init__(self, cells, domain, budget=None):
        D = len(domain)
        qdom = [(_q(A), _q(B)) for A, B in domain]
        qcells = [[(_q(a), _q(b)) for a, b in c] for c in cells]   # fmpq: exact comparisons in C
        for cell in qcells:
            if len(cell) != D or any(not (A <= a < b <= B) for (a, b), (A, B) in zip(cell, qdom)):
                raise Invalid(f"piece {[(str(a)[:40], str(b)[:40]) for a, b in cell]} is empty or leaves the domain")
        if not cells:
            raise Invalid("the pieces do not cover the domain")
        self.cells = qcells
        vals, boxes = [], [[] for _ in cells]
        for d in range(D):
            every = sorted([c[d][0] for c in qcells] + [c[d][1] for c in qcells] + list(qdom[d]))
            vs = every[:1]
            for v in every[1:]:
                if v != vs[-1]:
                    vs.append(v)
            vals.append(vs)
            for i, c in enumerate(qcells):
                boxes[i].append((bisect_left(vs, c[d][0]), bisect_left(vs, c[d][1])))
        self.vals = vals
        self.nodes = []   # ("leaf", [cell index]) or ("cut", axis, exact value, left node, right node)
        budget = float("inf") if budget is None else budget
        work = 0
        root = tuple((0, len(v) - 1) for v in vals)
        stack = [(root, [(i, tuple(b)) for i, b in enumerate(boxes)], None)]
        while stack:
            region, items, parent = stack.pop()
            node = len(self.nodes)
            if parent is not None:
                p, side = parent
                self.nodes[p][3 + side] = node
            m = len(items)
            work += m * (D + 1)
            if work > budget:
                raise LimitExceeded(f"the tiling check of {len(cells)} pieces needs more work than the limit "
                                    f"{budget}; raise it with --max-work")
            if m == 0:
                raise Invalid("the pieces do not cover the domain")
            cut = self._cut(items, D) if m > TILING_LEAF else None
            if cut is None:
                self._leaf(region, items, D)
                self.nodes.append(("leaf", [i for i, _ in items]))
                continue
            d, s = cut
            left = [(i, b[:d] + ((b[d][0], min(b[d][1], s)),) + b[d + 1:]) for i, b in items if b[d][0] < s]
            right = [(i, b[:d] + ((max(b[d][0], s), b[d][1]),) + b[d + 1:]) for i, b in items if b[d][1] > s]
            self.nodes.append(["cut", d, vals[d][s], None, None])
            stack.append((region[:d] + ((s, region[d][1]),) + region[d + 1:], right, (node, 1)))
            stack.append((region[:d] + ((region[d][0], s),) + region[d + 1:], left, (node, 0)))

    @staticmethod
    def _cut(items, D):
        """(axis, rank) of the most balanced cut; when no axis has one, the boxes share an interior
        point, and two of them overlap."""
        best = None
        m = len(items)
        for d in range(D):
            los = sorted(b[d][0] for _, b in items)
            his = sorted(b[d][1] for _, b in items)
            lo_s, hi_s = his[0], los[-1]
            if lo_s > hi_s:
                continue
            a, z = lo_s, hi_s   # smallest s in [lo_s, hi_s] with #(lo < s) >= #(hi > s)
            while a < z:
                mid = (a + z) // 2
                if bisect_left(los, mid) >= m - bisect_right(his, mid):
                    z = mid
                else:
                    a = mid + 1
            for s in (a - 1, a):
                if lo_s <= s <= hi_s:
                    cost = max(bisect_left(los, s), m - bisect_right(his, s))
                    if best is None or cost < best[0]:
                        best = (cost, d, s)
        if best is None:
            raise Invalid("two pieces overlap")
        return best[1], best[2]

    def _leaf(self, region, items, D):
        for n, (_, b1) in enumerate(items):
            for _, b2 in items[n + 1:]:
                if all(max(b1[d][0], b2[d][0]) < min(b1[d][1], b2[d][1]) for d in range(D)):
                    raise Invalid("two pieces overlap")
        vals = self.vals

        def vol(b):
            v = fmpq(1)
            for d, (lo, hi) in enumerate(b):
                v *= vals[d][hi] - vals[d][lo]
            return v
        if sum((vol(b) for _, b in items), fmpq(0)) != vol(region):
            raise Invalid("the pieces do not cover the domain")

    def container(self, box):
        """Index of a tile that contains ``box`` (exact Fractions or fmpq), or None."""
        box = [(_q(a), _q(b)) for a, b in box]
        centre = [(a + b) / 2 for a, b in box]
        node = self.nodes[0]
        while node[0] == "cut":
            _, d, s, left, right = node
            node = self.nodes[left if centre[d] <= s else right]
        for i in node[1]:
            if all(A <= a and b <= B for (a, b), (A, B) in zip(box, self.cells[i])):
                return i
        return None


def check_tiling(cells, domain, budget=None):
    """Exact: every cell inside the domain, interiors pairwise disjoint, union the whole domain.

    Returns the Tiling (an index for ``container``); raises Invalid, or LimitExceeded past ``budget``.
    """
    return Tiling(cells, domain, budget)


def affine_range(c, g, qbox):
    """Exact range (lo, hi) of c + g.x over a rational box (fmpq arithmetic, no rounding)."""
    lo = hi = c
    for gi, (a, b) in zip(g, qbox):
        if type(gi) is fmpq:   # its sign from the numerator: faster than comparing fmpq with 0
            if not gi:
                continue
            pos = gi.p > 0
        elif gi == 0:
            continue
        else:
            pos = gi > 0
        if pos:
            lo, hi = lo + gi * a, hi + gi * b
        else:
            lo, hi = lo + gi * b, hi + gi * a
    return lo, hi


def _knapsack_dual(l, u, v, order, lu, upper):
    """t + sum_j [hi_j (v_j - t)^+ - lo_j (t - v_j)^+], (hi, lo) = (u, l) for the upper end of the
    max (``upper``) or (l, u) for the lower end of the min, with t from the greedy that fills the
    largest (smallest) values first; any t gives a valid end (weak LP duality)."""
    n = len(v)
    if order is None:   # Arb's comparisons: exact on exact ends
        order = sorted(range(n), key=v.__getitem__, reverse=upper)
    if lu is None:
        lu = knapsack_floats(l, u)
    mass, width = lu
    t = v[order[-1]]
    for j in order:
        mass -= width[j]
        if mass <= 0:
            t = v[j]
            break
    t = arb(t.mid())  # an exact point: the dual bound holds for any t
    total = t
    zero = _ZERO
    above, below = (u, l) if upper else (l, u)
    for vj, aj, bj in zip(v, above, below):
        d = vj - t
        if d > zero:
            total += aj * d
        elif d < zero:
            total += bj * d
        else:
            total += aj * arb.max(d, zero) - bj * arb.max(-d, zero)
    return total.upper() if upper else total.lower()


def knapsack_upper(l, u, v, order=None, lu=None):
    """Upper end of max sum a_j v_j over l <= a <= u, sum a = 1, by weak LP duality:
    t + sum_j [u_j (v_j - t)^+ - l_j (t - v_j)^+] bounds it for any t; t comes from the greedy.
    ``order`` (optional) is the greedy's order, the indices by decreasing v_j (by default the
    stable sort under Arb's comparisons, which leaves balls that overlap in their given order);
    ``lu`` (optional) is ``knapsack_floats(l, u)``; both only pick t, so any order and any floats
    keep the bound sound.  Each term is evaluated in Arb: when v_j - t is
    surely positive (negative) it is u_j (v_j - t) (l_j (v_j - t)), the same real number."""
    return _knapsack_dual(l, u, v, order, lu, True)


_ZERO = arb(0)
_ONE = arb(1)
_INF = arb("inf")
_TAIL_ARB = arb(-60)   # TAIL_GAP as an (exact) arb


def knapsack_lower(l, u, v, order=None, lu=None):
    """Lower end of min sum a_j v_j over l <= a <= u, sum a = 1: ``-knapsack_upper(l, u, -v)``
    without the negated list, i.e. t + sum_j [l_j (v_j - t)^+ - u_j (t - v_j)^+] for any t, t
    from the greedy that fills the smallest values first.  ``order`` (optional): the indices by
    increasing v_j; ``lu`` as there."""
    return _knapsack_dual(l, u, v, order, lu, False)


def knapsack_floats(l, u):
    """(1 - sum float(l_j), [float(u_j) - float(l_j)]): what the greedy of ``knapsack_upper``
    reads, made once for several value vectors over the same weight bounds."""
    lf = [float(x) for x in l]
    return 1.0 - sum(lf), [float(x) - y for x, y in zip(u, lf)]


def softmax_weight_bounds(sl, sh, tail=None):
    """Lower and upper ends [l_j, u_j] of the softmax weights from logit enclosures [sl_j, sh_j],
    in the gap form a_j = 1/(1 + sum_{k != j} e^{s_k - s_j}); shared by every checker path.
    ``tail`` (an arb >= 0, optional) bounds sum_k e^{s_k} over further keys that are not listed:
    it is added to the upper end of the sum only (their lower end 0 is implied)."""
    el = [x.exp() for x in sl]
    eh = el if sh is sl else [x.exp() for x in sh]   # one list: a point's logits
    zero, one = _ZERO, _ONE
    S_lo, S_hi = sum(el, zero), sum(eh, zero)
    if tail is not None:
        S_hi = S_hi + tail
    l, u = [], []
    for elj, ehj in zip(el, eh):
        t_hi = (S_hi - ehj).upper()
        t_lo = (S_lo - elj).lower()
        t_lo = t_lo if t_lo > zero else zero
        lj = (one / (one + t_hi / elj)).lower()
        uj = (one / (one + t_lo / ehj)).upper()
        l.append(lj if lj > zero else zero)
        u.append(uj if uj < one else one)
    return l, u


def affine_heads(net, D):
    """Per readout, per head: exact (c, G, e, F) lists with logits/values affine in x."""
    emb = net["embedding"]
    const = mat(emb["const"], "embedding.const")
    lins = [mat(E, f"embedding.linear.{i}") for i, E in enumerate(emb["linear"])]
    if len(lins) != D:
        raise Invalid("embedding has a different number of inputs than the domain")
    T, d = len(const), len(const[0])
    if any(len(E) != T or len(E[0]) != d for E in lins):
        raise Invalid("embedding matrices differ in shape")
    if len(net["layers"]) != 1:
        raise Invalid("this checker handles one attention layer")
    layer = net["layers"][0]
    qrows, krows = layer["query_rows"], layer["key_rows"]
    if any(r >= T for r in qrows + krows):
        raise Invalid("token row index out of range")

    def vm(v, M):
        return [sum((v[i] * M[i][j] for i in range(len(v))), fmpq(0)) for j in range(len(M[0]))]

    def dot(u, v):
        return sum((a * b for a, b in zip(u, v)), fmpq(0))

    heads = []
    for hn, h in enumerate(layer["heads"]):
        wq, wk = mat(h["wq"], "wq"), mat(h["wk"], "wk")
        wv, wo = mat(h["wv"], "wv"), mat(h["wo"], "wo")
        if len(wq) != d or len(wk) != d or len(wv) != d or len(wq[0]) != len(wk[0]) or len(wo) != len(wv[0]):
            raise Invalid(f"head {hn}: weight shapes do not chain")
        bias = None if h["bias"] is None else mat(h["bias"], "bias")
        if bias is not None and (len(bias) != len(qrows) or len(bias[0]) != len(krows)):
            raise Invalid(f"head {hn}: bias shape")
        heads.append((wq, wk, wv, wo, rat(h["beta"], "beta"), bias))
    out = []
    for r, col in net["readout"]:
        if r >= len(qrows):
            raise Invalid("readout row out of range")
        per = []
        for wq, wk, wv, wo, beta, bias in heads:
            if col >= len(wo[0]):
                raise Invalid("readout column out of range")
            q0 = vm(const[qrows[r]], wq)
            qi = [vm(E[qrows[r]], wq) for E in lins]
            wvo = [dot(row, [wo[b][col] for b in range(len(wo))]) for row in wv]
            c, G, e, F = [], [], [], []
            for jn, kr in enumerate(krows):
                k0 = vm(const[kr], wk)
                ki = [vm(E[kr], wk) for E in lins]
                if any(dot(qi[i], ki[l]) != 0 for i in range(D) for l in range(D)):
                    raise Invalid("logits are quadratic in the input; not covered by this checker")
                c.append(beta * dot(q0, k0) + (bias[r][jn] if bias else 0))
                G.append([beta * (dot(qi[i], k0) + dot(q0, ki[i])) for i in range(D)])
                e.append(dot(const[kr], wvo))
                F.append([dot(E[kr], wvo) for E in lins])
            per.append((c, G, e, F))
        out.append(per)
    return out


# A key whose exact logit gap to the hint key k* is below TAIL_GAP over the whole box joins the
# lumped tail (e^-60 < 2^-86): its weight is then bounded in bulk, not key by key.
TAIL_GAP = fmpq(-60)
# Heads with at least this many keys are screened in float64 first (``PreparedHeads.screen``):
# only the keys the screen cannot prove to be in the tail are bounded one by one in exact
# arithmetic.  The screen lumps a key when its float gap bound plus its rounding-error bound is
# below _SCREEN_GAP (half a unit below TAIL_GAP, which absorbs the rounding of that one sum).
SCREEN_MIN_KEYS = 12
_SCREEN_PY_KEYS = 128          # one-input heads up to this many keys: the screen in Python floats
_SCREEN_GAP = -60.5


def _float(x) -> float:
    """x (fmpq, Fraction or int) rounded to the nearest float64 (Python's int / int is correctly
    rounded); OverflowError when it does not fit."""
    if type(x) is fmpq:
        return int(x.p) / int(x.q)
    return int(x.numerator) / int(x.denominator)


class _AffineScreen:
    """Float64 ends of affine functions over a box, with a rigorous bound of their rounding error,
    vectorised over the keys j (NumPy): the functions c_j + G_j.x themselves, or (with a hint k)
    their differences (c_j - c_k) + (G_j - G_k).x, made from the same float64 coefficients.
    ``ok`` is False (screen unusable) when a coefficient does not convert to a float64 that is
    zero or normal.

    Error bound.  Let u = 2^-53.  Every coefficient and box end is rounded to nearest: each
    nonzero coefficient to a normal float (checked here), with relative error <= u; a box end
    with relative error <= u, or absolute error <= 2^-1075 when it underflows.  A difference
    fl(fl(c_j) - fl(c_k)) then lies within 2.01 u A of c_j - c_k with A = |c_j| + |c_k| (a
    subnormal difference is exact), likewise for each slope with A_i = |G_ji| + |G_ki|; without a
    hint A = |c_j|, A_i = |G_ji|.  The end c + sum_i g_i x_i (x_i = b_i or a_i by the sign of the
    float slope) is a sum of at most D + 1 nonzero terms, each within 4.02 u A_i |x_i| of its
    exact value (the slope's error, the box end's rounding and the product's; a fused
    multiply-add has fewer roundings), summed in some order with at most D roundings: its error
    is at most (D + 5) u (1 + 1e-9) S with S = A + sum_i A_i |x_i| (Higham, Accuracy and
    Stability, 3.1 and 3.5; gamma_m = m u / (1 - m u)).  When the float slope has the other sign
    than the exact one, |g_i| <= 2.01 u A_i and using the other box end adds at most
    2.01 u A_i |b_i - a_i| <= 4.02 u A_i m_i, m_i = max(|a_i|, |b_i|): at most D of them.  So the
    error is below (6 D + 6) u (1 + 1e-9) S', S' = A + sum_i A_i m_i, and the screen uses
    (8 D + 32) u S_f with S_f = fl(A + sum_i A_i m_i) >= S' (1 - (D + 3) u): a factor above 1.3
    to spare (one more rounding of S_f times the constant is covered).  Underflow: a subnormal product or converted
    box end adds at most 2^-1075 (times |g_i| <= 2 gmax for the box end), and
    (2 D + 4) 2^-1073 (1 + 2 gmax) covers both.  Hence every exact end lies within
    err = (8 D + 32) u S_f + (2 D + 4) 2^-1073 (1 + 2 gmax) of its float value.
    """

    def __init__(self, c, G):
        import numpy as np
        self.np = np
        n, D = len(c), (len(G[0]) if G else 0)
        self.D = D
        self.ok = False
        try:
            cf = np.array([_float(x) for x in c], dtype=float)
            gf = np.array([[_float(x) for x in row] for row in G], dtype=float).reshape(n, D)
        except (OverflowError, ZeroDivisionError):
            return
        tiny = 2.0 ** -1021
        cz = np.array([x != 0 for x in c], dtype=bool)
        gz = np.array([[x != 0 for x in row] for row in G], dtype=bool).reshape(n, D)
        if not (np.all(np.isfinite(cf)) and np.all(np.isfinite(gf)) and np.all(np.abs(gf[gz]) >= tiny)
                and np.all(np.abs(cf[cz]) >= tiny)):
            return
        self.ok = True
        self.cf, self.gf = cf, gf
        self.cabs, self.gabs = np.abs(cf), np.abs(gf)
        gmax = float(self.gabs.max()) if gf.size else 0.0
        self.rel = (8 * D + 32) * 2.0 ** -53
        self.absolute = (2 * D + 4) * 2.0 ** -1073 * (1.0 + 2.0 * gmax)
        if D == 1 and n <= _SCREEN_PY_KEYS:   # plain Python floats: less overhead than NumPy here
            self.lists = (cf.tolist(), gf[:, 0].tolist(), self.cabs.tolist(), self.gabs[:, 0].tolist())
        else:
            self.lists = None

    def tail_1d(self, qbox, ks):
        """For one input and a hint ks, with Python floats (the same IEEE double operations that
        ``ends`` makes, one product per key, so the same error bound): (cand, n_tail, top), the
        keys j != ks whose float gap end hi_j plus its error bound err_j is not below _SCREEN_GAP
        (or is not finite), how many others, and the largest hi_j plus the largest err_j over
        those others, as an exact float sum in Arb (None when there are none).  None when a box
        end does not convert."""
        try:
            a, b = _float(qbox[0][0]), _float(qbox[0][1])
        except (OverflowError, ZeroDivisionError):
            return None
        cf, gf, ca, ga = self.lists
        c0, g0, ca0, ga0 = cf[ks], gf[ks], ca[ks], ga[ks]
        m = max(abs(a), abs(b))
        rel, absolute, gap = self.rel, self.absolute, _SCREEN_GAP
        cand = []
        hmax = emax = None
        inf = math.inf
        for j in range(len(cf)):
            g = gf[j] - g0
            h = (cf[j] - c0) + (g * b if g > 0 else g * a)
            e = ((ca[j] + ca0) + (ga[j] + ga0) * m) * rel + absolute
            t = h + e
            if t < gap and -inf < h and e < inf and j != ks:
                if hmax is None:
                    hmax, emax = h, e
                else:
                    hmax = h if h > hmax else hmax
                    emax = e if e > emax else emax
            else:
                cand.append(j)
        n_tail = len(cf) - len(cand)
        if not n_tail:
            return cand, 0, None
        return cand, n_tail, (arb(hmax) + arb(emax)).upper()

    def ends(self, qbox, ks=None, lo_too=True):
        """(hi, lo, err): float arrays with |exact hi_j - hi[j]| <= err[j], likewise lo (None
        unless ``lo_too``), for the functions (ks None) or their differences to key ks (the caller
        checks that what it reads is finite); None when a box end does not convert."""
        np = self.np
        try:
            a = [_float(lo) for lo, _ in qbox]
            b = [_float(hi) for _, hi in qbox]
        except (OverflowError, ZeroDivisionError):
            return None
        cf, gf, ca, ga = self.cf, self.gf, self.cabs, self.gabs
        if ks is not None:
            cf, gf, ca, ga = cf - cf[ks], gf - gf[ks], ca + ca[ks], ga + ga[ks]
        if self.D == 1:
            a0, b0 = a[0], b[0]
            g = gf[:, 0]
            gp, gn = np.maximum(g, 0.0), np.minimum(g, 0.0)
            hi = cf + gp * b0 + gn * a0
            lo = cf + gp * a0 + gn * b0 if lo_too else None
            err = (ca + ga[:, 0] * max(abs(a0), abs(b0))) * self.rel + self.absolute
            return hi, lo, err
        D = self.D
        X = np.array([b + a, a + b], dtype=float).T          # (2D, 2): columns hi, lo
        m = np.maximum(np.abs(X[:D, 0]), np.abs(X[:D, 1]))
        R = np.hstack([np.maximum(gf, 0.0), np.minimum(gf, 0.0)]) @ X
        err = (ca + ga @ m) * self.rel + self.absolute
        return cf + R[:, 0], cf + R[:, 1], err


PER_HINT_CACHE = 256


def _lru_get(cache, key):
    v = cache.get(key)
    if v is not None:
        cache.move_to_end(key)
    return v


def _lru_put(cache, key, value):
    cache[key] = value
    if len(cache) > PER_HINT_CACHE:
        cache.popitem(last=False)


class PreparedHeads:
    """Per-certificate data of a one-layer network for ``box_bound``: per head, the exact logit
    differences c_j - c_k*, G_j - G_k* per hint k* (made once per k*), whether the values are
    constant in x (all F_j zero), and then the knapsack's greedy orders of the value bounds and
    their exact-ended extremes (made once per working precision), the float screens of the logit
    gaps and values, and the exact-ended arb enclosures and sorted orders of the slopes that the
    centred bound reads.  Nothing here changes a bound: it only saves recomputing the same exact
    numbers for every box."""

    def __init__(self, heads_all):
        self.heads_all = heads_all
        self.flat = [h for per in heads_all for h in per]
        self.const = [all(fi == 0 for Fj in F for fi in Fj) for (_, _, _, F) in self.flat]
        self._gaps = {}
        self._vals = {}
        self._screens = {}
        self._last_screen = {}
        # per (head, hint) tables of n keys each: the most recently used PER_HINT_CACHE of them
        # (n^2 of them would not fit in memory for thousands of keys; boxes in tree order reuse
        # a few hints at a time)
        self._gapballs = OrderedDict()
        self._slopes = OrderedDict()

    def gaps(self, hn, ks):
        key = (hn, ks)
        g = self._gaps.get(key)
        if g is None:
            c, G, _, _ = self.flat[hn]
            D = len(G[ks])
            g = ([c[j] - c[ks] for j in range(len(c))],
                 [[G[j][i] - G[ks][i] for i in range(D)] for j in range(len(c))])
            self._gaps[key] = g
        return g

    def const_values(self, hn):
        """For a head with constant values, at the current precision: (vl, vh, order of vh, order
        of -vl, min vl, max vh) with vl_j, vh_j the exact-ended arb enclosures of e_j."""
        key = (hn, ctx.prec)
        cv = self._vals.get(key)
        if cv is None:
            e = self.flat[hn][2]
            vl = [arb(x).lower() for x in e]
            vh = [arb(x).upper() for x in e]
            o_hi = sorted(range(len(e)), key=lambda j: -float(vh[j].mid()))
            o_lo = sorted(range(len(e)), key=lambda j: -float((-vl[j]).mid()))
            vmin, vmax = vl[0], vh[0]
            for x in vl[1:]:
                vmin = arb.min(vmin, x).lower()
            for x in vh[1:]:
                vmax = arb.max(vmax, x).upper()
            cv = (vl, vh, o_hi, o_lo, vmin, vmax)
            self._vals[key] = cv
        return cv

    def gap_balls(self, hn, ks):
        """At the current precision: (dcA, gA, pos) with dcA[j] an arb ball of c_j - c_k*, and
        per key j the nonzero slopes G_ji - G_k*i as (i, arb ball, exact sign > 0) triples."""
        key = (hn, ks, ctx.prec)
        g = _lru_get(self._gapballs, key)
        if g is None:
            dc, dG = self.gaps(hn, ks)
            g = ([arb(x) for x in dc],
                 [[(i, arb(x), x > 0) for i, x in enumerate(row) if x != 0] for row in dG])
            _lru_put(self._gapballs, key, g)
        return g

    def value_balls(self, hn):
        """Arb balls of the constant values e_j of head ``hn`` (at the current precision)."""
        key = ("balls", hn, ctx.prec)
        b = self._vals.get(key)
        if b is None:
            b = [arb(x) for x in self.flat[hn][2]]
            self._vals[key] = b
        return b

    def _screen(self, key, make):
        s = self._screens.get(key)
        if s is None:
            s = make()
            self._screens[key] = s
        return s if s.ok else None

    def screen(self, hn, ks, qbox):
        """None (bound every key exactly), or (cand, n_tail, M): the keys ``cand`` (increasing,
        k* among them) that the float screen could not place in the tail, the number of the others,
        and an arb M >= the exact largest gap end over the box of those others (None when there
        are none); every one of them has exact gap end below TAIL_GAP (``_AffineScreen``).
        The last result per (head, hint) is kept with its box: a box inside it (the centre of a
        centred box after the box itself) gets it again, as each gap end over the smaller box is
        at most the one over the larger (M and the screened keys stay valid)."""
        c = self.flat[hn][0]
        if len(c) < SCREEN_MIN_KEYS:
            return None
        last = self._last_screen.get((hn, ks))
        if last is not None and all(A <= a and b <= B for (a, b), (A, B) in zip(qbox, last[0])):
            return last[1]
        scr = self._screen(("g", hn), lambda: _AffineScreen(c, self.flat[hn][1]))
        if scr is None:
            return None
        if scr.lists is not None:
            res = scr.tail_1d(qbox, ks)
            if res is not None:
                self._last_screen[(hn, ks)] = (qbox, res)
            return res
        ends = scr.ends(qbox, ks, lo_too=False)
        if ends is None:
            return None
        np = scr.np
        hi, _, err = ends
        top = hi + err
        if not np.isfinite(top).all():   # a finite top has finite hi and err
            return None
        out = top < _SCREEN_GAP
        out[ks] = False
        cand = np.flatnonzero(~out).tolist()
        n_tail = len(c) - len(cand)
        if not n_tail:
            res = (cand, 0, None)
        else:
            # every exact end in the tail is <= hi_f + err_f <= max hi_f + max err_f (exact floats)
            res = (cand, n_tail, (arb(float(hi[out].max())) + arb(float(err[out].max()))).upper())
        self._last_screen[(hn, ks)] = (qbox, res)
        return res

    def tail_value_range(self, hn, qbox, tail_mask):
        """(lo, hi) arb: lo <= min, hi >= max over the box of the values of the keys in
        ``tail_mask`` (a NumPy bool array), from the float screen of the values; None when it
        is unusable."""
        _, _, e, F = self.flat[hn]
        scr = self._screen(("v", hn), lambda: _AffineScreen(e, F))
        if scr is None:
            return None
        ends = scr.ends(qbox)
        if ends is None:
            return None
        hi, lo, err = ends
        e_max, lo_min, hi_max = float(err[tail_mask].max()), float(lo[tail_mask].min()), float(hi[tail_mask].max())
        if not (math.isfinite(e_max) and math.isfinite(lo_min) and math.isfinite(hi_max)):
            return None
        return ((arb(lo_min) - arb(e_max)).lower(), (arb(hi_max) + arb(e_max)).upper())

    def slope_table(self, hn, ks):
        """For the centred bound, at the current precision: per input i, (glo, ghi, g_up, g_down,
        flo, fhi, f_up, f_down): the exact-ended arb enclosures of dG_ji = G_ji - G_k*i and of
        F_ji per key j, and the keys sorted by increasing and by decreasing exact dG_ji and F_ji
        (F entries None for a head with constant values)."""
        key = (hn, ks, ctx.prec)
        t = _lru_get(self._slopes, key)
        if t is None:
            _, dG = self.gaps(hn, ks)
            F = self.flat[hn][3]
            n = len(dG)
            D = len(dG[0]) if n else 0
            const = self.const[hn]
            t = []
            for i in range(D):
                col = [dG[j][i] for j in range(n)]
                up = sorted(range(n), key=lambda j: col[j])
                row = [[arb(x).lower() for x in col], [arb(x).upper() for x in col], up, up[::-1]]
                if const:
                    row += [None, None, None, None]
                else:
                    fc = [F[j][i] for j in range(n)]
                    fu = sorted(range(n), key=lambda j: fc[j])
                    row += [[arb(x).lower() for x in fc], [arb(x).upper() for x in fc], fu, fu[::-1]]
                t.append(row)
            _lru_put(self._slopes, key, t)
        return t


def prepare_heads(heads_all) -> PreparedHeads:
    return PreparedHeads(heads_all)


def _head_bound(prep, hn, ks, qbox):
    """Arb enclosure (lo, hi) of one head's output over an exact box: ``head_parts``' first two,
    or ``point_head_bound`` when the box is a point."""
    if all(a == b for a, b in qbox):
        return point_head_bound(prep, hn, ks, qbox)
    parts = head_parts_lu(prep, hn, ks, qbox)
    return parts[0], parts[1]


def _tail_values(prep, hn, e, F, n, keys, screened, exact_tail, qbox):
    """[V_lo, V_hi] over the lumped keys whose values move with x: the screened ones from the float
    screen of the values (every one exactly when that screen is unusable), the others exactly."""
    t_lo = t_hi = None
    if screened:
        import numpy as np
        mask = np.ones(n, dtype=bool)
        mask[keys] = False
        r = prep.tail_value_range(hn, qbox, mask)
        if r is None:
            r = _exact_value_range(e, F, np.flatnonzero(mask).tolist(), qbox)
        t_lo, t_hi = r
    if exact_tail:
        x_lo, x_hi = _exact_value_range(e, F, exact_tail, qbox)
        t_lo = x_lo if t_lo is None else arb.min(t_lo, x_lo).lower()
        t_hi = x_hi if t_hi is None else arb.max(t_hi, x_hi).upper()
    return t_lo, t_hi


def _screened(prep, hn, ks, qbox, n):
    """(the keys to enclose one by one, how many were lumped, their largest gap end) from the float
    screen, or every key and no tail when there is no screen."""
    scr = prep.screen(hn, ks, qbox)
    return (range(n), 0, None) if scr is None else scr


def point_head_bound(prep, hn, ks, qbox):
    """Arb enclosure (lo, hi) of one head's output at an exact point x (a box with lo = hi).

    Every gap g_j = s_j(x) - s_k*(x) is enclosed in an Arb ball (from balls of the exact
    coefficients and of x), each value v_j(x) too; with A the keys kept (as in ``head_parts``:
    those the screen cannot place in the tail and whose ball is not surely below TAIL_GAP;
    k* is in A, its gap the exact 0) and T the others, N = sum_A e^{g_j} v_j, Dn = sum_A e^{g_j} >= e^0 = 1 and
    s = sum_T e^{g_j} in [0, tau] (tau = |T| e^M, M >= max_T g_j, as in ``head_parts``), exactly
        y = (N + s w) / (Dn + s) = N/Dn + (s / (Dn + s)) (w - N/Dn),
    w = (sum_T e^{g_j} v_j) / s in [V_lo, V_hi] (the tail's value range) when s > 0.  As
    s / (Dn + s) lies in [0, tau / Dn], y lies in N/Dn + [0, f] x [V_lo - N/Dn, V_hi - N/Dn] for
    any f >= tau / Dn; N and Dn are Arb balls, so every end below is an enclosure.  Without a
    tail, y = N/Dn.  (The same real number as the knapsack of ``head_parts`` encloses; at a point
    its weight bounds collapse, and this direct form costs a quarter of it.)"""
    c, _, e, F = prep.flat[hn]
    n = len(c)
    const = prep.const[hn]
    x = [a for a, _ in qbox]
    D = len(x)
    keys, n_tail, tail_max = _screened(prep, hn, ks, qbox, n)
    screened = n_tail
    exact_tail = []
    vals = prep.value_balls(hn) if const else None
    num, den = arb(0), arb(0)
    dcA, gA = prep.gap_balls(hn, ks)
    xA = [arb(a) for a in x]
    tail_gap = _TAIL_ARB
    for j in keys:
        g = dcA[j]   # an Arb ball that contains the exact gap at x
        for i, gi, _ in gA[j]:
            g = g + gi * xA[i]
        if g < tail_gap:   # surely below TAIL_GAP
            n_tail += 1
            exact_tail.append(j)
            top = g.upper()
            tail_max = top if tail_max is None or top > tail_max else tail_max
            continue
        w = g.exp()
        if const:
            v = vals[j]
        else:
            vq = e[j]
            for i in range(D):
                vq += F[j][i] * x[i]
            v = arb(vq)
        num += w * v
        den += w
    y = num / den
    if not n_tail:
        return y.lower(), y.upper()
    tau = (arb(n_tail) * tail_max.upper().exp()).upper()
    if const:
        _, _, _, _, t_lo, t_hi = prep.const_values(hn)
    else:
        t_lo, t_hi = _tail_values(prep, hn, e, F, n, keys, screened, exact_tail, qbox)
    f = (tau / den).upper()
    d_lo = (t_lo - y).lower()
    d_hi = (t_hi - y).upper()
    lo = y + f * d_lo if d_lo < 0 else y
    hi = y + f * d_hi if d_hi > 0 else y
    return lo.lower(), hi.upper()


def head_parts(prep, hn, ks, qbox):
    """``head_parts_lu`` without its last entry."""
    return head_parts_lu(prep, hn, ks, qbox)[:7]


def head_parts_lu(prep, hn, ks, qbox):
    """Arb enclosure (lo, hi) of one head's output y = sum_j a_j v_j over an exact box, and what it
    was made from: returns (lo, hi, act, l, u, vl, vh), with act the keys bounded one by one and
    l_j <= a_j <= u_j, vl_j <= v_j <= vh_j their weight and value bounds in act's order (exact
    ends); with a lumped tail (the keys not in act) the lists have one more last entry, the
    tail's total weight m in [0, min(1, tau)] and the range [V_lo, V_hi] of the tail's values.

    Without a tail this is the dense bound: every key's logit gap g_j = s_j - s_k* enclosed over
    the box (its exact ends lo_j = (c_j - c_k*) + sum_i min((G_ji - G_k*i) a_i, (G_ji - G_k*i) b_i)
    and hi_j likewise, each evaluated as an Arb ball from balls of the exact coefficients and box
    ends, the corner chosen by the exact sign of the slope), each value v_j enclosed exactly
    (affine ranges), the softmax weights bounded in the gap form, and the knapsack's dual bound
    over l <= a <= u, sum a = 1.

    Lumped tail.  Let T be keys whose exact gap range over the box ends below TAIL_GAP
    (hi_j < -60; here: those whose ball for hi_j lies surely below it), A the others (k* is in
    A: g_k* = 0; any such split is sound), m = sum_{j in T} a_j and, when m > 0,
    w = (sum_{j in T} a_j v_j) / m, a convex combination of tail values, so w lies in
    [V_lo, V_hi] with V_lo <= min_T v_j, V_hi >= max_T v_j over the box.  Then exactly
        y = sum_{j in A} a_j v_j + m w,   a >= 0, m >= 0,   sum_A a_j + m = 1.
    Since sum_k e^{g_k} >= e^{g_k*} = 1, m <= sum_T e^{g_j} <= |T| e^{M} =: tau for any
    M >= max_T hi_j.  For j in A, a_j = e^{g_j} / (e^{g_j} + R_j) with R_j = sum_{k != j} e^{g_k} in
    [sum_{A - j} e^{lo_k}, sum_{A - j} e^{hi_k} + tau]: softmax_weight_bounds with ``tail=tau``
    encloses a_j.  As m >= 0 and w <= V_hi, y <= sum_A a_j vh_j + m V_hi, and (a_A, m) is feasible
    for the knapsack with one more key of weight in [0, min(1, tau)] and value V_hi; its dual bound
    (valid for any t) is an upper end of y.  The lower end follows with -v.  So the bound encloses
    the exact head output; it differs from the dense one by O(tau) ~ |T| e^-60.

    Screen.  With SCREEN_MIN_KEYS keys or more, ``PreparedHeads.screen`` first places in T the
    keys whose float64 gap end plus its rounding-error bound is below TAIL_GAP - 1/2 (each has
    exact hi_j < -60, so each would join T without the screen too) and gives M >= their exact
    largest hi_j; only the other keys are enclosed here (those proved below TAIL_GAP join T too,
    and M grows to cover them).  For values that depend on x, [V_lo, V_hi] over the
    screened keys comes from the float screen of the values, widened by its error bound.
    """
    c, _, e, F = prep.flat[hn]
    n = len(c)
    const = prep.const[hn]
    keys, n_tail, tail_max = _screened(prep, hn, ks, qbox, n)
    screened = n_tail
    act, exact_tail = [], []
    sl, sh = [], []
    point = all(a == b for a, b in qbox)
    dcA, gA = prep.gap_balls(hn, ks)
    xa = [arb(a) for a, _ in qbox]
    xb = xa if point else [arb(b) for _, b in qbox]
    tail_gap = _TAIL_ARB
    for j in keys:
        # Arb balls that contain the exact ends of the gap's range over the box
        lo_s = hi_s = dcA[j]
        for i, g, pos in gA[j]:
            if pos:
                lo_s, hi_s = lo_s + g * xa[i], hi_s + g * xb[i]
            else:
                lo_s, hi_s = lo_s + g * xb[i], hi_s + g * xa[i]
        if hi_s < tail_gap:   # surely: the exact end is below TAIL_GAP
            n_tail += 1
            exact_tail.append(j)
            top = hi_s.upper()
            tail_max = top if tail_max is None or top > tail_max else tail_max
        else:
            act.append(j)
            sl.append(lo_s)
            if not point:
                sh.append(hi_s)
    if point:   # lo_s == hi_s for every key: one list, so that each exp is taken once
        sh = sl
    if const:
        cvl, cvh, o_hi, o_lo, vmin, vmax = prep.const_values(hn)
    if not n_tail:   # the dense bound
        if const:
            vl, vh = cvl, cvh
        else:
            vl, vh = [], []
            for j in range(n):
                lo_v, hi_v = affine_range(e[j], F[j], qbox)
                # exact end points, so that the knapsack's comparisons with t are decided
                vl.append(arb(lo_v).lower()); vh.append(arb(hi_v).upper())
            o_hi = o_lo = None
        l, u = softmax_weight_bounds(sl, sh)
        lu = knapsack_floats(l, u)
        hi = knapsack_upper(l, u, vh, o_hi, lu)
        lo = knapsack_lower(l, u, vl, o_lo, lu)
        return lo, hi, act, l, u, vl, vh, lu
    tau = (arb(n_tail) * tail_max.upper().exp()).upper()
    if const:
        vl = [cvl[j] for j in act]
        vh = [cvh[j] for j in act]
        t_lo, t_hi = vmin, vmax
    else:
        vl, vh = [], []
        for j in act:
            lo_v, hi_v = affine_range(e[j], F[j], qbox)
            vl.append(arb(lo_v).lower()); vh.append(arb(hi_v).upper())
        t_lo, t_hi = _tail_values(prep, hn, e, F, n, keys, screened, exact_tail, qbox)
    l, u = softmax_weight_bounds(sl, sh, tail=tau)
    l.append(arb(0))
    u.append(arb.min(tau, arb(1)).upper())
    vh = vh + [t_hi]
    vl = vl + [t_lo]
    lu = knapsack_floats(l, u)
    hi = knapsack_upper(l, u, vh, None, lu)
    lo = knapsack_lower(l, u, vl, None, lu)
    return lo, hi, act, l, u, vl, vh, lu


def _exact_value_range(e, F, keys, qbox):
    """(lo, hi) arb with exact ends: the range over the box of the values of ``keys``."""
    t_lo = t_hi = None
    for j in keys:
        lo_v, hi_v = affine_range(e[j], F[j], qbox)
        t_lo = lo_v if t_lo is None or lo_v < t_lo else t_lo
        t_hi = hi_v if t_hi is None or hi_v > t_hi else t_hi
    return arb(t_lo).lower(), arb(t_hi).upper()


def box_bound(box, heads_all, targets, hints, prep=None):
    """Arb upper bound of sup |N - f| over one exact box of a one-layer network, given the k* hints.
    ``prep`` is ``prepare_heads(heads_all)``, made once per certificate (made here when absent)."""
    if prep is None or prep.heads_all is not heads_all:
        prep = PreparedHeads(heads_all)
    qbox = [(_q(lo), _q(hi)) for lo, hi in box]
    env = box_env(qbox)
    worst = arb(0)
    hn = 0
    for per, target in zip(heads_all, targets):
        n_lo, n_hi = arb(0), arb(0)
        for (c, G, e, F) in per:
            ks = hints[hn]
            if not 0 <= ks < len(c):
                raise Invalid("hint names an anchor that does not exist")
            lo, hi = _head_bound(prep, hn, ks, qbox)
            hn += 1
            n_lo, n_hi = n_lo + lo, n_hi + hi
        err = target_error(n_lo, n_hi, target, env)
        if err is None:
            raise Invalid("a box bound is not finite")
        worst = arb.max(worst, err).upper()
    return worst


def smt_num(r: Fraction) -> str:
    a = abs(r)
    body = f"{a.numerator}.0" if a.denominator == 1 else f"(/ {a.numerator}.0 {a.denominator}.0)"
    return f"(- {body})" if r < 0 else body


def smt_term(c: Fraction, g) -> str:
    parts = [smt_num(c)] + [f"(* {smt_num(gi)} x{i})" for i, gi in enumerate(g) if gi != 0]
    return parts[0] if len(parts) == 1 else "(+ " + " ".join(parts) + ")"


def z3_answer(text: str, n_vars: int, timeout_ms: int):
    """z3's answer ("unsat", "sat", "unknown") and, when sat, the model's point as strings."""
    import z3
    s = z3.Solver()
    s.set("timeout", int(timeout_ms))
    s.add(z3.parse_smt2_string(text))
    r = s.check()
    if r == z3.sat:
        m = s.model()
        return "sat", [str(m.eval(z3.Real(f"x{i}"), model_completion=True)) for i in range(n_vars)]
    return ("unsat" if r == z3.unsat else "unknown"), None


def cvc5_answer(text: str, timeout_ms: int) -> str:
    """cvc5's answer to the same SMT-LIB text (only canonical text ever reaches it)."""
    import cvc5
    tm = cvc5.TermManager()
    s = cvc5.Solver(tm)
    s.setOption("tlimit-per", str(int(timeout_ms)))
    sm = cvc5.SymbolManager(tm)
    p = cvc5.InputParser(s, sm)
    p.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, text, "lemma")
    answer = "unknown"
    while True:
        cmd = p.nextCommand()
        if cmd.isNull():
            return answer
        out = cmd.invoke(s, sm).strip()
        if out in ("sat", "unsat", "unknown"):
            answer = out


# --- shared by the centred bounds of one-layer and layered networks (check/centred.py, check/layered.py)

def _hull(ps):
    """Exact ends of the hull of Arb balls."""
    lo, hi = ps[0].lower(), ps[0].upper()
    for p in ps[1:]:
        pl, ph = p.lower(), p.upper()
        lo = pl if pl < lo else lo
        hi = ph if ph > hi else hi
    return lo, hi


def interval_product(a_lo, a_hi, b_lo, b_hi):
    """Exact ends of an enclosure of [a_lo, a_hi] x [b_lo, b_hi] (NaN when any end is not finite).
    The ends are exact (arb points), so their signs are decided and the corners that give the
    exact extremes are known (the usual nine cases): each returned end is the lower (upper) end of
    the Arb product at that corner, so the exact extreme lies in the returned range."""
    if not (a_lo.is_finite() and a_hi.is_finite() and b_lo.is_finite() and b_hi.is_finite()):
        n = arb.nan()
        return n, n
    if not (a_lo.is_exact() and a_hi.is_exact() and b_lo.is_exact() and b_hi.is_exact()
            and a_lo <= a_hi and b_lo <= b_hi):   # else the hull of the four corners
        ps = (a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi)
        return _hull(ps)
    return corner_product(a_lo, a_hi, b_lo, b_hi)


def corner_product(a_lo, a_hi, b_lo, b_hi):
    """``interval_product`` for finite, exact ends with a_lo <= a_hi and b_lo <= b_hi (the caller's
    guarantee: every end is an arb's .lower() or .upper() of ordered finite balls)."""
    if b_lo >= 0:
        if a_lo >= 0:
            return (a_lo * b_lo).lower(), (a_hi * b_hi).upper()
        if a_hi <= 0:
            return (a_lo * b_hi).lower(), (a_hi * b_lo).upper()
        return (a_lo * b_hi).lower(), (a_hi * b_hi).upper()
    if b_hi <= 0:
        if a_lo >= 0:
            return (a_hi * b_lo).lower(), (a_lo * b_hi).upper()
        if a_hi <= 0:
            return (a_hi * b_hi).lower(), (a_lo * b_lo).upper()
        return (a_hi * b_lo).lower(), (a_lo * b_lo).upper()
    if a_lo >= 0:
        return (a_hi * b_lo).lower(), (a_hi * b_hi).upper()
    if a_hi <= 0:
        return (a_lo * b_hi).lower(), (a_lo * b_lo).upper()
    lo = arb.min((a_lo * b_hi).lower(), (a_hi * b_lo).lower())
    hi = arb.max((a_lo * b_lo).upper(), (a_hi * b_hi).upper())
    return lo, hi


def slope_bound(lo, hi):
    """sup |v| over the enclosure [lo, hi] of a derivative (arb ends): an arb upper end, +inf when
    an end is not finite (then no slope is proved)."""
    m = arb.max(abs(lo), abs(hi)).upper() if lo.is_finite() and hi.is_finite() else _INF
    return m if m.is_finite() else _INF


def centred_total(e_c, slopes, qbox):
    """C = E_c + sum_i slope_i r_i over the exact box (r_i its exact half-widths), rounded up."""
    total = e_c
    for s, (lo, hi) in zip(slopes, qbox):
        total = (total + s * arb((hi - lo) / 2)).upper()
    return total


def parse_slopes(raw, D):
    """A box's stored slopes as exact rationals (D of them, fmpq or rat strings), or Invalid."""
    if len(raw) != D:
        raise Invalid(f"{len(raw)} slopes for a {D}-D box")
    return [s if isinstance(s, fmpq) else rat(s, f"slope of input {i}") for i, s in enumerate(raw)]


def require_finite(slopes):
    """BoxError when a re-derived slope is not finite (then no centred bound holds)."""
    for i, s in enumerate(slopes):
        if not s.is_finite():
            raise BoxError(f"input {i}: the checker's slope is not finite, so no centred bound holds")


def confirm_slopes(stored, slopes, qbox, total):
    """Invalid when a stored slope undercuts the checker's by more than can move the box's centred
    bound ``total`` (gap * half-width within REL_SLACK of it): slopes of 1e-300 against the
    checker's 1e-31 (its lumped tail of keys with weight < e^-60) state nothing wrong about C."""
    if not total.is_finite():
        raise BoxError("the centred bound is not finite")
    for i, (st, s, (lo, hi)) in enumerate(zip(stored, slopes, qbox)):
        if undercuts(st, s) and (s - arb(st)) * arb((hi - lo) / 2) > total * arb(REL_SLACK):
            raise Invalid(f"input {i}: stored slope {float(st):.6g} is below the re-derived slope "
                          f"{float(s.mid()):.6g}")
