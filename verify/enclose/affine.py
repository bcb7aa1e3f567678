"""Proved upper bounds of sup |network - target| on each of many boxes at once."""
from __future__ import annotations

import numpy as np

from . import interval as iv
from .linearize import affine_form, frac_interval
from .softmax import head_output_bounds, weight_bounds
from .defined import defined_targets
from .gradient import interval_gradient
from .target import interval_eval


class AffineBounder:
    """Box bounds for a one-layer network whose logits and values are affine in x.

    Coefficients are exact rationals held as enclosing float intervals.  Each box's
    logits are shifted by the logit of an anchor ``k*`` (the leader at the box centre)
    so that differences stay small; ``k*`` is returned as a hint for the checker.

    ``centred_parts`` / ``centred_bounds`` give the centred (mean-value) bound of each box, which
    ``bounder.CentredBounder`` combines with this plain one.
    """

    def __init__(self, construction, xp=np):
        self.xp = xp
        self.construction = construction
        self.inputs = construction.inputs
        self.targets = defined_targets(construction)   # guarded where proved defined on the domain
        self.heads = []
        forms = affine_form(construction.network)
        # per output, per head: per input, whether some logit or value slope along x_i is
        # non-zero (else d_i of the head's output is exactly 0 and the centred form skips it),
        # and whether some value slope is (else F_i = 0 adds nothing); exact tests
        D = len(self.inputs)
        self._moves = [[(tuple(any(r[i] != 0 for r in h.G) or any(r[i] != 0 for r in h.F) for i in range(D)),
                         tuple(any(r[i] != 0 for r in h.F) for i in range(D))) for h in heads] for heads in forms]
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

    def _head_parts(self, xl, xh, kstars=None):
        """Per head, in hint order: ``(o, h, kstar, (l, u), (vl, vh), (lo, hi))`` over boxes (N, D).

        ``o``, ``h`` the output and head; ``kstar`` the shifting anchor (N,), the leader at the
        float box centre unless given (``kstars``: one array per (output, head), in the order
        of the hints); ``l, u`` the softmax weight bounds (N, p); ``vl, vh`` the value ranges,
        (N, p) or (p,) when the values do not depend on x; ``lo, hi`` the head-output
        enclosure (N,).  A generator, so that one head's (N, p) arrays are freed before the
        next head's: the plain bound and the centred one both consume it head by head.
        """
        xp = self.xp
        xm = 0.5 * (xl + xh)
        n = 0
        for o, per in enumerate(self.heads):
            for h, (c, G, e, F, const_values, gaps) in enumerate(per):
                if kstars is None:
                    mid_logit = 0.5 * (c[0] + c[1])[None, :] + xm @ (0.5 * (G[0] + G[1])).T
                    kstar = xp.argmax(mid_logit, axis=1)
                else:
                    kstar = kstars[n]
                n += 1
                if gaps is not None:
                    cs = (gaps[0][0][kstar], gaps[0][1][kstar])
                    Gs = (gaps[1][0][kstar], gaps[1][1][kstar])
                else:
                    cs, Gs = self._gaps(c, G, kstar)
                sl, sh = self._affine(cs, Gs, xl, xh)
                l, u = weight_bounds(sl, sh, xp)
                # values that do not depend on x are shared by all boxes (sorted once)
                vl, vh = (e[0], e[1]) if const_values else self._affine(e, F, xl, xh)
                yield o, h, kstar, (l, u), (vl, vh), head_output_bounds(l, u, vl, vh, xp)

    def _sum_heads(self, parts, n, on_head=None):
        """Per output: the enclosure (lo, hi) of the sum of its heads' outputs, and the hints.

        ``on_head(part)``, if given, sees each head's part (see ``_head_parts``) on the way.
        """
        xp = self.xp
        outs, hints = [(xp.zeros(n), xp.zeros(n)) for _ in self.heads], []
        for part in parts:
            o, _, kstar, _, _, (lo, hi) = part
            acc_lo, acc_hi = outs[o]
            outs[o] = (iv.down(acc_lo + lo, xp), iv.up(acc_hi + hi, xp))
            hints.append(kstar)
            if on_head is not None:
                on_head(part)
        return outs, hints

    def output_bounds(self, xl, xh):
        """Per output: enclosure (lo, hi) of the network output, and the k* hints."""
        return self._sum_heads(self._head_parts(xl, xh), xl.shape[0])

    def error_bounds(self, xl, xh, each: bool = False):
        """Proved sup |N - f| per box (inf where anything is non-finite) and hints (N, H);
        with ``each`` the bounds per output (N, R), whose ``combine_outputs`` is the box bound."""
        outs, hints = self.output_bounds(xl, xh)
        return error_from_outputs(outs, self.targets, self.inputs, xl, xh, self.xp, each), \
            self.xp.stack(hints, axis=1)

    def centred_parts(self, xl, xh):
        """The plain bounds per output (N, R), the centred bound C (N,) and the slopes (N, D).

        The centred (mean-value) form on a box B with centre c (the shared spec, issue 17):
        for every x in B and every output o,
        |e_o(x)| <= |e_o(c)| + sum_i |x_i - c_i| sup_B |d_i e_o|, so
        C = E_c + sum_i slope_i r_i bounds sup_B max_o |e_o| when slope_i >= sup_B |d_i e_o|
        for every o and E_c >= max_o |e_o(c)|.  On small boxes C is the error at the centre
        plus a term linear in the box's width, while the plain bound adds the widths of the
        ranges of N and f over the box.  C is inf where anything is non-finite.
        """
        plain, C, slopes, _ = self.centred_bounds(xl, xh)
        return plain, C, slopes

    def centred_bounds(self, xl, xh):
        """``centred_parts`` and the box's hints (N, H), which the centre's bound also uses."""
        xp = self.xp
        N, D = xl.shape
        dN = [[(xp.zeros(N), xp.zeros(N)) for _ in range(D)] for _ in self.heads]

        def on_head(part):
            o, h, _, lu, v, y = part
            self._head_slopes(dN[o], lu, v, y, self.heads[o][h], *self._moves[o][h])

        outs, hints = self._sum_heads(self._head_parts(xl, xh), N, on_head)
        plain = error_from_outputs(outs, self.targets, self.inputs, xl, xh, xp, each=True)
        slopes = target_slopes(dN, self.targets, self.inputs, xl, xh, xp)
        # E_c is the plain bound on the centre interval [cl, ch] with the box's hints; C is, up to
        # the enclosures' own rounding, at least the C* the checker computes at the exact centre
        # with the exact radii (``iv.centre_box``).
        cl, ch, r = iv.centre_box(xl, xh, xp)
        outs_c, _ = self._sum_heads(self._head_parts(cl, ch, hints), N)
        Ec = combine_outputs(error_from_outputs(outs_c, self.targets, self.inputs, cl, ch, xp, each=True), xp)
        return plain, iv.mean_value_bound(Ec, slopes, r, xp), slopes, xp.stack(hints, axis=1)

    def _head_slopes(self, dN, lu, v, Y, head, moves, fmoves):
        """Add one head's enclosure of d_i y (each input i) to ``dN`` (a list of intervals).

        Step 3 of the spec: with w the softmax weights, y the head output and
        P_i = sum_k w_k G_ki, the exact identity
            d_i y = sum_j w_j [F_ji + (V_j - y)(G_ji - P_i)]
        holds at every x.  Expanding around constants alpha and gamma_i (any numbers: sum w = 1)
            d_i y = sum_j w_j [F_ji + (V_j - alpha)(G_ji - gamma_i)] - (y - alpha)(P_i - gamma_i),
        so with alpha and gamma_i the midpoints of the enclosures Y of y and Pbar_i of P_i the
        first sum is a knapsack whose per-key values are (nearly) exact when the values do not
        move, and the second term is a product of two half-widths: the enclosure's width
        shrinks with the box instead of carrying the product of two wide intervals.  The
        shift by G_k*i cancels, so the unshifted slopes are used (values shared by all boxes).
        """
        xp = self.xp
        (l, u), (vl, vh), (Yl, Yh) = lu, v, Y
        _, G, _, F, _, _ = head
        with np.errstate(over="ignore", invalid="ignore"):
            dv = dy = None
            for i, moving in enumerate(moves):
                if not moving:
                    continue  # no logit or value of this head moves with x_i: d_i y = 0
                if dv is None:  # V_j - alpha over the box, and y - alpha  (alpha: a float, exact)
                    alpha = 0.5 * (Yl + Yh)
                    dv = (iv.down(vl - alpha[:, None], xp), iv.up(vh - alpha[:, None], xp))
                    dy = (iv.down(Yl - alpha, xp), iv.up(Yh - alpha, xp))
                gl, gh = G[0][:, i], G[1][:, i]
                Pl, Ph = head_output_bounds(l, u, gl, gh, xp)
                gamma = 0.5 * (Pl + Ph)
                dg = (iv.down(gl[None, :] - gamma[:, None], xp), iv.up(gh[None, :] - gamma[:, None], xp))
                ql, qh = iv.mul(dv, dg, xp)
                if fmoves[i]:   # else F_ji = 0 exactly for every key: nothing to add
                    ql = iv.down(F[0][None, :, i] + ql, xp)
                    qh = iv.up(F[1][None, :, i] + qh, xp)
                sl, sh = head_output_bounds(l, u, ql, qh, xp)
                cl, ch = iv.mul(dy, (iv.down(Pl - gamma, xp), iv.up(Ph - gamma, xp)), xp)
                dN[i] = iv.add(dN[i], (iv.down(sl - ch, xp), iv.up(sh - cl, xp)), xp)

def target_slopes(dN, targets, inputs, xl, xh, xp=np):
    """(N, D) upper bounds of sup_B |d_i e_o| over all outputs o (inf where non-finite), from the
    enclosures ``dN[o][i]`` of d_i N_o and the target's interval derivative (outputs without a
    target are skipped, as ``error_from_outputs`` does)."""
    N, D = xl.shape
    box = {name: (xl[:, i], xh[:, i]) for i, name in enumerate(inputs)}
    slopes = xp.zeros((N, D))
    with np.errstate(over="ignore", invalid="ignore"):
        for dNo, tree in zip(dN, targets):
            _, df = interval_gradient(tree, box, inputs, xp)
            for i in range(D):
                slopes[:, i] = xp.maximum(slopes[:, i], iv.slope_bound(iv.sub(dNo[i], df[i], xp), xp))
    return slopes


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
