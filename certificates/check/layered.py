"""The checker's bound for layered networks (several layers, post maps, final softmax, linear readout).

Independent of ``verify``: from the stored exact weights it forms layer 1's queries,
key differences and values as exact affine functions of x (fmpq), later layers' tokens
as Arb balls, and bounds every softmax in the logit-gap form against a leader k* that
it picks itself at the box centre (any leader is sound), and every weighted sum by weak
LP duality.  The first layer's ball outputs enter the next layer's logits directly.

Affine plan (``LayeredNet._plan``, once per certificate).  Token entries that are still exact
affine forms c + g.x (the embedding; a head over one key, whose weight is exactly 1; post maps
and sums of such) are kept as forms, so a box costs nothing there.  A softmax row whose logits
are affine in x up to a term common to all keys (the softmax ignores it) and whose values are
affine is a one-layer head: core's ``head_parts_lu`` bounds it (or ``_lone_leader`` when its
values are constant and only the leader escapes the lumped tail).  Everything else takes the
ball path above; every path gives an outward-rounded enclosure, so any mix of them is sound.

Centred boxes (``layered_centred_bound``).  A box that carries slopes is bounded by
C* = E_c* + sum_i s*_i r_i: E_c* the box bound at the exact centre (same hints), r_i the exact
half-widths, s*_i >= sup_B |d_i (N_o - f_o)| for every output o, from a forward-mode pass
(``LayeredNet.split_derivatives``) that carries, for every token entry, the exact ends of an
enclosure of its value and of each partial derivative: exact rationals through layer 1's
affine forms, interval ends (pairs of exact arbs, products from the four end products, never
ball products) after.  A softmax output y = sum_j a_j V_j with a = softmax(s) satisfies, at every
x, d_i y = sum_j a_j [d_i V_j + (V_j - y)(d_i s_j - P_i)] with P_i = sum_k a_k d_i s_k (d_i a_j =
a_j (d_i s_j - P_i); the same for gaps s_j - s_k*, the shift cancels).  Over the box a lies in the
knapsack polytope of its weight bounds, y in its enclosure, so P_i lies in the knapsack
enclosure of the d_i s_j, each bracket in an interval, and d_i y in the knapsack enclosure of
those intervals (weak LP duality).  A final softmax entry has d_i a_c = a_c (d_i s_c - P_i).
The target's derivative is ``bounds_and_gradient``; a NaN or infinite end makes the slope
infinite (BoxError: no centred bound).  A stored slope that undercuts the checker's own is
Invalid (beyond REL_SLACK of C*, as in check/centred.py).
"""
from __future__ import annotations

from flint import arb, ctx, fmpq

from .arbexpr import ArbExprError, arb_compile, arb_interval
from .core import (TAIL_GAP, Invalid, PreparedHeads, affine_range as _affine_range, box_env, centred_total,
                   confirm_slopes, float_up, head_parts_lu, interval_product, knapsack_floats, knapsack_lower,
                   knapsack_upper as _knapsack, mat, parse_slopes, rat, require_finite, slope_bound,
                   softmax_weight_bounds, undercuts)


_TAIL = arb(TAIL_GAP)   # exact
_ONE = arb(1)


def _mm(A, B):
    """Exact fmpq matrix product."""
    return [[sum((A[i][t] * B[t][j] for t in range(len(B))), fmpq(0)) for j in range(len(B[0]))]
            for i in range(len(A))]


def _aff(c, g, qbox):
    """Exact [lo, hi] of c + g.x over a rational box, as a ball."""
    return arb_interval(*_affine_range(c, g, qbox))


def _qmul(a, b):
    """Exact interval product of two fmpq intervals (a ball product would be wider)."""
    p = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(p), max(p)


def _f(x) -> float:
    return float(x)


def _weights(gaps):
    """Balls [l_j, u_j] (as pairs of arb) of softmax weights from gap balls s_j - s_k*."""
    return softmax_weight_bounds([g.lower() for g in gaps], [g.upper() for g in gaps])


def _cols(h, key, M):
    """M's columns as [(t, arb(M[t][c])) for its nonzero entries], made once per head."""
    cache = h.setdefault("cols", {})
    cols = cache.get(key)
    if cols is None:
        cols = cache[key] = [[(t, arb(M[t][c])) for t in range(len(M)) if M[t][c] != 0] for c in range(len(M[0]))]
    return cols


def _combine(l, u, vals, lu=None):
    """Ball enclosing sum_j a_j v_j for value balls v_j (``lu``: knapsack_floats(l, u), shared by
    the columns of one softmax row)."""
    if lu is None:
        lu = knapsack_floats(l, u)
    hi = _knapsack(l, u, [v.upper() for v in vals], None, lu)
    lo = knapsack_lower(l, u, [v.lower() for v in vals], None, lu)
    return _ends_ball(lo, hi)


# -- interval ends (pairs of exact arbs) for the derivative pass of the centred bound
def _qa(lo, hi):
    """Exact arb ends enclosing the fmpq interval [lo, hi]."""
    return arb(lo).lower(), arb(hi).upper()


def _iadd(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (a[0] + b[0]).lower(), (a[1] + b[1]).upper()


def _isub(a, b):
    return (a[0] - b[1]).lower(), (a[1] - b[0]).upper()


def _imul(a, b):
    """Exact ends of an enclosure of [a] x [b] (NaN when an end is not finite)."""
    return interval_product(a[0], a[1], b[0], b[1])


def _iconst(a, c):
    """[a] times the exact rational c."""
    if c == 0:
        return arb(0), arb(0)
    return _imul(a, _qa(c, c))


def _qscale(c, lo, hi):
    """Exact fmpq range of c * [lo, hi]."""
    return (c * lo, c * hi) if c >= 0 else (c * hi, c * lo)


def _krange(l, u, ends):
    """Ends of the knapsack enclosure of sum_j a_j v_j, v_j in [lo_j, hi_j] (``ends``)."""
    return -_knapsack(l, u, [-e[0] for e in ends]), _knapsack(l, u, [e[1] for e in ends])


def _softmax_d(l, u, V, Y, dS, dV):
    """Derivative enclosures of a softmax output y_c = sum_j a_j V_jc, per input (None: exactly 0)
    and per column: d_i y_c = sum_j a_j [dV_ijc + (V_jc - y_c)(dS_ij - P_i)], P_i = sum_k a_k dS_ik,
    with P_i in the knapsack enclosure of the dS_ij and the bracket's ends from interval
    products (the identity and the argument are in the module docstring)."""
    e = len(Y)
    out = []
    A = [[((V[j][c][0] - Y[c][1]).lower(), (V[j][c][1] - Y[c][0]).upper()) for j in range(len(V))]
         for c in range(e)]
    for ds, dv in zip(dS, dV):
        if ds is None and dv is None:
            out.append(None)
            continue
        g = None
        if ds is not None:
            Pl, Ph = _krange(l, u, ds)
            g = [((x[0] - Ph).lower(), (x[1] - Pl).upper()) for x in ds]
        cols = []
        for c in range(e):
            q = [None] * len(V)
            if g is not None:
                q = [_imul(A[c][j], g[j]) for j in range(len(V))]
            if dv is not None:
                q = [_iadd(a, dv[j][c]) for j, a in enumerate(q)]
            cols.append(_krange(l, u, q))
        out.append(cols)
    return out


def _dsum(a, b):
    """Sum of two per-input derivative lists of nested [row][col] interval ends (None: 0)."""
    if a is None:
        return b
    out = []
    for x, y in zip(a, b):
        if x is None or y is None:
            out.append(x if y is None else y)
        else:
            out.append([[_iadd(p, q) for p, q in zip(rx, ry)] for rx, ry in zip(x, y)])
    return out


def _rows_times(Z, M):
    """Interval rows (lists of ends) times an exact matrix: [[sum_t Z_rt M_tc]]."""
    cols = len(M[0])
    return [[_sum_terms([_iconst(row[t], M[t][c]) for t in range(len(M)) if M[t][c] != 0]) for c in range(cols)]
            for row in Z]


def _sum_terms(terms):
    acc = (arb(0), arb(0))
    for t in terms:
        acc = _iadd(acc, t)
    return acc


# -- exact affine forms (c, g): the real function c + g.x of the input (fmpq throughout), for the
# entries of the network that no softmax over several keys has mixed yet
def _form_comb(terms, b, D):
    """The form b + sum_t w_t f_t of (w_t, f_t) pairs; None when some f_t is None (not affine)."""
    c, g = b, [fmpq(0)] * D
    for w, f in terms:
        if f is None:
            return None
        c += w * f[0]
        for i, x in enumerate(f[1]):
            if x:
                g[i] += w * x
    return c, tuple(g)


def _forms_times(rows, M, D):
    """Rows of forms times an exact matrix (None where a contributing entry is None)."""
    return [[_form_comb([(M[t][c], row[t]) for t in range(len(M)) if M[t][c] != 0], fmpq(0), D)
             for c in range(len(M[0]))] for row in rows]


def _form_add(a, b):
    if a is None or b is None:
        return None
    return a[0] + b[0], tuple(x + y for x, y in zip(a[1], b[1]))


def _ball(x, qbox):
    """A ball enclosing a token entry over the box: the entry itself, or a form's exact range."""
    return x if type(x) is arb else _aff(x[0], x[1], qbox)


def _add(a, b, qbox):
    if type(a) is not arb and type(b) is not arb:
        return _form_add(a, b)
    return _ball(a, qbox) + _ball(b, qbox)


def _ends_ball(lo, hi):
    """The ball of exact-ended [lo, hi]; NaN when an end is not finite (never a number)."""
    if not (lo.is_finite() and hi.is_finite()):
        return arb("nan")
    return lo.union(hi)


def _fsafe(x) -> float:
    """x as a float, +-inf when it is out of range (only the leader at the centre reads these)."""
    try:
        return float(x)
    except OverflowError:
        return float("inf") if x > 0 else float("-inf")


def _affine_logits(q, K, bias, D):
    """(c, G): exact c_j + G_j.x equal to the logits s_j = q.k_j + b_j of the forms q (one per
    dimension) and k_j up to one quadratic term R(x) common to every key j, so that the softmax of
    c + G.x is the softmax of s at every x (it ignores a common shift); None when the quadratic
    parts x^T (sum_d qg_d kg_jd^T) x differ between keys (compared as exact monomial coefficients)."""
    cs, Gs, quad0 = [], [], None
    for j, k in enumerate(K):
        c = bias[j] if bias is not None else fmpq(0)
        g = [fmpq(0)] * D
        quad = {}
        for (qc, qg), (kc, kg) in zip(q, k):
            c += qc * kc
            for i in range(D):
                g[i] += qg[i] * kc + qc * kg[i]
                if qg[i]:
                    for m in range(D):
                        if kg[m]:
                            key = (min(i, m), max(i, m))
                            quad[key] = quad.get(key, fmpq(0)) + qg[i] * kg[m]
        quad = {key: v for key, v in quad.items() if v != 0}
        if quad0 is None:
            quad0 = quad
        elif quad != quad0:
            return None
        cs.append(c)
        Gs.append(g)
    return cs, Gs


def _row_plan(c, G, cols, flat):
    """The plan of one softmax row with exact logits c_j + G_j.x and value columns (e, F) (e_j + F_j.x):
    the first column joins ``flat`` as a one-layer head (its index ``hn``), the others stay in
    ``cols``; ``f`` holds the logits as floats for the leader at the centre."""
    hn = len(flat)
    flat.append((c, G, cols[0][0], cols[0][1]))
    n = len(c)
    const = all(x == 0 for _, F in cols for Fj in F for x in Fj)
    return {"hn": hn, "n": n, "len": [0.0] * n, "cols": cols[1:], "values": [e for e, _ in cols] if const else None,
            "lone": {}, "f": ([_fsafe(x) for x in c], [[_fsafe(x) for x in g] for g in G])}


def _head_plan(h, Q, K, V, n_rows, fallback, flat, D):
    """(kind, data) of one head from the forms of its queries Q, keys K and values V (see ``_plan``)."""
    if len(K) == 1:
        if all(f is not None for f in V[0]):
            return "single", [list(V[0]) for _ in range(n_rows)]
        return fallback, None
    if any(f is None for rows in (Q, K, V) for row in rows for f in row):
        return fallback, None
    rows = []
    for qi in range(n_rows):
        cg = _affine_logits(Q[qi], K, h["bias"][qi] if h["bias"] else None, D)
        if cg is None:
            del flat[len(flat) - len(rows):]   # this head takes the ball path after all
            return fallback, None
        cols = [([V[j][c][0] for j in range(len(K))], [list(V[j][c][1]) for j in range(len(K))])
                for c in range(len(V[0]))]
        rows.append(_row_plan(cg[0], cg[1], cols, flat))
    return "affine", rows


def _more_column(parts, col, qbox):
    """(lo, hi) of another value column (e, F) of a row that ``head_parts_lu`` bounded with its
    first column: the same weight bounds ``parts`` (l_j <= a_j <= u_j over the keys in act, and
    when there is a lumped tail its total weight as the last entry), values enclosed exactly,
    the tail's value the range of the other keys' values, the knapsack's dual bounds (the
    argument of head_parts_lu, which does not depend on the values)."""
    _, _, act, l, u, _, _, lu = parts
    e, F = col
    vl, vh = [], []
    for j in act:
        a, b = _affine_range(e[j], F[j], qbox)
        vl.append(arb(a).lower())
        vh.append(arb(b).upper())
    if len(l) > len(act):
        inside = set(act)
        lo = hi = None
        for j in range(len(e)):
            if j not in inside:
                a, b = _affine_range(e[j], F[j], qbox)
                lo = a if lo is None or a < lo else lo
                hi = b if hi is None or b > hi else hi
        vl.append(arb(lo).lower())
        vh.append(arb(hi).upper())
    return knapsack_lower(l, u, vl, None, lu), _knapsack(l, u, vh, None, lu)


class LayeredNet:
    """Exact weights of a layered network, parsed once; ``outputs(box)`` bounds it on a box."""

    def __init__(self, net, D):
        self._memo = {}  # (box, hints) -> outputs, so the chain terms reuse the bound pass
        emb = net["embedding"]
        self.const = mat(emb["const"], "embedding.const")
        self.lins = [mat(E, f"embedding.linear.{i}") for i, E in enumerate(emb["linear"])]
        if len(self.lins) != D:
            raise Invalid("embedding has a different number of inputs than the domain")
        T, d = len(self.const), len(self.const[0])
        if any(len(E) != T or len(E[0]) != d for E in self.lins):
            raise Invalid("embedding matrices differ in shape")
        self.layers = []
        rows, width = T, d
        for li, layer in enumerate(net["layers"]):
            qrows, krows = layer["query_rows"], layer["key_rows"]
            if not qrows or any(r >= rows for r in qrows + krows):
                raise Invalid(f"layer {li}: token row index out of range")
            heads, out_w = [], None
            for hn, h in enumerate(layer["heads"]):
                wq, wk = mat(h["wq"], "wq"), mat(h["wk"], "wk")
                wv, wo = mat(h["wv"], "wv"), mat(h["wo"], "wo")
                if len(wq) != width or len(wk) != width or len(wv) != width or len(wq[0]) != len(wk[0]) \
                        or len(wo) != len(wv[0]):
                    raise Invalid(f"layer {li} head {hn}: weight shapes do not chain")
                if out_w is not None and len(wo[0]) != out_w:
                    raise Invalid(f"layer {li}: heads disagree on the output width")
                out_w = len(wo[0])
                beta = rat(h["beta"], "beta")
                bias = None if h["bias"] is None else mat(h["bias"], "bias")
                if bias is not None and (len(bias) != len(qrows) or len(bias[0]) != len(krows)):
                    raise Invalid(f"layer {li} head {hn}: bias shape")
                wqb = [[beta * v for v in r] for r in wq]
                heads.append({"wq": wqb, "wk": wk, "wvo": _mm(wv, wo), "bias": bias})
            post = None
            if "post" in layer:
                W, B = mat(layer["post"]["W"], "post.W"), mat(layer["post"]["B"], "post.B")
                if len(W) != out_w or len(B) != len(qrows) or len(B[0]) != len(W[0]):
                    raise Invalid(f"layer {li}: post map shape")
                post = (W, B)
                out_w = len(W[0])
            self.layers.append((qrows, krows, heads, post))
            rows, width = len(qrows), out_w
        self.final_softmax = net.get("final_softmax", False) is True
        self.readout = net["readout"]
        if any(r >= rows or c >= width for r, c in self.readout):
            raise Invalid("readout entry out of range")
        self.rows, self.width = rows, width
        self.linear = None
        if "readout_linear" in net:
            self.linear = []
            for o in net["readout_linear"]:
                w = [rat(v, "readout_linear") for v in o["weights"]]
                if len(w) != len(self.readout):
                    raise Invalid("readout_linear: one weight per readout entry is required")
                self.linear.append((rat(o["bias"], "readout_linear"), w))
            if len({tuple(rc) for rc in self.readout}) != len(self.readout):
                raise Invalid("readout_linear: repeated readout entry")
        self.n_outputs = len(self.linear) if self.linear is not None else len(self.readout)
        # A value coefficient shared by every key passes through the softmax exactly (the
        # weights sum to 1); for a single direct layer it is taken out as an exact linear part.
        direct = len(self.layers) == 1 and self.layers[0][3] is None and not self.final_softmax
        entry_lin = [[fmpq(0)] * D for _ in self.readout]
        if direct:
            qrows, krows, heads, _ = self.layers[0]
            for h in heads:
                vG = [_mm([E[r] for r in krows], h["wvo"]) for E in self.lins]
                e = len(h["wvo"][0])
                common = [[vG[i][0][c] if all(row[c] == vG[i][0][c] for row in vG[i]) else fmpq(0)
                           for i in range(D)] for c in range(e)]
                h["vG_adj"] = [[[row[c] - common[c][i] for c in range(e)] for row in G] for i, G in enumerate(vG)]
                for n, (r, c) in enumerate(self.readout):
                    entry_lin[n] = [a + b for a, b in zip(entry_lin[n], common[c])]
        if self.linear is None:
            self.lin = entry_lin
        else:
            self.lin = [[sum((w * e[i] for w, e in zip(ws, entry_lin)), fmpq(0)) for i in range(D)]
                        for _, ws in self.linear]

    # -- layer 1: exact affine forms in x
    def _first(self, qrows, krows, heads, qbox, xm):
        D = len(qbox)
        Y = None
        for h in heads:
            qc, qG, kc, kG, vc, vG = self._pre(h, qrows, krows)   # once per certificate
            if "pre_f" not in h:   # their floats, for the leader at the centre
                h["pre_f"] = ([[_f(x) for x in r] for r in qc], [[[_f(x) for x in r] for r in M] for M in qG],
                              [[_f(x) for x in r] for r in kc], [[[_f(x) for x in r] for r in M] for M in kG])
            qcf, qGf, kcf, kGf = h["pre_f"]
            dk, e = len(qc[0]), len(vc[0])
            V = [[_aff(vc[j][c], [vG[i][j][c] for i in range(D)], qbox) for c in range(e)]
                 for j in range(len(krows))]
            if len(krows) == 1:  # a softmax over one key is exactly 1: the output is that key's value
                out = [list(V[0]) for _ in qrows]
                if self._hints is not None:
                    for _ in qrows:
                        self._leader([0.0])
                Y = out if Y is None else [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(Y, out)]
                continue
            out = []
            km = [[kcf[j][d] + sum(kGf[i][j][d] * xm[i] for i in range(D)) for d in range(dk)]
                  for j in range(len(krows))]
            for qi in range(len(qrows)):
                q = [_affine_range(qc[qi][d], [qG[i][qi][d] for i in range(D)], qbox) for d in range(dk)]
                qm = [qcf[qi][d] + sum(qGf[i][qi][d] * xm[i] for i in range(D)) for d in range(dk)]
                mid = [sum(a * b for a, b in zip(qm, km[j])) + (_f(h["bias"][qi][j]) if h["bias"] else 0.0)
                       for j in range(len(krows))]
                ks = self._leader(mid)
                gaps = []
                for j in range(len(krows)):
                    lo = hi = (h["bias"][qi][j] - h["bias"][qi][ks]) if h["bias"] else fmpq(0)
                    for d in range(dk):
                        kd = _affine_range(kc[j][d] - kc[ks][d], [kG[i][j][d] - kG[i][ks][d] for i in range(D)], qbox)
                        plo, phi = _qmul(q[d], kd)
                        lo, hi = lo + plo, hi + phi
                    gaps.append(arb_interval(lo, hi))  # exact range of the bilinear gap
                l, u = _weights(gaps)
                lu = knapsack_floats(l, u)
                out.append([_combine(l, u, [V[j][c] for j in range(len(krows))], lu) for c in range(e)])
            Y = out if Y is None else [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(Y, out)]
        return Y

    # -- later layers: tokens are balls
    def _leader(self, mid):
        """The softmax leader k*: the certificate's hint (validated), else the best at the centre."""
        if self._hints is None:
            return max(range(len(mid)), key=lambda j: mid[j])
        k = next(self._hints, None)
        if k is None or type(k) is not int or not 0 <= k < len(mid):
            raise Invalid("hints do not match the network's softmax rows")
        return k

    def _later(self, qrows, krows, heads, Z):
        Y = None
        zero = arb(0)
        for h in heads:
            def mm(row, cols):
                return [sum((row[t] * m for t, m in col), zero) for col in cols]
            Q = [mm(Z[r], _cols(h, "wq", h["wq"])) for r in qrows]
            K = [mm(Z[r], _cols(h, "wk", h["wk"])) for r in krows]
            V = [mm(Z[r], _cols(h, "wvo", h["wvo"])) for r in krows]
            out = []
            for qi, q in enumerate(Q):
                mid = [sum(float(a.mid()) * float(b.mid()) for a, b in zip(q, K[j]))
                       + (float(h["bias"][qi][j]) if h["bias"] else 0.0) for j in range(len(krows))]
                ks = self._leader(mid)
                gaps = []
                for j in range(len(krows)):
                    s = sum((q[d] * (K[j][d] - K[ks][d]) for d in range(len(q))), arb(0))
                    if h["bias"]:
                        s += arb(h["bias"][qi][j] - h["bias"][qi][ks])
                    gaps.append(s)
                l, u = _weights(gaps)
                lu = knapsack_floats(l, u)
                out.append([_combine(l, u, [V[j][c] for j in range(len(krows))], lu) for c in range(len(V[0]))])
            Y = out if Y is None else [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(Y, out)]
        return Y

    def outputs(self, box, hints=None):
        """Balls enclosing every network output over an exact box [(lo, hi), ...] of fmpq."""
        rest = self.split_outputs(box, hints)
        X = [arb_interval(a, b) for a, b in box]
        return [r + sum((arb(a) * x for a, x in zip(lin, X) if a != 0), arb(0)) for r, lin in zip(rest, self.lin)]

    def split_outputs(self, box, hints=None):
        """Balls enclosing every output minus its exact linear part ``self.lin``.

        ``hints`` (optional) name the leader of every softmax row in the searcher's order;
        all of them must be used.  Any leader gives a sound bound; the hints make it the same one.
        """
        key = (tuple(box), None if hints is None else tuple(hints))
        if key in self._memo:
            return self._memo[key]
        self._hints = None if hints is None else iter(hints)
        out = self._outputs(box)
        if self._hints is not None and next(self._hints, None) is not None:
            raise Invalid("more hints than softmax rows")
        self._memo[key] = out
        return out

    def _outputs(self, box):
        """Balls of the outputs (minus ``self.lin``) over an exact box, following ``_plan``: entries
        that are exact affine forms stay forms (nothing to compute per box), softmax rows with affine
        logits and values go to core's one-layer head bound, anything else to the ball path."""
        plan = self._plan()
        xm = [(_f(a) + _f(b)) / 2 for a, b in box]
        Z = Ypre = plan["emb"]
        cache = self.__dict__.setdefault("_post_cache", {})
        for li, ((qrows, krows, heads, post), lp) in enumerate(zip(self.layers, plan["layers"])):
            if lp["static"]:   # single-key heads on forms: the outputs are lp's forms; only hints to read
                for _ in range(len(heads) * len(qrows)):
                    self._leader([0.0])
                Ypre, Z = lp["pre"], lp["out"]
                continue
            Y, Zb = None, None
            for h, (kind, data) in zip(heads, lp["heads"]):
                if kind == "single":
                    for _ in qrows:
                        self._leader([0.0])
                    out = data
                elif kind == "affine":
                    out = [self._affine_row(row, box, xm)[1] for row in data]
                elif kind == "first":
                    out = self._first(qrows, krows, [h], box, xm)
                else:
                    if Zb is None:
                        Zb = [[_ball(x, box) for x in row] for row in Z]
                    out = self._later(qrows, krows, [h], Zb)
                Y = out if Y is None else [[_add(a, b, box) for a, b in zip(ra, rb)] for ra, rb in zip(Y, out)]
            Ypre = Y
            if post is not None:
                W, B = post
                if ("post", li) not in cache:   # W's nonzero entries and B as arbs, once
                    cache[("post", li)] = ([[(t, arb(W[t][c])) for t in range(len(W)) if W[t][c] != 0]
                                            for c in range(len(W[0]))], [[arb(x) for x in r] for r in B])
                cols, Ba = cache[("post", li)]
                Y = [[lp["out"][r][c] if lp["out"][r][c] is not None else
                      sum((_ball(row[t], box) * w for t, w in cols[c]), Ba[r][c]) for c in range(len(cols))]
                     for r, row in enumerate(Y)]
            Z = Y
        if not self.final_softmax:
            ent = [_ball(Z[r][c], box) for r, c in self.readout]
            if self.linear is None:
                return ent
            return [sum((w * v for w, v in zip(ws, ent)), arb(b)) for b, ws in self.linear]
        post = self.layers[-1][3]
        weights = []   # per row: ("aff", head_parts_lu's parts or None, balls per linear output) or ("ball", l, u)
        for r, row in enumerate(Z):
            rp = plan["final"][r]
            if rp is not None:
                weights.append(("aff",) + self._affine_row(rp, box, xm, weights_only=self.linear is None))
                continue
            row = [_ball(x, box) for x in row]
            ks = self._leader([float(row[c].mid()) for c in range(len(row))])
            if post is not None:
                W, B = post
                if ("gap", ks) not in cache:   # the exact W[t][c] - W[t][k*] as arbs, once per k*
                    cache[("gap", ks)] = [[(t, arb(W[t][c] - W[t][ks])) for t in range(len(W))
                                           if W[t][c] != W[t][ks]] for c in range(len(row))]
                dW = cache[("gap", ks)]
                pre = [_ball(x, box) for x in Ypre[r]]
                gaps = [sum((pre[t] * w for t, w in dW[c]), arb(B[r][c] - B[r][ks])) for c in range(len(row))]
            else:
                gaps = [row[c] - row[ks] for c in range(len(row))]
            weights.append(("ball",) + tuple(_weights(gaps)))
        if self.linear is None:
            out = []
            for r, c in self.readout:
                w = weights[r]
                if w[0] == "ball":
                    out.append(arb_interval(w[1][c].lower(), w[2][c].upper()))
                    continue
                act, l, u = w[1][2], w[1][3], w[1][4]
                if c in act:
                    i = act.index(c)
                    out.append(arb_interval(l[i].lower(), u[i].upper()))
                else:   # a key of the lumped tail: 0 <= a_c <= the tail's total weight <= u[-1]
                    out.append(arb_interval(arb(0), u[-1].upper()))
            return out
        outs = []
        vals_all = self._final_vals()
        for o, (b, ws) in enumerate(self.linear):
            acc = arb(b)
            for r in range(self.rows):
                w = weights[r]
                acc += _combine(w[1], w[2], vals_all[o][r]) if w[0] == "ball" else w[2][o]
            outs.append(acc)
        return outs

    def _final_vals(self):
        """Per linear output, per row: the readout weights of that row's columns as arbs (0 elsewhere)."""
        key = ("vals", ctx.prec)
        cache = self.__dict__.setdefault("_post_cache", {})
        if key not in cache:
            cache[key] = [[[arb(x) for x in row] for row in self._val_rows(ws)] for _, ws in self.linear]
        return cache[key]

    def _val_rows(self, ws):
        """The exact readout weights ``ws`` spread over [row][column] (0 where no entry is read)."""
        vals = [[fmpq(0)] * self.width for _ in range(self.rows)]
        for w, (r, c) in zip(ws, self.readout):
            vals[r][c] = w
        return vals

    def _affine_row(self, rp, box, xm, weights_only=False):
        """One softmax row whose logits are exact affine forms c_j + G_j.x (up to a term common to
        every key, which the softmax ignores) and whose values are affine forms: its leader (hint
        or best at the centre), then ``_lone_leader`` when the values are constant, else (or when
        that does not apply) core's one-layer head bound (``head_parts_lu``: exact gap ranges,
        weights in the gap form, lumped tail, knapsack) for its first value column and the same
        weight bounds for the others.  Returns (head_parts_lu's parts or None, [ball per column];
        None instead of the balls with ``weights_only``, which always takes head_parts_lu)."""
        n = rp["n"]
        if self._hints is None:
            cf, Gf = rp["f"]
            ks = self._leader([cf[j] + sum(g * x for g, x in zip(Gf[j], xm)) for j in range(n)])
        else:
            ks = self._leader(rp["len"])
        if rp["values"] is not None and not weights_only:
            balls = self._lone_leader(rp, ks, box)
            if balls is not None:
                return None, balls
        parts = head_parts_lu(self._prep, rp["hn"], ks, box)
        if weights_only:
            return parts, None
        return parts, [_ends_ball(parts[0], parts[1])] + [_ends_ball(*_more_column(parts, col, box))
                                                          for col in rp["cols"]]

    def _lone_leader(self, rp, ks, qbox):
        """Balls of a constant-valued softmax row y = sum_j a_j e_j (one per value column) when every
        key but the leader k* surely has its exact gap g_j = s_j - s_k* below TAIL_GAP over the box
        (ball ends as in head_parts_lu); None otherwise.

        Then m = 1 - a_k* = sum_{j != k*} a_j lies in [0, mh], mh = min(1, tau), tau = (n - 1) e^M
        with M >= every such gap's upper end (the softmax's denominator is at least e^{g_k*} = 1),
        and y = (1 - m) e_k* + m w with w = (sum_{j != k*} a_j e_j) / m in [t_lo, t_hi], the range
        of the other keys' values.  As y is affine in m on [0, mh],
            e_k* + mh min(0, t_lo - e_k*) <= y <= e_k* + mh max(0, t_hi - e_k*),
        every end evaluated in Arb from exact-ended balls and rounded outward.  The knapsack of
        head_parts_lu bounds the same y over the same weights, only at a higher cost."""
        prec = ctx.prec
        key = (ks, prec)
        lone = rp["lone"].get(key)
        if lone is None:   # per leader: the exact-ended value of k* and range of the others, per column
            lone = []
            for e in rp["values"]:
                rest = [x for j, x in enumerate(e) if j != ks]
                lone.append((arb(e[ks]).lower(), arb(e[ks]).upper(),
                             arb(min(rest)).lower() if rest else None, arb(max(rest)).upper() if rest else None))
            rp["lone"][key] = lone
        xa, xb = self._box_arbs(qbox)
        dcA, gA = self._prep.gap_balls(rp["hn"], ks)
        tail = _TAIL
        top = None
        for j in range(rp["n"]):
            if j == ks:
                continue
            hi_s = dcA[j]   # a ball that contains the exact upper end of g_j over the box
            for i, g, pos in gA[j]:
                hi_s = hi_s + g * (xb[i] if pos else xa[i])
            if not hi_s < tail:
                return None
            t = hi_s.upper()
            top = t if top is None or t > top else top
        if top is None:   # one key: its weight is exactly 1
            return [_ends_ball(vl, vh) for vl, vh, _, _ in lone]
        mh = arb.min((arb(rp["n"] - 1) * top.exp()).upper(), _ONE).upper()
        out = []
        for vl, vh, t_lo, t_hi in lone:
            d_hi = (t_hi - vh).upper()
            d_lo = (t_lo - vl).lower()
            hi = (vh + mh * d_hi).upper() if d_hi > 0 else vh
            lo = (vl + mh * d_lo).lower() if d_lo < 0 else vl
            out.append(_ends_ball(lo, hi))
        return out

    def _box_arbs(self, qbox):
        """Balls of the box's exact lower and upper ends (at the current precision), made once per box."""
        c = getattr(self, "_xab", None)
        if c is None or c[0] is not qbox or c[1] != ctx.prec:
            c = self._xab = (qbox, ctx.prec, [arb(a) for a, _ in qbox], [arb(b) for _, b in qbox])
        return c[2], c[3]

    def _plan(self):
        """What of the network is exact affine in x, worked out once per certificate (no box): the
        embedding's entries are forms (c, g), the exact real function c + g.x; a head over one key
        outputs that key's value (its softmax weight is exactly 1), a post map or a sum of heads
        maps forms to forms.  Per layer: "static" when its outputs are all forms (``pre`` before
        the post map, ``out`` after), and per head its kind: "single" (forms, ``data`` its output
        rows), "affine" (several keys, logits and values affine in x on every query row: ``data``
        the row plans for ``_affine_row``), else "first" / "later" (the ball paths).  ``final``:
        per row of the final softmax, a row plan when that row's logits are forms, else None."""
        if getattr(self, "_plan_cache", None) is not None:
            return self._plan_cache
        D = len(self.lins)
        emb = [[(self.const[r][d], tuple(E[r][d] for E in self.lins)) for d in range(len(self.const[0]))]
               for r in range(len(self.const))]
        flat = []   # the one-layer heads (c, G, e, F) of the affine rows, for core's PreparedHeads
        layers = []
        Z = emb
        for li, (qrows, krows, heads, post) in enumerate(self.layers):
            hps = []
            for h in heads:
                if li == 0:
                    qc, qG, kc, kG, vc, vG = self._pre(h, qrows, krows)
                    Q = [[(qc[a][d], tuple(G[a][d] for G in qG)) for d in range(len(qc[0]))] for a in range(len(qrows))]
                    K = [[(kc[j][d], tuple(G[j][d] for G in kG)) for d in range(len(kc[0]))] for j in range(len(krows))]
                    V = [[(vc[j][c], tuple(G[j][c] for G in vG)) for c in range(len(vc[0]))] for j in range(len(krows))]
                else:
                    Q = _forms_times([Z[r] for r in qrows], h["wq"], D)
                    K = _forms_times([Z[r] for r in krows], h["wk"], D)
                    V = _forms_times([Z[r] for r in krows], h["wvo"], D)
                hps.append(_head_plan(h, Q, K, V, len(qrows), "first" if li == 0 else "later", flat, D))
            width = len(heads[0]["wvo"][0])
            static = all(kind == "single" for kind, _ in hps)
            pre = None
            if static:
                for _, out in hps:
                    pre = out if pre is None else [[_form_add(a, b) for a, b in zip(ra, rb)] for ra, rb in zip(pre, out)]
            else:
                pre = [[None] * width for _ in qrows]
            out = pre
            if post is not None:
                W, B = post
                out = [[_form_comb([(W[t][c], row[t]) for t in range(len(W)) if W[t][c] != 0], B[r][c], D)
                        for c in range(len(W[0]))] for r, row in enumerate(pre)]
                static = static and all(f is not None for row in out for f in row)
            layers.append({"static": static, "heads": hps, "pre": pre, "out": out})
            Z = out
        final = None
        if self.final_softmax:
            final = []
            lin_vals = [self._val_rows(ws) for _, ws in self.linear] if self.linear is not None else None
            for r, row in enumerate(Z):
                if any(f is None for f in row):
                    final.append(None)
                    continue
                n = len(row)
                cols = [[v[r][c] for c in range(n)] for v in lin_vals] if lin_vals is not None else [[fmpq(0)] * n]
                zero = [[fmpq(0)] * D for _ in range(n)]
                final.append(_row_plan([f[0] for f in row], [list(f[1]) for f in row],
                                       [(e, zero) for e in cols], flat))
        self._prep = PreparedHeads([flat])
        self._plan_cache = {"emb": emb, "layers": layers, "final": final}
        return self._plan_cache

    # -- the derivative pass of the centred bound (forward mode, interval ends throughout)
    def _pre(self, h, qrows, krows):
        """Layer 1's exact affine forms of one head (cached: they do not depend on the box)."""
        if "pre" not in h:
            qc = _mm([self.const[r] for r in qrows], h["wq"])
            qG = [_mm([E[r] for r in qrows], h["wq"]) for E in self.lins]
            kc = _mm([self.const[r] for r in krows], h["wk"])
            kG = [_mm([E[r] for r in krows], h["wk"]) for E in self.lins]
            vc = _mm([self.const[r] for r in krows], h["wvo"])
            vG = h.get("vG_adj") or [_mm([E[r] for r in krows], h["wvo"]) for E in self.lins]
            h["pre"] = (qc, qG, kc, kG, vc, vG)
        return h["pre"]

    def _first_d(self, qrows, krows, heads, qbox, xm):
        """Layer 1: (values [row][col] ends, derivatives per input: None or [row][col] ends)."""
        D = len(qbox)
        Y = dY = None
        for h in heads:
            qc, qG, kc, kG, vc, vG = self._pre(h, qrows, krows)
            dk, e, nk = len(qc[0]), len(vc[0]), len(krows)
            V = [[_qa(*_affine_range(vc[j][c], [vG[i][j][c] for i in range(D)], qbox)) for c in range(e)]
                 for j in range(nk)]
            dV = [None if all(v == 0 for r in vG[i] for v in r) else [[_qa(v, v) for v in r] for r in vG[i]]
                  for i in range(D)]
            if nk == 1:  # a softmax over one key is exactly 1: the output is that key's value
                out = [list(V[0]) for _ in qrows]
                dout = [None if d is None else [list(d[0]) for _ in qrows] for d in dV]
                for _ in qrows:
                    self._leader([0.0])
            else:
                out, per_row = [], []
                for qi in range(len(qrows)):
                    q = [_affine_range(qc[qi][d], [qG[i][qi][d] for i in range(D)], qbox) for d in range(dk)]
                    qm = [_f(qc[qi][d]) + sum(_f(qG[i][qi][d]) * xm[i] for i in range(D)) for d in range(dk)]
                    km = [[_f(kc[j][d]) + sum(_f(kG[i][j][d]) * xm[i] for i in range(D)) for d in range(dk)]
                          for j in range(nk)]
                    mid = [sum(a * b for a, b in zip(qm, km[j])) + (_f(h["bias"][qi][j]) if h["bias"] else 0.0)
                           for j in range(nk)]
                    ks = self._leader(mid)
                    kd = [[_affine_range(kc[j][d] - kc[ks][d], [kG[i][j][d] - kG[i][ks][d] for i in range(D)], qbox)
                           for d in range(dk)] for j in range(nk)]
                    gaps = []
                    for j in range(nk):
                        lo = hi = (h["bias"][qi][j] - h["bias"][qi][ks]) if h["bias"] else fmpq(0)
                        for d in range(dk):
                            plo, phi = _qmul(q[d], kd[j][d])
                            lo, hi = lo + plo, hi + phi
                        gaps.append(arb_interval(lo, hi))  # exact range of the bilinear gap
                    l, u = _weights(gaps)
                    Yr = [_krange(l, u, [V[j][c] for j in range(nk)]) for c in range(e)]
                    dS = []
                    for i in range(D):
                        mq = any(qG[i][qi][d] != 0 for d in range(dk))
                        mk = any(kG[i][j][d] != kG[i][ks][d] for j in range(nk) for d in range(dk))
                        if not (mq or mk):
                            dS.append(None)
                            continue
                        ds = []
                        for j in range(nk):   # d_i (q . kd_j) = d_i q . kd_j + q . d_i kd_j, exact
                            lo = hi = fmpq(0)
                            for d in range(dk):
                                a, b = _qscale(qG[i][qi][d], *kd[j][d])
                                c2, d2 = _qscale(kG[i][j][d] - kG[i][ks][d], *q[d])
                                lo, hi = lo + a + c2, hi + b + d2
                            ds.append(_qa(lo, hi))
                        dS.append(ds)
                    out.append(Yr)
                    per_row.append(_softmax_d(l, u, [[V[j][c] for c in range(e)] for j in range(nk)], Yr, dS, dV))
                dout = [None if all(r[i] is None for r in per_row) else
                        [r[i] if r[i] is not None else [(arb(0), arb(0))] * e for r in per_row] for i in range(D)]
            Y = out if Y is None else [[_iadd(a, b) for a, b in zip(ra, rb)] for ra, rb in zip(Y, out)]
            dY = _dsum(dY, dout)
        return Y, dY

    def _later_d(self, qrows, krows, heads, Z, dZ):
        """A later layer on interval-end tokens Z and their derivatives dZ (as ``_first_d``)."""
        Y = dY = None
        D = len(dZ)
        for h in heads:
            Q = _rows_times([Z[r] for r in qrows], h["wq"])
            K = _rows_times([Z[r] for r in krows], h["wk"])
            V = _rows_times([Z[r] for r in krows], h["wvo"])
            dQ = [None if d is None else _rows_times([d[r] for r in qrows], h["wq"]) for d in dZ]
            dK = [None if d is None else _rows_times([d[r] for r in krows], h["wk"]) for d in dZ]
            dV = [None if d is None else _rows_times([d[r] for r in krows], h["wvo"]) for d in dZ]
            nk, e = len(krows), len(V[0])
            out, per_row = [], []
            for qi, q in enumerate(Q):
                mid = [sum(float(((a[0] + a[1]) / 2).mid()) * float(((b[0] + b[1]) / 2).mid()) for a, b in zip(q, K[j]))
                       + (float(h["bias"][qi][j]) if h["bias"] else 0.0) for j in range(nk)]
                ks = self._leader(mid)
                kd = [[_isub(K[j][d], K[ks][d]) for d in range(len(q))] for j in range(nk)]
                sl, sh = [], []
                for j in range(nk):
                    s = _sum_terms([_imul(q[d], kd[j][d]) for d in range(len(q))])
                    if h["bias"]:
                        s = _iadd(s, _qa(h["bias"][qi][j] - h["bias"][qi][ks], h["bias"][qi][j] - h["bias"][qi][ks]))
                    sl.append(s[0])
                    sh.append(s[1])
                l, u = softmax_weight_bounds(sl, sh)
                Yr = [_krange(l, u, [V[j][c] for j in range(nk)]) for c in range(e)]
                dS = []
                for i in range(D):
                    if dQ[i] is None:
                        dS.append(None)
                        continue
                    dq = dQ[i][qi]
                    ds = []
                    for j in range(nk):
                        dkd = [_isub(dK[i][j][d], dK[i][ks][d]) for d in range(len(q))]
                        ds.append(_iadd(_sum_terms([_imul(dq[d], kd[j][d]) for d in range(len(q))]),
                                        _sum_terms([_imul(q[d], dkd[d]) for d in range(len(q))])))
                    dS.append(ds)
                out.append(Yr)
                per_row.append(_softmax_d(l, u, V, Yr, dS, dV))
            dout = [None if all(r[i] is None for r in per_row) else
                    [r[i] if r[i] is not None else [(arb(0), arb(0))] * e for r in per_row] for i in range(D)]
            Y = out if Y is None else [[_iadd(a, b) for a, b in zip(ra, rb)] for ra, rb in zip(Y, out)]
            dY = _dsum(dY, dout)
        return Y, dY

    def split_derivatives(self, box, hints=None):
        """Per output (minus its exact linear part ``self.lin``): per input, the exact ends of an
        enclosure of its partial derivative over the box, or None where it is exactly 0.  The
        leaders are the ``hints`` (all of them used), else the best at the box centre."""
        self._hints = None if hints is None else iter(hints)
        D = len(box)
        xm = [(_f(a) + _f(b)) / 2 for a, b in box]
        Z = dZ = Ypre = dYpre = None
        for li, (qrows, krows, heads, post) in enumerate(self.layers):
            if li == 0:
                Y, dY = self._first_d(qrows, krows, heads, box, xm)
            else:
                Y, dY = self._later_d(qrows, krows, heads, Z, dZ)
            Ypre, dYpre = Y, dY
            if post is not None:
                W, B = post
                Y = [[_iadd(t, _qa(B[r][c], B[r][c])) for c, t in enumerate(row)]
                     for r, row in enumerate(_rows_times(Y, W))]
                dY = [None if d is None else _rows_times(d, W) for d in dY]
            Z, dZ = Y, dY
        douts = self._final_d(Z, dZ, Ypre, dYpre, D) if self.final_softmax else self._readout_d(dZ, D)
        if self._hints is not None and next(self._hints, None) is not None:
            raise Invalid("more hints than softmax rows")
        return douts

    def _readout_d(self, dZ, D):
        ent = [[None if d is None else d[r][c] for d in dZ] for r, c in self.readout]   # [entry][input]
        if self.linear is None:
            return ent
        outs = []
        for _, ws in self.linear:
            per = []
            for i in range(D):
                terms = [_iconst(en[i], w) for w, en in zip(ws, ent) if en[i] is not None and w != 0]
                per.append(_sum_terms(terms) if terms else None)
            outs.append(per)
        return outs

    def _final_d(self, Z, dZ, Ypre, dYpre, D):
        post = self.layers[-1][3]
        G, L = [], []   # per row: per input the brackets d_i s_c - P_i; the weight bounds
        for r, row in enumerate(Z):
            C = len(row)
            ks = self._leader([float(((x[0] + x[1]) / 2).mid()) for x in row])
            if post is not None:
                W, B = post
                sl, sh, dS = [], [], []
                for c in range(C):
                    s = _sum_terms([_iconst(Ypre[r][t], W[t][c] - W[t][ks]) for t in range(len(W))
                                    if W[t][c] != W[t][ks]])
                    s = _iadd(s, _qa(B[r][c] - B[r][ks], B[r][c] - B[r][ks]))
                    sl.append(s[0])
                    sh.append(s[1])
                for i in range(D):
                    d = dYpre[i]
                    dS.append(None if d is None else
                              [_sum_terms([_iconst(d[r][t], W[t][c] - W[t][ks]) for t in range(len(W))
                                           if W[t][c] != W[t][ks]]) for c in range(C)])
            else:
                gaps = [_isub(row[c], row[ks]) for c in range(C)]
                sl, sh = [g[0] for g in gaps], [g[1] for g in gaps]
                dS = [None if d is None else [_isub(d[r][c], d[r][ks]) for c in range(C)] for d in dZ]
            l, u = softmax_weight_bounds(sl, sh)
            g = []
            for ds in dS:
                if ds is None:
                    g.append(None)
                    continue
                Pl, Ph = _krange(l, u, ds)
                g.append([((x[0] - Ph).lower(), (x[1] - Pl).upper()) for x in ds])
            G.append(g)
            L.append((l, u))
        if self.linear is None:   # d_i a_c = a_c (d_i s_c - P_i)
            return [[None if G[r][i] is None else _imul((L[r][0][c], L[r][1][c]), G[r][i][c]) for i in range(D)]
                    for r, c in self.readout]
        outs = []
        for _, ws in self.linear:
            vals = [[fmpq(0)] * self.width for _ in range(self.rows)]
            for w, (r, c) in zip(ws, self.readout):
                vals[r][c] = w
            per = []
            for i in range(D):
                acc = None
                for r in range(self.rows):
                    if G[r][i] is None:
                        continue
                    l, u = L[r]
                    v = [_qa(x, x) for x in vals[r]]
                    y = _krange(l, u, v)
                    q = [_imul(((v[c][0] - y[1]).lower(), (v[c][1] - y[0]).upper()), G[r][i][c]) for c in range(len(v))]
                    acc = _iadd(acc, _krange(l, u, q))
                per.append(acc)
            outs.append(per)
        return outs


def _gap(a_lo, a_hi, b_lo, b_hi):
    """Upper end of sup |a - b| for a in [a_lo, a_hi], b in [b_lo, b_hi]; None when not finite
    (each expression is evaluated once per box, not once per term)."""
    if not all(x.is_finite() for x in (a_lo, a_hi, b_lo, b_hi)):
        return None
    err = arb.max((a_hi - b_lo).upper(), (b_hi - a_lo).upper()).upper()
    return err if err.is_finite() else None


def check_chain(chain, boxes, all_hints, model, targets, eps) -> list:
    """Re-derive the stored chain terms |f - g| and |g - network| on every box; report them.

    A stored term must not undercut the re-derived one by more than REL_SLACK of the re-derived
    term itself (core.undercuts, as for the box bounds).
    """
    out = []
    for n, term in enumerate(chain):
        try:
            g = arb_compile(term["g"])
        except ArbExprError as e:
            raise Invalid(f"chain[{n}].g: {e}") from None
        t1 = t2 = arb(0)
        for box, hints in zip(boxes, all_hints):
            qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
            env = box_env(qbox)
            g_lo, g_hi = g.bounds(env)
            f_lo, f_hi = targets[0].bounds(env)
            nv = model.outputs(qbox, hints)[0]
            e1 = _gap(g_lo, g_hi, f_lo, f_hi)                        # |f - g|
            e2 = _gap(nv.lower(), nv.upper(), g_lo, g_hi)           # |g - network|
            if e1 is None or e2 is None:
                raise Invalid(f"chain[{n}]: a term is not finite")
            t1, t2 = arb.max(t1, e1).upper(), arb.max(t2, e2).upper()
        for key, val in (("f_minus_g", t1), ("g_minus_network", t2)):
            if undercuts(rat(term[key], f"chain[{n}].{key}"), val):
                raise Invalid(f"chain[{n}]: stored {key} is below the re-derived bound {float(val.mid()):.6g}")
        out.append({"label": term["label"], "f_minus_g": float_up(t1), "g_minus_network": float_up(t2)})
    return out


def split_linear_json(obj):
    """(coefficients {var: fmpq}, rest JSON tree or None): the top-level linear part of a target.

    Mirrors the searcher's split independently: only add/sub/neg/scalar-mul are split, and
    obj == linear + rest exactly, so cancelling the network's equal linear part is sound.
    """
    from .arbexpr import ArbExprError
    if not isinstance(obj, dict):
        raise ArbExprError("expression node is not an object")
    if "var" in obj:
        return {obj["var"]: fmpq(1)}, None
    op, args = obj.get("op"), obj.get("args")
    if op == "add" and isinstance(args, list) and len(args) >= 2:
        coef, rests = {}, []
        for a in args:
            k, r = split_linear_json(a)
            for v, c in k.items():
                coef[v] = coef.get(v, fmpq(0)) + c
            if r is not None:
                rests.append(r)
        return coef, (None if not rests else rests[0] if len(rests) == 1 else {"op": "add", "args": rests})
    if op == "sub" and isinstance(args, list) and len(args) == 2:
        ka, ra = split_linear_json(args[0])
        kb, rb = split_linear_json(args[1])
        coef = dict(ka)
        for v, c in kb.items():
            coef[v] = coef.get(v, fmpq(0)) - c
        if rb is None:
            return coef, ra
        return coef, ({"op": "neg", "args": [rb]} if ra is None else {"op": "sub", "args": [ra, rb]})
    if op == "neg" and isinstance(args, list) and len(args) == 1:
        k, r = split_linear_json(args[0])
        return {v: -c for v, c in k.items()}, (None if r is None else {"op": "neg", "args": [r]})
    if op == "mul" and isinstance(args, list) and len(args) == 2 and any(
            isinstance(a, dict) and set(a) == {"num"} for a in args):
        num, other = (args[0], args[1]) if isinstance(args[0], dict) and set(args[0]) == {"num"} else (args[1], args[0])
        from .arbexpr import arb_compile
        arb_compile(num)  # validates the number string (raises ArbExprError)
        k, r = split_linear_json(other)
        return ({v: fmpq(*_num(num["num"])) * a for v, a in k.items()},
                None if r is None else {"op": "mul", "args": [num, r]})
    return {}, obj


def _num(s):
    p, _, q = s.partition("/")
    return int(p), int(q) if q else 1


def split_targets(model, target_json, domain):
    """Per output: (the target's exact linear coefficients per input, the compiled rest or None)."""
    D = len(model.lins)
    split = []
    for t in target_json:
        try:
            coef, rest = split_linear_json(t)
            rest_f = None if rest is None else arb_compile(rest)
            if rest_f is not None and domain is not None:
                rest_f = rest_f.on_domain(domain)
        except ArbExprError as e:
            raise Invalid(f"target: {e}") from None
        if any(v not in {f"x{i}" for i in range(D)} for v in coef):
            raise Invalid("target uses a variable outside the inputs")
        split.append(([coef.get(f"x{i}", fmpq(0)) for i in range(D)], rest_f))
    return split


def _qbox(box):
    return [(lo if isinstance(lo, fmpq) else fmpq(lo.numerator, lo.denominator),
             hi if isinstance(hi, fmpq) else fmpq(hi.numerator, hi.denominator)) for lo, hi in box]


def layered_box_bound(model, target_json, domain=None):
    """A box-bound function ``bound(box, hints)`` for layered networks (boxes inside ``domain``).

    N - f = (lin_N - lin_f).x + N' - f': the exact linear part shared by network and
    target cancels instead of entering the bound twice.
    """
    split = split_targets(model, target_json, domain)

    def bound(box, hints):
        qbox = _qbox(box)
        env = box_env(qbox)
        worst = arb(0)
        for n, lin, (tcoef, f) in zip(model.split_outputs(qbox, hints), model.lin, split):
            lo, hi = fmpq(0), fmpq(0)
            for a, (xl, xh) in zip([p - q for p, q in zip(lin, tcoef)], qbox):
                lo, hi = lo + min(a * xl, a * xh), hi + max(a * xl, a * xh)
            n_lo, n_hi = (n.lower() + arb(lo)).lower(), (n.upper() + arb(hi)).upper()  # exact ends, no ball
            f_lo, f_hi = (arb(0), arb(0)) if f is None else f.bounds(env)
            err = arb.max((n_hi - f_lo).upper(), (f_hi - n_lo).upper()).upper()
            if not (err.is_finite() and f_lo.is_finite() and f_hi.is_finite() and n.is_finite()):
                raise Invalid("a box bound is not finite")
            worst = arb.max(worst, err).upper()
        return worst
    return bound


def layered_slopes(model, split, box, hints):
    """slope_i (an arb upper end per input; +inf when not finite) >= max_o sup_B |d_i (N_o - f_o)|
    over the exact box: the network's derivative from ``LayeredNet.split_derivatives`` plus the
    exact linear parts' difference, the target's from ``bounds_and_gradient``."""
    qbox = _qbox(box)
    D = len(qbox)
    env = box_env(qbox)
    names = [f"x{i}" for i in range(D)]
    slopes = [arb(0)] * D
    for dn, lin, (tcoef, f) in zip(model.split_derivatives(qbox, hints), model.lin, split):
        df = [None] * D if f is None else f.bounds_and_gradient(env, names)[1]
        for i in range(D):
            g = dn[i]
            a = lin[i] - tcoef[i]
            if a != 0:
                g = _iadd(g, _qa(a, a))
            if df[i] is not None:
                g = _isub((arb(0), arb(0)) if g is None else g, df[i])
            if g is None:
                continue
            m = slope_bound(*g)
            slopes[i] = m if m > slopes[i] else slopes[i]
    return slopes


def layered_centred_bound(model, target_json, domain=None):
    """A function ``centred(box, hints, stored_slopes)`` for the boxes of a layered paving that carry
    slopes: the checker's centred bound C* = E_c* + sum_i s*_i r_i of the exact box, with its own
    slopes s*_i (``layered_slopes``) and E_c* the layered box bound at the exact centre with the
    same hints.  A stored slope that undercuts the checker's (beyond REL_SLACK of C*, as in
    check/centred.py) is Invalid; a slope that is not finite is a BoxError.

    Why C* holds: for every x in the box B with centre c and radii r, and each output o,
    |e_o(x)| <= |e_o(c)| + sum_i |x_i - c_i| sup_B |d_i e_o| (move one coordinate at a time),
    and the derivative pass encloses d_i e_o over B (the identity of the module docstring)."""
    split = split_targets(model, target_json, domain)
    bound = layered_box_bound(model, target_json, domain)

    def centred(box, hints, stored_slopes):
        qbox = _qbox(box)
        stored = parse_slopes(stored_slopes, len(qbox))
        slopes = layered_slopes(model, split, qbox, hints)
        require_finite(slopes)
        centre = [(lo + hi) / 2 for lo, hi in qbox]
        total = centred_total(bound([(x, x) for x in centre], hints), slopes, qbox)
        confirm_slopes(stored, slopes, qbox, total)
        return total
    return centred
