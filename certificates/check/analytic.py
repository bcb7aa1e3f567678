"""The checker's part for piecewise certificates (evidence.method "analytic" or "mixed").

Independent of ``verify``: it rebuilds each gap lemma's SMT-LIB2 text from the exact
weights and the lemma's stated claim with its own printer and requires byte equality (so a
lemma can only say what the certificate uses it for), then has z3 re-answer it (``unsat``
required, per-lemma timeout), optionally cvc5 too.  It re-derives every closed-form piece
bound in Arb from the proved margins.
"""
from __future__ import annotations

from fractions import Fraction
from itertools import combinations

from flint import arb

from .core import (LEMMA_ID, Invalid, box_env, cvc5_answer, exact_cell, fr, q, rat, smt_num, smt_term, target_error,
                   z3_answer)

ACTIVE_ORDER_MAX = 4


def expected_text(lemma_id, cell, c, G, top, claims) -> str:
    """The canonical SMT-LIB2 negation of "logit[top] - logit[j] >= M_j on the cell"."""
    lines = [f"; attncert gap lemma {lemma_id}", "(set-logic QF_LRA)"]
    lines += [f"(declare-fun x{i} () Real)" for i in range(len(cell))]
    for i, (lo, hi) in enumerate(cell):
        lines += [f"(assert (<= {smt_num(lo)} x{i}))", f"(assert (<= x{i} {smt_num(hi)}))"]
    atoms = [f"(< {smt_term(fr(c[top] - c[j]), [fr(a - b) for a, b in zip(G[top], G[j])])} {smt_num(m)})"
             for j, m in claims]
    lines.append("(assert " + (atoms[0] if len(atoms) == 1 else "(or " + " ".join(atoms) + ")") + ")")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


def _affine_range(c, g, cell):
    lo = hi = fr(c)
    for gi, (a, b) in zip(g, cell):
        gi = fr(gi)
        lo, hi = (lo + gi * a, hi + gi * b) if gi > 0 else (lo + gi * b, hi + gi * a)
    return lo, hi


def check_lemmas(ev, heads_all, D, timeout_ms, cross_check):
    """Validate every lemma's statement, then re-run it; returns {id: (lemma, cell, margins)}."""
    out = {}
    for n, lm in enumerate(ev["lemmas"]):
        lid = lm["id"]
        if type(lid) is not str or not LEMMA_ID.match(lid):  # the id is echoed into the SMT-LIB text
            raise Invalid(f"lemma {n}: malformed id")
        if lm["kind"] != "gap" or lm["expect"] != "unsat" or type(lm["smt2"]) is not str:
            raise Invalid(f"lemma {lid}: only gap lemmas expected unsat are understood")
        if lid in out:
            raise Invalid(f"lemma {lid} appears twice")
        cell = exact_cell(lm["cell"], f"lemma {lid} cell")
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
            j, m = pair[0], fr(rat(pair[1], f"lemma {lid} margin"))
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
        return arb(q(c_lo)), arb(q(c_hi))
    # N - c = sum_T a_j (v_j - c), a_j <= e^{-M_j} and sum_T a_j <= 1: so |N - c| <= both of
    # sum_T e^{-M_j} s_j and max_T s_j, with s_j = sup |v_j - c| over the cell.
    spreads = [max(vr[j][1] - c_lo, c_hi - vr[j][0], Fraction(0)) for j in trailing]
    leak = arb(0)
    for j, s_j in zip(trailing, spreads):
        leak += (-arb(q(margins[j]))).exp() * arb(q(s_j))
    cap = arb(q(max(spreads)))
    leak = arb.min(leak, cap).upper() if leak.is_finite() else cap
    return arb(q(c_lo)) - leak, arb(q(c_hi)) + leak


def analytic_bound(piece, cell, heads_all, targets, lemmas, used):
    """Arb bound of sup |N - f| on a closed-form piece, from its heads' top keys and gap lemmas."""
    entries = piece["heads"]
    want = sorted((o, h) for o in range(len(heads_all)) for h in range(len(heads_all[o])))
    if sorted((e["output"], e["head"]) for e in entries) != want:
        raise Invalid("an analytic piece must bound every head of every output exactly once")
    env = box_env([(q(lo), q(hi)) for lo, hi in cell])
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
        err = target_error(n_lo, n_hi, target, env)
        if err is None:
            raise Invalid("a piece bound is not finite")
        worst = arb.max(worst, err).upper()
    return worst
