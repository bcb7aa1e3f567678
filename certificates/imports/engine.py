"""The operations a graph's ops call on symbolic tensors: projections, logits, attention, softmax.

``Engine`` owns the input space and the token spaces cut so far.  A MatMul by a constant
projects a tensor: an affine tensor becomes an ``AffineSpace`` (the candidate embedding) and
is then projected; the output of an attention layer becomes a ``MapSpace`` (W_O, a post map)
unless it is a plain selection of columns.  Two tensors that meet (Add, Concat) are brought to
one space first: affine tensors over the input row, head groups of one layer merged, linear maps
lowered to their common parent.  Whatever cannot be brought together exactly is refused.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .base import ImportFailure, identity, zeros
from .symbolic import (AffineSpace, FlatSpace, HeadSpace, InputSpace, Lin, Logits, MapSpace, SoftmaxSpace,
                       affine_space_of, compose, materialize_affine, selection_over)


def _eq(a, b) -> bool:
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    return a.shape == b.shape and not np.any(a != b)


class Engine:
    def __init__(self, n_inputs: int):
        self.inp = InputSpace(n_inputs)
        self._memo = {}          # id(tensor) -> (tensor, cut) : cuts of one graph value are shared
        self._maps = []          # MapSpaces, for reuse by content
        self._canon = {}         # space uid -> canonical space
        self._softmax = {}
        self._flat = {}

    # ------------------------------------------------------------------ canonical spaces

    def _root(self, hs):
        off = 0
        while hs.merged is not None:
            nxt, o = hs.merged
            off += o
            hs = nxt
        return hs, off

    def canon_space(self, S):
        """(equivalent space over merged head groups, column map or None for the identity)."""
        if isinstance(S, HeadSpace):
            root, off = self._root(S)
            return (S, None) if root is S else (root, off + np.arange(S.c))
        if isinstance(S, (MapSpace, SoftmaxSpace, FlatSpace)):
            P, pm = self.canon_space(S.parent)
            if P is S.parent:
                return S, None
            key = S.uid
            if isinstance(S, MapSpace):
                if key not in self._canon:
                    M = zeros((P.c, S.c))
                    M[pm] = S.M
                    self._canon[key] = self._mapspace(P, M, S.B, S.defined)
                return self._canon[key], None
            if isinstance(S, SoftmaxSpace):
                if pm is not None:
                    raise ImportFailure("a softmax over the outputs of some heads of a layer whose other heads are "
                                        "added later: not a row-wise softmax of the layer output")
                return self._softmax_space(P), None
            pmap = pm if pm is not None else np.arange(S.parent.c)
            return self._flat_space(P, [(r, int(pmap[c])) for r, c in S.pairs]), None
        return S, None

    def canon(self, T):
        if not isinstance(T, Lin):
            return T
        S, cm = self.canon_space(T.space)
        if S is T.space:
            return T
        if cm is None:
            return Lin(S, T.rows, T.wid, T.table, T.s, T.b, T.eid)
        table = zeros((T.table.shape[0], S.c))
        table[:, cm] = T.table
        return Lin(S, T.rows, T.wid, table, T.s, T.b, T.eid)

    # ------------------------------------------------------------------ spaces by content

    def _mapspace(self, parent, M, B, defined):
        for ms in self._maps:
            if ms.parent is parent and _eq(ms.M, M):
                both = ms.defined & defined
                if not _eq(ms.B[both], B[both]):
                    continue
                new = defined & ~ms.defined
                ms.B[new] = B[new]
                ms.defined |= defined
                return ms
        ms = MapSpace(parent, M, B.copy(), defined.copy())
        self._maps.append(ms)
        return ms

    def _softmax_space(self, T):
        if T.uid not in self._softmax:
            self._softmax[T.uid] = SoftmaxSpace(T)
        return self._softmax[T.uid]

    def _flat_space(self, T, pairs):
        key = (T.uid, tuple(pairs))
        if key not in self._flat:
            self._flat[key] = FlatSpace(T, pairs)
        return self._flat[key]

    # ------------------------------------------------------------------ matrix forms

    @staticmethod
    def rows_constant_last(P: Lin) -> bool:
        return P.rows.size == 0 or bool(np.all(P.rows == P.rows[..., :1]))

    @staticmethod
    def _vectors_by_last(P: Lin):
        """(K, c) vectors if every entry's vector depends only on its last index, else None."""
        K = P.shape[-1]
        wid = P.wid.reshape(-1, K)
        s = None if P.s is None else P.s.reshape(-1, K)
        same = bool(np.all(wid == wid[:1]))
        if same and s is not None:
            same = not np.any(s != s[:1])
        if same:
            V = P.table[wid[0]]
            return V * s[0][:, None] if s is not None else V
        V = P.vectors().reshape(-1, K, P.space.c)
        if np.any(V != V[:1]):
            return None
        return V[0]

    def matrix_form(self, P: Lin):
        """(M (c, K), B rows) when P = space[rows] @ M + B[rows] with one M for every row, else None."""
        if P.ndim == 0 or not self.rows_constant_last(P):
            return None
        V = self._vectors_by_last(P)
        if V is None:
            return None
        K = P.shape[-1]
        R = P.space.R
        B = zeros((R, K))
        defined = np.zeros(R, dtype=bool)
        if P.b is not None:
            rows = P.rows.reshape(-1, K)[:, 0]
            bf = P.b.reshape(-1, K)
            for r, brow in zip(rows.tolist(), bf):
                if defined[r]:
                    if np.any(B[r] != brow):
                        return None
                else:
                    B[r] = brow
                    defined[r] = True
        rows = P.rows.reshape(-1, K)[:, 0] if K else np.zeros(0, np.int64)
        defined[rows] = True
        return V.T.copy(), B, defined

    # ------------------------------------------------------------------ cuts

    def _remember(self, T, value):
        self._memo[id(T)] = (T, value)
        return value

    def affine_cut(self, P: Lin) -> Lin:
        """An affine tensor as rows of its own token matrix: a selection over an AffineSpace."""
        hit = self._memo.get(id(P))
        if hit is not None and hit[0] is P:
            return hit[1]
        A = affine_space_of(P, self.inp)
        lead = P.shape[:-1]
        rows = np.arange(A.R, dtype=np.int64).reshape(lead) if lead else np.zeros((), np.int64)
        return self._remember(P, selection_over(A, rows, P.shape))

    def cut(self, P: Lin, op="MatMul", node=None) -> Lin:
        """P = space[rows] @ M + B as a selection of a new MapSpace (space @ M + B)."""
        hit = self._memo.get(id(P))
        if hit is not None and hit[0] is P:
            return hit[1]
        form = self.matrix_form(P)
        if form is None:
            raise ImportFailure("the tensor is not one linear map of the rows of an attention output (its "
                                "weights differ from row to row), which the network model cannot express", op, node)
        M, B, defined = form
        S = self._mapspace(P.space, M, B, defined)
        K = P.shape[-1]
        wid = np.broadcast_to(np.arange(K, dtype=np.int64), P.shape).copy()
        return self._remember(P, Lin(S, P.rows.copy(), wid, identity(K)))

    def flatten(self, P: Lin) -> Lin:
        """Entries of several rows as entries of one row (FlatSpace), for a map that mixes rows.

        A selection keeps its own entries, in order, as the columns (a readout's entries); any
        other tensor gets every entry of its space."""
        if P.space.affine:
            return materialize_affine(P, self.inp)
        E = P.rows.size
        r, w = P.rows.reshape(E), P.wid.reshape(E)
        if P.is_selection():
            cols = P.unit_cols()[w]
            index, pairs = {}, []
            inv = np.empty(E, dtype=np.int64)
            for e, key in enumerate(zip(r.tolist(), cols.tolist())):
                if key not in index:
                    index[key] = len(pairs)
                    pairs.append(key)
                inv[e] = index[key]
            F = self._flat_space(P.space, pairs)
            return Lin(F, np.zeros(P.shape, np.int64), inv.reshape(P.shape), identity(F.c))
        c = P.space.c
        F = self._flat_space(P.space, [(i, j) for i in range(P.space.R) for j in range(c)])
        uniq, inv = np.unique(np.stack([r, w], 1), axis=0, return_inverse=True)
        table = zeros((len(uniq), F.c))
        for g, (rr, ww) in enumerate(uniq):
            table[g, rr * c:(rr + 1) * c] = P.table[ww]
        return Lin(F, np.zeros(P.shape, np.int64), inv.reshape(P.shape), table, P.s, P.b, None)

    # ------------------------------------------------------------------ bringing tensors together

    def _chain(self, S):
        out = [S]
        while isinstance(S, MapSpace):
            S = S.parent
            out.append(S)
        return out

    def lower(self, P: Lin, target) -> Lin:
        """Re-express P over an ancestor space (through linear maps)."""
        while P.space is not target:
            S = P.space
            if not isinstance(S, MapSpace):
                raise AssertionError("lower: target is not an ancestor")
            table = P.table.dot(S.M.T)                # (m, parent.c)
            BT = S.B.dot(P.table.T)                   # (R, m)
            off = BT[P.rows, P.wid]
            if P.s is not None:
                off = off * P.s
            b = off if P.b is None else off + P.b
            P = Lin(S.parent, P.rows, P.wid, table, P.s, b, None)
        return P

    def unify(self, tensors, what="Add"):
        """The tensors re-expressed over one common space (or ImportFailure)."""
        ts = [self.canon(t) for t in tensors]
        spaces = {id(t.space): t.space for t in ts}
        if len(spaces) == 1:
            return ts
        if all(t.space.affine for t in ts):
            return [materialize_affine(t, self.inp) for t in ts]
        if any(t.space.affine for t in ts):
            raise ImportFailure(f"{what} combines an attention output with a tensor that is affine in the input "
                                "(a residual or skip connection?); the network model has none")
        roots = {}
        for t in ts:
            base = self._chain(t.space)[-1]
            if isinstance(base, HeadSpace):
                roots[id(base)] = base
        if len(roots) > 1:
            self.merge_heads(list(roots.values()), what)
            ts = [self.canon(t) for t in ts]
            spaces = {id(t.space): t.space for t in ts}
            if len(spaces) == 1:
                return ts
        chains = [self._chain(t.space) for t in ts]
        common = None
        for S in chains[0]:
            if all(any(S is X for X in ch) for ch in chains[1:]):
                common = S
                break
        if common is None:
            raise ImportFailure(f"{what} combines tensors of different attention layers (or of a softmax and its "
                                "input); the network model cannot express that")
        return [self.lower(t, common) for t in ts]

    # ------------------------------------------------------------------ affine token spaces

    def union_affine(self, spaces):
        """One AffineSpace holding the rows of several: rows made of the same graph elements are one row.

        Element identities are unique, so equal keys mean the same row of the same tensor.  Rows are
        ordered by their first element (the order of the tensor they were cut from); spaces of
        different widths sit side by side in their own columns.  Returns (U, {uid: (row map,
        column offset)})."""
        uniq = []
        for S in spaces:
            if not any(S is U for U in uniq):
                uniq.append(S)
        if len(uniq) == 1:
            S = uniq[0]
            return S, {S.uid: (np.arange(S.R), 0)}
        same_width = len({S.c for S in uniq}) == 1
        offs, off = {}, 0
        for S in uniq:
            offs[S.uid] = 0 if same_width else off
            off += S.c
        width = uniq[0].c if same_width else off
        seen, order = {}, []
        for S in uniq:
            for r, k in enumerate(S.keys):
                if k not in seen:
                    seen[k] = None
                    order.append((k, S, r))
        order.sort(key=lambda item: min(item[0]) if item[0] and all(type(v) is int for v in item[0]) else -1)
        W = zeros((len(order), width, self.inp.c))
        b = zeros((len(order), width))
        index = {}
        for i, (k, S, r) in enumerate(order):
            o = offs[S.uid]
            W[i, o:o + S.c] = S.W[r]
            b[i, o:o + S.c] = S.b[r]
            index[k] = i
        U = AffineSpace(W, b, [k for k, _, _ in order])
        return U, {S.uid: (np.array([index[k] for k in S.keys], dtype=np.int64), offs[S.uid]) for S in uniq}

    # ------------------------------------------------------------------ attention

    def _operand(self, P: Lin) -> Lin:
        P = self.canon(P)
        if isinstance(P.space, InputSpace):
            P = self.affine_cut(P)
        return P

    def _rowmat(self, P: Lin, role: str):
        """P (R', K) = space[rows] @ W + b with one W, b for every row: (rows, W (c, K), b (K,))."""
        if not self.rows_constant_last(P):
            raise ImportFailure(f"the {role} of an attention logit are not rows of one token matrix (a MatMul of "
                                "two input-dependent tensors that is not Q K^T)")
        V = self._vectors_by_last(P)
        if V is None:
            raise ImportFailure(f"the {role} of an attention logit use different weights in different rows")
        b = zeros(P.shape[-1]) if P.b is None else P.b[0]
        if P.b is not None and np.any(P.b != P.b[:1]):
            raise ImportFailure(f"the {role} of an attention logit add a different offset in different rows")
        return tuple(int(r) for r in P.rows[:, 0]), V.T.copy(), np.array(b, dtype=object)

    def logits(self, A: Lin, B: Lin) -> Logits:
        """MatMul(A, B) of two symbolic tensors: A (lead, L, K) queries, B (lead, K, S) keys transposed."""
        A, B = self._operand(A), self._operand(B)
        if A.ndim < 2 or B.ndim < 2:
            raise ImportFailure("a product of two input-dependent vectors is not an attention logit")
        lead = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        L, K, S = A.shape[-2], A.shape[-1], B.shape[-1]
        if B.shape[-2] != K:
            raise ImportFailure(f"MatMul shapes {A.shape} and {B.shape} do not match")
        A = A.restructure(lambda a: np.broadcast_to(a, lead + (L, K)))
        B = B.restructure(lambda a: np.broadcast_to(a, lead + (K, S)))
        from .symbolic import HeadForm
        heads = np.empty(lead, dtype=object)
        for idx in np.ndindex(lead):
            q = A.restructure(lambda a: a[idx])
            k = B.restructure(lambda a: np.swapaxes(a[idx], 0, 1))
            qrows, Wq, bq = self._rowmat(q, "queries")
            krows, Wk, bk = self._rowmat(k, "keys")
            heads[idx] = HeadForm(A.space, qrows, Wq, bq, B.space, krows, Wk, bk)
        return Logits(heads, L, S)

    def attend(self, At: Logits, V: Lin) -> Lin:
        """Attention weights (lead, L, S) times values (lead, S, dv): the heads of one layer."""
        V = self._operand(V)
        if V.ndim < 2 or V.shape[-2] != At.S:
            raise ImportFailure(f"attention weights {At.shape} times values {V.shape}: shapes do not match")
        lead = np.broadcast_shapes(At.heads.shape, V.shape[:-2])
        dv = V.shape[-1]
        heads = np.broadcast_to(At.heads, lead)
        V = V.restructure(lambda a: np.broadcast_to(a, lead + (At.S, dv)))
        forms = []
        for idx in np.ndindex(lead):
            vrows, Wv, bv = self._rowmat(V.restructure(lambda a: a[idx]), "values")
            forms.append(heads[idx].copy(vspace=V.space, vrows=vrows, Wv=Wv, bv=bv))
        hs = self.make_heads(forms)
        L = At.L
        rows = np.broadcast_to(np.arange(L, dtype=np.int64)[:, None], lead + (L, dv)).copy()
        wid = np.empty(lead + (L, dv), dtype=np.int64)
        for n, idx in enumerate(np.ndindex(lead)):
            wid[idx] = hs.offsets[n] + np.arange(dv)[None, :]
        return Lin(hs, rows, wid, identity(hs.c))

    def _remap_heads(self, forms):
        """Bring every head's query, key and value space to one space (union of affine token matrices)."""
        spaces = []
        for h in forms:
            for S in (h.qspace, h.kspace, h.vspace):
                S2, cm = self.canon_space(S)
                if cm is not None or S2 is not S:
                    raise ImportFailure("an attention layer reads from the outputs of some heads of an earlier layer "
                                        "before all its heads are added")
                spaces.append(S)
        if all(S.affine for S in spaces):
            U, maps = self.union_affine(spaces)

            def re(S, rows, W):
                rm, off = maps[S.uid]
                W2 = zeros((U.c, W.shape[1]))
                W2[off:off + S.c] = W
                return tuple(int(rm[r]) for r in rows), W2
            out = []
            for h in forms:
                qr, Wq = re(h.qspace, h.qrows, h.Wq)
                kr, Wk = re(h.kspace, h.krows, h.Wk)
                vr, Wv = re(h.vspace, h.vrows, h.Wv)
                out.append(h.copy(qspace=U, qrows=qr, Wq=Wq, kspace=U, krows=kr, Wk=Wk, vspace=U, vrows=vr, Wv=Wv))
            return U, out
        if any(S.affine for S in spaces) or len({id(S) for S in spaces}) != 1:
            raise ImportFailure("queries, keys and values of an attention layer come from different token matrices "
                                "(different maps of the previous layer's output, or the input and an attention output)")
        return spaces[0], list(forms)

    def make_heads(self, forms) -> HeadSpace:
        space, forms = self._remap_heads(forms)
        q0, k0 = forms[0].qrows, forms[0].krows
        for h in forms:
            if h.qrows != q0:
                raise ImportFailure("the heads of one attention layer attend from different query rows")
            if h.krows != k0:
                raise ImportFailure("the heads of one attention layer attend over different key rows")
            if h.vrows != h.krows:
                raise ImportFailure("values are taken from other token rows than the keys")
        return HeadSpace(q0, k0, space, forms)

    def merge_heads(self, groups, what="Add"):
        """Several head groups of one layer (same rows) into one HeadSpace; outputs are re-expressed lazily."""
        forms = [h for g in groups for h in g.heads]
        try:
            hs = self.make_heads(forms)
        except ImportFailure as e:
            raise ImportFailure(f"{what} adds outputs of attention heads that cannot form one layer: {e.why}") from None
        off = 0
        for g in groups:
            g.merged = (hs, off)
            off += g.c
        return hs

    def settle(self, P):
        """A sum of head outputs (W_O applied) over a layer's heads is that layer's output Y: keep it as a
        token space, so that a following map becomes the post map rather than part of W_O."""
        if isinstance(P, Lin) and isinstance(P.space, HeadSpace) and not P.is_selection() \
                and self.matrix_form(P) is not None:
            return self.cut(P)
        return P

    # ------------------------------------------------------------------ products with constants

    def matmul(self, P: Lin, M, op="MatMul", node=None) -> Lin:
        """P @ M for a constant M, contracting P's last axis."""
        P = self.canon(P)
        M = np.asarray(M, dtype=object)
        squeeze_front = squeeze_back = False
        if P.ndim == 0 or M.ndim == 0:
            raise ImportFailure("MatMul of a scalar", op, node)
        if P.ndim == 1:
            P = P.restructure(lambda a: a.reshape((1,) + a.shape))
            squeeze_front = True
        if M.ndim == 1:
            M = M.reshape(M.shape + (1,))
            squeeze_back = True
        if not self.rows_constant_last(P):
            P = self.flatten(P)
        if P.space.affine:
            if isinstance(P.space, InputSpace) or not P.is_selection():
                P = self.affine_cut(P)
            out = compose(P, M)
        elif isinstance(P.space, HeadSpace):
            out = compose(P, M)
            if self.matrix_form(out) is not None:
                out = self.cut(out, op, node)
        elif P.is_selection():
            out = compose(P, M)
        else:
            out = compose(self.cut(P, op, node), M)
        if squeeze_back:
            out = out.restructure(lambda a: a.reshape(a.shape[:-1]))
        if squeeze_front:
            out = out.restructure(lambda a: a.reshape(a.shape[:-2] + a.shape[-1:]) if a.ndim >= 2 else a[0])
        return out

    def matmul_left(self, M, P: Lin, op="MatMul", node=None) -> Lin:
        """M @ P for a constant M: mixes the rows of P (only for affine tensors)."""
        P = self.canon(P)
        if not P.space.affine:
            raise ImportFailure("a constant matrix multiplies an attention output from the left: that mixes token "
                                "rows, which the network model cannot express", op, node)
        P = materialize_affine(P, self.inp)
        M = np.asarray(M, dtype=object)
        if P.ndim < 2:
            raise ImportFailure("MatMul of a constant by an input-dependent vector from the left", op, node)
        Mt = np.swapaxes(M, -1, -2) if M.ndim >= 2 else M.reshape(-1, 1)
        Pt = P.restructure(lambda a: np.swapaxes(a, -1, -2))
        out = compose(Pt, Mt)
        out = out.restructure(lambda a: np.swapaxes(a, -1, -2))
        if M.ndim == 1:
            out = out.restructure(lambda a: a.reshape(a.shape[:-2] + a.shape[-1:]))
        return out

    # ------------------------------------------------------------------ logits: bias and scale

    def logit_bias(self, a: Logits, c, op="Add", node=None) -> Logits:
        """Logits plus a constant (broadcast over heads): each head's logit bias."""
        c = np.asarray(c, dtype=object)
        shape = np.broadcast_shapes(a.shape, c.shape)
        if shape != a.shape:
            if shape[-2:] != a.shape[-2:]:
                raise ImportFailure("a logit bias that broadcasts the query or key axis", op, node)
            a = a.restructure_lead(lambda h: np.broadcast_to(h, shape[:-2]).copy())
        cb = np.broadcast_to(c, shape)

        def f(h, idx):
            B = cb[idx]
            return h.copy(bias=B.copy() if h.bias is None else h.bias + B)
        return a.map_heads(f)

    def logit_scale(self, a: Logits, c, op="Mul", node=None) -> Logits:
        """Logits times a constant that is one number per head: each head's beta."""
        c = np.asarray(c, dtype=object)
        shape = np.broadcast_shapes(a.shape, c.shape)
        if shape[-2:] != a.shape[-2:]:
            raise ImportFailure("a logit scale that broadcasts the query or key axis", op, node)
        if shape != a.shape:
            a = a.restructure_lead(lambda h: np.broadcast_to(h, shape[:-2]).copy())
        cb = np.broadcast_to(c, shape)

        def f(h, idx):
            block = cb[idx]
            v = block.flat[0]
            if np.any(block != v):
                raise ImportFailure("multiplies attention logits entry by entry (not one scale per head)", op, node)
            return h.copy(beta=h.beta * Fraction(v), bias=None if h.bias is None else h.bias * v)
        return a.map_heads(f)

    # ------------------------------------------------------------------ concatenation

    def concat(self, tensors, axis: int) -> Lin:
        """Symbolic tensors (constants lifted) concatenated along ``axis``, over one space."""
        from .symbolic import lift_const
        lins = [t if isinstance(t, Lin) else lift_const(t, self.inp) for t in tensors]
        lins = self.unify(lins, "Concat")
        off, wids, tables = 0, [], []
        for t in lins:
            wids.append(t.wid + off)
            tables.append(t.table)
            off += t.table.shape[0]
        cat = lambda arrs: np.concatenate(arrs, axis=axis)
        s = cat([t.scales() for t in lins]) if any(t.s is not None for t in lins) else None
        b = cat([t.offsets() for t in lins]) if any(t.b is not None for t in lins) else None
        eid = cat([t.eid for t in lins]) if all(t.eid is not None for t in lins) else None
        return Lin(lins[0].space, cat([t.rows for t in lins]), cat(wids), np.concatenate(tables), s, b, eid)

    # ------------------------------------------------------------------ softmax

    def softmax(self, T, axis: int, op="Softmax", node=None):
        if isinstance(T, Logits):
            if axis not in (-1, T.ndim - 1):
                raise ImportFailure(f"Softmax over axis {axis} of attention logits: only the key axis (the last) is "
                                    "attention", op, node)
            if T.softmaxed:
                raise ImportFailure("a softmax of attention weights", op, node)
            return Logits(T.heads, T.L, T.S, True)
        P = self.canon(T)
        if axis not in (-1, P.ndim - 1):
            raise ImportFailure(f"Softmax over axis {axis} (not the last) of an attention output", op, node)
        if P.space.affine:
            raise ImportFailure("Softmax of a tensor that is affine in the input: not attention logits of the form "
                                "(Z W_q)(Z W_k)^T, and not after an attention layer", op, node)
        if isinstance(P.space, (SoftmaxSpace, FlatSpace)):
            raise ImportFailure("a second softmax after the network's output softmax", op, node)
        c = P.space.c
        full = (P.is_selection() and self.rows_constant_last(P) and P.shape[-1] == c
                and bool(np.all(P.unit_cols()[P.wid] == np.arange(c))))
        if not full:
            P = self.cut(P, op, node)
        S = self._softmax_space(P.space)
        return Lin(S, P.rows, P.wid, P.table, None, None, None)
