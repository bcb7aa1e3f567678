"""Work units of the branch and bound: bound one batch of boxes given by their dyadic indices.

A unit is a pure function of the job (construction, backend) and the box indices, so
units may run anywhere (this process, a process pool, a Dask cluster) and their
results merge in box order into the same certificate.
"""
from __future__ import annotations

import pickle
import uuid

import numpy as np

from ..enclose.bounder import make_bounder
from ..forward import float_weights
from .paving import Domain
from .sampling import observed_at_centres

_PREPARED: dict = {}   # per process: job token -> (xp, domain, bounder, weights)


def backend_module(name: str):
    """The array module for a backend name ("numpy" or "cupy")."""
    if name == "numpy":
        return np
    if name == "cupy":
        import cupy
        return cupy
    raise ValueError(f"unknown array backend {name!r}")


def backend_name(xp) -> str:
    return "cupy" if getattr(xp, "__name__", "") == "cupy" else "numpy"


class Job:
    """What every unit needs; pickles as (construction, backend) and is prepared once per process."""

    def __init__(self, construction, backend: str = "numpy", enclosure: str = "plain", accept=None):
        self.construction = construction
        self.backend = backend
        self.enclosure = enclosure   # "plain" or "centred" (verify.enclose.bounder)
        self.accept = accept         # the search's acceptance level (where the centred bound is tried)
        self.token = uuid.uuid4().hex
        self._prepared = None
        self._blob = None
        self._shared = False   # True in a worker: prepared data is cached per process by token
        self.each = False      # evaluate_batch returns bounds per output (N, R), for the split choice
        self.bound = True      # evaluate_batch bounds the boxes
        self.observe = True    # evaluate_batch samples the float error at the box centres

    def variant(self, *, each: bool = False, bound: bool = True, observe: bool = True) -> "Job":
        """The same job (same token, so the same prepared bounder per process) whose units return
        bounds per output (``each``), or skip the bounds or the float sample at the centres."""
        # a plain attribute copy: copy.copy would go through __getstate__/__setstate__, i.e. pickle and
        # unpickle the construction and prepare the bounder a second time in this process (at 4 096
        # anchors: minutes of exact affine forms, and a second copy of every table in memory)
        twin = Job.__new__(Job)
        twin.__dict__.update(self.__dict__)
        twin.each, twin.bound, twin.observe = each, bound, observe
        twin._origin = getattr(self, "_origin", self)   # pickles the construction once for all variants
        return twin

    def __getstate__(self):
        # the construction is serialised once per job, not once per unit (executors pickle every submit)
        src = getattr(self, "_origin", self)
        if getattr(src, "_blob", None) is None:
            src._blob = pickle.dumps(self.construction, protocol=pickle.HIGHEST_PROTOCOL)
        self._blob = src._blob
        return {"blob": self._blob, "backend": self.backend, "token": self.token,
                "modes": (self.each, self.bound, self.observe), "enclosure": (self.enclosure, self.accept)}

    def __setstate__(self, state):
        self.backend, self.token, self._blob = state["backend"], state["token"], state["blob"]
        self.each, self.bound, self.observe = state.get("modes", (False, True, True))
        self.enclosure, self.accept = state.get("enclosure", ("plain", None))
        self._prepared = None
        self._shared = True
        hit = _PREPARED.get(self.token)
        # our own bytes from the process that created the job (never data read from a file)
        self.construction = hit[4] if hit is not None else pickle.loads(self._blob)

    def prepared(self):
        """(xp, domain, bounder, float weights), built on first use in this process."""
        origin = getattr(self, "_origin", None)   # a variant in the process that made it (not pickled)
        if self._prepared is None and origin is not None and origin is not self:
            self._prepared = origin.prepared()
        if self._prepared is None:
            hit = _PREPARED.get(self.token) if self._shared else None
            if hit is None:
                xp = backend_module(self.backend)
                c = self.construction
                hit = (xp, Domain(c.domain, xp), make_bounder(c, xp, self.enclosure, self.accept), float_weights(c.network, xp), c)
                if self._shared:
                    if len(_PREPARED) > 4:
                        _PREPARED.clear()
                    _PREPARED[self.token] = hit
            self._prepared = hit[:4]
        return self._prepared


def host(a):
    """A backend array as a host NumPy array (CuPy's .get(); NumPy as is)."""
    return np.asarray(a.get() if hasattr(a, "get") else a)


# On the CPU a unit is bounded a chunk of boxes at a time, about this many (box, key) pairs,
# so the temporaries stay in cache: at p = 1001 this makes a whole certify 3.5x faster than one
# 8192-box pass.  Every bound is per box, so the chunking changes no number.
CPU_CHUNK_ELEMENTS = 1 << 16


# On a GPU a unit is bounded whole unless its (box, key, input) arrays pass this many elements
# (the affine and centred bounds hold a few (boxes, keys, D) intervals: at 4 096 anchors and
# D = 6 a 32 768-box unit would hold 6.4 GB per array); then about this many at a time.
GPU_CHUNK_ELEMENTS = 1 << 27


def _keys(construction) -> int:
    return max(1, max(len(layer.key_rows) for layer in construction.network.layers))


def boxes_per_pass(construction, xp) -> int:
    """Boxes bounded at once by ``evaluate_batch`` (and by whoever bounds boxes the same way):
    on the CPU about CPU_CHUNK_ELEMENTS (box, key) pairs, at least 64 boxes; on a GPU about
    GPU_CHUNK_ELEMENTS (box, key, input) triples, at least 1024 boxes.  Every bound is per box,
    so the cut changes no number; it keeps memory flat in the anchor count."""
    keys = _keys(construction)
    if xp is np:
        return max(64, CPU_CHUNK_ELEMENTS // keys)
    return max(1024, GPU_CHUNK_ELEMENTS // (keys * (len(construction.domain) + 1)))


def evaluate_batch(job: Job, I, K):
    """Proved bounds (N,) (per output (N, R) for an ``each`` job), k* hints (N, H), and the
    largest float error at a box centre with its point (-inf and None when the job does not
    observe; bounds (N, 0) and hints (N, 0) when it does not bound).

    I and K are host int64 arrays (N, D); results are host arrays, so they pickle.
    """
    xp, domain, bounder, weights = job.prepared()
    n = I.shape[0]
    step = max(1, boxes_per_pass(job.construction, xp))
    bs, hs, best = [], [], None
    for s in range(0, n, step):
        Id, Kd = xp.asarray(I[s:s + step]), xp.asarray(K[s:s + step])
        xl, xh = domain.enclose(Id, Kd)
        if job.bound:
            b, h = bounder.error_bounds(xl, xh, each=True) if job.each else bounder.error_bounds(xl, xh)
            bs.append(host(b).astype(np.float64))
            hs.append(host(h).astype(np.int64))
        if job.observe:
            o, xm = observed_at_centres(job.construction, weights, xl, xh, xp)
            j = int(xp.argmax(o))
            top = host(xp.concatenate([o[j:j + 1], xm[j]]))   # one transfer for the observed point
            # keep what one argmax over the whole unit would pick: the first largest, or the first NaN
            if best is None or (not np.isnan(best[0]) and not top[0] <= best[0]):
                best = top
    if not job.bound:
        bs, hs = [np.zeros((n, 0))], [np.zeros((n, 0), dtype=np.int64)]
    if best is None:
        return np.concatenate(bs), np.concatenate(hs), float("-inf"), None
    return (np.concatenate(bs), np.concatenate(hs), float(best[0]), [float(v) for v in best[1:]])


def device_batch(construction, elements: int = 1 << 27) -> int:
    """Boxes per work unit on a GPU: about ``elements`` (box, key) pairs, so temporaries fit in memory."""
    return int(max(1024, min(1 << 17, elements // _keys(construction))))
