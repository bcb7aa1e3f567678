"""Box bounds for one head whose anchors form a product grid with separable logits ([MAP]).

If keys j = (k_1..k_D) have logits lam + sum_d (alpha_d(k_d) + gamma_d(k_d) x_d) and
constant values, the anchors' softmax is exactly a product of D one-dimensional
softmaxes.  Per box we bound each 1-D softmax (logit-gap form), keep a window of W_d
cells per dimension plus one "outside" slot carrying the leaked mass, and bound
sum_k prod_d p_d(k_d) v_k by contracting one dimension at a time with the knapsack
LP dual (sound: each contraction bounds every fixed prefix).  Other keys (shifted
copies of the grid, the self token) enter as a mixture weight a <= rho with
rho = sum_copies e^{-mu} + sum_extras e^{logit_e - logit_{k*}}.  The grid claim comes
from construction metadata and is verified here exactly before use.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import interval as iv
from .affine import AffineBounder, dependence, error_from_outputs
from .defined import defined_targets
from .linearize import UnsupportedNetwork, affine_form, frac_interval
from .softmax import exp_down, exp_up, knapsack_upper, sum_down, sum_up, weight_bounds


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
        return {"shape": shape, "W": W, "alpha": al, "gamma": ga,
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
        """Upper bound of sum_k prod_d p_d(k_d) T[k] over the per-dim weight boxes."""
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
        xp = self.xp
        D = len(part["shape"])
        N = xl.shape[0]
        xm = 0.5 * (xl + xh)
        ks, Ls, Us, idxs = [], [], [], []
        zlo = xp.ones(N)
        for d in range(D):
            al, ga = part["alpha"][d], part["gamma"][d]
            mid = 0.5 * (al[0] + al[1])[None, :] + xm[:, d, None] * (0.5 * (ga[0] + ga[1]))[None, :]
            k = xp.argmax(mid, axis=1)
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
        return (nlo, nhi), xp.stack(ks, axis=1)

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

    def output_bounds(self, xl, xh):
        xp = self.xp
        n = xl.shape[0]
        outs, hints = [], []
        for part in self.parts:
            step = self.boxes_per_pass(part)
            if n <= step:
                o, k = self._readout_bounds(part, xl, xh)
            else:   # per box: the same floats whatever the cut
                pieces = [self._readout_bounds(part, xl[s:s + step], xh[s:s + step]) for s in range(0, n, step)]
                o = (xp.concatenate([p[0][0] for p in pieces]), xp.concatenate([p[0][1] for p in pieces]))
                k = xp.concatenate([p[1] for p in pieces])
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
