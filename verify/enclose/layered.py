"""Box bounds for layered networks: interval propagation through every layer, gap-form softmax.

Layer 1 sees the embedding, which is affine in x, so its queries, key differences
k_j - k_k* and values come from exact affine coefficients (no dependency loss on the
key side).  Later layers take the previous layer's output as intervals: the error and
the x-dependence of layer 1 enter layer 2's logits through interval products, which is
sound and makes the composition, not each layer, what is bounded.  Every softmax (heads,
and an optional final row-wise softmax) is bounded in the logit-gap form against a
leader k* chosen at the box centre, and every weighted sum by the knapsack LP dual.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import interval as iv
from .linearize import frac_interval
from .softmax import head_output_bounds, knapsack_upper, weight_bounds
from .target import interval_eval


def _fmat(A, B):
    """Exact product of two Fraction matrices (tuples of tuples)."""
    n, k, m = len(A), len(B), len(B[0])
    return [[sum((A[i][t] * B[t][j] for t in range(k) if A[i][t] and B[t][j]), Fraction(0))
             for j in range(m)] for i in range(n)]


def _enc(M, xp):
    lo, hi = frac_interval([list(r) for r in M])
    return xp.asarray(lo), xp.asarray(hi)


def _imatmul(Z, M, xp):
    """Interval (N, r, d) times interval matrix (d, e) -> (N, r, e), outward rounded."""
    lo = xp.zeros(Z[0].shape[:-1] + (M[0].shape[1],))
    acc = (lo, lo.copy())
    for d in range(M[0].shape[0]):
        if not (xp.any(M[0][d] != 0) or xp.any(M[1][d] != 0)):
            continue
        term = iv.mul((Z[0][..., d, None], Z[1][..., d, None]), (M[0][d], M[1][d]), xp)
        acc = iv.add(acc, term, xp)
    return acc


def _affine_iv(c, G, xl, xh, xp):
    """Interval of c + sum_i x_i G_i over boxes; c and G_i are enclosures of shape S -> (N,)+S."""
    N = xl.shape[0]
    shp = (N,) + c[0].shape
    acc = (xp.broadcast_to(c[0], shp), xp.broadcast_to(c[1], shp))
    ex = (slice(None),) + (None,) * c[0].ndim
    for i, g in enumerate(G):
        acc = iv.add(acc, iv.mul((xl[:, i][ex], xh[:, i][ex]), g, xp), xp)
    return acc


def _gather(a, idx, xp):
    """a (..., nk, d) enclosure half, idx (N, nq) -> (N, nq, d) rows a[idx]."""
    return a[idx]


def _dot_gaps(q, kd, xp):
    """sum_d q[N,nq,d] * kd[N,nq,nk,d] as an interval (N, nq, nk)."""
    lo = xp.zeros(kd[0].shape[:-1])
    acc = (lo, lo.copy())
    for d in range(kd[0].shape[-1]):
        term = iv.mul((q[0][:, :, None, d], q[1][:, :, None, d]), (kd[0][..., d], kd[1][..., d]), xp)
        acc = iv.add(acc, term, xp)
    return acc


def _softmax_out(sl, sh, V, xp):
    """Per query: weights from gaps (N, nq, nk); values V (N, nk, e) -> output (N, nq, e)."""
    N, nq, nk = sl.shape
    l, u = weight_bounds(sl.reshape(N * nq, nk), sh.reshape(N * nq, nk), xp)
    e = V[0].shape[-1]
    out_lo = xp.empty((N, nq, e))
    out_hi = xp.empty((N, nq, e))
    for c in range(e):
        vl = xp.repeat(V[0][:, :, c], nq, axis=0)
        vh = xp.repeat(V[1][:, :, c], nq, axis=0)
        lo, hi = head_output_bounds(l, u, vl, vh, xp)
        out_lo[:, :, c] = lo.reshape(N, nq)
        out_hi[:, :, c] = hi.reshape(N, nq)
    return out_lo, out_hi


class LayeredBounder:
    """Proved box bounds of sup |N - f| for networks with several layers, post maps and a final softmax."""

    def __init__(self, construction, xp=np):
        self.xp = xp
        self.construction = construction
        self.inputs = construction.inputs
        net = construction.network
        emb = net.embedding
        self.net = net
        self.layers = []
        direct = len(net.layers) == 1 and net.layers[0].post is None and not net.final_softmax
        for li, layer in enumerate(net.layers):
            heads = []
            for h in layer.heads:
                wqb = [[h.beta * v for v in row] for row in h.wq]
                wvo = _fmat(h.wv, h.wo)
                rec = {"bias": None if h.bias is None else _enc(h.bias, xp),
                       "wq": _enc(wqb, xp), "wk": _enc(h.wk, xp), "wvo": _enc(wvo, xp)}
                if li == 0:
                    q_rows = [emb.const[r] for r in layer.query_rows]
                    k_rows = [emb.const[r] for r in layer.key_rows]
                    rec["qc"] = _enc(_fmat(q_rows, wqb), xp)
                    rec["qG"] = [_enc(_fmat([E[r] for r in layer.query_rows], wqb), xp) for E in emb.linear]
                    kc = _fmat(k_rows, h.wk)
                    kG = [_fmat([E[r] for r in layer.key_rows], h.wk) for E in emb.linear]
                    # exact key differences k_j - k_l for every pair (leader l chosen per box)
                    nk = len(kc)
                    rec["kd_c"] = _enc3([[[kc[j][d] - kc[l][d] for d in range(len(kc[0]))] for j in range(nk)]
                                         for l in range(nk)], xp)
                    rec["kd_G"] = [_enc3([[[G[j][d] - G[l][d] for d in range(len(kc[0]))] for j in range(nk)]
                                          for l in range(nk)], xp) for G in kG]
                    rec["kmid"] = (xp.asarray(np.array([[float(v) for v in r] for r in kc])),
                                   [xp.asarray(np.array([[float(v) for v in r] for r in G])) for G in kG])
                    rec["vc"] = _enc(_fmat(k_rows, wvo), xp)
                    vG = [_fmat([E[r] for r in layer.key_rows], wvo) for E in emb.linear]
                    # a coefficient shared by every key's value passes through the softmax exactly
                    # (weights sum to 1): take it out, so that it can cancel against the target
                    e_cols = len(wvo[0])
                    common = [[vG[i][0][c] if direct and all(row[c] == vG[i][0][c] for row in vG[i]) else Fraction(0)
                               for i in range(len(vG))] for c in range(e_cols)]
                    vG = [[[row[c] - common[c][i] for c in range(e_cols)] for row in G] for i, G in enumerate(vG)]
                    rec["vG"] = [_enc(G, xp) for G in vG]
                    rec["common"] = common   # (e, D) exact
                heads.append(rec)
            post = None if layer.post is None else (_enc(layer.post[0], xp), _enc(layer.post[1], xp))
            if layer.post is not None and net.final_softmax and li == len(net.layers) - 1:
                W, B = layer.post
                n_out = len(W[0])
                post_gap = (_enc3([[[W[d][j] - W[d][l] for d in range(len(W))] for j in range(n_out)]
                                   for l in range(n_out)], xp),
                            _enc3([[[B[r][j] - B[r][l] for j in range(n_out)] for l in range(n_out)]
                                   for r in range(len(B))], xp))
            else:
                post_gap = None
            self.layers.append((layer, heads, post, post_gap))
        self.readout_linear = None
        if net.readout_linear is not None:
            self.readout_linear = [(frac_interval([b]), _enc([list(w)], xp)) for b, w in net.readout_linear]
        # exact linear part (coefficient per input) of each output, taken out of the enclosures
        D = len(emb.linear)
        entry_lin = []
        for r, c in net.readout:
            tot = [Fraction(0)] * D
            if direct:
                for rec in self.layers[0][1]:
                    tot = [a + b for a, b in zip(tot, rec["common"][c])]
            entry_lin.append(tot)
        if net.readout_linear is None:
            self.lin = entry_lin
        else:
            self.lin = [[sum((wt * e[i] for wt, e in zip(w, entry_lin)), Fraction(0)) for i in range(D)]
                        for _, w in net.readout_linear]
        from .linear_split import split_linear
        self.tsplit = []
        from .defined import defined_targets
        for o, tree in enumerate(defined_targets(construction)):   # guarded where proved defined
            coef, rest = split_linear(tree)
            names = {f"x{i}": i for i in range(D)}
            if any(v not in names for v in coef):
                coef, rest = {}, tree
            d = [self.lin[o][i] - coef.get(f"x{i}", Fraction(0)) for i in range(D)] if o < len(self.lin) else None
            self.tsplit.append((None if d is None else _enc([d], xp), rest))

    def _first_layer(self, layer, heads, xl, xh):
        xp = self.xp
        xm = 0.5 * (xl + xh)
        Y = None
        for rec in heads:
            q = _affine_iv(rec["qc"], rec["qG"], xl, xh, xp)                  # (N, nq, dk)
            qm = 0.5 * (q[0] + q[1])
            kc, kG = rec["kmid"]
            km = kc[None] + sum(xm[:, i, None, None] * G[None] for i, G in enumerate(kG))  # (N, nk, dk)
            mid = xp.einsum("nqd,nkd->nqk", qm, km)
            if rec["bias"] is not None:
                mid = mid + 0.5 * (rec["bias"][0] + rec["bias"][1])[None]
            ks = xp.argmax(mid, axis=2)                                         # (N, nq)
            self._hints.append(ks)
            kd_c = (rec["kd_c"][0][ks], rec["kd_c"][1][ks])                     # (N, nq, nk, dk)
            kd = kd_c
            for i, G in enumerate(rec["kd_G"]):
                xi = (xl[:, i, None, None, None], xh[:, i, None, None, None])
                kd = iv.add(kd, iv.mul(xi, (G[0][ks], G[1][ks]), xp), xp)
            sl, sh = _dot_gaps(q, kd, xp)
            sl, sh = self._bias_gap(rec, sl, sh, ks)
            V = _affine_iv(rec["vc"], rec["vG"], xl, xh, xp)                  # (N, nk, e)
            out = _softmax_out(sl, sh, V, xp)
            Y = out if Y is None else iv.add(Y, out, xp)
        return Y

    def _bias_gap(self, rec, sl, sh, ks):
        xp = self.xp
        if rec["bias"] is None:
            return sl, sh
        b0, b1 = rec["bias"]                                                    # (nq, nk)
        nq = b0.shape[0]
        rows = xp.arange(nq)[None, :]
        bl = iv.down(b0[None] - b1[rows, ks][:, :, None], xp)
        bh = iv.up(b1[None] - b0[rows, ks][:, :, None], xp)
        return iv.add((sl, sh), (bl, bh), xp)

    def _later_layer(self, layer, heads, Z):
        xp = self.xp
        qr = xp.asarray(list(layer.query_rows))
        kr = xp.asarray(list(layer.key_rows))
        Zq = (Z[0][:, qr], Z[1][:, qr])
        Zk = (Z[0][:, kr], Z[1][:, kr])
        Y = None
        for rec in heads:
            q = _imatmul(Zq, rec["wq"], xp)                                    # (N, nq, dk)
            k = _imatmul(Zk, rec["wk"], xp)                                    # (N, nk, dk)
            mid = xp.einsum("nqd,nkd->nqk", 0.5 * (q[0] + q[1]), 0.5 * (k[0] + k[1]))
            if rec["bias"] is not None:
                mid = mid + 0.5 * (rec["bias"][0] + rec["bias"][1])[None]
            ks = xp.argmax(mid, axis=2)
            self._hints.append(ks)
            n_idx = xp.arange(ks.shape[0])[:, None]
            kstar = (k[0][n_idx, ks], k[1][n_idx, ks])                          # (N, nq, dk)
            kd = iv.sub((k[0][:, None], k[1][:, None]), (kstar[0][:, :, None], kstar[1][:, :, None]), xp)
            sl, sh = _dot_gaps(q, kd, xp)
            sl, sh = self._bias_gap(rec, sl, sh, ks)
            V = _imatmul(Zk, rec["wvo"], xp)
            out = _softmax_out(sl, sh, V, xp)
            Y = out if Y is None else iv.add(Y, out, xp)
        return Y

    def output_bounds(self, xl, xh):
        """Per output: enclosure (lo, hi) of the network output, and the leaders k* used (N, rows).

        The hints list every softmax row's leader in order: layers, heads, query rows,
        then the rows of the final softmax; the checker uses the same leaders.
        """
        rests, hints = self.split_bounds(xl, xh)
        xp = self.xp
        outs = []
        for (lo, hi), lin in zip(rests, self.lin):
            acc = (lo, hi)
            for i, a in enumerate(lin):
                if a != 0:
                    al, ah = frac_interval([a])
                    acc = iv.add(acc, iv.mul((xl[:, i], xh[:, i]), (al[0], ah[0]), xp), xp)
            outs.append(acc)
        return outs, hints

    def split_bounds(self, xl, xh):
        """Enclosures of each output minus its exact linear part ``self.lin`` (and the hints)."""
        self._hints = []
        outs, _ = self._outputs(xl, xh)
        xp = self.xp
        hints = xp.concatenate(self._hints, axis=1) if self._hints else xp.zeros((xl.shape[0], 0), dtype=xp.int64)
        return outs, hints

    def _outputs(self, xl, xh):
        xp = self.xp
        Z = None
        Ypre = None
        for li, (layer, heads, post, post_gap) in enumerate(self.layers):
            Y = self._first_layer(layer, heads, xl, xh) if li == 0 else self._later_layer(layer, heads, Z)
            Ypre = Y
            if post is not None:
                W, B = post
                Y = iv.add(_imatmul(Y, W, xp), (B[0][None], B[1][None]), xp)
            Z = Y
        rows = [r for r, _ in self.net.readout]
        cols = [c for _, c in self.net.readout]
        if self.net.final_softmax:
            return self._final_softmax(Z, Ypre)
        ent = (Z[0][:, rows, cols], Z[1][:, rows, cols])                       # (N, R)
        if self.readout_linear is None:
            return [(ent[0][:, o], ent[1][:, o]) for o in range(len(rows))], None
        outs = []
        for (b, W) in self.readout_linear:
            acc = (xp.full(xl.shape[0], b[0][0]), xp.full(xl.shape[0], b[1][0]))
            for r in range(len(rows)):
                acc = iv.add(acc, iv.mul((ent[0][:, r], ent[1][:, r]), (W[0][0, r], W[1][0, r]), xp), xp)
            outs.append(acc)
        return outs, None

    def _final_softmax(self, Z, Ypre):
        """Row-wise softmax of the last output in gap form, then entries or a knapsack readout."""
        xp = self.xp
        layer, heads, post, post_gap = self.layers[-1]
        N, T, C = Z[0].shape
        mid = 0.5 * (Z[0] + Z[1])
        ks = xp.argmax(mid, axis=2)                                             # (N, T)
        self._hints.append(ks)
        if post_gap is not None:
            Wd, Bd = post_gap                                                   # (C_l, C_j, d), (T, C_l, C_j)
            Wk = (Wd[0][ks], Wd[1][ks])                                         # (N, T, C, d)
            sl, sh = _dot_gaps(Ypre, Wk, xp)
            rows = xp.arange(T)[None, :]
            sl, sh = iv.add((sl, sh), (Bd[0][rows, ks], Bd[1][rows, ks]), xp)
        else:
            n_idx = xp.arange(N)[:, None]
            t_idx = xp.arange(T)[None, :]
            zl, zh = Z[0][n_idx, t_idx, ks], Z[1][n_idx, t_idx, ks]
            sl = iv.down(Z[0] - zh[:, :, None], xp)
            sh = iv.up(Z[1] - zl[:, :, None], xp)
        l, u = weight_bounds(sl.reshape(N * T, C), sh.reshape(N * T, C), xp)
        l, u = l.reshape(N, T, C), u.reshape(N, T, C)
        rows = [r for r, _ in self.net.readout]
        cols = [c for _, c in self.net.readout]
        if self.readout_linear is None:
            return [(l[:, r, c], u[:, r, c]) for r, c in zip(rows, cols)], None
        outs = []
        for (b, W) in self.readout_linear:
            vl = np.zeros((T, C))
            vh = np.zeros((T, C))
            for e, (r, c) in enumerate(zip(rows, cols)):
                vl[r, c] += W[0][0, e]
                vh[r, c] += W[1][0, e]
            if np.any(np.bincount(np.asarray(rows) * C + np.asarray(cols)) > 1):
                raise ValueError("readout_linear: repeated readout entry")
            acc = (xp.full(N, b[0][0]), xp.full(N, b[1][0]))
            for r in range(T):
                lo, hi = head_output_bounds(l[:, r], u[:, r], xp.broadcast_to(xp.asarray(vl[r]), (N, C)),
                                            xp.broadcast_to(xp.asarray(vh[r]), (N, C)), xp)
                acc = iv.add(acc, (lo, hi), xp)
            outs.append(acc)
        return outs, None

    def error_bounds(self, xl, xh, each: bool = False):
        """Proved sup |N - f| per box (inf where anything is non-finite) and the k* hints;
        with ``each`` the bounds per output (N, R)."""
        xp = self.xp
        outs, hints = self.split_bounds(xl, xh)
        box = {name: (xl[:, i], xh[:, i]) for i, name in enumerate(self.inputs)}
        err = xp.zeros(xl.shape[0])
        per = []
        for (nlo, nhi), (dlin, tree) in zip(outs, self.tsplit):
            # N - f = (lin_N - lin_f).x + N' - f'
            for i in range(xl.shape[1]):
                if dlin[0][0, i] != 0 or dlin[1][0, i] != 0:
                    t = iv.mul((xl[:, i], xh[:, i]), (dlin[0][0, i], dlin[1][0, i]), xp)
                    nlo, nhi = iv.add((nlo, nhi), t, xp)
            if tree is None:
                flo = fhi = xp.zeros(xl.shape[0])
            else:
                flo, fhi = interval_eval(tree, box, xp)
            with np.errstate(over="ignore", invalid="ignore"):
                e = xp.maximum(iv.up(nhi - flo, xp), iv.up(fhi - nlo, xp))
            ok = iv.finite((nlo, nhi), xp) & iv.finite((flo, fhi), xp) & xp.isfinite(e)
            per.append(xp.where(ok, e, xp.inf))
            err = xp.maximum(err, per[-1])
        return (xp.stack(per, axis=1) if each else err), hints


def _enc3(T, xp):
    """Enclosure of a 3-D nested list of Fractions."""
    a, b = len(T), len(T[0])
    flat = [list(r) for plane in T for r in plane]
    lo, hi = frac_interval(flat)
    c = lo.shape[1] if lo.ndim == 2 else 0
    return xp.asarray(lo.reshape(a, b, c)), xp.asarray(hi.reshape(a, b, c))
