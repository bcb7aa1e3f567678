"""Proved upper bounds of sup |network - target| on each of many boxes at once."""
from __future__ import annotations

import numpy as np

from . import interval as iv
from .linearize import affine_form, frac_interval
from .softmax import head_output_bounds, weight_bounds
from .defined import defined_targets
from .target import interval_eval


class AffineBounder:
    """Box bounds for a one-layer network whose logits and values are affine in x.

    Coefficients are exact rationals held as enclosing float intervals.  Each box's
    logits are shifted by the logit of an anchor ``k*`` (the leader at the box centre)
    so that differences stay small; ``k*`` is returned as a hint for the checker.
    """

    def __init__(self, construction, xp=np):
        self.xp = xp
        self.construction = construction
        self.inputs = construction.inputs
        self.targets = defined_targets(construction)   # guarded where proved defined on the domain
        self.heads = []
        forms = affine_form(construction.network)
        self.depends = dependence(forms, construction.target, self.inputs)
        for heads in forms:
            per = []
            for h in heads:
                enc = [frac_interval(list(h.c)), frac_interval([list(r) for r in h.G]),
                       frac_interval(list(h.e)), frac_interval([list(r) for r in h.F])]
                c, G, e, F = (tuple(xp.asarray(v) for v in pair) for pair in enc)
                per.append((c, G, e, F, all(x == 0 for r in h.F for x in r), self._gap_table(c, G)))
            self.heads.append(per)

    def _gaps(self, c, G, rows):
        """Enclosures of c_k - c_j and G_k - G_j for the shifting anchors j in ``rows``: (len(rows), p[, D])."""
        xp = self.xp
        return ((iv.down(c[0][None, :] - c[1][rows][:, None], xp), iv.up(c[1][None, :] - c[0][rows][:, None], xp)),
                (iv.down(G[0][None, :, :] - G[1][rows][:, None, :], xp),
                 iv.up(G[1][None, :, :] - G[0][rows][:, None, :], xp)))

    def _gap_table(self, c, G, limit=1 << 22):
        """The gaps for every shifting anchor, or None when p^2 (D+1) is large.

        Each box then gathers its row k* instead of redoing the subtractions and roundings;
        the floats are the same ones, so bounds are bit-identical.
        """
        p, D = c[0].shape[0], G[0].shape[-1]
        return None if p * p * (D + 1) > limit else self._gaps(c, G, self.xp.arange(p))

    def _affine(self, c, G, xl, xh):
        """Interval of c + G x over boxes: (N, p) from c (p,), G (p, D), boxes (N, D)."""
        xp = self.xp
        lo = xp.broadcast_to(c[0][None, :] if c[0].ndim == 1 else c[0], (xl.shape[0], c[0].shape[-1]))
        acc = (lo, xp.broadcast_to(c[1][None, :] if c[1].ndim == 1 else c[1], lo.shape))
        for i in range(xl.shape[1]):
            gl = G[0][..., i]
            gh = G[1][..., i]
            term = iv.mul((gl, gh), (xl[:, i, None], xh[:, i, None]), xp)
            acc = iv.add(acc, term, xp)
        return acc

    def output_bounds(self, xl, xh):
        """Per output: enclosure (lo, hi) of the network output, and the k* hints."""
        xp = self.xp
        xm = 0.5 * (xl + xh)
        outs, hints = [], []
        for per in self.heads:
            acc_lo = xp.zeros(xl.shape[0])
            acc_hi = xp.zeros(xl.shape[0])
            for (c, G, e, F, const_values, gaps) in per:
                mid_logit = 0.5 * (c[0] + c[1])[None, :] + xm @ (0.5 * (G[0] + G[1])).T
                kstar = xp.argmax(mid_logit, axis=1)
                if gaps is not None:
                    cs = (gaps[0][0][kstar], gaps[0][1][kstar])
                    Gs = (gaps[1][0][kstar], gaps[1][1][kstar])
                else:
                    cs, Gs = self._gaps(c, G, kstar)
                sl, sh = self._affine(cs, Gs, xl, xh)
                l, u = weight_bounds(sl, sh, xp)
                # values that do not depend on x are shared by all boxes (sorted once)
                vl, vh = (e[0], e[1]) if const_values else self._affine(e, F, xl, xh)
                lo, hi = head_output_bounds(l, u, vl, vh, xp)
                acc_lo = iv.down(acc_lo + lo, xp)
                acc_hi = iv.up(acc_hi + hi, xp)
                hints.append(kstar)
            outs.append((acc_lo, acc_hi))
        return outs, hints

    def error_bounds(self, xl, xh, each: bool = False):
        """Proved sup |N - f| per box (inf where anything is non-finite) and hints (N, H);
        with ``each`` the bounds per output (N, R), whose ``combine_outputs`` is the box bound."""
        outs, hints = self.output_bounds(xl, xh)
        return error_from_outputs(outs, self.targets, self.inputs, xl, xh, self.xp, each), \
            self.xp.stack(hints, axis=1)


def dependence(forms, targets, inputs):
    """(R, D) booleans: output o depends on input d at all (some logit or value slope of one of
    its heads, or its target, involves x_d).  Exact and conservative; steers the split choice only."""
    from constructions.expr import variables
    dep = np.zeros((len(forms), len(inputs)), dtype=bool)
    for o, heads in enumerate(forms):
        for h in heads:
            for d in range(len(inputs)):
                if any(r[d] != 0 for r in h.G) or any(r[d] != 0 for r in h.F):
                    dep[o, d] = True
        if o < len(targets):
            names = variables(targets[o])
            dep[o] |= np.array([name in names for name in inputs], dtype=bool)
    return dep


def combine_outputs(per_output, xp=np):
    """The box bound from per-output bounds (N, R): max(0, max_o), exactly as ``error_from_outputs``."""
    return xp.maximum(xp.max(per_output, axis=1), 0.0)


def output_errors(outs, targets, inputs, xl, xh, xp=np):
    """Proved sup |N_o - f_o| per box, one array per output; inf where anything is non-finite."""
    box = {name: (xl[:, i], xh[:, i]) for i, name in enumerate(inputs)}
    errs = []
    for (nlo, nhi), tree in zip(outs, targets):
        flo, fhi = interval_eval(tree, box, xp)
        with np.errstate(over="ignore", invalid="ignore"):
            e = xp.maximum(iv.up(nhi - flo, xp), iv.up(fhi - nlo, xp))
        ok = iv.finite((nlo, nhi), xp) & iv.finite((flo, fhi), xp) & xp.isfinite(e)
        errs.append(xp.where(ok, e, xp.inf))
    return errs


def error_from_outputs(outs, targets, inputs, xl, xh, xp=np, each: bool = False):
    """Proved sup |N - f| per box from output enclosures; inf where anything is non-finite.
    With ``each``: the (N, R) bounds per output instead."""
    errs = output_errors(outs, targets, inputs, xl, xh, xp)
    if each:
        return xp.stack(errs, axis=1)
    err = xp.zeros(xl.shape[0])
    for e in errs:
        err = xp.maximum(err, e)
    return err
