"""Branch and bound over the domain: CERTIFIED, REFUTED (with a proved witness) or UNKNOWN.

Each generation bounds every pending box at once (vectorised), keeps the boxes whose
proved bound is below eps, and bisects the rest, so refinement concentrates where the
error peaks.  A float sample at each box centre tracks the largest observed error; if
it exceeds eps, the point is re-evaluated with rigorous interval arithmetic and, when
the proved lower bound of the error exceeds eps, the result is REFUTED.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from constructions.exact import parse_rational

from ..enclose import interval as iv
from ..enclose.affine import combine_outputs
from ..enclose.bounder import resolve_enclosure
from ..enclose.target import interval_eval
from . import checkpoint as ckpt
from .batches import Job, backend_name, boxes_per_pass, host
from .executors import run_units
from .outputs import group_checkpoint, output_groups, restrict, separable
from .paving import (MAX_INPUTS, MAX_LEVEL, Leaf, bisect_boxes, children_along, choose_dim, choose_dim_by_gain,
                     split_candidates, tree_string)
from .progress import progress_bar
from .sampling import observed_at_corners

CERTIFIED, REFUTED, UNKNOWN = "CERTIFIED", "REFUTED", "UNKNOWN"

# A box is finished when its float bound is below eps * (1 - ACCEPT_MARGIN): room for the
# independent checker, which re-derives the bound in other (Arb) arithmetic.
ACCEPT_MARGIN = 2.0 ** -10
# A finished box states its bound raised by STATED_MARGIN (rounded up): the checker's own bound
# of the box, in other arithmetic, may exceed the search's by a little, and a stated bound must
# never undercut the checker's (the layered checker's bound runs up to ~2e-5 above the search's).
# (1 + 2^-12)(1 - 2^-10) < 1, so a stated bound stays below eps.
STATED_MARGIN = 2.0 ** -12


def stated(bound: float) -> float:
    """A finished box's bound as the certificate states it: raised by STATED_MARGIN, rounded up."""
    return float(np.nextafter(bound * (1.0 + STATED_MARGIN), np.inf))


@dataclass
class CertifyResult:
    """What the search found; ``leaves`` (preorder) and ``tree`` are the evidence."""
    status: str
    eps: Fraction
    max_bound: float
    observed: float
    witness: tuple          # exact rational point of the largest observed error
    witness_lower: float | None  # proved lower bound of the error there (REFUTED)
    leaves: list = field(default_factory=list)
    tree: str = ""
    boxes_evaluated: int = 0
    seconds: float = 0.0
    split_boxes: int = 0    # extra boxes bounded to choose split dimensions (split="gain")
    reason: str = ""
    terms: list = field(default_factory=list)  # chain terms (label, g tree, |f-g| bound, |g-N| bound)
    evidence: dict = field(default_factory=dict)  # bounder-specific evidence (e.g. the grid claim)
    groups: list = field(default_factory=list)  # one paving per group of outputs: (outputs, result)
    residual: tuple | None = None   # the residual route: (claim, 1-D construction, its result)

    @property
    def holds(self) -> bool:
        return self.status == CERTIFIED


def point_error_lower(bounder, point, xp=np):
    """Proved lower bound of |N(x) - f(x)| at an exactly representable float point."""
    x = xp.asarray([point], dtype=xp.float64)
    outs, _ = bounder.output_bounds(x, x)
    box = {name: (x[:, i], x[:, i]) for i, name in enumerate(bounder.inputs)}
    best = -np.inf
    for (nlo, nhi), tree in zip(outs, bounder.construction.target):
        flo, fhi = interval_eval(tree, box, xp)
        lo = max(float(iv.down(nlo - fhi, xp)[0]), float(iv.down(flo - nhi, xp)[0]))
        if np.isfinite(lo):
            best = max(best, lo)
    return best


class CertifyInterrupted(KeyboardInterrupt):
    """Ctrl-C during certify; ``checkpoint`` names the file that lets ``--resume`` continue."""

    def __init__(self, checkpoint):
        super().__init__(checkpoint)
        self.checkpoint = checkpoint


def certify(construction, eps, *, max_boxes: int = 2_000_000, time_limit: float | None = None,
            xp=np, batch: int = 8192, progress: bool | None = None, executor=None,
            checkpoint=None, resume: bool = False, checkpoint_every: float = 30.0,
            drop_checkpoint: bool = True, min_units: int = 1, split: str = "gain",
            outputs: str = "auto", enclosure: str = "auto") -> CertifyResult:
    """Prove sup over the domain of |network - target| < eps, or refute it, or give up.

    Each generation's boxes are cut into batches (work units) run on ``executor`` (any
    ``concurrent.futures.Executor``; None runs them here) and merged in box order.  With
    ``checkpoint`` a file of the finished leaves and pending boxes is written every
    ``checkpoint_every`` seconds and on Ctrl-C; ``min_units`` cuts each generation into at
    least that many units (one per worker keeps every worker busy, not just the first);
    ``resume`` continues from it, re-bounding
    every finished leaf it holds (a checkpoint is never trusted).  ``drop_checkpoint=False``
    leaves the file for the caller to delete once the certificate is safely written.

    A box is finished when its bound is below eps by a relative margin (ACCEPT_MARGIN) and its
    stated bound is raised a little (STATED_MARGIN), so that the independent checker's own
    re-derivation, in other arithmetic, stays below eps and below the stated bound.

    ``split="gain"`` (default) bisects each unfinished box along the dimension whose worse
    child bound is smallest (both children along every dimension are bounded, in one batched
    pass; the chosen children's bounds are kept for the next generation); ``"widest"``
    bisects the widest side.  Either way every leaf's bound is proved; only the tree differs.

    ``outputs="auto"`` (default) certifies groups of outputs that share no input one after the
    other, each with its own paving of the whole domain (``outputs.output_groups``; group n's
    checkpoint is ``outputs.group_checkpoint(checkpoint, n)``); ``"joint"`` keeps one paving.

    ``enclosure`` ("auto", "plain", "centred"; verify.enclose.bounder): "centred" bounds each box
    by the tighter of the plain interval bound and the centred (mean-value) bound, whose error
    shrinks like the square of the box width; a leaf bounded by the latter keeps its slopes as
    evidence for the checker.  "auto" is centred wherever it applies.
    """
    if split not in ("gain", "widest"):
        raise ValueError(f"unknown split rule {split!r} (gain or widest)")
    if outputs not in ("auto", "joint"):
        raise ValueError(f"unknown outputs rule {outputs!r} (auto or joint)")
    eps = parse_rational(eps) if isinstance(eps, str) else Fraction(eps)
    if eps <= 0:
        raise ValueError("eps must be positive")
    if len(construction.domain) > MAX_INPUTS:
        raise ValueError(f"a paving splits at most {MAX_INPUTS} inputs; this construction has "
                         f"{len(construction.domain)}")
    t0 = time.perf_counter()
    eps_f = float(eps)
    accept = eps_f * (1.0 - ACCEPT_MARGIN)
    enclosure = resolve_enclosure(construction, enclosure)
    job = Job(construction, backend_name(xp), enclosure, accept)
    _, domain, bounder, _ = job.prepared()
    if progress is None:
        progress = sys.stderr.isatty()
    if outputs == "auto" and separable(construction) and getattr(bounder, "depends", None) is not None:
        groups = output_groups(bounder.depends)
        if len(groups) > 1:
            return _certify_groups(construction, eps, groups, t0, dict(
                max_boxes=max_boxes, time_limit=time_limit, xp=xp, batch=batch, progress=progress,
                executor=executor, checkpoint=checkpoint, resume=resume, checkpoint_every=checkpoint_every,
                drop_checkpoint=drop_checkpoint, min_units=min_units, split=split, enclosure=enclosure))
    D = domain.D
    key = ckpt.job_key(construction, eps, f"paving/{enclosure}") if checkpoint is not None else None
    if resume:
        if checkpoint is None:
            raise ValueError("resume needs a checkpoint file")
        st = ckpt.load(checkpoint, key, D)
        I, K, paths = st["I"], st["K"], st["paths"]
        evaluated, obs_best, obs_point = st["evaluated"], st["obs_best"], st["obs_point"]
        pending_max = st["pending_max"]
        t0 -= st["seconds"]
        leaves, back = _rebound(job, st["leaves"], accept, batch, executor)
        if back:  # leaves that no longer bound below eps are searched again
            I = np.concatenate([I, np.array([l.i for l in back], dtype=np.int64).reshape(-1, D)])
            K = np.concatenate([K, np.array([l.k for l in back], dtype=np.int64).reshape(-1, D)])
            paths = list(paths) + [l.path for l in back]
    else:
        I = np.zeros((1, D), dtype=np.int64)
        K = np.zeros((1, D), dtype=np.int64)
        paths = [""]
        leaves: list = []
        evaluated = 0
        obs_best, obs_point = -1.0, None
        pending_max = 0.0
    status, reason = CERTIFIED, ""
    last_save = time.perf_counter()
    gain = split == "gain" and D > 1
    unit_job = job.variant(each=True) if gain else job   # gain: bounds per output, to judge the splits
    cand_job = job.variant(each=True, observe=False)     # a split's candidate children: bounds only
    look_job = job.variant(bound=False)                  # boxes bounded already: the float sample only
    depends = getattr(bounder, "depends", None)
    cached = None        # (have, per, hints): bounds of this generation's boxes found when their split was chosen
    split_boxes = 0

    def snapshot(base):
        """Save the state as of the start of a generation (leaves only grow, so a prefix is it)."""
        b_paths, n_leaves, b_evaluated, b_pending_max = base
        ckpt.save(checkpoint, key, {"evaluated": b_evaluated, "seconds": time.perf_counter() - t0,
                                    "obs_best": obs_best, "obs_point": obs_point,
                                    "pending_max": b_pending_max, "paths": b_paths,
                                    "leaves": leaves[:n_leaves]})

    base = (paths, len(leaves), evaluated, pending_max)
    bar = progress_bar(progress, unit=" boxes", desc="certify")
    try:
        while len(paths):
            base = (paths, len(leaves), evaluated, pending_max)
            if checkpoint is not None and time.perf_counter() - last_save >= checkpoint_every:
                snapshot(base)
                last_save = time.perf_counter()
            if cached is not None:   # children bounded when their split was chosen: bound the rest only
                have, per, hints = cached
                cached = None
                todo = np.flatnonzero(~have)
                if len(todo):
                    per[todo], hints[todo], _, _ = _bound_all(cand_job, I[todo], K[todo], batch, min_units,
                                                             executor)
                # the float sample of every box in box order, as one bounding pass would take it
                _, _, ov, op = _bound_all(look_job, I, K, batch, min_units, executor)
                if op is not None and ov > obs_best:
                    obs_best, obs_point = ov, op
            else:
                per, hints, ov, op = _bound_all(unit_job, I, K, batch, min_units, executor)
                if op is not None and ov > obs_best:
                    obs_best, obs_point = ov, op
            # per output with gain: the box bound is their max, exactly as error_from_outputs takes it
            bounds = combine_outputs(per) if gain else per
            if obs_best > eps_f:
                lower = point_error_lower(getattr(bounder, "point_bounder", bounder), obs_point,
                                          job.prepared()[0])
                if lower > eps_f and _inside(obs_point, domain):
                    if drop_checkpoint:
                        _drop(checkpoint)
                    return CertifyResult(REFUTED, eps, float(np.max(bounds)), obs_best,
                                         tuple(Fraction(v) for v in obs_point), lower,
                                         boxes_evaluated=evaluated + len(paths),
                                         seconds=time.perf_counter() - t0,
                                         reason=f"error at the witness is proved >= {lower!r} > eps")
            good = bounds < accept
            rest = np.flatnonzero(~good)
            new_pending_max = float(np.max(bounds[rest])) if len(rest) else pending_max
            over = None
            if len(rest):
                if evaluated + len(paths) + 2 * len(rest) > max_boxes:
                    over = f"box budget {max_boxes} spent"
                elif time_limit is not None and time.perf_counter() - t0 > time_limit:
                    over = f"time limit {time_limit}s reached"
            if over is not None and checkpoint is not None:
                snapshot(base)   # the state before this generation: a resume with a larger budget replays it
            evaluated += len(paths)
            gi = np.flatnonzero(good)
            for n, i, k, bd, h in zip(gi.tolist(), I[gi].tolist(), K[gi].tolist(), bounds[gi].tolist(),
                                      hints[gi].tolist()):
                leaves.append(Leaf(paths[n], tuple(i), tuple(k), stated(bd), tuple(h)))
            bar.update(len(paths))
            bar.set_postfix(leaves=len(leaves), open=len(rest),
                            worst_open=f"{np.max(bounds[rest]) if len(rest) else 0:.3g}", refresh=False)
            if not len(rest):
                break
            pending_max = new_pending_max
            if over is not None:
                status, reason = UNKNOWN, over
                break
            Ir, Kr = I[rest], K[rest]
            if gain:
                dims, cached, n_judged = _split_by_gain(cand_job, Ir, Kr, per[rest], hints.shape[1], domain,
                                                        depends, accept, batch, min_units, executor)
                split_boxes += n_judged
            else:
                dims = choose_dim(Kr, domain)
            if np.any(Kr[np.arange(len(rest)), dims] >= MAX_LEVEL):
                status, reason = UNKNOWN, "boxes reached the finest dyadic level"
                break
            I, K, paths = bisect_boxes(Ir, Kr, dims, [paths[n] for n in rest])
    except KeyboardInterrupt:
        bar.close()
        if checkpoint is None:
            raise
        snapshot(base)   # leaves and pending boxes as of the start of this generation
        raise CertifyInterrupted(checkpoint) from None
    except Exception:
        bar.close()
        if checkpoint is not None:   # e.g. a worker process was killed: keep what is finished
            snapshot(base)
        raise
    bar.close()
    seconds = time.perf_counter() - t0
    witness = tuple(Fraction(v) for v in obs_point)
    if status != CERTIFIED:
        worst = max(pending_max, max((l.bound for l in leaves), default=0.0))
        return CertifyResult(status, eps, worst, obs_best, witness, None,
                             boxes_evaluated=evaluated, seconds=seconds, reason=reason, split_boxes=split_boxes)
    if drop_checkpoint:
        _drop(checkpoint)
    used = None if depends is None else np.flatnonzero(np.asarray(depends).any(axis=0))
    corner_err, corner = observed_at_corners(construction, job.prepared()[3], domain.exact, leaves, xp, dims=used)
    if corner_err > obs_best:
        obs_best, witness = corner_err, tuple(Fraction(v) for v in corner)
    leaves.sort(key=lambda l: l.path)
    if enclosure == "centred":
        leaves = _with_slopes(job, leaves, batch)
    terms = []
    if getattr(construction, "chain", ()):
        from ..enclose.chain import chain_terms
        terms = [(label, tree, stated(t1), stated(t2))
                 for label, tree, t1, t2 in chain_terms(construction, bounder, domain, leaves, xp)]
    return CertifyResult(CERTIFIED, eps, max(l.bound for l in leaves), obs_best, witness, None,
                         leaves=leaves, tree=tree_string([l.path for l in leaves]),
                         boxes_evaluated=evaluated, seconds=seconds, terms=terms,
                         evidence=dict(getattr(bounder, "evidence", {})), split_boxes=split_boxes)


def _with_slopes(job, leaves, batch):
    """The leaves whose bound is the centred one, with their slopes (the checker's evidence).

    The bounds are computed again here with the same code and floats as in the search, so each
    leaf takes the same branch (plain or centred) and the same stated bound."""
    xp, domain, bounder, _ = job.prepared()
    step = max(1, min(batch, boxes_per_pass(job.construction, xp)))   # the centred parts are (N, keys, D)
    out = []
    for s in range(0, len(leaves), step):
        part = leaves[s:s + step]
        I = xp.asarray(np.array([l.i for l in part], dtype=np.int64))
        K = xp.asarray(np.array([l.k for l in part], dtype=np.int64))
        xl, xh = domain.enclose(I, K)
        plain, C, slopes, hints = bounder.centred_leaves(xl, xh)
        plain, C, slopes = host(plain), host(C), host(slopes)
        hints = None if hints is None else host(hints)
        for n, l in enumerate(part):
            if C[n] < plain[n]:
                out.append(dataclasses.replace(l, bound=stated(float(C[n])), hints=tuple(int(v) for v in hints[n]),
                                               slopes=tuple(float(v) for v in slopes[n])))
            else:
                out.append(dataclasses.replace(l, bound=stated(float(plain[n])), slopes=()))
    return out


def _certify_groups(construction, eps, groups, t0, kw) -> CertifyResult:
    """certify() of each group of outputs in turn, sharing the box budget and the time limit;
    the first group that is not CERTIFIED decides the answer."""
    max_boxes, time_limit = kw.pop("max_boxes"), kw.pop("time_limit")
    checkpoint, resume = kw.pop("checkpoint"), kw.pop("resume")
    if resume and checkpoint is None:
        raise ValueError("resume needs a checkpoint file")
    parts, used = [], 0
    for n, outs in enumerate(groups):
        ck = group_checkpoint(checkpoint, n)
        left = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - t0))
        try:
            r = certify(restrict(construction, outs), eps, max_boxes=max(1, max_boxes - used), time_limit=left,
                        checkpoint=ck, resume=resume and ck is not None and os.path.exists(ck),
                        outputs="joint", **kw)
        except CertifyInterrupted:
            raise CertifyInterrupted(checkpoint) from None
        used += r.boxes_evaluated
        parts.append((outs, r))
        if r.status != CERTIFIED:
            break
    seconds = time.perf_counter() - t0
    best = max((r for _, r in parts), key=lambda r: r.observed)
    last_outs, last = parts[-1]
    if last.status == REFUTED:
        return dataclasses.replace(last, boxes_evaluated=used, seconds=seconds)
    worst = max(r.max_bound for _, r in parts)
    if last.status != CERTIFIED:
        return CertifyResult(last.status, eps, worst, best.observed, best.witness, None, boxes_evaluated=used,
                             seconds=seconds, reason=f"outputs {last_outs}: {last.reason}",
                             split_boxes=sum(r.split_boxes for _, r in parts))
    return CertifyResult(CERTIFIED, eps, worst, best.observed, best.witness, None,
                         leaves=[l for _, r in parts for l in r.leaves], boxes_evaluated=used, seconds=seconds,
                         split_boxes=sum(r.split_boxes for _, r in parts), groups=parts)


def _split_by_gain(cand_job, I, K, parent, n_hints, domain, depends, accept, batch, min_units, executor):
    """Split dimensions by gain (``paving.choose_dim_by_gain``); the chosen children's bounds as a
    cache for the next generation, (have, per output, hints) in ``bisect_boxes`` order; and how
    many candidate children were bounded.  Boxes with one candidate side are not judged."""
    n = I.shape[0]
    cand = split_candidates(parent, K, depends, accept)
    multi = cand.sum(axis=1) > 1
    pn, pd = np.nonzero(cand & multi[:, None])          # (box, side) pairs, box-major
    R = parent.shape[1]
    if len(pn):
        Ic, Kc = children_along(I[pn], K[pn], pd)
        cb, ch, _, _ = _bound_all(cand_job, Ic, Kc, batch, min_units, executor)
    else:
        cb, ch = np.zeros((0, R)), np.zeros((0, n_hints), dtype=np.int64)
    dims = choose_dim_by_gain(cb, (pn, pd), cand, K, domain, combine_outputs(parent))
    have = np.zeros(2 * n, dtype=bool)
    per = np.full((2 * n, R), np.nan)
    hints = np.zeros((2 * n, n_hints), dtype=np.int64)
    j = np.flatnonzero(pd == dims[pn])                  # the judged pair that was chosen, per judged box
    for side in (0, 1):
        rows = 2 * pn[j] + side
        have[rows] = True
        per[rows] = cb[2 * j + side]
        hints[rows] = ch[2 * j + side]
    return dims, (have, per, hints), len(cb)


# A generation of fewer (box, token) pairs than this runs in this process even with workers:
# about 0.2 s of bounding, less than shipping it to worker processes and merging it back costs.
LOCAL_PAIRS = 1 << 20


def _bound_all(job, I, K, batch, min_units, executor):
    """Bounds and hints of boxes (I, K), cut into work units; and the largest observed error with its point."""
    if executor is not None and len(I) * len(job.construction.network.embedding.const) < LOCAL_PAIRS:
        executor = None
    size = min(batch, max(64, -(-len(I) // max(1, min_units))))
    units = [(I[s:s + size], K[s:s + size]) for s in range(0, len(I), size)]
    bounds_all, hints_all = [], []
    best, point = -np.inf, None
    for b, h, ov, op in run_units(job, units, executor):
        if ov > best:   # the first largest, as one pass over all boxes would pick (a NaN never wins)
            best, point = ov, op
        bounds_all.append(b)
        hints_all.append(h)
    return np.concatenate(bounds_all), np.concatenate(hints_all), best, point


def _rebound(job, loaded, accept, batch, executor):
    """Bound a checkpoint's finished leaves again: (leaves that hold, leaves to search again)."""
    if not loaded:
        return [], []
    I = np.array([l.i for l in loaded], dtype=np.int64)
    K = np.array([l.k for l in loaded], dtype=np.int64)
    units = [(I[s:s + batch], K[s:s + batch]) for s in range(0, len(loaded), batch)]
    results = run_units(job, units, executor)
    bounds = np.concatenate([r[0] for r in results])
    hints = np.concatenate([r[1] for r in results])
    keep, back = [], []
    for n, l in enumerate(loaded):
        if bounds[n] < accept:
            keep.append(Leaf(l.path, l.i, l.k, stated(float(bounds[n])), tuple(int(v) for v in hints[n])))
        else:
            back.append(l)
    return keep, back


def _drop(checkpoint) -> None:
    """Remove a checkpoint once the job has a final answer."""
    if checkpoint is not None:
        try:
            os.unlink(checkpoint)
        except FileNotFoundError:
            pass


def _inside(point, domain) -> bool:
    return all(a <= Fraction(v) <= b for v, (a, b) in zip(point, domain.exact))
