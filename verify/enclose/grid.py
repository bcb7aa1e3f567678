"""Box bounds for one head whose anchors form a product grid with separable logits ([MAP]).

If keys j = (k_1..k_D) have logits lam + sum_d (alpha_d(k_d) + gamma_d(k_d) x_d) and
constant values, the anchors' softmax is exactly a product of D one-dimensional
softmaxes.  Per box we bound each 1-D softmax (logit-gap form), keep a window of W_d
cells per dimension plus one "outside" slot carrying the leaked mass, and bound
sum_k prod_d p_d(k_d) v_k by contracting one dimension at a time with the knapsack
LP dual (sound: each contraction bounds every fixed prefix).  Other keys (shifted
copies of the grid, the self token) enter as a mixture weight a <= rho with
rho = sum_copies e^{-mu} + sum_extras e^{logit_e - logit_{k*}}.  The grid claim comes
from construction metadata and is verified here exactly before use.  The centred form
(``centred_bounds``) differentiates the same product: one 1-D softmax at a time, the other
dimensions contracted as above (``_readout_derivatives``).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import interval as iv
from .affine import AffineBounder, combine_outputs, dependence, error_from_outputs, target_slopes
from .defined import defined_targets
from .linearize import UnsupportedNetwork, affine_form, frac_interval
from .softmax import exp_down, exp_up, head_output_bounds, knapsack_upper, sum_down, sum_up, weight_bounds


def verify_structure(head, shape, main, copies):
    """Exact check of the grid claim for one AffineHead; returns its separable parts.

    Raises UnsupportedNetwork if the claimed keys are not a product grid with separable
    logits and constant values, or a copy is not the grid shifted by a constant.
    """
    c, G, e, F = head.c, head.G, head.e, head.F
    D = len(shape)
    N = math.prod(shape)
    P = len(c)
    if any(g < 1 for g in shape) or not 0 <= main <= P - N or (G and len(G[0]) != D):
        raise UnsupportedNetwork("grid claim does not fit the keys")
    strides = [math.prod(shape[d + 1:]) for d in range(D)]
    lam = c[main]
    alpha = [[c[main + k * strides[d]] - lam for k in range(shape[d])] for d in range(D)]
    gamma = [[G[main + k * strides[d]][d] for k in range(shape[d])] for d in range(D)]
    zero = Fraction(0)
    for i in range(N):
        j = main + i
        ks = [(i // strides[d]) % shape[d] for d in range(D)]
        if any(G[j][d] != gamma[d][ks[d]] for d in range(D)):
            raise UnsupportedNetwork("grid logits are not separable (slopes)")
        if c[j] != lam + sum(alpha[d][ks[d]] for d in range(D)):
            raise UnsupportedNetwork("grid logits are not separable (offsets)")
        if any(v != zero for v in F[j]):
            raise UnsupportedNetwork("grid values depend on the input")
    used = set(range(main, main + N))
    cps = []
    for start, mu in copies:
        mu = Fraction(mu)
        if not 0 <= start <= P - N or used & set(range(start, start + N)):
            raise UnsupportedNetwork("grid copy overlaps or is out of range")
        for i in range(N):
            if G[start + i] != G[main + i] or c[start + i] != c[main + i] - mu or any(v != zero for v in F[start + i]):
                raise UnsupportedNetwork("grid copy is not the grid shifted by a constant")
        used |= set(range(start, start + N))
        cps.append((mu, [e[start + i] for i in range(N)]))
    extras = [j for j in range(P) if j not in used]
    return {"lam": lam, "alpha": alpha, "gamma": gamma, "values": [e[main + i] for i in range(N)],
            "copies": cps, "extras": [(c[j] - lam, G[j], e[j], F[j]) for j in extras]}


def _claim_for(head, claims, first):
    """The claim (and its verified parts) that holds for this readout's head, trying ``first`` first.

    The metadata may carry one claim per query row while a row has several readouts (d_o > 1):
    every readout of a row shares the row's logits, so the row's claim verifies for each of them.
    Each candidate is verified exactly; a claim that does not verify is never used.
    """
    order = [first] + [i for i in range(len(claims)) if i != first]
    why = None
    for i in order:
        claim = claims[i]
        try:
            shape = tuple(int(g) for g in claim["shape"])
            return claim, verify_structure(head, shape, int(claim["main"]),
                                           [(int(s), m) for s, m in claim["copies"]])
        except UnsupportedNetwork as e:
            why = e
    raise UnsupportedNetwork(f"grid path: no grid claim verifies for a readout ({why})")


def _enc(values):
    lo, hi = frac_interval(values)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def _float_down(q: Fraction) -> float:
    return float(frac_interval([q])[0][0])


def _float_up(q: Fraction) -> float:
    return float(frac_interval([q])[1][0])


def choose_windows(st, domain, tol=1e-13):
    """Window size per dimension so that the sampled leaked mass stays below tol (heuristic only)."""
    out = []
    for d, (a, b) in enumerate(domain):
        al = np.array([float(v) for v in st["alpha"][d]])
        ga = np.array([float(v) for v in st["gamma"][d]])
        Gd = len(al)
        xs = np.linspace(float(a), float(b), 8 * Gd + 1)
        s = al[None, :] + ga[None, :] * xs[:, None]
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        ks = np.argmax(p, axis=1)
        W = 1
        while W < Gd:
            start = np.clip(ks - W // 2, 0, Gd - W)
            idx = start[:, None] + np.arange(W)[None, :]
            inside = np.take_along_axis(p, idx, axis=1).sum(axis=1)
            if np.all(1.0 - inside < tol):
                break
            W += 1
        out.append(min(Gd, W + 2))
    return out


# Boxes per pass of the grid path: each pass holds two (boxes, prod_d (W_d + 1)) value tables and
# the contraction's temporaries (about 15 arrays of that size), so a pass is cut to at most this
# many table entries per table: 8 MiB of float64 on the CPU (at D = 6, G = 4: 67 boxes, about
# 130 MB in all), 128 MiB on a GPU.  Every bound is per box, so the cut changes no number.
TABLE_ELEMENTS = 1 << 20
TABLE_ELEMENTS_GPU = 1 << 24


def window_start(kstar, W, Gd):
    """First cell of the window of W cells around k* (the checker uses the same formula)."""
    return np.clip(kstar - W // 2, 0, Gd - W)


class GridBounder:
    """Bounds per box for constructions whose metadata claims a product grid (verified exactly)."""

    def __init__(self, construction, xp=np, windows=None):
        self.xp = xp
        self.construction = construction
        self.inputs = construction.inputs
        self.targets = defined_targets(construction)   # guarded where proved defined on the domain
        meta = list(dict(construction.meta)["grid"])
        forms = affine_form(construction.network)
        self.depends = dependence(forms, construction.target, self.inputs)
        if not meta or any(len(h) != 1 for h in forms):
            raise UnsupportedNetwork("grid path: one head per readout and one claim per readout")
        self.parts = []
        self.evidence = {"bounder": "grid", "grid": []}
        for r, (head,) in enumerate(forms):
            claim, st = _claim_for(head, meta, r * len(meta) // len(forms))
            shape = tuple(int(g) for g in claim["shape"])
            W = list(windows) if windows is not None else choose_windows(st, construction.domain)
            W = [max(1, min(int(w), g)) for w, g in zip(W, shape)]
            self.parts.append(self._prepare(st, shape, W))
            self.evidence["grid"].append({"shape": list(shape), "main": int(claim["main"]),
                                          "copies": [[int(s), str(Fraction(m))] for s, m in claim["copies"]],
                                          "window": W})

    def _prepare(self, st, shape, W):
        xp = self.xp
        D = len(shape)
        al = [tuple(xp.asarray(v) for v in _enc(st["alpha"][d])) for d in range(D)]
        ga = [tuple(xp.asarray(v) for v in _enc(st["gamma"][d])) for d in range(D)]
        vlo, vhi = _enc(st["values"])
        rho_const = 0.0
        olo, ohi = np.inf, -np.inf
        for mu, vals in st["copies"]:
            lo_m = _float_down(mu)
            rho_const = iv.up(rho_const + float(iv.up_n(np.exp(-lo_m), iv.EXP_ULPS)))
            olo = min(olo, _float_down(min(vals)))
            ohi = max(ohi, _float_up(max(vals)))
        ex = st["extras"]
        extras = None
        if ex:
            extras = ([_enc([x[0] for x in ex]), _enc([list(x[1]) for x in ex]),
                       _enc([x[2] for x in ex]), _enc([list(x[3]) for x in ex])])
            extras = [tuple(xp.asarray(a) for a in pair) for pair in extras]
        spans = []
        for d in range(D):
            glo, ghi = float(ga[d][0].min()), float(ga[d][1].max())
            lo, hi, fm = glo, ghi, 0.0
            if extras is not None:
                lo = min(lo, float(extras[1][0][:, d].min()))
                hi = max(hi, float(extras[1][1][:, d].max()))
                fm = max(float(abs(extras[3][0][:, d]).max()), float(abs(extras[3][1][:, d]).max()))
            spans.append((glo, ghi, iv.up(hi - lo), fm))
        return {"shape": shape, "W": W, "alpha": al, "gamma": ga, "spans": spans,
                "v": (xp.asarray(vlo.reshape(shape)), xp.asarray(vhi.reshape(shape))),
                "vmin": float(vlo.min()), "vmax": float(vhi.max()),
                "rho_const": rho_const, "other": (olo, ohi), "extras": extras}

    def _weights_1d(self, part, d, xl, xh, kstar):
        """Window weight bounds (N, W+1) with the outside slot last; and window starts."""
        xp = self.xp
        al, ga = part["alpha"][d], part["gamma"][d]
        Gd = part["shape"][d]
        W = part["W"][d]
        cs = (iv.down(al[0][None, :] - al[1][kstar][:, None], xp), iv.up(al[1][None, :] - al[0][kstar][:, None], xp))
        gs = (iv.down(ga[0][None, :] - ga[1][kstar][:, None], xp), iv.up(ga[1][None, :] - ga[0][kstar][:, None], xp))
        sl, sh = iv.add(cs, iv.mul(gs, (xl[:, None], xh[:, None]), xp), xp)
        l, u = weight_bounds(sl, sh, xp)
        with np.errstate(over="ignore"):
            s_lo = sum_down(exp_down(sl, xp), xp)  # Z_d(x) / e^{logit_d(k*)} >= s_lo on the box
        start = window_start(kstar, W, Gd)
        idx = start[:, None] + xp.arange(W)[None, :]
        lw = xp.take_along_axis(l, idx, axis=1)
        uw = xp.take_along_axis(u, idx, axis=1)
        cols = xp.arange(Gd)[None, :]
        mask = (cols < start[:, None]) | (cols >= start[:, None] + W)  # cells outside the window
        eta = xp.minimum(sum_up(xp.where(mask, u, 0.0), xp), 1.0)
        L = xp.concatenate([lw, xp.zeros((l.shape[0], 1))], axis=1)
        U = xp.concatenate([uw, eta[:, None]], axis=1)
        return L, U, idx, s_lo

    def _contract(self, T, Ls, Us):
        """Upper bound of sum_k prod_d p_d(k_d) T[k] over the per-dim weight boxes, contracting T's
        last len(Ls) axes from the last; an axis of T after the boxes' one and before those is
        kept (a bound for each of its indices)."""
        xp = self.xp
        N = T.shape[0]
        for d in range(len(Ls) - 1, -1, -1):
            w = T.shape[-1]
            pre = T.shape[1:-1]
            rows = T.reshape(-1, w)
            reps = int(np.prod(pre)) if pre else 1
            l = xp.repeat(Ls[d], reps, axis=0)
            u = xp.repeat(Us[d], reps, axis=0)
            T = knapsack_upper(l, u, rows, xp).reshape((N,) + tuple(pre))
        return T

    def _readout_bounds(self, part, xl, xh):
        p = self._readout_parts(part, xl, xh)
        return p["out"], p["ks"]

    def _readout_parts(self, part, xl, xh, kstars=None):
        """The readout's enclosure over the boxes ("out", (lo, hi)) and the pieces it is made of:
        the leaders "ks" (N, D) (the hints; the leader at the float box centre unless given), the
        1-D weight bounds "L", "U" and windows "idx" per dimension, the window's value enclosures
        "V" (lo, hi), the grid mixture's enclosure "M" and the other keys' weight bound "a" with
        their value range "other"."""
        xp = self.xp
        D = len(part["shape"])
        N = xl.shape[0]
        xm = 0.5 * (xl + xh)
        ks, Ls, Us, idxs = [], [], [], []
        zlo = xp.ones(N)
        for d in range(D):
            al, ga = part["alpha"][d], part["gamma"][d]
            if kstars is None:
                mid = 0.5 * (al[0] + al[1])[None, :] + xm[:, d, None] * (0.5 * (ga[0] + ga[1]))[None, :]
                k = xp.argmax(mid, axis=1)
            else:
                k = kstars[:, d]
            L, U, idx, s_lo = self._weights_1d(part, d, xl[:, d], xh[:, d], k)
            zlo = xp.minimum(iv.down(zlo * s_lo, xp), np.finfo(np.float64).max)  # overflow stays a true lower bound
            ks.append(k); Ls.append(L); Us.append(U); idxs.append(idx)
        shp = tuple(w + 1 for w in part["W"])
        # gather the window of values, with the outside slot set to the global extreme
        grid_idx = []
        for d in range(D):
            sh = [N] + [1] * D
            sh[d + 1] = part["W"][d]
            grid_idx.append(idxs[d].reshape(sh))
        vlo_w = part["v"][0][tuple(grid_idx)]
        vhi_w = part["v"][1][tuple(grid_idx)]
        win = (slice(None),) + tuple(slice(0, w) for w in part["W"])
        Thi = xp.full((N,) + shp, part["vmax"])
        Thi[win] = vhi_w
        Tlo = xp.full((N,) + shp, -part["vmin"])
        Tlo[win] = -vlo_w
        Mh = self._contract(Thi, Ls, Us)
        Ml = -self._contract(Tlo, Ls, Us)
        # mixture with the other keys (copies and extras): their mass relative to the grid's
        # is <= rho = sum e^{-mu} + sum_e e^{logit_e - logit_k*} / prod_d s_lo_d, so a <= rho/(1+rho)
        rho = xp.zeros(N)
        olo = xp.full(N, part["other"][0])
        ohi = xp.full(N, part["other"][1])
        if part["extras"] is not None:
            (c0, c1), (g0, g1), (e0, e1), (f0, f1) = part["extras"]
            sl = xp.broadcast_to(c0[None, :], (N, c0.shape[0]))
            sh = xp.broadcast_to(c1[None, :], (N, c0.shape[0]))
            acc = (sl, sh)
            for d in range(D):
                al, ga = part["alpha"][d], part["gamma"][d]
                acc = iv.sub(acc, (al[0][ks[d]][:, None], al[1][ks[d]][:, None]), xp)
                slope = (iv.down(g0[None, :, d] - ga[1][ks[d]][:, None], xp),
                         iv.up(g1[None, :, d] - ga[0][ks[d]][:, None], xp))
                acc = iv.add(acc, iv.mul(slope, (xl[:, d, None], xh[:, d, None]), xp), xp)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                rho = iv.up(sum_up(exp_up(acc[1], xp), xp) / xp.maximum(zlo, 0.0), xp)
            vacc = (xp.broadcast_to(e0[None, :], sl.shape), xp.broadcast_to(e1[None, :], sl.shape))
            for d in range(D):
                vacc = iv.add(vacc, iv.mul((f0[None, :, d], f1[None, :, d]), (xl[:, d, None], xh[:, d, None]), xp), xp)
            olo = xp.minimum(olo, vacc[0].min(axis=1))
            ohi = xp.maximum(ohi, vacc[1].max(axis=1))
        with np.errstate(over="ignore", invalid="ignore"):
            rho = iv.up(rho + part["rho_const"], xp)
            a = iv.up(rho / iv.down(1.0 + rho, xp), xp)
        a = xp.where(xp.isfinite(rho) & xp.isfinite(a), xp.minimum(a, 1.0), 1.0)
        with np.errstate(invalid="ignore", over="ignore"):
            # "<=" / ">=" so that a NaN end propagates instead of being taken as no gap
            up_gap = xp.where(ohi <= Mh, 0.0, iv.up(a * iv.up(ohi - Mh, xp), xp))
            dn_gap = xp.where(olo >= Ml, 0.0, iv.up(a * iv.up(Ml - olo, xp), xp))
            nhi = xp.where(a > 0, iv.up(Mh + up_gap, xp), Mh)
            nlo = xp.where(a > 0, iv.down(Ml - dn_gap, xp), Ml)
        return {"out": (nlo, nhi), "ks": xp.stack(ks, axis=1), "L": Ls, "U": Us, "idx": idxs,
                "V": (vlo_w, vhi_w), "M": (Ml, Mh), "a": a, "other": (olo, ohi)}

    def _readout_derivatives(self, part, pr):
        """Enclosures (lo, hi) (N,) of d_d N over the boxes, per input d, from the product form.

        With p_d dimension d's 1-D softmax and M_k the grid mixture over the other dimensions given
        k_d = k (so M = sum_k p_d(k) M_k, and M_k does not depend on x_d), d_d p_d(k) =
        p_d(k) (gamma_d(k) - P_d) with P_d = sum_k p_d(k) gamma_d(k).  As sum_k p_d(k) (gamma_d(k)
        - P_d) = 0, M_k may be replaced by D_k = M_k - M_k0 (k0 the leader's cell), and then,
        exactly, for any constants g and mu (sum_k p_d(k) = 1),
            d_d M = sum_k p_d(k) (gamma_d(k) - g)(D_k - mu) - (P_d - g)(S - mu),  S = sum_k p_d(k) D_k.
        D_k is enclosed by contracting the other dimensions over the value differences, so its
        ends move with x only as much as M_k - M_k0 does (not as M_k); g and mu are the midpoints
        of the enclosures of P_d and S, so the knapsack over dimension d's window sees a constant
        times a narrow interval per cell and the correction is a product of two half-widths.
        Nothing decouples one dimension's weights from another's, as a knapsack over the G^D
        joint weights would.  The window's outside slot (weight in [0, eta]) carries a convex
        combination of the outside cells' terms: gamma in the range of all cells, D_k within the
        values' spread.  The other keys (weight a, values O in "other") add d a (O - M) +
        a (d O - d M), with |d a| <= a s and |d O| <= max |F_d| + max |O| s, s the width of the
        range of every key's logit slope along x_d.
        """
        xp = self.xp
        D = len(part["shape"])
        vlo_w, vhi_w = pr["V"]
        Ml, Mh = pr["M"]
        a, (olo, ohi) = pr["a"], pr["other"]
        n = Ml.shape[0]
        shp = (n,) + tuple(w + 1 for w in part["W"])
        win = (slice(None),) + tuple(slice(0, w) for w in part["W"])
        spread = iv.up(part["vmax"] - part["vmin"])   # |v - v'| for any two values
        out = []
        with np.errstate(over="ignore", invalid="ignore"):
            for d in range(D):
                # D_k = M_k - M_k0 (k0 the leader's cell): the contraction of the value differences
                # along d, whose ends move with x only as much as M_k - M_k0 does
                r0 = (pr["ks"][:, d] - pr["idx"][d][:, 0]).reshape((n,) + (1,) * D)
                ref_lo = xp.take_along_axis(vlo_w, r0, axis=d + 1)
                ref_hi = xp.take_along_axis(vhi_w, r0, axis=d + 1)
                Dhi = xp.full(shp, spread)
                Dhi[win] = iv.up(vhi_w - ref_lo, xp)
                Dlo = xp.full(shp, spread)     # negated lower ends
                Dlo[win] = iv.up(ref_hi - vlo_w, xp)
                others = [e for e in range(D) if e != d]
                Lo, Uo = [pr["L"][e] for e in others], [pr["U"][e] for e in others]
                k_hi = self._contract(xp.moveaxis(Dhi, d + 1, 1), Lo, Uo)
                k_lo = -self._contract(xp.moveaxis(Dlo, d + 1, 1), Lo, Uo)
                L, U, idx = pr["L"][d], pr["U"][d], pr["idx"][d]
                ga = part["gamma"][d]
                glo_all, ghi_all, span, fmax = part["spans"][d]
                glo = xp.concatenate([ga[0][idx], xp.full((n, 1), glo_all)], axis=1)
                ghi = xp.concatenate([ga[1][idx], xp.full((n, 1), ghi_all)], axis=1)
                Pl, Ph = head_output_bounds(L, U, glo, ghi, xp)
                g = 0.5 * (Pl + Ph)
                Sl, Sh = head_output_bounds(L, U, k_lo, k_hi, xp)   # sum_k p_d(k) D_k = M - M_k0
                mu = 0.5 * (Sl + Sh)
                dg = (iv.down(glo - g[:, None], xp), iv.up(ghi - g[:, None], xp))
                ql, qh = iv.mul(dg, (iv.down(k_lo - mu[:, None], xp), iv.up(k_hi - mu[:, None], xp)), xp)
                sl, sh = head_output_bounds(L, U, ql, qh, xp)
                cl, ch = iv.mul((iv.down(Pl - g, xp), iv.up(Ph - g, xp)),
                                (iv.down(Sl - mu, xp), iv.up(Sh - mu, xp)), xp)
                dlo, dhi = iv.down(sl - ch, xp), iv.up(sh - cl, xp)
                # the other keys' share: a (s max|O - M| + max|F_d| + s (|olo| v |ohi|) + max|d M|)
                gap = xp.maximum(xp.maximum(iv.up(ohi - Ml, xp), iv.up(Mh - olo, xp)), 0.0)
                big_o = xp.maximum(xp.abs(olo), xp.abs(ohi))
                dm_abs = xp.maximum(xp.abs(dlo), xp.abs(dhi))
                rad = iv.up(iv.up(iv.up(span * gap, xp) + fmax, xp) + iv.up(span * big_o, xp), xp)
                rad = iv.up(a * iv.up(rad + dm_abs, xp), xp)
                rad = xp.where(a > 0, rad, 0.0)
                out.append((iv.down(dlo - rad, xp), iv.up(dhi + rad, xp)))
        return out

    def _centred_pass(self, xl, xh):
        """``centred_bounds`` on at most one pass of boxes."""
        xp = self.xp
        cl, ch, r = iv.centre_box(xl, xh, xp)
        outs, outs_c, dN, hints = [], [], [], []
        for part in self.parts:
            pr = self._readout_parts(part, xl, xh)
            outs.append(pr["out"])
            hints.append(pr["ks"])
            dN.append(self._readout_derivatives(part, pr))
            del pr
            outs_c.append(self._readout_parts(part, cl, ch, hints[-1])["out"])
        plain = error_from_outputs(outs, self.targets, self.inputs, xl, xh, xp, each=True)
        slopes = target_slopes(dN, self.targets, self.inputs, xl, xh, xp)
        Ec = combine_outputs(error_from_outputs(outs_c, self.targets, self.inputs, cl, ch, xp, each=True), xp)
        return plain, iv.mean_value_bound(Ec, slopes, r, xp), slopes, xp.concatenate(hints, axis=1)

    def centred_bounds(self, xl, xh):
        """The plain bounds per output (N, R), the centred bound C (N,), the slopes (N, D) and the
        grid hints (N, R*D) of each box: C = E_c + sum_i slope_i r_i with E_c the grid bound at
        the box centre (same hints) and slope_i >= sup_B |d_i (N_o - f_o)| from
        ``_readout_derivatives`` and the target's interval derivative."""
        return self._in_passes(self._centred_pass, xl, xh, min(self.boxes_per_pass(p) for p in self.parts))

    def centred_parts(self, xl, xh):
        """(plain per output, C, slopes) as ``centred_bounds``, without the hints."""
        return self.centred_bounds(xl, xh)[:3]

    @property
    def point_bounder(self):
        """The general path, used for refutation witnesses: at a point it is tight on both sides
        (the grid path bounds the other keys' weight from above only)."""
        if getattr(self, "_point", None) is None:
            self._point = AffineBounder(self.construction, self.xp)
        return self._point

    def boxes_per_pass(self, part) -> int:
        """Boxes bounded at once for ``part``: its tables stay within TABLE_ELEMENTS entries each."""
        gpu = getattr(self.xp, "__name__", "") == "cupy"
        cells = math.prod(w + 1 for w in part["W"])
        extras = 0 if part["extras"] is None else int(part["extras"][0][0].shape[0])
        return max(1, (TABLE_ELEMENTS_GPU if gpu else TABLE_ELEMENTS) // max(cells, extras, 1))

    def _in_passes(self, fn, xl, xh, step):
        """fn(xl, xh) (arrays, or nested tuples of arrays, per box) over at most ``step`` boxes at a
        time, concatenated: every bound is per box, so the same floats whatever the cut."""
        n = xl.shape[0]
        if n <= step:
            return fn(xl, xh)
        pieces = [fn(xl[s:s + step], xh[s:s + step]) for s in range(0, n, step)]

        def join(parts):
            if isinstance(parts[0], tuple):
                return tuple(join([p[i] for p in parts]) for i in range(len(parts[0])))
            return self.xp.concatenate(parts)
        return join(pieces)

    def output_bounds(self, xl, xh):
        outs, hints = [], []
        for part in self.parts:
            o, k = self._in_passes(lambda a, b, part=part: self._readout_bounds(part, a, b), xl, xh,
                                   self.boxes_per_pass(part))
            outs.append(o)
            hints.append(k)
        return outs, hints

    def error_bounds(self, xl, xh, each: bool = False):
        """Proved sup |N - f| per box (inf where anything is non-finite) and hints (N, R*D);
        with ``each`` the bounds per output (N, R)."""
        outs, hints = self.output_bounds(xl, xh)
        return error_from_outputs(outs, self.targets, self.inputs, xl, xh, self.xp, each), \
            self.xp.concatenate(hints, axis=1)


def pick_bounder(construction, xp=np):
    """The grid bounder when the construction claims a grid and the claim verifies exactly, else
    the general affine one (which writes no grid evidence: its ``evidence`` is empty)."""
    if dict(getattr(construction, "meta", ())).get("grid") is not None:
        try:
            return GridBounder(construction, xp)
        except UnsupportedNetwork:
            pass   # the grid path does not apply: the general path bounds the same network
    return AffineBounder(construction, xp)
