"""Spec audits: z3 proves that the exact weights are what the spec says.

A spec audit states the spec's identities and gap facts as SMT-LIB2 negations over the
network's exact affine logits (``verify.enclose.linearize``) and asks z3 for ``unsat``.  When an
edited construction breaks one, z3's model is a concrete counterexample point, which the
report names together with the lemma.  Spec audits are registered per construction name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .enclose.linearize import affine_form
from .analytic.smt import LemmaFailed, affine_term, gap_lemma_text, num, run_z3


@dataclass
class SpecAuditLemma:
    id: str
    statement: str
    text: str
    n_vars: int
    explain: object = None   # point -> extra words on why it fails there


@dataclass
class SpecAuditReport:
    name: str
    lemmas: int = 0
    failures: list = field(default_factory=list)   # one line per failed lemma
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def _identity_text(lemma_id, lhs, rhs) -> str:
    return "\n".join([f"; attncert spec-audit {lemma_id}", "(set-logic QF_NRA)", "(declare-fun x0 () Real)",
                      f"(assert (not (= {lhs} {rhs})))", "(check-sat)"]) + "\n"


def ramp_lemmas(params: dict, network) -> list:
    """[UAP] ramp: logit identities, value identities and the m^2 gamma Delta^2 gap facts."""
    a, b, p, kappa = (Fraction(params[k]) for k in ("a", "b", "p", "kappa"))
    lo, hi = Fraction(params["lo"]), Fraction(params["hi"])
    p = int(p)
    delta = (b - a) / (p - 1)
    gamma = kappa / delta ** 2
    L = [a + k * delta for k in range(p)]
    forms = affine_form(network)
    if len(forms) != 1 or len(forms[0]) != 1 or len(forms[0][0].c) != p:
        return [SpecAuditLemma("ramp.shape", "one output, one head, p keys", "(assert true)\n(check-sat)\n", 1)]
    h = forms[0][0]
    out = []
    for k in range(p):
        spec = (f"(* {num(gamma)} (- (* (- x0 {num(L[0])}) (- x0 {num(L[0])})) "
                f"(* (- x0 {num(L[k])}) (- x0 {num(L[k])}))))")
        lid = f"ramp.logit.k{k}"
        out.append(SpecAuditLemma(lid, f"logit_{k}(x) = gamma((x-L_0)^2 - (x-L_{k})^2) for all x",
                              _identity_text(lid, affine_term(h.c[k], h.G[k]), spec), 1))
        lid = f"ramp.value.k{k}"
        out.append(SpecAuditLemma(lid, f"value_{k}(x) = L_{k} = {L[k]} for all x",
                              _identity_text(lid, affine_term(h.e[k], h.F[k]), num(L[k])), 1))
    regions = [(k, k + 1, L[k], L[k + 1]) for k in range(p - 1)]
    if lo < a:
        regions.insert(0, (0, 0, lo, a))
    if hi > b:
        regions.append((p - 1, p - 1, b, hi))
    for kl, kr, u, v in regions:
        claims = []
        for m in range(p):
            if m in (kl, kr):
                continue
            ref = kl if m < kl else kr
            margin = gamma * (delta * (m - ref)) ** 2
            g = tuple(x - y for x, y in zip(h.G[ref], h.G[m]))
            claims.append((ref, m, h.c[ref] - h.c[m], g, margin))
        if not claims:
            continue
        lid = f"ramp.gap.[{u},{v}]"

        def explain(point, claims=claims):
            x = point[0]
            for ref, m, c, g, margin in claims:
                gap = c + g[0] * x
                if gap < margin:
                    return (f"anchor {m} trails anchor {ref} by {float(gap):.6g} < spec margin "
                            f"gamma*{abs(m - ref)}^2*Delta^2 = {float(margin):.6g}")
            return ""
        out.append(SpecAuditLemma(lid, f"on [{u}, {v}] every anchor m trails its nearer end anchor by "
                                   f"gamma*d^2*Delta^2", gap_lemma_text(lid, ((u, v),),
                                                                        [(c, g, mg) for _, _, c, g, mg in claims]),
                              1, explain))
    return out


SPEC_AUDITS = {"ramp": ramp_lemmas}


def spec_audit(name: str, params: dict, network, timeout_ms: int = 10_000) -> SpecAuditReport:
    """Run every spec-audit lemma of construction ``name``; failures carry z3's counterexample."""
    import time
    if name not in SPEC_AUDITS:
        raise ValueError(f"no spec audit is registered for construction {name!r} (have: {', '.join(sorted(SPEC_AUDITS))})")
    t0 = time.perf_counter()
    rep = SpecAuditReport(name)
    for lm in SPEC_AUDITS[name](params, network):
        rep.lemmas += 1
        try:
            run_z3(lm.id, lm.text, lm.n_vars, timeout_ms)
        except LemmaFailed as e:
            why = lm.explain(e.point) if (lm.explain and e.point and isinstance(e.point[0], Fraction)) else ""
            rep.failures.append(f"{e} -- {lm.statement}" + (f"; {why}" if why else ""))
    rep.seconds = time.perf_counter() - t0
    return rep
