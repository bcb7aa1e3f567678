"""Logit-gap lemmas as canonical SMT-LIB2 text, and running them with z3.

A gap lemma says: on a box cell, for every listed key j, logit_top(x) - logit_j(x) >= M_j,
where logits are affine with exact rational coefficients (``verify.enclose.linearize``).  The
stored text is the *negation* (some x in the cell has some gap below its margin), which
z3 must answer ``unsat``.  The text is canonical, so the checker can rebuild it from the
exact weights with its own code and compare byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

DEFAULT_TIMEOUT_MS = 10_000


class LemmaFailed(Exception):
    """z3 did not answer unsat; ``point`` is its counterexample (or None when unknown)."""

    def __init__(self, lemma_id, answer, point=None, detail=""):
        self.lemma_id, self.answer, self.point, self.detail = lemma_id, answer, point, detail
        at = "" if point is None else " at " + ", ".join(f"x{i} = {v}" for i, v in enumerate(point))
        super().__init__(f"lemma {lemma_id}: z3 answers {answer}{at}{(' ' + detail) if detail else ''}")


def num(r) -> str:
    """An exact rational as an SMT-LIB Real term: 3.0, (/ 3.0 7.0), (- (/ 3.0 7.0))."""
    if type(r) is not Fraction:
        r = Fraction(r)
    a = abs(r)
    body = f"{a.numerator}.0" if a.denominator == 1 else f"(/ {a.numerator}.0 {a.denominator}.0)"
    return f"(- {body})" if r < 0 else body


def affine_term(c, g) -> str:
    """c + sum_i g_i x_i as an SMT-LIB term (zero slopes omitted)."""
    parts = [num(c)] + [f"(* {num(gi)} x{i})" for i, gi in enumerate(g) if gi != 0]
    return parts[0] if len(parts) == 1 else "(+ " + " ".join(parts) + ")"


def gap_lemma_text(lemma_id: str, cell, gaps) -> str:
    """Canonical SMT-LIB2 negation of "on ``cell``, each (c, g, M) in ``gaps`` has c + g.x >= M"."""
    lines = [f"; attncert gap lemma {lemma_id}", "(set-logic QF_LRA)"]
    lines += [f"(declare-fun x{i} () Real)" for i in range(len(cell))]
    for i, (lo, hi) in enumerate(cell):
        lines.append(f"(assert (<= {num(lo)} x{i}))")
        lines.append(f"(assert (<= x{i} {num(hi)}))")
    atoms = [f"(< {affine_term(c, g)} {num(m)})" for c, g, m in gaps]
    lines.append("(assert " + (atoms[0] if len(atoms) == 1 else "(or " + " ".join(atoms) + ")") + ")")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


def _model_point(model, n_vars):
    import z3
    out = []
    for i in range(n_vars):
        v = model.eval(z3.Real(f"x{i}"), model_completion=True)
        if isinstance(v, z3.RatNumRef):
            out.append(Fraction(v.numerator_as_long(), v.denominator_as_long()))
        else:  # an algebraic number (nonlinear lemmas): a decimal approximation
            out.append(v.as_decimal(30) if hasattr(v, "as_decimal") else str(v))
    return out


def run_z3(lemma_id: str, text: str, n_vars: int, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> float:
    """Check that z3 answers unsat on the SMT-LIB text; raise LemmaFailed otherwise; return seconds."""
    import time

    import z3
    t0 = time.perf_counter()
    s = z3.Solver()
    s.set("timeout", int(timeout_ms))
    s.add(z3.parse_smt2_string(text))
    r = s.check()
    if r == z3.unsat:
        return time.perf_counter() - t0
    if r == z3.sat:
        raise LemmaFailed(lemma_id, "sat", _model_point(s.model(), n_vars))
    raise LemmaFailed(lemma_id, "unknown", None, s.reason_unknown())


@dataclass(frozen=True)
class GapLemma:
    """On ``cell``, logit[top] - logit[j] >= margin_j for every (j, margin_j) in ``claims``."""
    id: str
    cell: tuple      # ((lo, hi), ...) Fractions
    output: int
    head: int
    top: int
    claims: tuple    # ((j, margin Fraction), ...)

    def text(self, head_form) -> str:
        """The SMT-LIB negation, from the exact affine logits of ``head_form`` (an AffineHead)."""
        c, G, t = head_form.c, head_form.G, self.top
        gaps = [(c[t] - c[j], tuple(gt - gj for gt, gj in zip(G[t], G[j])), m) for j, m in self.claims]
        return gap_lemma_text(self.id, self.cell, gaps)
