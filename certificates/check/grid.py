"""The checker's own grid path: verify a product-grid claim from the exact weights, bound boxes in Arb.

Independent of ``verify``: given the exact affine logits/values per key (fmpq), it
checks that the claimed keys form a product grid whose logits are exactly
lam + sum_d (alpha_d(k_d) + gamma_d(k_d) x_d) with constant values (and that each
claimed copy is the grid shifted by a constant mu), then bounds each box: per-dim
softmax enclosures in logit-gap form, a window of cells plus one outside slot carrying
the leaked mass, dimension-by-dimension knapsack contraction, and the mixture with
the remaining keys (weight <= sum e^{-mu} + sum_e e^{logit_e - logit_k*}).
"""
from __future__ import annotations

import math
import re

from flint import arb, fmpq

from .core import BoxError, affine_range as _affine_range, box_env, knapsack_upper as _knapsack_upper, target_error

_RAT = re.compile(r"-?[0-9]{1,2600}(/[0-9]{1,2600})?\Z")


class GridClaimError(BoxError):
    """The grid claim is malformed or false (the caller turns this into Invalid)."""


def _q(s) -> fmpq:
    if type(s) is not str or not _RAT.match(s):
        raise ValueError("not an exact rational string")
    p, _, d = s.partition("/")
    if d and int(d) == 0:
        raise ValueError("zero denominator")
    return fmpq(int(p), int(d) if d else 1)


# The memo tables of a GridPart grow with the boxes checked (at D = 6 and windows of 4 cells a box
# adds up to 2 (1 + 5 + ... + 5^5) = 7 812 contraction entries, a few hundred bytes each, so a
# certificate of thousands of boxes would hold gigabytes); past these sizes a table is emptied
# before the next box.  The memo only caches exact functions of their keys, so emptying it
# changes no bound, only how much is recomputed.
MEMO_ENTRIES = 1 << 19
W1D_ENTRIES = 1 << 16


class GridPart:
    """One readout's verified grid: separable 1-D logits, values, copies and extra keys."""

    def __init__(self, head, claim, D):
        c, G, e, F = head
        try:
            shape = [int(g) for g in claim["shape"]]
            main = int(claim["main"])
            window = [int(w) for w in claim["window"]]
            copies = [(int(s), _q(m)) for s, m in claim["copies"]]
        except (KeyError, TypeError, ValueError):
            raise GridClaimError("grid claim needs shape, main, copies, window") from None
        if len(shape) != D or len(window) != D or any(g < 1 for g in shape) \
                or any(not 1 <= w <= g for w, g in zip(window, shape)):
            raise GridClaimError("grid claim shape/window do not fit the domain")
        N = math.prod(shape)
        P = len(c)
        if not 0 <= main <= P - N:
            raise GridClaimError("grid claim keys out of range")
        strides = [math.prod(shape[d + 1:]) for d in range(D)]
        lam = c[main]
        alpha = [[c[main + k * strides[d]] - lam for k in range(shape[d])] for d in range(D)]
        gamma = [[G[main + k * strides[d]][d] for k in range(shape[d])] for d in range(D)]
        for i in range(N):
            j = main + i
            ks = [(i // strides[d]) % shape[d] for d in range(D)]
            if any(G[j][d] != gamma[d][ks[d]] for d in range(D)) or \
                    c[j] != lam + sum((alpha[d][ks[d]] for d in range(D)), fmpq(0)) or \
                    any(v != 0 for v in F[j]):
                raise GridClaimError(f"key {j} breaks the claimed separable grid")
        used = set(range(main, main + N))
        self.mus, olo, ohi = [], None, None
        for start, mu_s in copies:
            mu = mu_s
            if not 0 <= start <= P - N or used & set(range(start, start + N)):
                raise GridClaimError("grid copy overlaps or is out of range")
            for i in range(N):
                if G[start + i] != G[main + i] or c[start + i] != c[main + i] - mu or any(v != 0 for v in F[start + i]):
                    raise GridClaimError(f"key {start + i} is not the grid shifted by mu")
            used |= set(range(start, start + N))
            self.mus.append(mu)
            vals = [e[start + i] for i in range(N)]
            olo = min(vals) if olo is None else min(olo, min(vals))
            ohi = max(vals) if ohi is None else max(ohi, max(vals))
        self.extras = [(c[j] - lam, G[j], e[j], F[j]) for j in range(P) if j not in used]
        self.shape, self.window, self.strides, self.D = shape, window, strides, D
        self.alpha, self.gamma = alpha, gamma
        self.values = [arb(e[main + i]) for i in range(N)]
        self.vmin, self.vmax = arb(min(e[main:main + N])), arb(max(e[main:main + N]))
        self.copy_rho = sum((arb(-m).exp() for m in self.mus), arb(0))
        self.other = (olo, ohi)
        self._w1d, self._memo = {}, {}
        self._next_id = 0   # ids of 1-D parts in the memo keys: never reused, even after a table is emptied

    def _weights_1d(self, d, interval, ks):
        """(l, u, start) of dimension d's window (outside slot last) over x_d in ``interval``."""
        key = (d, interval[0].p, interval[0].q, interval[1].p, interval[1].q, ks)
        hit = self._w1d.get(key)
        if hit is not None:
            return hit
        Gd, W = self.shape[d], self.window[d]
        if not 0 <= ks < Gd:
            raise GridClaimError("hint names a cell that does not exist")
        a0, g0 = self.alpha[d][ks], self.gamma[d][ks]
        el, eh = [], []
        for k in range(Gd):
            lo, hi = _affine_range(self.alpha[d][k] - a0, [self.gamma[d][k] - g0], [interval])
            el.append(arb(lo).exp())
            eh.append(arb(hi).exp())
        S_lo, S_hi = sum(el, arb(0)), sum(eh, arb(0))
        start = min(max(ks - W // 2, 0), Gd - W)
        l, u = [], []
        for k in range(start, start + W):
            lk = (1 / (1 + (S_hi - eh[k]).upper() / el[k])).lower()
            t_lo = (S_lo - el[k]).lower()
            t_lo = t_lo if t_lo > 0 else arb(0)
            uk = (1 / (1 + t_lo / eh[k])).upper()
            l.append(lk if lk > 0 else arb(0))
            u.append(uk if uk < 1 else arb(1))
        out = sum((eh[k] for k in range(Gd) if not start <= k < start + W), arb(0))
        eta = (out / S_lo).upper()
        l.append(arb(0))
        u.append(eta if eta < 1 else arb(1))
        res = (l, u, start, self._next_id, S_lo)  # a small int id keeps the memo keys cheap
        self._next_id += 1
        self._w1d[key] = res
        return res

    def output(self, qbox, kstar):
        """Arb enclosure (lo, hi) of this readout's output over the exact box."""
        D = self.D
        if len(self._memo) > MEMO_ENTRIES:
            self._memo.clear()
        if len(self._w1d) > W1D_ENTRIES:
            self._w1d.clear()
        ws = [self._weights_1d(d, qbox[d], kstar[d]) for d in range(D)]
        Mh = self._contract(ws, (), True)
        Ml = -self._contract(ws, (), False)
        zlo = arb(1)
        for w in ws:  # Z_d(x) / e^{logit_d(k*)} >= S_lo_d on the box
            zlo = zlo * w[4]
        rho = arb(0)
        olo = None if self.other[0] is None else arb(self.other[0])
        ohi = None if self.other[1] is None else arb(self.other[1])
        for ce, ge, ee, fe in self.extras:
            off = ce - sum((self.alpha[d][kstar[d]] for d in range(D)), fmpq(0))
            slope = [ge[d] - self.gamma[d][kstar[d]] for d in range(D)]
            rho = rho + arb(_affine_range(off, slope, qbox)[1]).exp() / zlo.lower()
            vl, vh = _affine_range(ee, fe, qbox)
            olo = arb(vl) if olo is None else arb.min(olo, arb(vl))
            ohi = arb(vh) if ohi is None else arb.max(ohi, arb(vh))
        if olo is None:
            return Ml, Mh
        rho = (rho + self.copy_rho).upper()
        a = (rho / (1 + rho)).upper()  # other keys' total weight: (C+E)/(C+E+Z) <= rho/(1+rho)
        a = a if a < 1 else arb(1)
        hi = Mh + a * arb.max(ohi - Mh, arb(0))
        lo = Ml - a * arb.max(Ml - olo, arb(0))
        return lo, hi

    def _contract(self, ws, prefix, upper):
        """Knapsack contraction of dims len(prefix).. given global cell indices ``prefix``
        (None = the outside slot); memoised, since boxes of a paving share their 1-D parts."""
        d = len(prefix)
        key = (upper, prefix, tuple(w[3] for w in ws[d:]))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        l, u, start = ws[d][:3]
        W = self.window[d]
        idx = [start + i for i in range(W)] + [None]
        if d == self.D - 1:
            vals = []
            for g in idx:
                full = prefix + (g,)
                if any(v is None for v in full):
                    vals.append(self.vmax if upper else -self.vmin)
                else:
                    flat = sum(full[e] * self.strides[e] for e in range(self.D))
                    vals.append(self.values[flat] if upper else -self.values[flat])
        elif any(v is None for v in prefix):
            vals = [self.vmax if upper else -self.vmin] * (W + 1)
        else:
            vals = [self._contract(ws, prefix + (g,), upper) for g in idx]
        res = _knapsack_upper(l, u, vals)
        self._memo[key] = res
        return res


class GridCheck:
    """All readouts' verified grid parts; ``box_bound`` re-derives one box's error bound."""

    def __init__(self, heads_all, claims, D):
        if not isinstance(claims, list) or len(claims) != len(heads_all):
            raise GridClaimError("one grid claim per readout is required")
        if any(len(per) != 1 for per in heads_all):
            raise GridClaimError("the grid path handles one head per readout")
        self.parts = [GridPart(per[0], claim, D) for per, claim in zip(heads_all, claims)]
        self.D = D
        self.n_hints = D * len(self.parts)

    def box_bound(self, box, targets, hints):
        """Arb upper bound of sup |N - f| over one exact box (Fractions)."""
        qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
        env = box_env(qbox)
        worst = arb(0)
        for r, (part, target) in enumerate(zip(self.parts, targets)):
            n_lo, n_hi = part.output(qbox, hints[r * self.D:(r + 1) * self.D])
            err = target_error(n_lo, n_hi, target, env)
            if err is None:
                raise GridClaimError("a box bound is not finite")
            worst = arb.max(worst, err).upper()
        return worst
