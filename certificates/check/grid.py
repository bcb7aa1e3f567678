"""The checker's own grid path: verify a product-grid claim from the exact weights, bound boxes in Arb.

Independent of ``verify``: given the exact affine logits/values per key (fmpq), it
checks that the claimed keys form a product grid whose logits are exactly
lam + sum_d (alpha_d(k_d) + gamma_d(k_d) x_d) with constant values (and that each
claimed copy is the grid shifted by a constant mu), then bounds each box: per-dim
softmax enclosures in logit-gap form, a window of cells plus one outside slot carrying
the leaked mass, dimension-by-dimension knapsack contraction, and the mixture with
the remaining keys (weight <= sum e^{-mu} + sum_e e^{logit_e - logit_k*}).  A paving marked
"centred": "grid" has centred boxes bounded by E_c + sum_i slope_i r_i with the slopes
re-derived here from the same product form (``GridPart.derivatives``).
"""
from __future__ import annotations

import math
import re

from flint import arb, fmpq

from .core import (BoxError, affine_range as _affine_range, box_env, centred_total, confirm_slopes, interval_product,
                   knapsack_lower, knapsack_upper as _knapsack_upper, parse_slopes, require_finite, slope_bound,
                   target_error)

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
        # per dimension: every key's logit slope lies in [lo, hi] (a copy has the grid's), and no
        # extra's value slope exceeds fmax in size: what the other keys' share of d N needs
        self.spans = []
        for d in range(D):
            slopes = list(gamma[d]) + [x[1][d] for x in self.extras]
            fmax = max((abs(x[3][d]) for x in self.extras), default=fmpq(0))
            self.spans.append((min(gamma[d]), max(gamma[d]), max(slopes) - min(slopes), fmax))
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
        return self._parts(qbox, kstar)[0]

    def _parts(self, qbox, kstar):
        """((lo, hi) of the output, the 1-D weight parts, (Ml, Mh) of the grid mixture, and the
        other keys' weight bound a with their value range (olo, ohi); a None when there are none)."""
        D = self.D
        if len(self._memo) > MEMO_ENTRIES:
            self._memo.clear()
        if len(self._w1d) > W1D_ENTRIES:
            self._w1d.clear()
        ws = [self._weights_1d(d, qbox[d], kstar[d]) for d in range(D)]
        dims = tuple(range(D))
        Mh = self._contract(ws, dims, (), self._value_leaf(True), ("M", True))
        Ml = -self._contract(ws, dims, (), self._value_leaf(False), ("M", False))
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
            return (Ml, Mh), ws, (Ml, Mh), None, None
        rho = (rho + self.copy_rho).upper()
        a = (rho / (1 + rho)).upper()  # other keys' total weight: (C+E)/(C+E+Z) <= rho/(1+rho)
        a = a if a < 1 else arb(1)
        hi = Mh + a * arb.max(ohi - Mh, arb(0))
        lo = Ml - a * arb.max(Ml - olo, arb(0))
        return (lo, hi), ws, (Ml, Mh), a, (olo, ohi)

    def derivatives(self, qbox, kstar):
        """[(lo, hi) per input]: exact ends of enclosures of d_d N over the exact box.

        Dimension d's 1-D softmax p_d moves with x_d alone, d_d p_d(k) = p_d(k)(gamma_d(k) - P_d),
        P_d = sum_k p_d(k) gamma_d(k); with M_k the grid mixture over the other dimensions given
        k_d = k and k0 = k*_d, d_d M = sum_k p_d(k)(gamma_d(k) - P_d)(M_k - M_k0) (sum_k p_d(k)
        (gamma_d(k) - P_d) = 0), and for any constants g, mu
            d_d M = sum_k p_d(k)(gamma_d(k) - g)(D_k - mu) - (P_d - g)(S - mu),
        D_k = M_k - M_k0 (enclosed by contracting the other dimensions over the exact value
        differences), S = sum_k p_d(k) D_k.  P_d, S and the first sum are knapsacks over
        dimension d's window (its outside slot: gamma in the range of all cells, D_k within the
        values' spread); g, mu are the midpoints of the enclosures of P_d and S.  The other keys
        (weight <= a, values in [olo, ohi]) add d a (O - M) + a (d O - d M), |d a| <= a s_d,
        |d O| <= fmax_d + s_d max(|olo|, |ohi|), s_d the range of every key's logit slope.
        """
        (_, _), ws, (Ml, Mh), a, other = self._parts(qbox, kstar)
        spread = (self.vmax - self.vmin).upper()
        out = []
        for d in range(self.D):
            l, u, start = ws[d][:3]
            W = self.window[d]
            idx = [start + i for i in range(W)] + [None]
            k0 = kstar[d]
            others = tuple(e for e in range(self.D) if e != d)
            # D_k = M_k - M_k0; the outside slot's (k None) lies within +-spread
            dk_hi = [spread if g is None else
                     self._contract(ws, others, (), self._diff_leaf(d, g, k0, True, spread), ("D", True, d, g, k0))
                     for g in idx]
            dk_lo = [-spread if g is None else
                     -self._contract(ws, others, (), self._diff_leaf(d, g, k0, False, spread), ("D", False, d, g, k0))
                     for g in idx]
            gmin, gmax, span, fmax = self.spans[d]
            g_lo = [arb(self.gamma[d][g]) for g in idx[:-1]] + [arb(gmin)]
            g_hi = g_lo[:-1] + [arb(gmax)]
            p_lo, p_hi = knapsack_lower(l, u, g_lo), _knapsack_upper(l, u, g_hi)
            s_lo, s_hi = knapsack_lower(l, u, dk_lo), _knapsack_upper(l, u, dk_hi)
            if not all(x.is_finite() for x in (p_lo, p_hi, s_lo, s_hi)):
                raise BoxError("a derivative enclosure is not finite")
            gm, mu = ((p_lo + p_hi) / 2).mid(), ((s_lo + s_hi) / 2).mid()
            q_lo, q_hi = [], []
            for gl, gh, dl, dh in zip(g_lo, g_hi, dk_lo, dk_hi):
                lo, hi = interval_product((gl - gm).lower(), (gh - gm).upper(), (dl - mu).lower(), (dh - mu).upper())
                q_lo.append(lo)
                q_hi.append(hi)
            c_lo, c_hi = interval_product((p_lo - gm).lower(), (p_hi - gm).upper(), (s_lo - mu).lower(),
                                          (s_hi - mu).upper())
            lo = (knapsack_lower(l, u, q_lo) - c_hi).lower()
            hi = (_knapsack_upper(l, u, q_hi) - c_lo).upper()
            if a is not None:
                olo, ohi = other
                gap = arb.max(arb.max(ohi - Ml, Mh - olo), arb(0))
                big_o = arb.max(abs(olo), abs(ohi))
                rad = (a * (arb(span) * (gap + big_o) + arb(fmax) + arb.max(abs(lo), abs(hi)))).upper()
                lo, hi = (lo - rad).lower(), (hi + rad).upper()
            out.append((lo, hi))
        return out

    def _contract(self, ws, dims, prefix, leaf, tag):
        """Knapsack contraction over the dimensions ``dims`` (the last one first) of the values
        ``leaf(cells)`` gives for global cell indices of every dimension in ``dims``, given the
        indices ``prefix`` of the first len(prefix) of them.  A None index is the outside slot:
        ``leaf`` gives one value for every cell below it, which is then the contraction too (a
        knapsack over equal values is that value).  Memoised under ``tag``, since boxes of a
        paving share their 1-D parts."""
        n = len(prefix)
        if n == len(dims) or None in prefix:
            return leaf(prefix)
        key = (tag, prefix, tuple(ws[e][3] for e in dims[n:]))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        e = dims[n]
        l, u, start = ws[e][:3]
        idx = [start + i for i in range(self.window[e])] + [None]
        res = _knapsack_upper(l, u, [self._contract(ws, dims, prefix + (g,), leaf, tag) for g in idx])
        self._memo[key] = res
        return res

    def _flat(self, cells):
        return sum(k * s for k, s in zip(cells, self.strides))

    def _value_leaf(self, upper):
        """The grid's values (negated for the lower end), the extreme one for an outside slot."""
        values, out = self.values, (self.vmax if upper else -self.vmin)

        def leaf(cells):
            if None in cells:
                return out
            v = values[self._flat(cells)]
            return v if upper else -v
        return leaf

    def _diff_leaf(self, d, kd, k0, upper, spread):
        """Upper ends of v(k with k_d = kd) - v(k with k_d = k0) (of its negation for the lower
        end) for cells of the other dimensions; +-spread bounds it for an outside slot."""
        values = self.values

        def leaf(cells):
            if None in cells:
                return spread
            full = list(cells)
            full.insert(d, kd)
            a = values[self._flat(full)]
            full[d] = k0
            b = values[self._flat(full)]
            return (a - b).upper() if upper else (b - a).upper()
        return leaf


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

    def centred_box_bound(self, box, targets, hints, stored_slopes):
        """The checker's centred bound C* = E_c* + sum_i s*_i r_i of a box whose entry carries
        slopes and grid hints: s*_i >= max_o sup_B |d_i N_o - d_i f_o| from ``GridPart.derivatives``
        and the target's forward-mode derivative, E_c* the grid bound at the exact centre (same
        hints), r_i the exact half-widths.  A stored slope that undercuts s*_i is Invalid
        (core.confirm_slopes); BoxError when a slope is not finite."""
        qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
        stored = parse_slopes(stored_slopes, self.D)
        env = box_env(qbox)
        names = [f"x{i}" for i in range(self.D)]
        slopes = [arb(0)] * self.D
        for r, (part, target) in enumerate(zip(self.parts, targets)):
            dn = part.derivatives(qbox, hints[r * self.D:(r + 1) * self.D])
            _, df = target.bounds_and_gradient(env, names)
            for i, ((lo, hi), (flo, fhi)) in enumerate(zip(dn, df)):
                m = slope_bound((lo - fhi).lower(), (hi - flo).upper())
                slopes[i] = m if m > slopes[i] else slopes[i]
        require_finite(slopes)
        centre = [(lo + hi) / 2 for lo, hi in box]
        total = centred_total(self.box_bound([(x, x) for x in centre], targets, hints), slopes, qbox)
        confirm_slopes(stored, slopes, qbox, total)
        return total
