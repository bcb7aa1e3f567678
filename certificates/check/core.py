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
        if gi > 0:
            lo, hi = lo + gi * a, hi + gi * b
        elif gi < 0:
            lo, hi = lo + gi * b, hi + gi * a
    return lo, hi


def knapsack_upper(l, u, v, order=None):
    """Upper end of max sum a_j v_j over l <= a <= u, sum a = 1, by weak LP duality:
    t + sum_j [u_j (v_j - t)^+ - l_j (t - v_j)^+] bounds it for any t; t comes from the greedy.
    ``order`` (optional) is the greedy's order, the indices by decreasing float(v_j.mid()) as the
    stable sort gives them; it only picks t, so any order keeps the bound sound."""
    if order is None:
        order = sorted(range(len(v)), key=lambda j: -float(v[j].mid()))
    mass = 1.0 - sum(float(x.mid()) for x in l)
    t = v[order[-1]]
    for j in order:
        mass -= float(u[j].mid()) - float(l[j].mid())
        if mass <= 0:
            t = v[j]
            break
    t = arb(t.mid())  # an exact point: the dual bound holds for any t
    total = t
    for j in range(len(v)):
        total += u[j] * arb.max(v[j] - t, arb(0)) - l[j] * arb.max(t - v[j], arb(0))
    return total.upper()


def softmax_weight_bounds(sl, sh, tail=None):
    """Lower and upper ends [l_j, u_j] of the softmax weights from logit enclosures [sl_j, sh_j],
    in the gap form a_j = 1/(1 + sum_{k != j} e^{s_k - s_j}); shared by every checker path.
    ``tail`` (an arb >= 0, optional) bounds sum_k e^{s_k} over further keys that are not listed:
    it is added to the upper end of the sum only (their lower end 0 is implied)."""
    el = [x.exp() for x in sl]
    eh = [x.exp() for x in sh]
    S_lo, S_hi = sum(el, arb(0)), sum(eh, arb(0))
    if tail is not None:
        S_hi = S_hi + tail
    l, u = [], []
    for j in range(len(sl)):
        t_hi = (S_hi - eh[j]).upper()
        t_lo = (S_lo - el[j]).lower()
        t_lo = t_lo if t_lo > 0 else arb(0)
        lj = (1 / (1 + t_hi / el[j])).lower()
        uj = (1 / (1 + t_lo / eh[j])).upper()
        l.append(lj if lj > 0 else arb(0))
        u.append(uj if uj < 1 else arb(1))
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


class PreparedHeads:
    """Per-certificate data of a one-layer network for ``box_bound``: per head, the exact logit
    differences c_j - c_k*, G_j - G_k* per hint k* (made once per k*), whether the values are
    constant in x (all F_j zero), and then the knapsack's greedy orders of the value bounds and
    their exact-ended extremes (made once per working precision).  Nothing here changes a bound:
    it only saves recomputing the same exact numbers for every box."""

    def __init__(self, heads_all):
        self.heads_all = heads_all
        self.flat = [h for per in heads_all for h in per]
        self.const = [all(fi == 0 for Fj in F for fi in Fj) for (_, _, _, F) in self.flat]
        self._gaps = {}
        self._vals = {}

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


def prepare_heads(heads_all) -> PreparedHeads:
    return PreparedHeads(heads_all)


def _head_bound(prep, hn, ks, qbox):
    """Arb enclosure (lo, hi) of one head's output over an exact box: ``head_parts``' first two."""
    parts = head_parts(prep, hn, ks, qbox)
    return parts[0], parts[1]


def head_parts(prep, hn, ks, qbox):
    """Arb enclosure (lo, hi) of one head's output y = sum_j a_j v_j over an exact box, and what it
    was made from: returns (lo, hi, act, l, u, vl, vh), with act the keys bounded one by one and
    l_j <= a_j <= u_j, vl_j <= v_j <= vh_j their weight and value bounds in act's order (exact
    ends); with a lumped tail (the keys not in act) the lists have one more last entry, the
    tail's total weight m in [0, min(1, tau)] and the range [V_lo, V_hi] of the tail's values.

    Without a tail this is the dense bound: every key's logit gap g_j = s_j - s_k* and value v_j
    enclosed exactly (affine ranges), the softmax weights bounded in the gap form, and the
    knapsack's dual bound over l <= a <= u, sum a = 1.

    Lumped tail.  Let T be the keys whose exact gap range over the box ends below TAIL_GAP
    (hi_j < -60), A the others (k* is in A: g_k* = 0), m = sum_{j in T} a_j and, when m > 0,
    w = (sum_{j in T} a_j v_j) / m, a convex combination of tail values, so w lies in
    [V_lo, V_hi] with V_lo <= min_T v_j, V_hi >= max_T v_j over the box.  Then exactly
        y = sum_{j in A} a_j v_j + m w,   a >= 0, m >= 0,   sum_A a_j + m = 1.
    Since sum_k e^{g_k} >= e^{g_k*} = 1, m <= sum_T e^{g_j} <= |T| e^{max_T hi_j} =: tau.
    For j in A, a_j = e^{g_j} / (e^{g_j} + R_j) with R_j = sum_{k != j} e^{g_k} in
    [sum_{A - j} e^{lo_k}, sum_{A - j} e^{hi_k} + tau]: softmax_weight_bounds with ``tail=tau``
    encloses a_j.  As m >= 0 and w <= V_hi, y <= sum_A a_j vh_j + m V_hi, and (a_A, m) is feasible
    for the knapsack with one more key of weight in [0, min(1, tau)] and value V_hi; its dual bound
    (valid for any t) is an upper end of y.  The lower end follows with -v.  So the bound encloses
    the exact head output; it differs from the dense one by O(tau) ~ |T| e^-60.
    """
    c, G, e, F = prep.flat[hn]
    n = len(c)
    dc, dG = prep.gaps(hn, ks)
    const = prep.const[hn]
    act, tail_max, n_tail = [], None, 0
    srange = []
    for j in range(n):
        lo_s, hi_s = affine_range(dc[j], dG[j], qbox)
        if hi_s < TAIL_GAP:
            n_tail += 1
            if tail_max is None or hi_s > tail_max:
                tail_max = hi_s
        else:
            act.append(j)
            srange.append((lo_s, hi_s))
    sl = [arb(a) for a, _ in srange]
    sh = [arb(b) for _, b in srange]
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
        hi = knapsack_upper(l, u, vh, o_hi)
        lo = -knapsack_upper(l, u, [-x for x in vl], o_lo)
        return lo, hi, act, l, u, vl, vh
    tau = (arb(n_tail) * arb(tail_max).exp()).upper()
    if const:
        vl = [cvl[j] for j in act]
        vh = [cvh[j] for j in act]
        t_lo, t_hi = vmin, vmax
    else:
        vl, vh = [], []
        for j in act:
            lo_v, hi_v = affine_range(e[j], F[j], qbox)
            vl.append(arb(lo_v).lower()); vh.append(arb(hi_v).upper())
        act_set = set(act)
        t_lo = t_hi = None
        for j in range(n):
            if j in act_set:
                continue
            lo_v, hi_v = affine_range(e[j], F[j], qbox)
            t_lo = lo_v if t_lo is None or lo_v < t_lo else t_lo
            t_hi = hi_v if t_hi is None or hi_v > t_hi else t_hi
        t_lo, t_hi = arb(t_lo).lower(), arb(t_hi).upper()
    l, u = softmax_weight_bounds(sl, sh, tail=tau)
    l.append(arb(0))
    u.append(arb.min(tau, arb(1)).upper())
    vh = vh + [t_hi]
    vl = vl + [t_lo]
    hi = knapsack_upper(l, u, vh)
    lo = -knapsack_upper(l, u, [-x for x in vl])
    return lo, hi, act, l, u, vl, vh


def box_bound(box, heads_all, targets, hints, prep=None):
    """Arb upper bound of sup |N - f| over one exact box of a one-layer network, given the k* hints.
    ``prep`` is ``prepare_heads(heads_all)``, made once per certificate (made here when absent)."""
    if prep is None or prep.heads_all is not heads_all:
        prep = PreparedHeads(heads_all)
    qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
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
