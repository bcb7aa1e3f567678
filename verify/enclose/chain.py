"""The chain of terms of a certificate: |f - g| and |g - network| over the same boxes.

For constructions that pass through an intermediate function g (relu-net: the
piecewise-linear interpolant), this bounds both terms on every certified box, so a
certificate can show where its error comes from.  The certified claim itself is the
direct bound of |f - network|; these terms are reported (and re-derived by the checker).
"""
from __future__ import annotations

import numpy as np

from . import interval as iv
from .target import interval_eval


def chain_terms(construction, bounder, domain, leaves, xp=np, batch=8192) -> list:
    """Per chain entry: (label, tree, max box bound of |f - g|, max box bound of |g - N|)."""
    out = []
    for label, tree in construction.chain:
        t1 = t2 = 0.0
        for s in range(0, len(leaves), batch):
            part = leaves[s:s + batch]
            I = xp.asarray(np.array([l.i for l in part], dtype=np.int64))
            K = xp.asarray(np.array([l.k for l in part], dtype=np.int64))
            xl, xh = domain.enclose(I, K)
            box = {name: (xl[:, i], xh[:, i]) for i, name in enumerate(construction.inputs)}
            (nlo, nhi), = bounder.output_bounds(xl, xh)[0][:1]
            flo, fhi = interval_eval(construction.target[0], box, xp)
            glo, ghi = interval_eval(tree, box, xp)
            with np.errstate(over="ignore", invalid="ignore"):
                e1 = xp.maximum(iv.up(fhi - glo, xp), iv.up(ghi - flo, xp))
                e2 = xp.maximum(iv.up(ghi - nlo, xp), iv.up(nhi - glo, xp))
            e1 = xp.where(xp.isfinite(e1), e1, xp.inf)
            e2 = xp.where(xp.isfinite(e2), e2, xp.inf)
            t1, t2 = max(t1, float(xp.max(e1))), max(t2, float(xp.max(e2)))
        out.append((label, tree, t1, t2))
    return out
