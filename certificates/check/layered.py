"""The checker's bound for layered networks (several layers, post maps, final softmax, linear readout).

Independent of ``verify``: from the stored exact weights it forms layer 1's queries,
key differences and values as exact affine functions of x (fmpq), later layers' tokens
as Arb balls, and bounds every softmax in the logit-gap form against a leader k* that
it picks itself at the box centre (any leader is sound), and every weighted sum by weak
LP duality.  The first layer's ball outputs enter the next layer's logits directly.
"""
from __future__ import annotations

from flint import arb, fmpq

from .arbexpr import ArbExprError, arb_compile, arb_interval
from .core import (Invalid, affine_range as _affine_range, box_env, knapsack_upper as _knapsack, mat, rat,
                   float_up, softmax_weight_bounds, target_error, undercuts)


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
    return softmax_weight_bounds([arb(g.lower()) for g in gaps], [arb(g.upper()) for g in gaps])


def _combine(l, u, vals):
    """Ball enclosing sum_j a_j v_j for value balls v_j."""
    hi = _knapsack(l, u, [arb(v.upper()) for v in vals])
    lo = -_knapsack(l, u, [-arb(v.lower()) for v in vals])
    if not (hi.is_finite() and lo.is_finite()):
        return arb("nan")
    return lo.union(hi)


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
            qc = _mm([self.const[r] for r in qrows], h["wq"])
            qG = [_mm([E[r] for r in qrows], h["wq"]) for E in self.lins]
            kc = _mm([self.const[r] for r in krows], h["wk"])
            kG = [_mm([E[r] for r in krows], h["wk"]) for E in self.lins]
            vc = _mm([self.const[r] for r in krows], h["wvo"])
            vG = h.get("vG_adj") or [_mm([E[r] for r in krows], h["wvo"]) for E in self.lins]
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
            for qi in range(len(qrows)):
                q = [_affine_range(qc[qi][d], [qG[i][qi][d] for i in range(D)], qbox) for d in range(dk)]
                qm = [_f(qc[qi][d]) + sum(_f(qG[i][qi][d]) * xm[i] for i in range(D)) for d in range(dk)]
                km = [[_f(kc[j][d]) + sum(_f(kG[i][j][d]) * xm[i] for i in range(D)) for d in range(dk)]
                      for j in range(len(krows))]
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
                out.append([_combine(l, u, [V[j][c] for j in range(len(krows))]) for c in range(e)])
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
        for h in heads:
            def mm(row, M):
                return [sum((row[t] * M[t][c] for t in range(len(M)) if M[t][c] != 0), arb(0))
                        for c in range(len(M[0]))]
            Q = [mm(Z[r], h["wq"]) for r in qrows]
            K = [mm(Z[r], h["wk"]) for r in krows]
            V = [mm(Z[r], h["wvo"]) for r in krows]
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
                out.append([_combine(l, u, [V[j][c] for j in range(len(krows))]) for c in range(len(V[0]))])
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
        xm = [(_f(a) + _f(b)) / 2 for a, b in box]
        Z = Ypre = None
        for li, (qrows, krows, heads, post) in enumerate(self.layers):
            Y = self._first(qrows, krows, heads, box, xm) if li == 0 else self._later(qrows, krows, heads, Z)
            Ypre = Y
            if post is not None:
                W, B = post
                Y = [[sum((row[t] * W[t][c] for t in range(len(W)) if W[t][c] != 0), arb(B[r][c]))
                      for c in range(len(W[0]))] for r, row in enumerate(Y)]
            Z = Y
        if not self.final_softmax:
            ent = [Z[r][c] for r, c in self.readout]
            if self.linear is None:
                return ent
            return [sum((w * v for w, v in zip(ws, ent)), arb(b)) for b, ws in self.linear]
        post = self.layers[-1][3]
        weights = []
        for r, row in enumerate(Z):
            ks = self._leader([float(row[c].mid()) for c in range(len(row))])
            if post is not None:
                W, B = post
                gaps = [sum((Ypre[r][t] * (W[t][c] - W[t][ks]) for t in range(len(W))), arb(B[r][c] - B[r][ks]))
                        for c in range(len(row))]
            else:
                gaps = [row[c] - row[ks] for c in range(len(row))]
            weights.append(_weights(gaps))
        if self.linear is None:
            return [arb_interval(weights[r][0][c].lower(), weights[r][1][c].upper()) for r, c in self.readout]
        outs = []
        for b, ws in self.linear:
            vals = [[arb(0)] * self.width for _ in range(self.rows)]
            for w, (r, c) in zip(ws, self.readout):
                vals[r][c] = arb(w)
            acc = arb(b)
            for r in range(self.rows):
                l, u = weights[r]
                acc += _combine(l, u, vals[r])
            outs.append(acc)
        return outs


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
            nv = model.outputs(qbox, hints)[0]
            e1 = target_error(g_lo, g_hi, targets[0], env)          # |f - g|
            e2 = target_error(nv.lower(), nv.upper(), g, env)       # |g - network|
            if e1 is None or e2 is None or not (g_lo.is_finite() and g_hi.is_finite()):
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


def layered_box_bound(model, target_json, domain=None):
    """A box-bound function ``bound(box, hints)`` for layered networks (boxes inside ``domain``).

    N - f = (lin_N - lin_f).x + N' - f': the exact linear part shared by network and
    target cancels instead of entering the bound twice.
    """
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

    def bound(box, hints):
        qbox = [(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator)) for lo, hi in box]
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
