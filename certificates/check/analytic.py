"""The checker's part for piecewise certificates (evidence.method "analytic" or "mixed").

Independent of ``verify``: it rebuilds each gap lemma's SMT-LIB2 text from the exact
weights and the lemma's stated claim with its own printer and requires byte equality (so a
lemma can only say what the certificate uses it for), then has z3 re-answer it (``unsat``
required, per-lemma timeout), optionally cvc5 too.  It re-derives every closed-form piece
bound in Arb from the proved margins, re-bounds the paving pieces, and checks in exact
rationals that the pieces tile the domain.
"""
from __future__ import annotations

import re
from fractions import Fraction
from itertools import combinations

from flint import arb, fmpq

from .arbexpr import arb_interval
from .checker import Invalid, _box_bound, _fr, _leaves, _rat

LEMMA_TIMEOUT_MS = 10_000
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}\Z")
ACTIVE_ORDER_MAX = 4


def _num(r: Fraction) -> str:
    a = abs(r)
    body = f"{a.numerator}.0" if a.denominator == 1 else f"(/ {a.numerator}.0 {a.denominator}.0)"
    return f"(- {body})" if r < 0 else body


def _term(c: Fraction, g) -> str:
    parts = [_num(c)] + [f"(* {_num(gi)} x{i})" for i, gi in enumerate(g) if gi != 0]
    return parts[0] if len(parts) == 1 else "(+ " + " ".join(parts) + ")"


def expected_text(lemma_id, cell, c, G, top, claims) -> str:
    """The canonical SMT-LIB2 negation of "logit[top] - logit[j] >= M_j on the cell"."""
    lines = [f"; attncert gap lemma {lemma_id}", "(set-logic QF_LRA)"]
    lines += [f"(declare-fun x{i} () Real)" for i in range(len(cell))]
    for i, (lo, hi) in enumerate(cell):
        lines += [f"(assert (<= {_num(lo)} x{i}))", f"(assert (<= x{i} {_num(hi)}))"]
    atoms = [f"(< {_term(_fr(c[top] - c[j]), [_fr(a - b) for a, b in zip(G[top], G[j])])} {_num(m)})"
             for j, m in claims]
    lines.append("(assert " + (atoms[0] if len(atoms) == 1 else "(or " + " ".join(atoms) + ")") + ")")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


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


def _cell(raw, where):
    return [(_fr(_rat(a, where)), _fr(_rat(b, where))) for a, b in raw]


def _q(f: Fraction) -> fmpq:
    return fmpq(f.numerator, f.denominator)


def _affine_range(c, g, cell):
    lo = hi = _fr(c)
    for gi, (a, b) in zip(g, cell):
        gi = _fr(gi)
        lo, hi = (lo + gi * a, hi + gi * b) if gi > 0 else (lo + gi * b, hi + gi * a)
    return lo, hi


def _check_lemmas(ev, heads_all, D, timeout_ms, cross_check):
    """Validate every lemma's statement, then re-run it; returns {id: (lemma, cell, margins)}."""
    out = {}
    for n, lm in enumerate(ev["lemmas"]):
        lid = lm["id"]
        if type(lid) is not str or not _ID.match(lid):  # the id is echoed into the SMT-LIB text
            raise Invalid(f"lemma {n}: malformed id")
        if lm["kind"] != "gap" or lm["expect"] != "unsat" or type(lm["smt2"]) is not str:
            raise Invalid(f"lemma {lid}: only gap lemmas expected unsat are understood")
        if lid in out:
            raise Invalid(f"lemma {lid} appears twice")
        cell = _cell(lm["cell"], f"lemma {lid} cell")
        if len(cell) != D or any(not a < b for a, b in cell):
            raise Invalid(f"lemma {lid}: malformed cell")
        o, h, t = lm["output"], lm["head"], lm["top"]
        if o >= len(heads_all) or h >= len(heads_all[o]):
            raise Invalid(f"lemma {lid}: no such output/head")
        c, G, _, _ = heads_all[o][h]
        if t >= len(c):
            raise Invalid(f"lemma {lid}: top key out of range")
        claims = []
        for pair in lm["claims"]:
            if type(pair) is not list or len(pair) != 2:
                raise Invalid(f"lemma {lid}: a claim is not a [key, margin] pair")
            j, m = pair[0], _fr(_rat(pair[1], f"lemma {lid} margin"))
            if type(j) is not int or not 0 <= j < len(c) or j == t:
                raise Invalid(f"lemma {lid}: claim names an invalid key")
            claims.append((j, m))
        if sorted(j for j, _ in claims) != [j for j in range(len(c)) if j != t]:
            raise Invalid(f"lemma {lid}: claims must cover every key but the top exactly once")
        if lm["smt2"] != expected_text(lid, cell, c, G, t, claims):
            raise Invalid(f"lemma {lid}: its SMT-LIB text does not state the claimed gaps for these weights")
        answer, point = z3_answer(lm["smt2"], D, timeout_ms)
        if answer != "unsat":
            at = "" if point is None else " at " + ", ".join(f"x{i} = {v}" for i, v in enumerate(point))
            raise Invalid(f"lemma {lid}: z3 answers {answer}{at} (expected unsat)")
        if cross_check:
            a2 = cvc5_answer(lm["smt2"], timeout_ms)
            if a2 != "unsat":
                raise Invalid(f"lemma {lid}: cvc5 answers {a2} (expected unsat)")
        out[lid] = (lm, cell, dict(claims))
    return out


def _head_enclosure(per_head, entry, lemma, cell):
    """Arb enclosure of one head's output on the cell: convex hull of active values +- leakage."""
    c, G, e, F = per_head
    n = len(c)
    t = entry["top"]
    if t >= n:
        raise Invalid("piece names a top key that does not exist")
    active = entry["active"]
    if len(set(active)) != len(active) or any(type(j) is not int or not 0 <= j < n or j == t for j in active):
        raise Invalid("piece lists an invalid active key")
    margins = lemma[2] if lemma else {}
    if lemma is None and n > 1:
        raise Invalid("an analytic piece with several keys needs a gap lemma")
    vr = [_affine_range(e[j], F[j], cell) for j in range(n)]
    act = set(active)
    trailing = [j for j in range(n) if j != t and j not in act]
    ordered = sorted(j for j in act if margins[j] >= 0)
    verts = [vr[j] for j in sorted(act) if margins[j] < 0]
    if len(ordered) <= ACTIVE_ORDER_MAX:
        for k in range(len(ordered) + 1):
            for S in combinations(ordered, k):
                grp = (t,) + S
                verts.append((sum(vr[j][0] for j in grp) / len(grp), sum(vr[j][1] for j in grp) / len(grp)))
    else:
        verts += [vr[j] for j in [t] + ordered]
    c_lo, c_hi = min(v[0] for v in verts), max(v[1] for v in verts)
    if not trailing:
        return arb(_q(c_lo)), arb(_q(c_hi))
    # N - c = sum_T a_j (v_j - c), a_j <= e^{-M_j} and sum_T a_j <= 1: so |N - c| <= both of
    # sum_T e^{-M_j} s_j and max_T s_j, with s_j = sup |v_j - c| over the cell.
    spreads = [max(vr[j][1] - c_lo, c_hi - vr[j][0], Fraction(0)) for j in trailing]
    leak = arb(0)
    for j, s_j in zip(trailing, spreads):
        leak += (-arb(_q(margins[j]))).exp() * arb(_q(s_j))
    cap = arb(_q(max(spreads)))
    leak = arb.min(leak, cap).upper() if leak.is_finite() else cap
    return arb(_q(c_lo)) - leak, arb(_q(c_hi)) + leak


def _analytic_bound(piece, cell, heads_all, targets, lemmas, used):
    if "mesh" in piece:  # ratio-interval bounds on a fixed sub-mesh (certificates.check_mesh)
        from .check_mesh import mesh_bound
        return mesh_bound(piece, cell, heads_all, targets, lemmas, used)
    entries = piece["heads"]
    want = sorted((o, h) for o in range(len(heads_all)) for h in range(len(heads_all[o])))
    if sorted((e["output"], e["head"]) for e in entries) != want:
        raise Invalid("an analytic piece must bound every head of every output exactly once")
    X = [arb_interval(_q(lo), _q(hi)) for lo, hi in cell]
    env = {f"x{i}": x for i, x in enumerate(X)}
    worst = arb(0)
    for o, target in enumerate(targets):
        n_lo, n_hi = arb(0), arb(0)
        for e in entries:
            if e["output"] != o:
                continue
            lemma = None
            if e["lemma"] is not None:
                if e["lemma"] not in lemmas:
                    raise Invalid(f"piece cites lemma {e['lemma']}, which the certificate does not hold")
                lemma = lemmas[e["lemma"]]
                lm = lemma[0]
                if lemma[1] != cell or (lm["output"], lm["head"], lm["top"]) != (o, e["head"], e["top"]):
                    raise Invalid(f"lemma {lm['id']} is about another cell, head or top key than its piece")
                used.add(lm["id"])
            lo, hi = _head_enclosure(heads_all[o][e["head"]], e, lemma, cell)
            n_lo, n_hi = n_lo + lo, n_hi + hi
        f = target(env)
        err = arb.max((n_hi - f.lower()).upper(), (f.upper() - n_lo).upper()).upper()
        if not (err.is_finite() and f.is_finite()):
            raise Invalid("a piece bound is not finite")
        worst = arb.max(worst, err).upper()
    return worst


def _check_tiling(cells, domain):
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


def check_pieces(doc, domain, heads_all, targets, eps, *, timeout_ms=LEMMA_TIMEOUT_MS, cross_check=False):
    """Check piecewise evidence; returns (pieces, checked max arb, stored max fmpq, lemma count)."""
    ev = doc["evidence"]
    D = len(domain)
    lemmas = _check_lemmas(ev, heads_all, D, timeout_ms, cross_check)
    n_heads = sum(len(p) for p in heads_all)
    cells, used = [], set()
    stored_max, checked_max = fmpq(0), arb(0)
    for n, piece in enumerate(ev["pieces"]):
        cell = _cell(piece["cell"], f"piece {n} cell")
        if len(cell) != D:
            raise Invalid(f"piece {n}: cell has the wrong dimension")
        cells.append(cell)
        stored = _rat(piece["bound"], f"piece {n} bound")
        if piece["method"] == "analytic":
            proved = _analytic_bound(piece, cell, heads_all, targets, lemmas, used)
        else:
            boxes = _leaves(piece["tree"], cell, D)
            if len(piece["bounds"]) != len(boxes) or len(piece["hints"]) != len(boxes):
                raise Invalid(f"piece {n}: {len(piece['bounds'])} bounds for {len(boxes)} boxes")
            proved = arb(0)
            for k, (box, b, h) in enumerate(zip(boxes, piece["bounds"], piece["hints"])):
                if len(h) != n_heads:
                    raise Invalid(f"piece {n} box {k}: wrong number of hints")
                pb = _box_bound(box, heads_all, targets, h)
                if arb(_rat(b, "bound")) < pb - arb(eps) * arb(2) ** -20:
                    raise Invalid(f"piece {n} box {k}: stored bound is below the re-derived bound")
                proved = arb.max(proved, pb).upper()
        where = f"piece {n} [{', '.join(f'{a}..{b}' for a, b in cell)}] ({piece['method']})"
        if not proved < arb(eps):
            raise Invalid(f"{where}: re-derived bound {float(proved.mid()):.6g} is not below eps")
        if arb(stored) < proved - arb(eps) * arb(2) ** -20:
            raise Invalid(f"{where}: stored bound {float(stored):.6g} is below the re-derived "
                          f"bound {float(proved.mid()):.6g}")
        stored_max = max(stored_max, stored)
        checked_max = arb.max(checked_max, proved).upper()
    unused = sorted(set(lemmas) - used)
    if unused:
        raise Invalid(f"lemma {unused[0]} is not cited by any piece")
    _check_tiling(cells, domain)
    from .check_partition import check_partition  # max-affine partition facts (cover, lead per cell)
    n_part = check_partition(doc, domain, heads_all, cells, timeout_ms=timeout_ms, cross_check=cross_check)
    return len(cells), checked_max, stored_max, len(lemmas) + n_part


def check_piecewise_doc(doc, path, domain, heads_all, targets, eps, *, cross_check=False,
                        timeout_ms=LEMMA_TIMEOUT_MS):
    """check_doc's branch for evidence.method "analytic"/"mixed"; raises Invalid or returns a report."""
    from flint import ctx

    from .checker import PREC, CheckReport
    max_bound = _rat(doc["result"]["max_bound"], "max_bound")
    if not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")
    methods = {p["method"] for p in doc["evidence"]["pieces"]}
    if (doc["evidence"]["method"] == "analytic") != (methods == {"analytic"}):
        raise Invalid("evidence.method does not match the methods of its pieces")
    old = ctx.prec
    ctx.prec = PREC
    try:
        n, checked_max, stored_max, n_lemmas = check_pieces(doc, domain, heads_all, targets, eps,
                                                            timeout_ms=timeout_ms, cross_check=cross_check)
    finally:
        ctx.prec = old
    if stored_max != max_bound:
        raise Invalid("max_bound is not the largest piece bound")
    witness = [_fr(_rat(v, "witness")) for v in doc["result"]["witness"]]
    if len(witness) != len(domain) or any(not a <= w <= b for w, (a, b) in zip(witness, domain)):
        raise Invalid("witness lies outside the domain")
    return CheckReport(path=path, ok=True, message="certificate holds", name=doc["construction"]["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"],
                       checked_max_bound=float(checked_max.mid()), boxes=n,
                       observed_error=doc["result"]["observed_error"],
                       details={"method": doc["evidence"]["method"], "pieces": n, "lemmas": n_lemmas,
                                "partition_lemmas": len(doc["evidence"].get("partition", {}).get("lemmas", [])),
                                "cross_check": "cvc5" if cross_check else None})
