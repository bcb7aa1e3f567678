"""From the symbolic outputs of a graph to the network model (constructions/network.py).

The outputs are entries of the last token space; walking down its chain of spaces gives the
network's slots: the final softmax and the readout (entries, or a linear readout), the linear
maps after the last layer (the first is W_O, the rest compose into the post map), the heads
of each layer (W_Q, W_K, W_V, beta, logit bias), and the first layer's token matrix, the
embedding.  Projection offsets (a Linear's bias) are carried by a column of ones appended to
the token matrix they read.  Rows and columns no output depends on are dropped.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from constructions.float64 import exact_f64
from constructions.network import Embedding, Head, Layer, Network

from .base import ImportFailure, all_zero, frac, identity, rows_of, zeros
from .symbolic import AffineSpace, FlatSpace, HeadSpace, Lin, Logits, MapSpace, SoftmaxSpace


def _concat(engine, outs):
    """All outputs, flattened and concatenated, over one space."""
    for o in outs:
        if isinstance(o, Logits):
            raise ImportFailure("a graph output is attention " + ("weights" if o.softmaxed else "logits") +
                                ", not values")
        if not isinstance(o, Lin):
            raise ImportFailure("a graph output is a constant: it does not depend on the input")
    flat = [o.restructure(lambda a: a.reshape(-1)) for o in outs]
    flat = engine.unify(flat, "the graph outputs")
    rows = np.concatenate([f.rows for f in flat])
    off, wids, tables = 0, [], []
    for f in flat:
        wids.append(f.wid + off)
        tables.append(f.table)
        off += f.table.shape[0]
    s = np.concatenate([f.scales() for f in flat]) if any(f.s is not None for f in flat) else None
    b = np.concatenate([f.offsets() for f in flat]) if any(f.b is not None for f in flat) else None
    return Lin(flat[0].space, rows, np.concatenate(wids), np.concatenate(tables), s, b, None)


def _entries(out: Lin):
    """Per output: ([(row, col, weight), ...], bias) over the space (or the FlatSpace's parent)."""
    S = out.space
    V = out.vectors()
    b = out.offsets()
    res = []
    for e in range(len(out.rows)):
        vec = V[e]
        nz = np.flatnonzero(vec != 0)
        if isinstance(S, FlatSpace):
            items = [(S.pairs[j][0], S.pairs[j][1], vec[j]) for j in nz]
        else:
            items = [(int(out.rows[e]), int(j), vec[j]) for j in nz]
        res.append((items, b[e]))
    return res


def _chain_to_heads(top):
    maps = []
    S = top
    while isinstance(S, MapSpace):
        maps.append(S)
        S = S.parent
    if isinstance(S, SoftmaxSpace):
        raise ImportFailure("a linear map between the output softmax and the readout that the readout cannot absorb")
    if isinstance(S, FlatSpace):
        raise ImportFailure("an attention layer reads a flattened (row-mixing) tensor")
    if not isinstance(S, HeadSpace):
        raise ImportFailure("the output does not depend on any attention layer")
    if S.merged is not None:
        raise AssertionError("head group not canonical")
    return S, maps[::-1]


def _layer_output(hs: HeadSpace, maps, needs_one: bool):
    """(W_O per head, post (W, B) or None) for the maps after the heads (bottom to top)."""
    if not maps:
        M1, B = identity(hs.c), zeros((hs.R, hs.c))
    else:
        M1, B = maps[0].M, maps[0].B.copy()
    W = None
    for m in maps[1:]:
        W = m.M if W is None else W.dot(m.M)
        B = B.dot(m.M) + m.B
    wos = [M1[off:off + h.Wv.shape[1]] for off, h in zip(hs.offsets, hs.heads)]
    d = B.shape[1]
    post = None
    if W is not None or not all_zero(B):
        post = (identity(d) if W is None else W, B)
    if needs_one:
        Wp, Bp = post if post is not None else (identity(d), zeros((hs.R, d)))
        Wp = np.concatenate([Wp, zeros((Wp.shape[0], 1))], axis=1)
        Bp = np.concatenate([Bp, np.full((Bp.shape[0], 1), 1, dtype=object)], axis=1)
        post = (Wp, Bp)
    return wos, post


def _needs_one(hs: HeadSpace) -> bool:
    return any(not (all_zero(h.bq) and all_zero(h.bk) and all_zero(h.bv)) for h in hs.heads)


def _with_one(W, b, needs_one):
    if not needs_one:
        return W
    return np.concatenate([W, np.asarray(b, dtype=object).reshape(1, -1)], axis=0)


def assemble(engine, outputs, notes: list) -> Network:
    out = _concat(engine, outputs)
    S = out.space
    if S.affine:
        raise ImportFailure("the output does not depend on any attention layer (it is affine in the input)")
    # maps after a flattening or a final softmax are part of the readout: lower onto that space
    chain, T = [], S
    while isinstance(T, MapSpace):
        chain.append(T)
        T = T.parent
    if isinstance(T, (SoftmaxSpace, FlatSpace)) and chain:
        out = engine.lower(out, T)
    entries = _entries(out)
    Z = out.space.parent if isinstance(out.space, FlatSpace) else out.space
    final = isinstance(Z, SoftmaxSpace)
    top = Z.parent if final else Z
    single = all(len(items) == 1 and items[0][2] == 1 and bias == 0 for items, bias in entries)
    one_row = all(len({r for r, _, _ in items}) <= 1 for items, _ in entries)
    readout, readout_linear = None, None
    if single:
        readout = [(r, c) for (((r, c, _),), _) in entries]
    elif not final and one_row:
        # one more linear map: each output is (vector . top[row]) + bias; columns = distinct vectors
        cols, M_cols, B_rows = {}, [], {}
        readout = []
        R = top.R
        for items, bias in entries:
            r = items[0][0] if items else 0
            vec = zeros(top.c)
            for _, c, w in items:
                vec[c] = w
            key = tuple(vec.tolist())
            col = None
            for cand in cols.get(key, []):
                if B_rows.get((r, cand), bias) == bias:
                    col = cand
                    break
            if col is None:
                col = len(M_cols)
                M_cols.append(vec)
                cols.setdefault(key, []).append(col)
            B_rows[(r, col)] = bias
            readout.append((r, col))
        M = np.stack(M_cols, axis=1) if M_cols else zeros((top.c, 0))
        B = zeros((R, len(M_cols)))
        defined = np.zeros(R, dtype=bool)
        for (r, col), v in B_rows.items():
            B[r, col] = v
            defined[r] = True
        top = engine._mapspace(top, M, B, defined)
    else:
        order, index = [], {}
        if isinstance(out.space, FlatSpace):   # the readout's own entries, in order
            for rc in out.space.pairs:
                if rc not in index:
                    index[rc] = len(order)
                    order.append(rc)
        for items, _ in entries:
            for r, c, _ in items:
                if (r, c) not in index:
                    index[(r, c)] = len(order)
                    order.append((r, c))
        readout = order
        readout_linear = []
        for items, bias in entries:
            w = [0] * len(order)
            for r, c, v in items:
                w[index[(r, c)]] += v
            readout_linear.append((bias, w))
    # the layers, from the last one down
    layers = []          # (hs, wos, post), last first
    space = top
    needs_one = False
    while True:
        hs, maps = _chain_to_heads(space)
        wos, post = _layer_output(hs, maps, needs_one)
        layers.append((hs, wos, post))
        needs_one = _needs_one(hs)
        space = hs.space
        if space.affine:
            break
    layers.reverse()
    emb_space = space
    if not isinstance(emb_space, AffineSpace):
        raise AssertionError("first layer does not read an affine token matrix")
    const = emb_space.b
    lin = [emb_space.W[:, :, i] for i in range(engine.inp.c)]
    if needs_one:
        const = np.concatenate([const, np.full((const.shape[0], 1), 1, dtype=object)], axis=1)
        lin = [np.concatenate([L, zeros((L.shape[0], 1))], axis=1) for L in lin]
        notes.append("a column of ones was appended to the embedding: it carries the projections' offsets")
    net_layers = []
    for li, (hs, wos, post) in enumerate(layers):
        one = _needs_one(hs)
        heads = []
        for h, wo in zip(hs.heads, wos):
            heads.append(dict(wq=_with_one(h.Wq, h.bq, one), wk=_with_one(h.Wk, h.bk, one),
                              wv=_with_one(h.Wv, h.bv, one), wo=wo, beta=h.beta, bias=h.bias))
        net_layers.append(dict(heads=heads, query_rows=list(hs.qrows), key_rows=list(hs.krows), post=post))
    _prune(net_layers, readout, readout_linear is not None or final, final)
    _prune_embedding(net_layers, const, lin, notes)
    const, lin = net_layers[0].pop("_const"), net_layers[0].pop("_lin")
    return _network(const, lin, net_layers, readout, final, readout_linear, notes)


def _prune(layers, readout, keep_cols, final):
    """Drop query rows (and last-layer columns) that no output depends on; remap indices."""
    used_rows = sorted({r for r, _ in readout})
    last = layers[-1]
    if not final:
        used_cols = sorted({c for _, c in readout})
        post = last["post"]
        d_out = post[0].shape[1] if post is not None else last["heads"][0]["wo"].shape[1]
        if len(used_cols) < d_out:
            cmap = {c: i for i, c in enumerate(used_cols)}
            if post is not None:
                W, B = post[0][:, used_cols], post[1][:, used_cols]
                last["post"] = (W, B)
            else:
                for h in last["heads"]:
                    h["wo"] = h["wo"][:, used_cols]
            readout[:] = [(r, cmap[c]) for r, c in readout]
        post = last["post"]
        if post is not None:
            W, B = post
            keep = [j for j in range(W.shape[0]) if np.any(W[j] != 0)]
            if 0 < len(keep) < W.shape[0]:
                last["post"] = (W[keep], B)
                for h in last["heads"]:
                    h["wo"] = h["wo"][:, keep]
    for li in range(len(layers) - 1, -1, -1):
        layer = layers[li]
        n = len(layer["query_rows"])
        if len(used_rows) < n:
            rmap = {r: i for i, r in enumerate(used_rows)}
            layer["query_rows"] = [layer["query_rows"][r] for r in used_rows]
            for h in layer["heads"]:
                if h["bias"] is not None:
                    h["bias"] = h["bias"][used_rows]
            if layer["post"] is not None:
                layer["post"] = (layer["post"][0], layer["post"][1][used_rows])
            if li == len(layers) - 1:
                readout[:] = [(rmap[r], c) for r, c in readout]
            else:
                nxt = layers[li + 1]
                nxt["query_rows"] = [rmap[r] for r in nxt["query_rows"]]
                nxt["key_rows"] = [rmap[r] for r in nxt["key_rows"]]
        used_rows = sorted(set(layer["query_rows"]) | set(layer["key_rows"]))
    layers[0]["_used"] = used_rows


def _prune_embedding(layers, const, lin, notes):
    used = layers[0].pop("_used")
    first = layers[0]
    if len(used) < const.shape[0]:
        rmap = {r: i for i, r in enumerate(used)}
        first["query_rows"] = [rmap[r] for r in first["query_rows"]]
        first["key_rows"] = [rmap[r] for r in first["key_rows"]]
        const = const[used]
        lin = [L[used] for L in lin]
    first["_const"], first["_lin"] = const, lin


def _fold_beta(wq, beta):
    """beta * W_Q when every product is a float64 value (then beta becomes 1), else None."""
    if beta == 1:
        return None
    prod = [[frac(v) * beta for v in row] for row in wq]
    if all(exact_f64(v) for row in prod for v in row):
        return prod
    return None


def _network(const, lin, layers, readout, final, readout_linear, notes) -> Network:
    folded = 0
    L = []
    for layer in layers:
        heads = []
        for h in layer["heads"]:
            beta = frac(h["beta"])
            wq = rows_of(h["wq"])
            fold = _fold_beta(wq, beta)
            if fold is not None:
                wq, beta = tuple(tuple(r) for r in fold), Fraction(1)
                folded += 1
            heads.append(Head(wq=wq, wk=rows_of(h["wk"]), wv=rows_of(h["wv"]), wo=rows_of(h["wo"]), beta=beta,
                              bias=None if h["bias"] is None else rows_of(h["bias"])))
        post = None if layer["post"] is None else (rows_of(layer["post"][0]), rows_of(layer["post"][1]))
        L.append(Layer(heads=tuple(heads), query_rows=tuple(layer["query_rows"]),
                       key_rows=tuple(layer["key_rows"]), post=post))
    if folded:
        notes.append(f"the logit scale beta was folded into W_Q exactly (float64) in {folded} head(s)")
    rl = None
    if readout_linear is not None:
        rl = tuple((frac(b), tuple(frac(v) for v in w)) for b, w in readout_linear)
    net = Network(embedding=Embedding(const=rows_of(const), linear=tuple(rows_of(x) for x in lin)),
                  layers=tuple(L), readout=tuple((int(r), int(c)) for r, c in readout),
                  final_softmax=bool(final), readout_linear=rl)
    return _route_quadratic(net, notes)


def _route_quadratic(net: Network, notes) -> Network:
    """A one-layer network whose logits are quadratic in x (self-attention over input-dependent keys)
    gets an identity post map: the certifier and checker then take their layered path, which bounds
    such logits; the function is unchanged."""
    if not net.is_plain:
        return net
    from verify.enclose.linearize import UnsupportedNetwork, affine_form
    try:
        affine_form(net)
        return net
    except UnsupportedNetwork:
        pass
    layer = net.layers[0]
    d = len(layer.heads[0].wo[0])
    I = tuple(tuple(Fraction(int(i == j)) for j in range(d)) for i in range(d))
    B = tuple(tuple(Fraction(0) for _ in range(d)) for _ in layer.query_rows)
    notes.append("logits are quadratic in x (the query is also an input-dependent key): an identity post map "
                 "was added so that the layered certifier and checker, which bound such logits, apply")
    return Network(embedding=net.embedding, layers=(Layer(heads=layer.heads, query_rows=layer.query_rows,
                                                          key_rows=layer.key_rows, post=(I, B)),),
                   readout=net.readout, final_softmax=net.final_softmax, readout_linear=net.readout_linear)
