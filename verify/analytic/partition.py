"""Partition lemmas of a max-affine construction, as canonical SMT-LIB2 text for z3 (expected unsat).

``lead`` (one per cell): on cell i, anchor i's logit is >= every other anchor's logit, i.e. the
cell assigned to each anchor is the one its logit leads.  ``cover`` (one): every point of the
domain lies in some cell.  Each text is the negation of the fact; the checker rebuilds it from
the exact weights with its own printer and compares byte for byte.
"""
from __future__ import annotations

from .smt import affine_term, num, run_z3


def _box_lines(cell):
    lines = [f"(declare-fun x{i} () Real)" for i in range(len(cell))]
    for i, (lo, hi) in enumerate(cell):
        lines += [f"(assert (<= {num(lo)} x{i}))", f"(assert (<= x{i} {num(hi)}))"]
    return lines


def lead_text(lemma_id, cell, c, G, top, others) -> str:
    """Negation of "on cell, logit[top] - logit[j] >= 0 for every j in others"."""
    lines = [f"; attncert partition lemma {lemma_id}", "(set-logic QF_LRA)"] + _box_lines(cell)
    atoms = [f"(< {affine_term(c[top] - c[j], [a - b for a, b in zip(G[top], G[j])])} 0.0)" for j in others]
    lines.append("(assert " + (atoms[0] if len(atoms) == 1 else "(or " + " ".join(atoms) + ")") + ")")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


def cover_text(lemma_id, domain, cells) -> str:
    """Negation of "every x in the domain lies in one of the cells"."""
    lines = [f"; attncert partition lemma {lemma_id}", "(set-logic QF_LRA)"] + _box_lines(domain)
    boxes = []
    for cell in cells:
        parts = []
        for i, (lo, hi) in enumerate(cell):
            parts += [f"(<= {num(lo)} x{i})", f"(<= x{i} {num(hi)})"]
        boxes.append("(and " + " ".join(parts) + ")")
    lines.append("(assert (not " + (boxes[0] if len(boxes) == 1 else "(or " + " ".join(boxes) + ")") + "))")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


def partition_lemmas(construction, forms, timeout_ms):
    """Prove the partition facts with z3; returns (evidence dict, z3 seconds). Raises LemmaFailed."""
    from .map_cells import partition_cells
    parts = partition_cells(construction)
    h = forms[0][0]
    c, G = h.c, h.G
    anchors = [k for _, k in parts]
    lemmas, secs = [], 0.0
    D = len(construction.domain)
    for i, (cell, k) in enumerate(parts):
        lid = f"part.lead.{i}"
        others = [j for j in anchors if j != k]
        if not others:
            continue
        text = lead_text(lid, cell, c, G, k, others)
        secs += run_z3(lid, text, D, timeout_ms)
        lemmas.append({"id": lid, "kind": "lead", "cell": i, "expect": "unsat", "smt2": text})
    text = cover_text("part.cover", construction.domain, [cell for cell, _ in parts])
    secs += run_z3("part.cover", text, D, timeout_ms)
    lemmas.append({"id": "part.cover", "kind": "cover", "cell": None, "expect": "unsat", "smt2": text})
    ev = {"output": 0, "head": 0, "cells": [cell for cell, _ in parts], "anchors": anchors, "lemmas": lemmas}
    return ev, secs
