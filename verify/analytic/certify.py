"""The analytic route: one piece per cell, closed-form bounds from z3 gap lemmas, paving as fallback.

``method="analytic"`` needs every cell's closed form below eps; ``method="auto"`` paves the
cells where it is not (each piece records which method it used).  Every lemma is run
through z3 here before it is written down, so a false lemma is never emitted.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .closed_form import CellPlan, cell_bound, default_cells, plan_cell
from ..search.certify import CERTIFIED, REFUTED, UNKNOWN, certify
from ..enclose.defined import defined_targets
from ..enclose.linearize import UnsupportedNetwork, affine_form
from .map_cells import is_max_affine_grid, map_cells
from .partition import partition_lemmas
from ..search.sampling import max_error_sampled
from .smt import DEFAULT_TIMEOUT_MS, LemmaFailed, run_z3


DEFAULT_MESH = {1: 32, 2: 8, 3: 3}   # max-affine: sub-mesh per axis of each analytic piece


@dataclass
class Piece:
    """One cell of the tiling and its evidence: a CellPlan (analytic) or a paving result."""
    cell: tuple
    method: str
    bound: Fraction
    plan: CellPlan | None = None
    paving: object = None


@dataclass
class AnalyticResult:
    status: str
    eps: Fraction
    method: str
    pieces: list = field(default_factory=list)
    max_bound: float = 0.0
    observed: float = 0.0
    witness: tuple = ()
    witness_lower: float | None = None
    lemma_count: int = 0
    z3_seconds: float = 0.0
    seconds: float = 0.0
    boxes_evaluated: int = 0
    reason: str = ""
    partition: dict | None = None   # max-affine: partition cells, their anchors and z3 lemmas
    unresolved: list = field(default_factory=list)  # (cell, its best proved bound or inf), not certified
    unreached: int = 0              # cells never bounded (a budget ran out): the largest bound is then inf

    @property
    def holds(self) -> bool:
        return self.status == CERTIFIED


def certify_analytic(construction, eps, *, method: str = "analytic", cells=None, max_boxes: int = 2_000_000,
                     time_limit: float | None = None, lemma_timeout_ms: int = DEFAULT_TIMEOUT_MS,
                     observe_points: int = 4_097, sub: int = 1,
                     mesh: int | None = None) -> AnalyticResult:
    """Prove sup |N - f| < eps piece by piece; ``method`` is "analytic" or "auto".

    For a max-affine grid the pieces are its partition cells (each split ``sub`` times per
    axis), and the partition lemmas (cover + leader per cell) are proved with z3 and kept.
    """
    from constructions.exact import parse_rational
    if method not in ("analytic", "auto"):
        raise ValueError(f"unknown method {method!r} (analytic or auto)")
    eps = parse_rational(eps) if isinstance(eps, str) else Fraction(eps)
    if eps <= 0:
        raise ValueError("eps must be positive")
    t0 = time.perf_counter()
    net = construction.network
    if len(net.layers) != 1 or net.layers[0].post is not None or net.final_softmax \
            or net.readout_linear is not None:
        raise UnsupportedNetwork("--method analytic handles one plain attention layer (no post map, final "
                                 "softmax or linear readout); use --method paving")
    try:
        forms = affine_form(net)
    except UnsupportedNetwork as e:
        raise UnsupportedNetwork(f"--method analytic handles one-layer networks with affine logits ({e}); "
                                 "use --method paving") from None
    grid = is_max_affine_grid(construction)
    if cells is None and grid:
        cells = map_cells(construction, sub)
        if mesh is None:  # a soft max-affine cell needs its transition resolved (fixed, beta-free)
            mesh = DEFAULT_MESH.get(len(construction.domain), 2)
    cells = list(cells) if cells is not None else default_cells(construction, forms)
    targets = defined_targets(construction)   # guarded where proved defined on the domain (cells lie inside)
    res = AnalyticResult(UNKNOWN, eps, method)
    first_why = None
    for n, cell in enumerate(cells):
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            res.unreached = len(cells) - n
            first_why = first_why or f"time limit {time_limit}s reached with {len(cells) - n} cells left"
            break
        plan = plan_cell(forms, cell, f"c{n}", mesh)
        try:
            b = cell_bound(forms, plan, targets)
            why = None if b < eps else f"closed-form bound {float(b):.6g} is not below eps"
        except ArithmeticError as e:  # a non-finite enclosure is a failure, never a number
            b, why = None, f"closed form failed: {e}"
        proved = b is not None
        if b is not None and (why is None or method == "analytic"):
            # the lemmas make the closed form a proved bound (also for a cell above eps, whose
            # bound is then reported as its best bound)
            try:
                z3s, k = 0.0, 0
                for hp in plan.heads:
                    if hp.lemma is not None:
                        hp.text = hp.lemma.text(forms[hp.output][hp.head])
                        z3s += run_z3(hp.lemma.id, hp.text, len(cell), lemma_timeout_ms)
                        k += 1
                res.z3_seconds += z3s
                if why is None:
                    res.lemma_count += k
            except LemmaFailed as e:  # never write down a lemma that z3 did not prove
                why, proved = why or str(e), False
        if why is None:
            plan.bound = b
            res.pieces.append(Piece(tuple(cell), "analytic", b, plan=plan))
            continue
        if method == "analytic":
            # an unresolved cell keeps its real best bound (a closed form whose lemmas z3 proved), or inf;
            # the other cells are still bounded, so the largest bound speaks for the whole domain
            res.unresolved.append((tuple(cell), float(b) if proved else float("inf")))
            if first_why is None:
                first_why = f"cell {n} [{', '.join(f'{lo}..{hi}' for lo, hi in cell)}]: {why}"
            continue
        left = None if time_limit is None else max(1.0, time_limit - (time.perf_counter() - t0))
        # a paving piece is checked with the one-layer (affine) box bound and its hints: no grid claim
        plain = tuple(kv for kv in getattr(construction, "meta", ()) if kv[0] != "grid")
        # a piece's evidence is one plain paving: no output groups, no centred boxes
        sub = certify(dataclasses.replace(construction, domain=tuple(cell), meta=plain), eps, max_boxes=max_boxes,
                      time_limit=left, progress=False, outputs="joint", enclosure="plain")
        res.boxes_evaluated += sub.boxes_evaluated
        if sub.status == REFUTED:
            res.status, res.witness, res.witness_lower = REFUTED, sub.witness, sub.witness_lower
            res.observed, res.reason = sub.observed, sub.reason
            res.max_bound = sub.max_bound
            res.seconds = time.perf_counter() - t0
            return res
        if sub.status != CERTIFIED:
            res.unresolved.append((tuple(cell), float(sub.max_bound)))
            res.unreached = len(cells) - n - 1
            res.reason = f"cell {n}: paving fallback gave up: {sub.reason}" + _unreached(res)
            return _finish(construction, res, t0, observe_points)
        res.pieces.append(Piece(tuple(cell), "paving", Fraction(sub.max_bound), paving=sub))
    if first_why is not None:
        k = len(res.unresolved)
        res.reason = first_why + (f" ({k} of {len(cells)} cells unresolved)" if k > 1 else "") \
            + _unreached(res) + (" (try --method auto)" if method == "analytic" else "")
        return _finish(construction, res, t0, observe_points)
    if grid:
        try:
            res.partition, z3s = partition_lemmas(construction, forms, lemma_timeout_ms)
        except LemmaFailed as e:  # the construction is not the partition its spec says
            res.reason = f"partition: {e}"
            res.unresolved.append(((), float("inf")))   # every piece's bound rests on the partition
            return _finish(construction, res, t0, observe_points)
        res.z3_seconds += z3s
        res.lemma_count += len(res.partition["lemmas"])
    res.status = CERTIFIED
    return _finish(construction, res, t0, observe_points)


def _unreached(res) -> str:
    return f"; {res.unreached} cells not reached (their bound is unknown)" if res.unreached else ""


def _near_ends(construction, cells):
    """Largest float error at points crowding each cell's ends, where sharp transitions sit."""
    from ..forward import forward_float
    from ..enclose.target import float_eval
    pts = []
    for cell in cells:
        if len(cell) != 1:
            continue
        (lo, hi), = cell
        w = float(hi - lo)
        for k in range(1, 13):
            pts += [float(lo) + w * 2.0 ** -k, float(hi) - w * 2.0 ** -k, float(lo) + w * 10.0 ** -k,
                    float(hi) - w * 10.0 ** -k]
    if not pts:
        return -1.0, None
    X = np.asarray(pts)[:, None]
    y = forward_float(construction.network, X, np)
    err = np.zeros(len(pts))
    for o, t in enumerate(construction.target):
        err = np.maximum(err, np.abs(y[:, o] - float_eval(t, {"x0": X[:, 0]}, np)))
    j = int(np.argmax(err))
    return float(err[j]), [pts[j]]


def _finish(construction, res, t0, observe_points):
    obs, at, _ = max_error_sampled(construction, observe_points, np)
    o2, at2 = _near_ends(construction, [p.cell for p in res.pieces])
    if o2 > obs:
        obs, at = o2, at2
    for p in res.pieces:  # the paving sub-runs observed near their own error peaks
        if p.paving is not None and p.paving.observed > obs:
            obs, at = p.paving.observed, [float(v) for v in p.paving.witness]
    res.observed = obs
    res.witness = tuple(min(max(Fraction(v), lo), hi) for v, (lo, hi) in zip(at, construction.domain))
    # the largest bound over the whole domain: unresolved pieces count with their best bound (or inf),
    # and cells never reached make it inf; never 0 for a domain that was not bounded
    bounds = [float(p.bound) for p in res.pieces] + [b for _, b in res.unresolved]
    if res.unreached or not bounds:
        bounds.append(float("inf"))
    res.max_bound = max(bounds)
    res.seconds = time.perf_counter() - t0
    return res
