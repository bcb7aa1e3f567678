"""The checker's part for max-affine partition facts (evidence.partition), independent of ``verify``.

It checks in exact rationals that the partition cells tile the domain and that every piece lies
inside one cell, rebuilds each partition lemma's SMT-LIB2 text from the exact weights with its
own printer (byte equality, so a lemma cannot be swapped for a trivially unsat one), and has z3
re-answer it (``unsat`` required): one ``lead`` lemma per cell (its anchor's logit leads there)
and one ``cover`` lemma (every point of the domain lies in some cell).

When partition facts are required: never by the construction's name (a name is unverified
metadata, and renaming must not change what is checked).  The piece bounds do not rely on the
partition: every analytic piece carries its own z3 gap lemma with the margins its bound uses,
and the pieces' tiling of the domain is checked exactly without it.  So the partition is an
additional, optional claim about the network's structure: when a certificate carries it, every
fact is checked (and a false one makes the certificate invalid); when it does not, the report
says so (details "partition": "not carried") and the certificate is judged on its pieces alone.
Whether a construction *should* carry it is a question about where the weights came from, which
``attncert audit`` answers by rebuilding them from the name and parameters.
"""
from __future__ import annotations

from .core import LEMMA_ID, Invalid, check_tiling, cvc5_answer, exact_cell, fr, smt_num, smt_term, z3_answer

def _box(cell):
    lines = [f"(declare-fun x{i} () Real)" for i in range(len(cell))]
    for i, (lo, hi) in enumerate(cell):
        lines += [f"(assert (<= {smt_num(lo)} x{i}))", f"(assert (<= x{i} {smt_num(hi)}))"]
    return lines


def lead_text(lemma_id, cell, c, G, top, others) -> str:
    """Negation of "on the cell, logit[top] >= logit[j] for every other anchor j"."""
    lines = [f"; attncert partition lemma {lemma_id}", "(set-logic QF_LRA)"] + _box(cell)
    atoms = [f"(< {smt_term(fr(c[top] - c[j]), [fr(a - b) for a, b in zip(G[top], G[j])])} 0.0)" for j in others]
    lines.append("(assert " + (atoms[0] if len(atoms) == 1 else "(or " + " ".join(atoms) + ")") + ")")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


def cover_text(lemma_id, domain, cells) -> str:
    """Negation of "every point of the domain lies in one of the cells"."""
    lines = [f"; attncert partition lemma {lemma_id}", "(set-logic QF_LRA)"] + _box(domain)
    boxes = []
    for cell in cells:
        parts = []
        for i, (lo, hi) in enumerate(cell):
            parts += [f"(<= {smt_num(lo)} x{i})", f"(<= x{i} {smt_num(hi)})"]
        boxes.append("(and " + " ".join(parts) + ")")
    lines.append("(assert (not " + (boxes[0] if len(boxes) == 1 else "(or " + " ".join(boxes) + ")") + "))")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


def check_partition(doc, domain, heads_all, piece_cells, *, timeout_ms, cross_check=False, budget=None) -> int:
    """Check evidence.partition when present (optional: see the module's note); returns its lemma count."""
    part = doc["evidence"].get("partition")
    if part is None:
        return 0
    D = len(domain)
    o, h = part["output"], part["head"]
    if o >= len(heads_all) or h >= len(heads_all[o]):
        raise Invalid("partition: no such output/head")
    c, G, _, _ = heads_all[o][h]
    cells = [exact_cell(cl, f"partition cell {n}") for n, cl in enumerate(part["cells"])]
    anchors = part["anchors"]
    if any(len(cl) != D or any(not a < b for a, b in cl) for cl in cells):
        raise Invalid("partition: malformed cell")
    if len(anchors) != len(cells) or len(set(anchors)) != len(anchors) or \
            any(type(k) is not int or not 0 <= k < len(c) for k in anchors):
        raise Invalid("partition: one distinct anchor key per cell is required")
    listed = set(anchors)
    for j in range(len(c)):  # every key left out of the partition must be a constant-logit (self) key
        if j not in listed and any(v != 0 for v in G[j]):
            raise Invalid(f"partition: key {j} has an x-dependent logit but is not an anchor of any cell")
    tiling = check_tiling(cells, domain, budget)
    for n, pc in enumerate(piece_cells):  # each piece is bounded inside one cell of the partition
        if tiling.container(pc) is None:
            raise Invalid(f"piece {n} does not lie inside one partition cell")
    want = {f"part.lead.{i}": ("lead", i) for i in range(len(cells)) if len(cells) > 1}
    want["part.cover"] = ("cover", None)
    got = {}
    for lm in part["lemmas"]:
        lid = lm["id"]
        if type(lid) is not str or not LEMMA_ID.match(lid) or lid in got:
            raise Invalid("partition: malformed or repeated lemma id")
        got[lid] = lm
    missing = sorted(set(want) - set(got))
    if missing:
        raise Invalid(f"partition lemma {missing[0]} is missing")
    extra = sorted(set(got) - set(want))
    if extra:
        raise Invalid(f"partition lemma {extra[0]} is not one the checker expects")
    for lid, (kind, i) in want.items():
        lm = got[lid]
        if lm["kind"] != kind or lm["cell"] != i or lm["expect"] != "unsat" or type(lm["smt2"]) is not str:
            raise Invalid(f"partition lemma {lid}: wrong kind, cell or expected answer")
        if kind == "lead":
            text = lead_text(lid, cells[i], c, G, anchors[i], [k for k in anchors if k != anchors[i]])
        else:
            text = cover_text(lid, domain, cells)
        if lm["smt2"] != text:
            raise Invalid(f"partition lemma {lid}: its SMT-LIB text does not state the partition fact for these weights")
        answer, point = z3_answer(text, D, timeout_ms)
        if answer != "unsat":
            at = "" if point is None else " at " + ", ".join(f"x{k} = {v}" for k, v in enumerate(point))
            raise Invalid(f"partition lemma {lid}: z3 answers {answer}{at} (expected unsat)")
        if cross_check and cvc5_answer(text, timeout_ms) != "unsat":
            raise Invalid(f"partition lemma {lid}: cvc5 does not answer unsat")
    return len(want)
