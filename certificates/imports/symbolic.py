"""Symbolic tensors: what a graph computes, as exact linear maps of token matrices.

Every tensor an attention network computes before its output is, entry by entry, a linear
functional of one row of a *token space* plus a constant:

    t[i] = s[i] * (table[wid[i]] . Z[rows[i], :]) + b[i]

``Lin`` holds that per entry (row, table vector, scale, offset), so reshapes, transposes,
slices, gathers and concatenations are plain NumPy indexing of those arrays, and a MatMul by a
constant composes the vectors.  A token space is one of:

* ``InputSpace``: the input x itself (one row [x_0 .. x_{n-1}]); an affine tensor is a ``Lin``
  over it;
* ``AffineSpace``: a token matrix affine in x (R rows, c columns), cut from an affine tensor
  where a MatMul projects it: the candidate embedding of the first layer;
* ``HeadSpace``: the concatenated outputs of the heads of one attention layer;
* ``MapSpace``: parent @ M + B, a linear map after a layer (W_O, a post map);
* ``SoftmaxSpace``: a row-wise softmax of a layer output (the network's final softmax);
* ``FlatSpace``: all rows of a space as one row (for readouts that mix rows).

``Logits`` are per head ``beta * (Z[q] W_q + b_q)(Z[k] W_k + b_k)^T + B``; a Softmax over keys
turns them into attention weights, and attention weights times values make a ``HeadSpace``.
Everything is exact: vectors and offsets are Python ints and Fractions in object arrays.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .base import MAX_SYMBOLIC, ImportFailure, all_zero, identity, zeros

_ids = itertools.count()
_next_eid = [0]


def fresh_eids(shape) -> np.ndarray:
    """New element identities for a tensor of this shape (row-major order)."""
    n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    start = _next_eid[0]
    _next_eid[0] += n
    return np.arange(start, start + n, dtype=np.int64).reshape(shape)


# ---------------------------------------------------------------------------------------------- spaces


class Space:
    affine = False

    def __init__(self, R: int, c: int):
        self.R, self.c = int(R), int(c)
        self.uid = next(_ids)


class InputSpace(Space):
    """The input vector x as one token row: x_j is column j."""
    affine = True

    def __init__(self, n: int):
        super().__init__(1, n)
        self.W = zeros((1, n, n))
        for j in range(n):
            self.W[0, j, j] = 1
        self.b = zeros((1, n))
        self.keys = (("x",),)


class AffineSpace(Space):
    """A token matrix affine in x: row r, column j is ``W[r, j, :] . x + b[r, j]``.

    ``keys[r]`` identifies row r by the graph elements it came from, so that two cuts of the
    same token matrix (queries and keys gathered from one embedding) share their rows."""
    affine = True

    def __init__(self, W, b, keys):
        super().__init__(W.shape[0], W.shape[1])
        self.W, self.b, self.keys = W, b, tuple(keys)


@dataclass
class HeadForm:
    """One head: queries Z[qrows] Wq + bq, keys Z[krows] Wk + bk, values Z[krows] Wv + bv."""
    qspace: Space
    qrows: tuple
    Wq: np.ndarray          # (c, dk)
    bq: np.ndarray          # (dk,)
    kspace: Space
    krows: tuple
    Wk: np.ndarray
    bk: np.ndarray
    beta: Fraction = Fraction(1)
    bias: np.ndarray | None = None   # (L, S)
    vspace: Space | None = None
    vrows: tuple | None = None
    Wv: np.ndarray | None = None     # (c, dv)
    bv: np.ndarray | None = None

    def copy(self, **kw):
        d = dict(self.__dict__)
        d.update(kw)
        return HeadForm(**d)


class HeadSpace(Space):
    """The heads of one attention layer, their outputs side by side: row l is query row l."""

    def __init__(self, qrows, krows, space, heads):
        dv = [h.Wv.shape[1] for h in heads]
        super().__init__(len(qrows), sum(dv))
        self.qrows, self.krows, self.space, self.heads = tuple(qrows), tuple(krows), space, list(heads)
        self.offsets = list(np.cumsum([0] + dv[:-1]))
        self.merged = None   # (root HeadSpace, column offset) once merged with another head group


class MapSpace(Space):
    """``parent @ M + B`` (B per row; rows no tensor refers to are 0)."""

    def __init__(self, parent, M, B, defined):
        super().__init__(parent.R, M.shape[1])
        self.parent, self.M, self.B, self.defined = parent, M, B, defined


class SoftmaxSpace(Space):
    """Row-wise softmax over the columns of ``parent``."""

    def __init__(self, parent):
        super().__init__(parent.R, parent.c)
        self.parent = parent


class FlatSpace(Space):
    """Entries of ``parent`` as one row: column e is parent[pairs[e]] (a readout's entries, in order)."""

    def __init__(self, parent, pairs):
        super().__init__(1, len(pairs))
        self.parent, self.pairs = parent, tuple(pairs)


# ---------------------------------------------------------------------------------------------- tensors


def _obj(a):
    return np.asarray(a, dtype=object)


class Lin:
    """A symbolic tensor: entry i is ``s[i] * table[wid[i]] . space[rows[i]] + b[i]``.

    ``s`` None means 1, ``b`` None means 0; ``eid`` (affine tensors only) names each entry."""

    def __init__(self, space, rows, wid, table, s=None, b=None, eid=None):
        self.space = space
        self.rows = np.asarray(rows, dtype=np.int64)
        self.wid = np.asarray(wid, dtype=np.int64)
        self.table = table                    # (m, space.c) object
        self.s = s
        self.b = b
        self.eid = eid
        if self.rows.size * max(1, space.c) > MAX_SYMBOLIC:
            raise ImportFailure(f"a symbolic tensor of shape {self.rows.shape} over {space.c} columns is larger "
                                f"than the limit of {MAX_SYMBOLIC} entries")
        self._unit = None

    @property
    def shape(self):
        return self.rows.shape

    @property
    def ndim(self):
        return self.rows.ndim

    def arrays(self):
        return self.rows, self.wid, self.s, self.b, self.eid

    def restructure(self, fn) -> "Lin":
        """Apply one indexing function to every per-entry array (reshape, transpose, take, ...)."""
        f = lambda a: None if a is None else np.ascontiguousarray(fn(a))
        return Lin(self.space, f(self.rows), f(self.wid), self.table, f(self.s), f(self.b), f(self.eid))

    def unit_cols(self) -> np.ndarray:
        """Per table row: the column of its single 1, or -1 when it is not a unit vector."""
        if self._unit is None:
            t = self.table
            out = np.full(t.shape[0], -1, dtype=np.int64)
            nz = t != 0
            for i in range(t.shape[0]):
                cols = np.flatnonzero(nz[i])
                if len(cols) == 1 and t[i, cols[0]] == 1:
                    out[i] = cols[0]
            self._unit = out
        return self._unit

    def is_selection(self) -> bool:
        """Every entry is one column of its row, unscaled, with no offset."""
        if self.space.__class__ is InputSpace:
            return False
        if self.s is not None and np.any(self.s != 1):
            return False
        if self.b is not None and np.any(self.b != 0):
            return False
        return bool(np.all(self.unit_cols()[self.wid] >= 0)) if self.wid.size else True

    def vectors(self) -> np.ndarray:
        """Dense (shape + (c,)) vectors s * table[wid]; small tensors only."""
        V = self.table[self.wid]
        if self.s is not None:
            V = V * self.s[..., None]
        return V

    def offsets(self) -> np.ndarray:
        return zeros(self.shape) if self.b is None else self.b

    def scales(self) -> np.ndarray:
        if self.s is None:
            out = np.empty(self.shape, dtype=object)
            out.fill(1)
            return out
        return self.s


def lift_const(values, inp: InputSpace) -> Lin:
    """A constant tensor as an affine tensor (zero vector, offset = the value)."""
    values = _obj(values)
    shape = values.shape
    table = zeros((1, inp.c))
    return Lin(inp, np.zeros(shape, np.int64), np.zeros(shape, np.int64), table, None,
               values.copy(), fresh_eids(shape))


def input_tensor(inp: InputSpace, shape, start: int) -> Lin:
    """Graph input of this shape whose entries are x_start, x_start+1, ... in row-major order."""
    n = int(np.prod(shape, dtype=np.int64))
    wid = np.arange(start, start + n, dtype=np.int64).reshape(shape)
    return Lin(inp, np.zeros(shape, np.int64), wid, identity(inp.c), None, None, fresh_eids(shape))


# ---------------------------------------------------------------------------------------------- helpers


def _group(keys_list):
    """Group equal keys: (index of each entry's group, list of group representative positions)."""
    index, inv, reps = {}, [], []
    for i, k in enumerate(keys_list):
        g = index.get(k)
        if g is None:
            g = index[k] = len(reps)
            reps.append(i)
        inv.append(g)
    return np.asarray(inv, dtype=np.int64), reps


def _flat_keys(*arrays):
    """Per entry, a hashable key over the given per-entry arrays (object or int)."""
    cols = [a.reshape(len(a), -1).tolist() if a is not None else None for a in arrays]
    n = len(arrays[0])
    return [tuple(tuple(c[i]) if c is not None else () for c in cols) for i in range(n)]


def compose(P: Lin, M) -> Lin:
    """P (lead + (K,)) @ M (K, J) or (leadM + (K, J)), contracting P's last axis; rows must be
    constant along that axis."""
    M = _obj(M)
    lead = P.shape[:-1]
    K = P.shape[-1]
    if M.ndim < 2 or M.shape[-2] != K:
        raise ImportFailure(f"MatMul shapes {P.shape} and {M.shape} do not match")
    J = M.shape[-1]
    out_lead = np.broadcast_shapes(lead, M.shape[:-2])
    if out_lead != lead:
        P = P.restructure(lambda a: np.broadcast_to(a, out_lead + (K,)))
        lead = out_lead
    Mi = np.broadcast_to(np.arange(int(np.prod(M.shape[:-2], dtype=np.int64))).reshape(M.shape[:-2]), lead) \
        if M.ndim > 2 else np.zeros(lead, np.int64)
    Mf = M.reshape((-1, K, J))
    Lf = int(np.prod(lead, dtype=np.int64)) if lead else 1
    wid = P.wid.reshape(Lf, K)
    s = None if P.s is None else P.s.reshape(Lf, K)
    mi = Mi.reshape(Lf)
    if s is None:
        keyarr = np.concatenate([wid, mi[:, None]], axis=1)
        uniq, inv = np.unique(keyarr, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        reps = [int(np.flatnonzero(inv == g)[0]) for g in range(len(uniq))]
    else:
        inv, reps = _group(_flat_keys(wid, s, mi))
    unit = P.unit_cols()
    c = P.space.c
    blocks = []
    for r in reps:
        Mk = Mf[mi[r]]
        w = wid[r]
        if s is None and np.all(unit[w] >= 0) and len(set(unit[w].tolist())) == K:
            V = zeros((J, c))
            V[:, unit[w]] = Mk.T          # a selection: place M's rows, no arithmetic
        else:
            T = P.table[w]                 # (K, c)
            if s is not None:
                T = T * s[r][:, None]
            V = Mk.T.dot(T)               # (J, c) exact
        blocks.append(V)
    table = np.concatenate(blocks, axis=0) if blocks else zeros((0, c))
    new_wid = (inv[:, None] * J + np.arange(J)[None, :]).reshape(lead + (J,))
    rows = np.broadcast_to(P.rows[..., :1], lead + (J,)).copy()
    b = None
    if P.b is not None and not all_zero(P.b):
        bf = P.b.reshape(Lf, K)
        binv, breps = _group(_flat_keys(bf, mi))
        rowsb = [bf[r].dot(Mf[mi[r]]) for r in breps]
        b = np.empty((Lf, J), dtype=object)
        for i in range(Lf):
            b[i] = rowsb[binv[i]]
        b = b.reshape(lead + (J,))
    eid = fresh_eids(lead + (J,)) if P.space.affine else None
    return Lin(P.space, rows, new_wid, table, None, b, eid)


def scale(P: Lin, c) -> Lin:
    """Entry-wise multiplication by an exact constant (broadcast)."""
    c = _obj(c)
    shape = np.broadcast_shapes(P.shape, c.shape)
    if shape != P.shape:
        P = P.restructure(lambda a: np.broadcast_to(a, shape))
    cb = np.broadcast_to(c, shape)
    s = (P.scales() * cb)
    b = None if P.b is None else P.b * cb
    return Lin(P.space, P.rows, P.wid, P.table, s, b, fresh_eids(shape) if P.space.affine else None)


def add_const(P: Lin, c) -> Lin:
    c = _obj(c)
    shape = np.broadcast_shapes(P.shape, c.shape)
    if shape != P.shape:
        P = P.restructure(lambda a: np.broadcast_to(a, shape))
    b = P.offsets() + np.broadcast_to(c, shape)
    return Lin(P.space, P.rows, P.wid, P.table, P.s, b, fresh_eids(shape) if P.space.affine else None)


def add(P1: Lin, P2: Lin, ctx) -> Lin:
    """Entry-wise sum of two symbolic tensors (brought to one space first)."""
    P1, P2 = ctx.unify([P1, P2], "Add")
    shape = np.broadcast_shapes(P1.shape, P2.shape)
    P1 = P1.restructure(lambda a: np.broadcast_to(a, shape)) if P1.shape != shape else P1
    P2 = P2.restructure(lambda a: np.broadcast_to(a, shape)) if P2.shape != shape else P2
    if not np.array_equal(P1.rows, P2.rows):
        raise ImportFailure("adds entries that come from different token rows of an attention output "
                            "(a mixing of rows the network model cannot express)")
    E = int(np.prod(shape, dtype=np.int64)) if shape else 1
    w1, w2 = P1.wid.reshape(E), P2.wid.reshape(E)
    s1 = None if P1.s is None else P1.s.reshape(E)
    s2 = None if P2.s is None else P2.s.reshape(E)
    if s1 is None and s2 is None:
        uniq, inv = np.unique(np.stack([w1, w2], 1), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        pairs = [(int(a), int(b_), 1, 1) for a, b_ in uniq]
    else:
        keys = list(zip(w1.tolist(), w2.tolist(), (s1 if s1 is not None else [1] * E),
                        (s2 if s2 is not None else [1] * E)))
        inv, reps = _group(keys)
        pairs = [keys[r] for r in reps]
    table = zeros((len(pairs), P1.space.c))
    for g, (a, b_, x, y) in enumerate(pairs):
        table[g] = P1.table[a] * x + P2.table[b_] * y
    b = None
    if P1.b is not None or P2.b is not None:
        b = P1.offsets() + P2.offsets()
    return Lin(P1.space, P1.rows, inv.reshape(shape), table, None, b,
               fresh_eids(shape) if P1.space.affine else None)


def materialize_affine(P: Lin, inp: InputSpace) -> Lin:
    """An affine tensor (over an AffineSpace) re-expressed over the input row itself."""
    if P.space is inp:
        return P
    A = P.space
    if not isinstance(A, AffineSpace):
        raise AssertionError("materialize_affine on a non-affine space")
    E = P.rows.size
    r, w = P.rows.reshape(E), P.wid.reshape(E)
    uniq, inv = np.unique(np.stack([r, w], 1), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    table = zeros((len(uniq), inp.c))
    base = zeros(len(uniq))
    for g, (rr, ww) in enumerate(uniq):
        vec = P.table[ww]
        nz = np.flatnonzero(vec != 0)
        if len(nz):
            table[g] = vec[nz].dot(A.W[rr, nz, :])
            base[g] = vec[nz].dot(A.b[rr, nz])
    s = P.s
    off = base[inv].reshape(P.shape)
    if s is not None:
        off = off * s
    b = off if P.b is None else off + P.b
    return Lin(inp, np.zeros(P.shape, np.int64), inv.reshape(P.shape), table, s, b, P.eid)


def affine_space_of(P: Lin, inp: InputSpace) -> AffineSpace:
    """The token matrix (prod(lead) rows, last-axis columns) of an affine tensor."""
    Q = materialize_affine(P, inp)
    shape = Q.shape
    c = shape[-1] if shape else 1
    R = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
    W = Q.vectors().reshape(R, c, inp.c)
    b = Q.offsets().reshape(R, c)
    eid = Q.eid.reshape(R, c)
    return AffineSpace(W, b, [tuple(row) for row in eid.tolist()])


def selection_over(space: Space, row_index, shape) -> Lin:
    """Rows ``row_index`` (lead shape) of a space, every column in order: shape lead + (space.c,)."""
    lead = tuple(shape[:-1])
    rows = np.broadcast_to(np.asarray(row_index, np.int64)[..., None], lead + (space.c,)).copy()
    wid = np.broadcast_to(np.arange(space.c, dtype=np.int64), lead + (space.c,)).copy()
    eid = None
    if isinstance(space, AffineSpace):   # the entries are the space's own elements
        eid = np.asarray([space.keys[r] for r in np.asarray(row_index).reshape(-1)], dtype=np.int64) \
            .reshape(lead + (space.c,))
    return Lin(space, rows, wid, identity(space.c), None, None, eid)


# ---------------------------------------------------------------------------------------------- logits


class Logits:
    """Attention logits (``softmaxed`` False) or weights (True): shape lead + (L, S), one HeadForm per lead index."""

    def __init__(self, heads: np.ndarray, L: int, S: int, softmaxed: bool = False):
        self.heads, self.L, self.S, self.softmaxed = heads, L, S, softmaxed

    @property
    def shape(self):
        return self.heads.shape + (self.L, self.S)

    @property
    def ndim(self):
        return len(self.shape)

    def map_heads(self, fn) -> "Logits":
        out = np.empty(self.heads.shape, dtype=object)
        for idx in np.ndindex(self.heads.shape):
            out[idx] = fn(self.heads[idx], idx)
        return Logits(out, self.L, self.S, self.softmaxed)

    def restructure_lead(self, fn) -> "Logits":
        return Logits(np.asarray(fn(self.heads), dtype=object), self.L, self.S, self.softmaxed)
