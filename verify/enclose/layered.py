"""Box bounds for layered networks: interval propagation through every layer, gap-form softmax.

Layer 1 sees the embedding, which is affine in x, so its queries, key differences
k_j - k_k* and values come from exact affine coefficients (no dependency loss on the
key side).  Later layers take the previous layer's output as intervals: the error and
the x-dependence of layer 1 enter layer 2's logits through interval products, which is
sound and makes the composition, not each layer, what is bounded.  Every softmax (heads,
and an optional final row-wise softmax) is bounded in the logit-gap form against a
leader k* chosen at the box centre, and every weighted sum by the knapsack LP dual.

Centred (mean-value) bound.  The same passes also carry, on request, forward-mode interval
derivatives d_i along every input: a quantity is an enclosure of its value over the box and
one enclosure of each partial derivative (None standing for an exact 0).  Affine maps act on
derivatives linearly; a product of two quantities by the product rule; a softmax output
y = sum_j a_j V_j (a = softmax(s)) by the exact identity
    d_i y = sum_j a_j [d_i V_j + (V_j - y)(d_i s_j - P_i)],   P_i = sum_k a_k d_i s_k,
which holds for gaps s_j - s_k* as well (the shift cancels in d_i s_j - P_i).  Over the box,
a is feasible for the knapsack over its weight bounds [l, u], so P_i lies in the knapsack
enclosure of the d_i s_j, each bracket in an interval, and d_i y in the knapsack enclosure of
those intervals (the same LP dual as the value).  A final softmax entry a_c has
d_i a_c = a_c (d_i s_c - P_i).  With slope_i >= sup_B |d_i (N_o - f_o)| for every output o,
    C = E_c + sum_i slope_i r_i
bounds sup_B max_o |N_o - f_o| (E_c the bound at the box centre, r the half-widths): see
``centred_parts``.  Every step is outward rounded; a NaN enclosure stays NaN and makes the
slope infinite (no centred bound).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import interval as iv
from .gradient import add_derivatives, interval_gradient
from .linearize import frac_interval
from .softmax import head_output_bounds, weight_bounds
from .target import interval_eval


def _fmat(A, B):
    """Exact product of two Fraction matrices (tuples of tuples)."""
    n, k, m = len(A), len(B), len(B[0])
    return [[sum((A[i][t] * B[t][j] for t in range(k) if A[i][t] and B[t][j]), Fraction(0))
             for j in range(m)] for i in range(n)]


def _enc(M, xp):
    lo, hi = frac_interval([list(r) for r in M])
    return xp.asarray(lo), xp.asarray(hi)


def _nonzero(M) -> bool:
    """Whether a nested list of Fractions has a non-zero entry (exact)."""
    return any(_nonzero(r) if isinstance(r, (list, tuple)) else r != 0 for r in M)


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


def _dot_gaps(q, kd, xp):
    """sum_d q[N,nq,d] * kd[N,nq,nk,d] as an interval (N, nq, nk)."""
    lo = xp.zeros(kd[0].shape[:-1])
    acc = (lo, lo.copy())
    for d in range(kd[0].shape[-1]):
        term = iv.mul((q[0][:, :, None, d], q[1][:, :, None, d]), (kd[0][..., d], kd[1][..., d]), xp)
        acc = iv.add(acc, term, xp)
    return acc


def _dsub(a, b, xp):
    if b is None:
        return a
    return iv.neg(b, xp) if a is None else iv.sub(a, b, xp)


def _rows(a, shape, xp):
    """An enclosure broadcast to ``shape`` (N, nq, nk[, e]) and flattened to (N * nq, nk[, e])."""
    lo, hi = (xp.broadcast_to(e, shape) for e in a)
    new = (shape[0] * shape[1],) + tuple(shape[2:])
    return lo.reshape(new), hi.reshape(new)


def _softmax_out(sl, sh, V, xp, dS=None, dV=None):
    """Per query: weights from gaps (N, nq, nk); values V (N, nk, e) -> output (N, nq, e).

    With ``dS`` (per input: the gaps' derivative enclosures, broadcasting to (N, nq, nk), or
    None) and ``dV`` (per input: the values' derivatives, broadcasting to (N, nk, e), or None)
    also the output's derivative enclosures, per input (N, nq, e) or None (see the module
    docstring for the identity)."""
    N, nq, nk = sl.shape
    M = N * nq
    l, u = weight_bounds(sl.reshape(M, nk), sh.reshape(M, nk), xp)
    e = V[0].shape[-1]
    out_lo = xp.empty((N, nq, e))
    out_hi = xp.empty((N, nq, e))
    Vr = [None] * e
    for c in range(e):
        vl = xp.repeat(V[0][:, :, c], nq, axis=0)
        vh = xp.repeat(V[1][:, :, c], nq, axis=0)
        Vr[c] = (vl, vh)
        lo, hi = head_output_bounds(l, u, vl, vh, xp)
        out_lo[:, :, c] = lo.reshape(N, nq)
        out_hi[:, :, c] = hi.reshape(N, nq)
    if dS is None:
        return (out_lo, out_hi)
    dY = []
    with np.errstate(over="ignore", invalid="ignore"):
        for ds, dv in zip(dS, dV):
            if ds is None and dv is None:
                dY.append(None)
                continue
            g = None
            if ds is not None:   # d_i s_j - P_i, P_i in the knapsack enclosure of the d_i s_j
                sl_, sh_ = _rows(ds, (N, nq, nk), xp)
                Pl, Ph = head_output_bounds(l, u, sl_, sh_, xp)
                g = (iv.down(sl_ - Ph[:, None], xp), iv.up(sh_ - Pl[:, None], xp))
            if dv is not None:
                dvr = _rows((xp.broadcast_to(dv[0], (N, nk, e))[:, None], xp.broadcast_to(dv[1], (N, nk, e))[:, None]),
                            (N, nq, nk, e), xp)
            d_lo = xp.empty((N, nq, e))
            d_hi = xp.empty((N, nq, e))
            for c in range(e):
                q = None
                if g is not None:
                    yl, yh = out_lo[:, :, c].reshape(M), out_hi[:, :, c].reshape(M)
                    a = (iv.down(Vr[c][0] - yh[:, None], xp), iv.up(Vr[c][1] - yl[:, None], xp))   # V_j - y
                    q = iv.mul(a, g, xp)
                if dv is not None:
                    q = add_derivatives(q, (dvr[0][..., c], dvr[1][..., c]), xp)
                lo, hi = head_output_bounds(l, u, q[0], q[1], xp)
                d_lo[:, :, c] = lo.reshape(N, nq)
                d_hi[:, :, c] = hi.reshape(N, nq)
            dY.append((d_lo, d_hi))
    return (out_lo, out_hi), dY


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
        D = len(emb.linear)
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
                    qG = [_fmat([E[r] for r in layer.query_rows], wqb) for E in emb.linear]
                    rec["qG"] = [_enc(G, xp) for G in qG]
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
                    # per input: whether the queries, the key differences, the values move with x_i
                    # (exact tests; a derivative that is exactly 0 is skipped)
                    rec["moves"] = [(_nonzero(qG[i]), _nonzero(kG[i]) and any(r != kG[i][0] for r in kG[i]),
                                     _nonzero(vG[i])) for i in range(D)]
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
        self._force = None

    # -- leaders: computed at the box centre, or taken from given hints (the centre's pass)
    def _leaders(self, n_cols, compute):
        """The leaders of the next ``n_cols`` softmax rows (N, n_cols): the forced hints' next
        columns when given, else ``compute()``; recorded as hints."""
        if self._force is not None:
            H, pos = self._force
            ks = H[:, pos[0]:pos[0] + n_cols]
            if ks.shape[1] != n_cols:
                raise ValueError("hints do not match the network's softmax rows")
            pos[0] += n_cols
        else:
            ks = compute()
        self._hints.append(ks)
        return ks

    def _first_layer(self, layer, heads, xl, xh, grad=False):
        xp = self.xp
        xm = 0.5 * (xl + xh)
        D = xl.shape[1]
        Y = dY = None
        for rec in heads:
            q = _affine_iv(rec["qc"], rec["qG"], xl, xh, xp)                  # (N, nq, dk)

            def compute(rec=rec, q=q):
                qm = 0.5 * (q[0] + q[1])
                kc, kG = rec["kmid"]
                km = kc[None] + sum(xm[:, i, None, None] * G[None] for i, G in enumerate(kG))  # (N, nk, dk)
                mid = xp.einsum("nqd,nkd->nqk", qm, km)
                if rec["bias"] is not None:
                    mid = mid + 0.5 * (rec["bias"][0] + rec["bias"][1])[None]
                return xp.argmax(mid, axis=2)
            ks = self._leaders(q[0].shape[1], compute)                         # (N, nq)
            kd = (rec["kd_c"][0][ks], rec["kd_c"][1][ks])                     # (N, nq, nk, dk)
            for i, G in enumerate(rec["kd_G"]):
                xi = (xl[:, i, None, None, None], xh[:, i, None, None, None])
                kd = iv.add(kd, iv.mul(xi, (G[0][ks], G[1][ks]), xp), xp)
            sl, sh = _dot_gaps(q, kd, xp)
            sl, sh = self._bias_gap(rec, sl, sh, ks)
            V = _affine_iv(rec["vc"], rec["vG"], xl, xh, xp)                  # (N, nk, e)
            if not grad:
                out = _softmax_out(sl, sh, V, xp)
                Y = out if Y is None else iv.add(Y, out, xp)
                continue
            dS, dV = [], []
            with np.errstate(over="ignore", invalid="ignore"):
                for i in range(D):
                    mq, mk, mv = rec["moves"][i]
                    ds = None
                    if mq:   # d_i q . kd
                        gq = rec["qG"][i]                                      # (nq, dk)
                        ds = _dot_gaps((xp.broadcast_to(gq[0], q[0].shape), xp.broadcast_to(gq[1], q[1].shape)),
                                       kd, xp)
                    if mk:   # q . d_i kd
                        G = rec["kd_G"][i]
                        ds = add_derivatives(ds, _dot_gaps(q, (G[0][ks], G[1][ks]), xp), xp)
                    dS.append(ds)
                    dV.append(rec["vG"][i] if mv else None)                   # (nk, e)
            out, dout = _softmax_out(sl, sh, V, xp, dS, dV)
            Y = out if Y is None else iv.add(Y, out, xp)
            dY = dout if dY is None else [add_derivatives(a, b, xp) for a, b in zip(dY, dout)]
        return (Y, dY) if grad else Y

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

    def _later_layer(self, layer, heads, Z, dZ=None):
        xp = self.xp
        qr = xp.asarray(list(layer.query_rows))
        kr = xp.asarray(list(layer.key_rows))
        Zq = (Z[0][:, qr], Z[1][:, qr])
        Zk = (Z[0][:, kr], Z[1][:, kr])
        Y = dY = None
        for rec in heads:
            q = _imatmul(Zq, rec["wq"], xp)                                    # (N, nq, dk)
            k = _imatmul(Zk, rec["wk"], xp)                                    # (N, nk, dk)

            def compute(rec=rec, q=q, k=k):
                mid = xp.einsum("nqd,nkd->nqk", 0.5 * (q[0] + q[1]), 0.5 * (k[0] + k[1]))
                if rec["bias"] is not None:
                    mid = mid + 0.5 * (rec["bias"][0] + rec["bias"][1])[None]
                return xp.argmax(mid, axis=2)
            ks = self._leaders(len(layer.query_rows), compute)
            n_idx = xp.arange(ks.shape[0])[:, None]
            kstar = (k[0][n_idx, ks], k[1][n_idx, ks])                          # (N, nq, dk)
            kd = iv.sub((k[0][:, None], k[1][:, None]), (kstar[0][:, :, None], kstar[1][:, :, None]), xp)
            sl, sh = _dot_gaps(q, kd, xp)
            sl, sh = self._bias_gap(rec, sl, sh, ks)
            V = _imatmul(Zk, rec["wvo"], xp)
            if dZ is None:
                out = _softmax_out(sl, sh, V, xp)
                Y = out if Y is None else iv.add(Y, out, xp)
                continue
            dS, dV = [], []
            with np.errstate(over="ignore", invalid="ignore"):
                for dz in dZ:
                    if dz is None:
                        dS.append(None)
                        dV.append(None)
                        continue
                    dq = _imatmul((dz[0][:, qr], dz[1][:, qr]), rec["wq"], xp)
                    dk = _imatmul((dz[0][:, kr], dz[1][:, kr]), rec["wk"], xp)
                    dks = (dk[0][n_idx, ks], dk[1][n_idx, ks])
                    dkd = iv.sub((dk[0][:, None], dk[1][:, None]), (dks[0][:, :, None], dks[1][:, :, None]), xp)
                    dS.append(iv.add(_dot_gaps(dq, kd, xp), _dot_gaps(q, dkd, xp), xp))
                    dV.append(_imatmul((dz[0][:, kr], dz[1][:, kr]), rec["wvo"], xp))
            out, dout = _softmax_out(sl, sh, V, xp, dS, dV)
            Y = out if Y is None else iv.add(Y, out, xp)
            dY = dout if dY is None else [add_derivatives(a, b, xp) for a, b in zip(dY, dout)]
        return (Y, dY) if dZ is not None else Y

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

    def split_bounds(self, xl, xh, hints=None, grad=False):
        """Enclosures of each output minus its exact linear part ``self.lin`` (and the hints).

        ``hints`` (N, H), when given, are the leaders to use (else each is the leader at the
        box's centre).  With ``grad`` also, per output, the derivative enclosures per input
        ((lo, hi) or None for an exact 0): ``(outs, douts, hints)``.
        """
        xp = self.xp
        self._hints = []
        self._force = None if hints is None else (hints, [0])
        try:
            outs, douts = self._outputs(xl, xh, grad)
            if self._force is not None and self._force[1][0] != hints.shape[1]:
                raise ValueError("more hints than softmax rows")
        finally:
            self._force = None
        hints = xp.concatenate(self._hints, axis=1) if self._hints else xp.zeros((xl.shape[0], 0), dtype=xp.int64)
        return (outs, douts, hints) if grad else (outs, hints)

    def _outputs(self, xl, xh, grad=False):
        xp = self.xp
        Z = dZ = None
        Ypre = dYpre = None
        for li, (layer, heads, post, post_gap) in enumerate(self.layers):
            if li == 0:
                r = self._first_layer(layer, heads, xl, xh, grad)
            else:
                r = self._later_layer(layer, heads, Z, dZ)
            Y, dY = r if grad else (r, None)
            Ypre, dYpre = Y, dY
            if post is not None:
                W, B = post
                Y = iv.add(_imatmul(Y, W, xp), (B[0][None], B[1][None]), xp)
                if grad:
                    dY = [None if d is None else _imatmul(d, W, xp) for d in dY]
            Z, dZ = Y, dY
        rows = [r for r, _ in self.net.readout]
        cols = [c for _, c in self.net.readout]
        if self.net.final_softmax:
            return self._final_softmax(Z, Ypre, dZ, dYpre)
        ent = (Z[0][:, rows, cols], Z[1][:, rows, cols])                       # (N, R)
        dent = None if not grad else [None if d is None else (d[0][:, rows, cols], d[1][:, rows, cols]) for d in dZ]
        if self.readout_linear is None:
            outs = [(ent[0][:, o], ent[1][:, o]) for o in range(len(rows))]
            douts = None if not grad else [[None if d is None else (d[0][:, o], d[1][:, o]) for d in dent]
                                           for o in range(len(rows))]
            return outs, douts
        outs, douts = [], ([] if grad else None)
        for (b, W) in self.readout_linear:
            acc = (xp.full(xl.shape[0], b[0][0]), xp.full(xl.shape[0], b[1][0]))
            for r in range(len(rows)):
                acc = iv.add(acc, iv.mul((ent[0][:, r], ent[1][:, r]), (W[0][0, r], W[1][0, r]), xp), xp)
            outs.append(acc)
            if grad:
                per = []
                for d in dent:
                    g = None
                    if d is not None:
                        for r in range(len(rows)):
                            g = add_derivatives(g, iv.mul((d[0][:, r], d[1][:, r]), (W[0][0, r], W[1][0, r]), xp), xp)
                    per.append(g)
                douts.append(per)
        return outs, douts

    def _final_softmax(self, Z, Ypre, dZ=None, dYpre=None):
        """Row-wise softmax of the last output in gap form, then entries or a knapsack readout
        (and, with ``dZ``, the derivatives: d_i a_c = a_c (d_i s_c - P_i))."""
        xp = self.xp
        layer, heads, post, post_gap = self.layers[-1]
        grad = dZ is not None
        N, T, C = Z[0].shape

        def compute():
            return xp.argmax(0.5 * (Z[0] + Z[1]), axis=2)
        ks = self._leaders(T, compute)                                          # (N, T)
        dS = None
        if post_gap is not None:
            Wd, Bd = post_gap                                                   # (C_l, C_j, d), (T, C_l, C_j)
            Wk = (Wd[0][ks], Wd[1][ks])                                         # (N, T, C, d)
            sl, sh = _dot_gaps(Ypre, Wk, xp)
            rows = xp.arange(T)[None, :]
            sl, sh = iv.add((sl, sh), (Bd[0][rows, ks], Bd[1][rows, ks]), xp)
            if grad:
                dS = [None if d is None else _dot_gaps(d, Wk, xp) for d in dYpre]
        else:
            n_idx = xp.arange(N)[:, None]
            t_idx = xp.arange(T)[None, :]
            zl, zh = Z[0][n_idx, t_idx, ks], Z[1][n_idx, t_idx, ks]
            sl = iv.down(Z[0] - zh[:, :, None], xp)
            sh = iv.up(Z[1] - zl[:, :, None], xp)
            if grad:
                dS = [None if d is None else
                      iv.sub(d, (d[0][n_idx, t_idx, ks][:, :, None], d[1][n_idx, t_idx, ks][:, :, None]), xp)
                      for d in dZ]
        l, u = weight_bounds(sl.reshape(N * T, C), sh.reshape(N * T, C), xp)
        l, u = l.reshape(N, T, C), u.reshape(N, T, C)
        rows = [r for r, _ in self.net.readout]
        cols = [c for _, c in self.net.readout]
        # per input and row: d_i s - P_i (N, T, C), P_i in the knapsack enclosure of the d_i s
        G = None
        if grad:
            G = []
            with np.errstate(over="ignore", invalid="ignore"):
                for ds in dS:
                    if ds is None:
                        G.append(None)
                        continue
                    g_lo, g_hi = xp.empty((N, T, C)), xp.empty((N, T, C))
                    for r in range(T):
                        Pl, Ph = head_output_bounds(l[:, r], u[:, r], ds[0][:, r], ds[1][:, r], xp)
                        g_lo[:, r] = iv.down(ds[0][:, r] - Ph[:, None], xp)
                        g_hi[:, r] = iv.up(ds[1][:, r] - Pl[:, None], xp)
                    G.append((g_lo, g_hi))
        if self.readout_linear is None:
            outs = [(l[:, r, c], u[:, r, c]) for r, c in zip(rows, cols)]
            if not grad:
                return outs, None
            with np.errstate(over="ignore", invalid="ignore"):
                douts = [[None if g is None else iv.mul((l[:, r, c], u[:, r, c]), (g[0][:, r, c], g[1][:, r, c]), xp)
                          for g in G] for r, c in zip(rows, cols)]
            return outs, douts
        outs, douts = [], ([] if grad else None)
        for (b, W) in self.readout_linear:
            vl = np.zeros((T, C))
            vh = np.zeros((T, C))
            for e, (r, c) in enumerate(zip(rows, cols)):
                vl[r, c] += W[0][0, e]
                vh[r, c] += W[1][0, e]
            if np.any(np.bincount(np.asarray(rows) * C + np.asarray(cols)) > 1):
                raise ValueError("readout_linear: repeated readout entry")
            acc = (xp.full(N, b[0][0]), xp.full(N, b[1][0]))
            ys = []
            for r in range(T):
                lo, hi = head_output_bounds(l[:, r], u[:, r], xp.broadcast_to(xp.asarray(vl[r]), (N, C)),
                                            xp.broadcast_to(xp.asarray(vh[r]), (N, C)), xp)
                ys.append((lo, hi))
                acc = iv.add(acc, (lo, hi), xp)
            outs.append(acc)
            if grad:   # d_i y_r = sum_c a_rc (v_rc - y_r)(d_i s_rc - P_i), knapsack over the row
                per = []
                with np.errstate(over="ignore", invalid="ignore"):
                    for g in G:
                        if g is None:
                            per.append(None)
                            continue
                        d = None
                        for r in range(T):
                            yl, yh = ys[r]
                            a = (iv.down(xp.asarray(vl[r])[None] - yh[:, None], xp),
                                 iv.up(xp.asarray(vh[r])[None] - yl[:, None], xp))
                            q = iv.mul(a, (g[0][:, r], g[1][:, r]), xp)
                            d = add_derivatives(d, head_output_bounds(l[:, r], u[:, r], q[0], q[1], xp), xp)
                        per.append(d)
                douts.append(per)
        return outs, douts

    def error_bounds(self, xl, xh, each: bool = False, hints=None):
        """Proved sup |N - f| per box (inf where anything is non-finite) and the k* hints;
        with ``each`` the bounds per output (N, R); ``hints`` (N, H) fix the leaders."""
        outs, hints = self.split_bounds(xl, xh, hints)
        return self._errors(outs, xl, xh, each), hints

    def _errors(self, outs, xl, xh, each):
        xp = self.xp
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
        return xp.stack(per, axis=1) if each else err

    # -- the centred (mean-value) bound
    def slopes(self, xl, xh, hints=None):
        """(plain bounds per output (N, R), slopes (N, D), hints (N, H)): slope_i >= sup over the
        box of |d_i (N_o - f_o)| for every output o (inf where an enclosure is not finite)."""
        xp = self.xp
        N, D = xl.shape
        outs, douts, hints = self.split_bounds(xl, xh, hints, grad=True)
        plain = self._errors(outs, xl, xh, True)
        box = {name: (xl[:, i], xh[:, i]) for i, name in enumerate(self.inputs)}
        slopes = xp.zeros((N, D))
        with np.errstate(over="ignore", invalid="ignore"):
            for dn, (dlin, tree) in zip(douts, self.tsplit):
                df = [None] * D if tree is None else interval_gradient(tree, box, self.inputs, xp)[1]
                for i in range(D):
                    g = dn[i]
                    if dlin[0][0, i] != 0 or dlin[1][0, i] != 0:
                        g = add_derivatives(g, (xp.full(N, dlin[0][0, i]), xp.full(N, dlin[1][0, i])), xp)
                    g = _dsub(g, df[i], xp)
                    if g is None:
                        continue
                    slopes[:, i] = xp.maximum(slopes[:, i], iv.slope_bound(g, xp))
        return plain, slopes, hints

    def centred_parts(self, xl, xh):
        """The plain bounds per output (N, R), the centred bound C (N,) and the slopes (N, D).

        C = E_c + sum_i slope_i r_i, E_c the bound on a tiny box [cl, ch] around the float
        centre with the box's own leaders, r_i = max(xh - cl, ch - xl) (so that C holds whichever
        point of [cl, ch] is the centre: see AffineBounder's centred form, the same spec).  C is
        inf where anything is non-finite.
        """
        plain, C, slopes, _ = self.centred_bounds(xl, xh)
        return plain, C, slopes

    def centred_bounds(self, xl, xh):
        """``centred_parts`` and the box's hints (N, H), which the centre's bound also uses."""
        xp = self.xp
        plain, slopes, hints = self.slopes(xl, xh)
        cl, ch, r = iv.centre_box(xl, xh, xp)
        Ec, _ = self.error_bounds(cl, ch, hints=hints)
        return plain, iv.mean_value_bound(Ec, slopes, r, xp), slopes, hints


def _enc3(T, xp):
    """Enclosure of a 3-D nested list of Fractions."""
    a, b = len(T), len(T[0])
    flat = [list(r) for plane in T for r in plane]
    lo, hi = frac_interval(flat)
    c = lo.shape[1] if lo.ndim == 2 else 0
    return xp.asarray(lo.reshape(a, b, c)), xp.asarray(hi.reshape(a, b, c))
