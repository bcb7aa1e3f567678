"""Branch and bound over the domain: CERTIFIED, REFUTED (with a proved witness) or UNKNOWN.

Each generation bounds every pending box at once (vectorised), keeps the boxes whose
proved bound is below eps, and bisects the rest, so refinement concentrates where the
error peaks.  A float sample at each box centre tracks the largest observed error; if
it exceeds eps, the point is re-evaluated with rigorous interval arithmetic and, when
the proved lower bound of the error exceeds eps, the result is REFUTED.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import interval as iv
from .bounds import AffineBounder  # noqa: F401  (the general path, picked by grid_bounds)
from .grid_bounds import pick_bounder
from .forward import float_weights, forward_float
from .paving import MAX_LEVEL, Domain, choose_dim, tree_string
from .target import float_eval, interval_eval

CERTIFIED, REFUTED, UNKNOWN = "CERTIFIED", "REFUTED", "UNKNOWN"


@dataclass
class Leaf:
    path: str
    i: tuple
    k: tuple
    bound: float
    hints: tuple


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
    reason: str = ""
    terms: list = field(default_factory=list)  # chain terms (label, g tree, |f-g| bound, |g-N| bound)
    evidence: dict = field(default_factory=dict)  # bounder-specific evidence (e.g. the grid claim)

    @property
    def holds(self) -> bool:
        return self.status == CERTIFIED


def make_bounder(construction, xp=np):
    """The bounder for the network's shape: affine one-layer, else layered interval propagation."""
    if dict(getattr(construction, "meta", ())).get("grid") is not None:
        return pick_bounder(construction, xp)  # [MAP] grid: the claim is verified by the grid bounder
    if getattr(construction.network, "is_plain", True):
        return AffineBounder(construction, xp)
    from .layered_bounds import LayeredBounder
    return LayeredBounder(construction, xp)


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


def _observed(construction, weights, xl, xh, xp):
    xm = 0.5 * (xl + xh)
    y = forward_float(construction.network, xm, xp, weights)
    X = {name: xm[:, i] for i, name in enumerate(construction.inputs)}
    err = xp.zeros(xm.shape[0])
    for o, tree in enumerate(construction.target):
        err = xp.maximum(err, xp.abs(y[:, o] - float_eval(tree, X, xp)))
    return err, xm


def certify(construction, eps, *, max_boxes: int = 2_000_000, time_limit: float | None = None,
            xp=np, batch: int = 8192, progress: bool | None = None) -> CertifyResult:
    """Prove sup over the domain of |network - target| < eps, or refute it, or give up."""
    from constructions.exact import parse_rational
    eps = parse_rational(eps) if isinstance(eps, str) else Fraction(eps)
    if eps <= 0:
        raise ValueError("eps must be positive")
    t0 = time.perf_counter()
    eps_f = float(eps)
    domain = Domain(construction.domain, xp)
    bounder = make_bounder(construction, xp)
    weights = float_weights(construction.network, xp)
    if progress is None:
        progress = sys.stderr.isatty()
    D = domain.D
    I = np.zeros((1, D), dtype=np.int64)
    K = np.zeros((1, D), dtype=np.int64)
    paths = [""]
    leaves: list = []
    evaluated = 0
    obs_best, obs_point = -1.0, None
    pending_max = 0.0
    status, reason = CERTIFIED, ""
    while len(paths):
        bounds_all, hints_all = [], []
        for s in range(0, len(paths), batch):
            xl, xh = domain.enclose(xp.asarray(I[s:s + batch]), xp.asarray(K[s:s + batch]))
            b, h = bounder.error_bounds(xl, xh)
            o, xm = _observed(construction, weights, xl, xh, xp)
            j = int(xp.argmax(o))
            if float(o[j]) > obs_best:
                obs_best, obs_point = float(o[j]), [float(v) for v in xm[j]]
            bounds_all.append(np.asarray(b.get() if hasattr(b, "get") else b))
            hints_all.append(np.asarray(h.get() if hasattr(h, "get") else h))
        evaluated += len(paths)
        bounds = np.concatenate(bounds_all)
        hints = np.concatenate(hints_all)
        if obs_best > eps_f:
            lower = point_error_lower(getattr(bounder, "point_bounder", bounder), obs_point, xp)
            if lower > eps_f and _inside(obs_point, domain):
                return CertifyResult(REFUTED, eps, float(np.max(bounds)), obs_best,
                                     tuple(Fraction(v) for v in obs_point), lower,
                                     boxes_evaluated=evaluated, seconds=time.perf_counter() - t0,
                                     reason=f"error at the witness is proved >= {lower!r} > eps")
        good = bounds < eps_f
        for n in np.flatnonzero(good):
            leaves.append(Leaf(paths[n], tuple(int(v) for v in I[n]), tuple(int(v) for v in K[n]),
                               float(bounds[n]), tuple(int(v) for v in hints[n])))
        rest = np.flatnonzero(~good)
        if progress:
            print(f"\r  boxes {evaluated}, leaves {len(leaves)}, open {len(rest)}, "
                  f"worst open {np.max(bounds[rest]) if len(rest) else 0:.3g}   ",
                  end="", file=sys.stderr, flush=True)
        if not len(rest):
            break
        pending_max = float(np.max(bounds[rest]))
        if evaluated + 2 * len(rest) > max_boxes:
            status, reason = UNKNOWN, f"box budget {max_boxes} spent"
            break
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            status, reason = UNKNOWN, f"time limit {time_limit}s reached"
            break
        Ir, Kr = I[rest], K[rest]
        dims = choose_dim(Kr, domain)
        if np.any(Kr[np.arange(len(rest)), dims] >= MAX_LEVEL):
            status, reason = UNKNOWN, "boxes reached the finest dyadic level"
            break
        I, K, paths = _split(Ir, Kr, dims, [paths[n] for n in rest])
    if progress:
        print(file=sys.stderr)
    seconds = time.perf_counter() - t0
    witness = tuple(Fraction(v) for v in obs_point)
    if status != CERTIFIED:
        worst = max(pending_max, max((l.bound for l in leaves), default=0.0))
        return CertifyResult(status, eps, worst, obs_best, witness, None,
                             boxes_evaluated=evaluated, seconds=seconds, reason=reason)
    leaves.sort(key=lambda l: l.path)
    terms = []
    if getattr(construction, "chain", ()):
        from .chain import chain_terms
        terms = chain_terms(construction, bounder, domain, leaves, xp)
    return CertifyResult(CERTIFIED, eps, max(l.bound for l in leaves), obs_best, witness, None,
                         leaves=leaves, tree=tree_string([l.path for l in leaves]),
                         boxes_evaluated=evaluated, seconds=seconds, terms=terms,
                         evidence=dict(getattr(bounder, "evidence", {})))


def _inside(point, domain) -> bool:
    return all(a <= Fraction(v) <= b for v, (a, b) in zip(point, domain.exact))


def _split(I, K, dims, paths):
    n = len(paths)
    rows = np.arange(n)
    I2 = np.repeat(I, 2, axis=0)
    K2 = np.repeat(K, 2, axis=0)
    I2[2 * rows, dims] = 2 * I[rows, dims]
    I2[2 * rows + 1, dims] = 2 * I[rows, dims] + 1
    K2[2 * rows, dims] += 1
    K2[2 * rows + 1, dims] += 1
    new_paths = []
    for p, d in zip(paths, dims):
        new_paths.append(f"{p}{d}0")
        new_paths.append(f"{p}{d}1")
    return I2, K2, new_paths
