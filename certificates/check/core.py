"""The checker's core: its error and report types, exact rationals, boxes and trees, the Arb
pieces every evidence kind shares (affine ranges, softmax weights, the knapsack bound, the
one-layer box bound) and the SMT re-runs.  Nothing here is shared with the search in verify/.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction

from flint import arb, fmpq

from .arbexpr import arb_interval

PREC = 128
MAX_TREE_DEPTH = 400
LEMMA_TIMEOUT_MS = 10_000
LEMMA_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}\Z")
_RAT = re.compile(r"-?[0-9]+(/[0-9]+)?\Z")


class Invalid(Exception):
    """The certificate does not hold or is not what it claims (exit code 1)."""


class BoxError(Exception):
    """A failure inside one box's bound; the paving loop reports it with the box's index."""


@dataclass
class CheckReport:
    """Outcome of a check: ``ok`` plus what was verified, for text/json output."""
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


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def sha(obj) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def rat(s, where) -> fmpq:
    if type(s) is not str or len(s) > 5000 or not _RAT.match(s):
        raise Invalid(f"{where}: not an exact rational string")
    p, _, qq = s.partition("/")
    qv = int(qq) if qq else 1
    if qv == 0:
        raise Invalid(f"{where}: zero denominator")
    return fmpq(int(p), qv)


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
        d = ord(tok) - 48
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


def check_tiling(cells, domain):
    """Exact: every cell inside the domain, volumes sum to the domain's, interiors disjoint."""
    vol = Fraction(0)
    for cell in cells:
        if any(not (A <= a < b <= B) for (a, b), (A, B) in zip(cell, domain)):
            raise Invalid(f"piece {[(str(a), str(b)) for a, b in cell]} is empty or leaves the domain")
        v = Fraction(1)
        for a, b in cell:
            v *= b - a
        vol += v
    total = Fraction(1)
    for A, B in domain:
        total *= B - A
    order = sorted(range(len(cells)), key=lambda i: cells[i][0][0])
    for pos, i in enumerate(order):
        for j in order[pos + 1:]:
            if cells[j][0][0] >= cells[i][0][1]:
                break
            if all(max(a1, a2) < min(b1, b2) for (a1, b1), (a2, b2) in zip(cells[i], cells[j])):
                raise Invalid("two pieces overlap")
    if vol != total:
        raise Invalid("the pieces do not cover the domain")


def affine_range(c, g, qbox):
    """Exact range (lo, hi) of c + g.x over a rational box (fmpq arithmetic, no rounding)."""
    lo = hi = c
    for gi, (a, b) in zip(g, qbox):
        if gi > 0:
            lo, hi = lo + gi * a, hi + gi * b
        elif gi < 0:
            lo, hi = lo + gi * b, hi + gi * a
    return lo, hi


def knapsack_upper(l, u, v):
    """Upper end of max sum a_j v_j over l <= a <= u, sum a = 1, by weak LP duality:
    t + sum_j [u_j (v_j - t)^+ - l_j (t - v_j)^+] bounds it for any t; t comes from the greedy."""
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


def softmax_weight_bounds(sl, sh):
    """Lower and upper ends [l_j, u_j] of the softmax weights from logit enclosures [sl_j, sh_j],
    in the gap form a_j = 1/(1 + sum_{k != j} e^{s_k - s_j}); shared by every checker path."""
    el = [x.exp() for x in sl]
    eh = [x.exp() for x in sh]
    S_lo, S_hi = sum(el, arb(0)), sum(eh, arb(0))
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


def box_bound(box, heads_all, targets, hints):
    """Arb upper bound of sup |N - f| over one exact box of a one-layer network, given the k* hints."""
    X = [arb_interval(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator))
         for lo, hi in box]
    env = {f"x{i}": x for i, x in enumerate(X)}
    qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
    worst = arb(0)
    hn = 0
    for per, target in zip(heads_all, targets):
        n_lo, n_hi = arb(0), arb(0)
        for (c, G, e, F) in per:
            ks = hints[hn]
            hn += 1
            if not 0 <= ks < len(c):
                raise Invalid("hint names an anchor that does not exist")
            sl, sh, vl, vh = [], [], [], []
            for j in range(len(c)):
                lo_s, hi_s = affine_range(c[j] - c[ks], [G[j][i] - G[ks][i] for i in range(len(X))], qbox)
                lo_v, hi_v = affine_range(e[j], F[j], qbox)
                sl.append(arb(lo_s)); sh.append(arb(hi_s))
                # exact end points, so that the knapsack's comparisons with t are decided
                vl.append(arb(lo_v).lower()); vh.append(arb(hi_v).upper())
            l, u = softmax_weight_bounds(sl, sh)
            hi = knapsack_upper(l, u, vh)
            lo = -knapsack_upper(l, u, [-x for x in vl])
            n_lo, n_hi = n_lo + lo, n_hi + hi
        f = target(env)
        err = arb.max((n_hi - f.lower()).upper(), (f.upper() - n_lo).upper()).upper()
        if not (err.is_finite() and f.is_finite()):
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
