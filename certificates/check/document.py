"""The independent checker: re-derives every box bound of a certificate in Arb balls.

It shares no code with ``verify`` (the search): it parses the exact weights itself,
forms the affine logits and values itself, rebuilds the paving from the bisection
tree in exact rationals (so the boxes tile the domain by construction), and bounds
each box with python-flint's Arb.  A bug in the searcher cannot vouch for itself.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources

from flint import arb, ctx, fmpq

from .arbexpr import ArbExprError, arb_compile, arb_interval
from .check_common import affine_range as _affine_range, knapsack_upper as _knapsack_upper
from .check_grid import GridCheck, GridClaimError

PREC = 128
_RAT = re.compile(r"-?[0-9]+(/[0-9]+)?\Z")
_HEX = re.compile(r"[0-9a-f]{64}\Z")
MAX_TREE_DEPTH = 400


class Invalid(Exception):
    """The certificate does not hold or is not what it claims (exit code 1)."""


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


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _sha(obj) -> str:
    return hashlib.sha256(_canonical(obj)).hexdigest()


def _rat(s, where) -> fmpq:
    if type(s) is not str or len(s) > 5000 or not _RAT.match(s):
        raise Invalid(f"{where}: not an exact rational string")
    p, _, qq = s.partition("/")
    qv = int(qq) if qq else 1
    if qv == 0:
        raise Invalid(f"{where}: zero denominator")
    return fmpq(int(p), qv)


def _fr(x: fmpq) -> Fraction:
    return Fraction(int(x.p), int(x.q))


def _mat(m, where):
    if type(m) is not list or not m or any(type(r) is not list for r in m):
        raise Invalid(f"{where}: not a matrix")
    width = len(m[0])
    if width == 0 or any(len(r) != width for r in m):
        raise Invalid(f"{where}: ragged or empty matrix")
    return [[_rat(v, where) for v in r] for r in m]


def _validate_schema(doc):
    try:
        import jsonschema
    except ImportError:  # core install has it; keep the structural checks below regardless
        return
    schema = json.loads(resources.files("certificates").joinpath("schema/certificate.schema.json").read_text())
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise Invalid(f"schema violation at {where}: {err.message[:200]}")


def _leaves(tree: str, domain, D: int):
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


def _affine_heads(net, D):
    """Per readout, per head: exact (c, G, e, F) lists with logits/values affine in x."""
    emb = net["embedding"]
    const = _mat(emb["const"], "embedding.const")
    lins = [_mat(E, f"embedding.linear.{i}") for i, E in enumerate(emb["linear"])]
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
        wq, wk = _mat(h["wq"], "wq"), _mat(h["wk"], "wk")
        wv, wo = _mat(h["wv"], "wv"), _mat(h["wo"], "wo")
        if len(wq) != d or len(wk) != d or len(wv) != d or len(wq[0]) != len(wk[0]) or len(wo) != len(wv[0]):
            raise Invalid(f"head {hn}: weight shapes do not chain")
        bias = None if h["bias"] is None else _mat(h["bias"], "bias")
        if bias is not None and (len(bias) != len(qrows) or len(bias[0]) != len(krows)):
            raise Invalid(f"head {hn}: bias shape")
        heads.append((wq, wk, wv, wo, _rat(h["beta"], "beta"), bias))
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


def _box_bound(box, heads_all, targets, hints):
    """Arb upper bound of sup |N - f| over one exact box, given the k* hints."""
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
                lo_s, hi_s = _affine_range(c[j] - c[ks], [G[j][i] - G[ks][i] for i in range(len(X))], qbox)
                lo_v, hi_v = _affine_range(e[j], F[j], qbox)
                sl.append(arb(lo_s)); sh.append(arb(hi_s))
                # exact end points, so that the knapsack's comparisons with t are decided
                vl.append(arb(lo_v).lower()); vh.append(arb(hi_v).upper())
            l, u = softmax_weight_bounds(sl, sh)
            hi = _knapsack_upper(l, u, vh)
            lo = -_knapsack_upper(l, u, [-x for x in vl])
            n_lo, n_hi = n_lo + lo, n_hi + hi
        f = target(env)
        err = arb.max((n_hi - f.lower()).upper(), (f.upper() - n_lo).upper()).upper()
        if not (err.is_finite() and f.is_finite()):
            raise Invalid("a box bound is not finite")
        worst = arb.max(worst, err).upper()
    return worst


def _is_layered(net) -> bool:
    """Anything beyond one plain layer goes to the layered checker (check_layered)."""
    return (len(net["layers"]) != 1 or any("post" in layer for layer in net["layers"])
            or "final_softmax" in net or "readout_linear" in net)


def _layered_box_bound(model, targets, target_json):
    """A box-bound function for layered networks with the same contract as _box_bound.

    N - f = (lin_N - lin_f).x + N' - f': the exact linear part shared by network and
    target cancels instead of entering the bound twice.
    """
    from .check_layered import split_linear_json
    D = len(model.lins)
    split = []
    for t in target_json:
        try:
            coef, rest = split_linear_json(t)
            rest_f = None if rest is None else arb_compile(rest)
        except ArbExprError as e:
            raise Invalid(f"target: {e}") from None
        if any(v not in {f"x{i}" for i in range(D)} for v in coef):
            raise Invalid("target uses a variable outside the inputs")
        split.append(([coef.get(f"x{i}", fmpq(0)) for i in range(D)], rest_f))

    def bound(box, _heads, _targets, hints):
        qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
        env = {f"x{i}": arb_interval(a, b) for i, (a, b) in enumerate(qbox)}
        worst = arb(0)
        for n, lin, (tcoef, f) in zip(model.split_outputs(qbox, hints), model.lin, split):
            lo, hi = fmpq(0), fmpq(0)
            for a, (xl, xh) in zip([p - q for p, q in zip(lin, tcoef)], qbox):
                lo, hi = lo + min(a * xl, a * xh), hi + max(a * xl, a * xh)
            n = n + arb_interval(lo, hi)
            fv = arb(0) if f is None else f(env)
            err = arb.max((n.upper() - fv.lower()).upper(), (fv.upper() - n.lower()).upper()).upper()
            if not (err.is_finite() and fv.is_finite() and n.is_finite()):
                raise Invalid("a box bound is not finite")
            worst = arb.max(worst, err).upper()
        return worst
    return bound


def _grid_box_bound(grid, box, targets, hints):
    X = [arb_interval(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator))
         for lo, hi in box]
    qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
    return grid.box_bound(qbox, X, targets, hints)


def _lp_norm(doc):
    """None for an L-inf certificate; the exponent p (fmpq >= 1) for an L_p one."""
    norm = doc["norm"]
    if norm.get("kind") == "Linf":
        if set(norm) != {"kind"}:
            raise Invalid("an Linf norm takes no parameters")
        return None
    if norm.get("kind") != "Lp" or set(norm) != {"kind", "p"}:
        raise Invalid("norm must be Linf or Lp with p")
    p = _rat(norm["p"], "norm.p")
    if not p >= 1:
        raise Invalid("norm.p must be >= 1")
    return p


def _check_lp(doc, p, terms, eps):
    """(sum_box vol * bound^p) <= norm_bound^p < eps^p, in Arb (exact fmpq when p is an integer)."""
    nb = _rat(doc["result"].get("norm_bound"), "norm_bound")
    if not nb < eps:
        raise Invalid("the L_p norm bound is not below eps")
    integer = p.q == 1
    total = fmpq(0) if integer else arb(0)
    for box, b in terms:
        vol = fmpq(1)
        for lo, hi in box:
            vol *= fmpq((hi - lo).numerator, (hi - lo).denominator)
        if b < 0:
            raise Invalid("a stored box bound is negative")
        total += vol * (b ** int(p.p) if integer else arb(b) ** arb(p))
    lhs = nb ** int(p.p) if integer else arb(nb) ** arb(p)
    if not (total <= lhs if integer else total < lhs):
        raise Invalid("sum of vol * bound^p exceeds norm_bound^p")


def check_doc(doc, path="<certificate>", **opts) -> CheckReport:
    """Check a parsed certificate; raises Invalid with the first reason it fails.

    ``opts`` (cross_check, timeout_ms) go to the piecewise branch (certificates.check_analytic).
    """
    _validate_schema(doc)
    if doc.get("sha256") != _sha({k: v for k, v in doc.items() if k != "sha256"}):
        raise Invalid("sha256 does not match the certificate's contents")
    cons = doc["construction"]
    net = cons["network"]
    if _sha(net) != cons["weights_sha256"]:
        raise Invalid("weights_sha256 does not match the weights")
    domain = [(_fr(_rat(a, "domain")), _fr(_rat(b, "domain"))) for a, b in doc["domain"]]
    if any(not a < b for a, b in domain):
        raise Invalid("domain is empty or inverted")
    D = len(domain)
    if doc["inputs"] != [f"x{i}" for i in range(D)]:
        raise Invalid("inputs must be x0..x{D-1}")
    eps = _rat(doc["eps"], "eps")
    if not eps > 0:
        raise Invalid("eps must be positive")
    box_bound = _box_bound
    if _is_layered(net):
        from .check_layered import LayeredNet
        model = LayeredNet(net, D, _mat, _rat, Invalid)
        heads_all = [()] * model.n_outputs
    else:
        heads_all = _affine_heads(net, D)
    if len(doc["target"]) != len(heads_all):
        raise Invalid("one target expression per network output is required")
    try:
        targets = [arb_compile(t) for t in doc["target"]]
    except ArbExprError as e:
        raise Invalid(f"target: {e}") from None
    ev = doc["evidence"]
    if ev["method"] != "paving":  # "analytic" / "mixed": pieces with z3 gap lemmas
        if doc["norm"].get("kind") != "Linf":
            raise Invalid("an L_p norm is certified with paving evidence only")
        from .check_analytic import check_piecewise_doc
        return check_piecewise_doc(doc, path, domain, heads_all, targets, _rat(doc["eps"], "eps"), **opts)
    boxes = _leaves(ev["tree"], domain, D)
    if len(ev["bounds"]) != len(boxes) or len(ev["hints"]) != len(boxes):
        raise Invalid(f"evidence lists {len(ev['bounds'])} bounds for {len(boxes)} boxes")
    n_heads = sum(len(p) for p in heads_all)
    if _is_layered(net):
        box_bound = _layered_box_bound(model, targets, doc["target"])
    grid = None
    if ev.get("bounder", "affine") == "grid":
        try:
            grid = GridCheck(heads_all, ev.get("grid"), D)
        except GridClaimError as e:
            raise Invalid(f"grid evidence: {e}") from None
        n_heads = grid.n_hints
    elif ev.get("bounder", "affine") != "affine":
        raise Invalid(f"unknown evidence bounder {ev.get('bounder')!r}")
    lp = _lp_norm(doc)
    max_bound = _rat(doc["result"]["max_bound"], "max_bound")
    if lp is None and not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")
    stored_max = fmpq(0)
    checked_max = arb(0)
    lp_terms = []
    old = ctx.prec
    ctx.prec = PREC
    try:
        for n, (box, b, h) in enumerate(zip(boxes, ev["bounds"], ev["hints"])):
            stored = _rat(b, f"bounds[{n}]")
            if len(h) != n_heads and not _is_layered(net):
                raise Invalid(f"box {n}: wrong number of hints")
            if grid is None:
                proved = box_bound(box, heads_all, targets, h)
            else:
                try:
                    proved = _grid_box_bound(grid, box, targets, h)
                except GridClaimError as e:
                    raise Invalid(f"box {n}: {e}") from None
            if lp is not None:  # the sum uses stored + slack, which dominates the re-derived bound
                lp_terms.append((box, stored + eps * fmpq(1, 2 ** 20)))
            elif not proved < arb(eps):
                raise Invalid(f"box {n} {[(str(a), str(c)) for a, c in box]}: re-derived bound "
                              f"{float(proved.mid()):.6g} is not below eps")
            # The stored bound is a claim too: it must not undercut what can be proved.
            # Arb's ball radii carry 30 bits, so allow a slack far below anything that matters.
            if arb(stored) < proved - arb(eps) * arb(2) ** -20:
                raise Invalid(f"box {n}: stored bound {float(stored):.6g} is below the re-derived "
                              f"bound {float(proved.mid()):.6g}")
            stored_max = max(stored_max, stored)
            checked_max = arb.max(checked_max, proved).upper()
        if stored_max != max_bound:
            raise Invalid("max_bound is not the largest box bound")
        if lp is not None:
            _check_lp(doc, lp, lp_terms, eps)
        witness = [_rat(v, "witness") for v in doc["result"]["witness"]]
        if len(witness) != D or any(not (fmpq(a.numerator, a.denominator) <= w <= fmpq(b.numerator, b.denominator))
                                    for w, (a, b) in zip(witness, domain)):
            raise Invalid("witness lies outside the domain")
        details = {}
        if "chain" in doc["result"]:
            if not _is_layered(net):
                raise Invalid("chain terms are checked for layered networks only")
            from .check_layered import check_chain
            details["chain"] = check_chain(doc["result"]["chain"], boxes, ev["hints"], model, targets, eps,
                                           Invalid, _rat)
    finally:
        ctx.prec = old
    return CheckReport(path=path, ok=True, message="certificate holds", name=cons["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"],
                       checked_max_bound=float(checked_max.mid()), boxes=len(boxes),
                       observed_error=doc["result"]["observed_error"], details=details)
