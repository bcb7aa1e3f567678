"""The checker's part for evidence.method "residual": an in-context GD network whose error is a sum of
1-D functions of the residuals r_i = w . x_i - y_i, bounded by one 1-D certificate.

The claim names the layout: query i (row i of the head's output) owns the keys ``blocks[i]``
(positions in key_rows), ``w``, ``x[i]``, ``y[i]`` are input indices, and the target is
    f_c = w_c - (eta/n) sum_i l'(r_i) x_ic,   l' = r (squared loss) or tanh r (logcosh).
Everything else is derived here from the exact weights and verified, never read from the claim:
  1. for query i and its key k, logit_(i,k) - logit_(i,0) = alpha_k + beta_k r_i as polynomials in
     x (the same alpha, beta for every query), so the softmax over i's own keys is pi(r_i) with
     pi_k(r) = softmax_k(alpha_k + beta_k r);
  2. every key of block i' has the value w_c + b_k x_i'c in column c (the same b_k for all i', c);
  3. output c is (1/n) sum_i Y[i, c] with no bias, and the target is the tree above exactly.
Then, with psi(r) = sum_k pi_k(r) b_k, g(r) = -eta l'(r) and m_i the weight query i gives to
foreign keys, exactly N_c - f_c = (1/n) sum_i [x_ic (psi - g)(r_i) - m_i x_ic psi(r_i) + F_ic], where
F_ic = sum over foreign keys of a_j b_k x_i'c; as |psi| <= B = max |b_k| and |F_ic| <= m_i B X_c,
    |N_c - f_c| <= (1/n) sum_i [X_ic S + m_i B (X_ic + X_c)],
X_ic = max |x_ic| over the domain, X_c = max_i X_ic, S = sup over R of |psi - g|, where R contains
every r_i's range.  S comes from the embedded 1-D certificate, checked as any certificate (its
network must be exactly the head (alpha, beta, b) on the one input r over R, its target g), and
m_i <= sum_foreign exp(sup (logit_j - logit_(i,0))) over the domain (exact polynomial ranges).
Nothing here is shared with the search.
"""
from __future__ import annotations

from fractions import Fraction

from flint import arb

from .core import Invalid, affine_heads, fr, rat

Poly = dict   # monomial (a tuple of 0, 1 or 2 sorted input indices) -> Fraction


def _fractions(M, where):
    """A matrix of exact rational strings as Fractions."""
    return [[fr(rat(v, where)) for v in row] for row in M]


def _affine_tokens(net, D):
    """Token rows as affine forms: tok[r][col] = (const, [coef per input]) (exact)."""
    emb = net["embedding"]
    const = _fractions(emb["const"], "embedding.const")
    lins = [_fractions(E, "embedding.linear") for E in emb["linear"]]
    if len(lins) != D:
        raise Invalid("residual claim: the embedding has a different number of inputs than the domain")
    return [[(const[r][c], [lins[d][r][c] for d in range(D)]) for c in range(len(const[r]))]
            for r in range(len(const))]


def _matvec(tok, M, D):
    """An affine row times an exact matrix: a list of affine forms, one per column of M."""
    out = []
    for j in range(len(M[0]) if M else 0):
        c0 = sum((tok[i][0] * M[i][j] for i in range(len(M)) if M[i][j]), Fraction(0))
        co = [sum((tok[i][1][d] * M[i][j] for i in range(len(M)) if M[i][j]), Fraction(0)) for d in range(D)]
        out.append((c0, co))
    return out


def _padd(p: Poly, mono, v):
    if v:
        s = p.get(mono, Fraction(0)) + v
        if s:
            p[mono] = s
        else:
            p.pop(mono, None)


def _dot(qs, ks, scale, bias, D) -> Poly:
    """scale * sum_m q_m k_m + bias as a polynomial (q, k affine forms)."""
    p: Poly = {}
    _padd(p, (), bias)
    for (qc, qa), (kc, ka) in zip(qs, ks):
        _padd(p, (), scale * qc * kc)
        for d in range(D):
            _padd(p, (d,), scale * (qc * ka[d] + kc * qa[d]))
            if qa[d]:
                for e in range(D):
                    if ka[e]:
                        _padd(p, tuple(sorted((d, e))), scale * qa[d] * ka[e])
    return p


def _psub(a: Poly, b: Poly) -> Poly:
    out = dict(a)
    for m, v in b.items():
        _padd(out, m, -v)
    return out


def _prange(p: Poly, dom):
    """Exact lower and upper ends of a polynomial over the box (each monomial's exact range, summed)."""
    lo = hi = Fraction(0)
    for mono, v in p.items():
        if not mono:
            a = b = Fraction(1)
        elif len(mono) == 1:
            a, b = dom[mono[0]]
        elif mono[0] == mono[1]:
            l_, h_ = dom[mono[0]]
            ends = (l_ * l_, h_ * h_)
            a = Fraction(0) if l_ <= 0 <= h_ else min(ends)
            b = max(ends)
        else:
            (l1, h1), (l2, h2) = dom[mono[0]], dom[mono[1]]
            ps = (l1 * l2, l1 * h2, h1 * l2, h1 * h2)
            a, b = min(ps), max(ps)
        lo += min(v * a, v * b)
        hi += max(v * a, v * b)
    return lo, hi


def _check_shapes(net, head, layer, nq, nk):
    """Every matrix chains (a hostile file gets a one-line Invalid, never an IndexError)."""
    def width(M, where, rows=None):
        if type(M) is not list or not M or any(type(r) is not list for r in M) or len({len(r) for r in M}) != 1 \
                or (rows is not None and len(M) != rows):
            raise Invalid(f"residual claim: {where} is not a matrix of the expected shape")
        return len(M[0])
    emb = net["embedding"]
    W = width(emb["const"], "embedding.const")
    T = len(emb["const"])
    for E in emb["linear"]:
        if width(E, "embedding.linear", T) != W:
            raise Invalid("residual claim: embedding matrices differ in shape")
    dq = width(head["wq"], "wq", W)
    if width(head["wk"], "wk", W) != dq:
        raise Invalid("residual claim: wq and wk do not chain")
    dv = width(head["wv"], "wv", W)
    width(head["wo"], "wo", dv)
    rows = list(layer["query_rows"]) + list(layer["key_rows"])
    if any(type(r) is not int or not 0 <= r < T for r in rows):
        raise Invalid("residual claim: a token row index is out of range")
    if head.get("bias") is not None and width(head["bias"], "bias", nq) != nk:
        raise Invalid("residual claim: the bias is not (queries) x (keys)")
    cols = len(head["wo"][0])
    for entry in net["readout"]:
        if type(entry) is not list or len(entry) != 2 or not 0 <= entry[0] < nq or not 0 <= entry[1] < cols:
            raise Invalid("residual claim: a readout entry is out of range")


def _ints(v, where, bound):
    if type(v) is not list or not all(type(i) is int and 0 <= i < bound for i in v):
        raise Invalid(f"residual claim: {where} must be a list of indices below {bound}")
    return v


def _expected_target(c, claim, n):
    """The JSON tree of w_c - (eta/n) sum_i l'(r_i) x_ic, as the icl-gd target is written."""
    v = lambda k: {"var": f"x{k}"}
    d = len(claim["w"])
    terms = []
    for i in range(n):
        dots = [{"op": "mul", "args": [v(claim["w"][a]), v(claim["x"][i][a])]} for a in range(d)]
        r = {"op": "sub", "args": [dots[0] if d == 1 else {"op": "add", "args": dots}, v(claim["y"][i])]}
        lp = r if claim["loss"] == "squared" else {"op": "tanh", "args": [r]}
        terms.append({"op": "mul", "args": [lp, v(claim["x"][i][c])]})
    total = terms[0] if n == 1 else {"op": "add", "args": terms}
    eta_n = fr(rat(claim["eta"], "residual claim eta")) / n
    return {"op": "sub", "args": [v(claim["w"][c]), {"op": "mul", "args": [{"num": str(eta_n)}, total]}]}


def _expected_g(claim):
    """The residual target g(x0) = -eta l'(x0) as JSON."""
    r = {"var": "x0"}
    lp = r if claim["loss"] == "squared" else {"op": "tanh", "args": [r]}
    eta = fr(rat(claim["eta"], "residual claim eta"))
    return {"op": "mul", "args": [{"num": str(-eta)}, lp]}


def verify_claim(net, domain, target, claim):
    """Steps 1-3 of the module docstring; returns (alpha, beta, b, leak per query m_i (arb), n)."""
    D = len(domain)
    if len(net["layers"]) != 1 or len(net["layers"][0]["heads"]) != 1 or "post" in net["layers"][0] \
            or "final_softmax" in net or "readout_linear" not in net:
        raise Invalid("residual claim: the network must be one layer with one head and a linear readout")
    layer = net["layers"][0]
    head = layer["heads"][0]
    nq, nk = len(layer["query_rows"]), len(layer["key_rows"])
    blocks = claim["blocks"]
    if type(blocks) is not list or len(blocks) != nq or nq < 1:
        raise Invalid("residual claim: one block of keys per query row is required")
    for i, blk in enumerate(blocks):
        _ints(blk, f"blocks[{i}]", nk)
    p = len(blocks[0])
    if p < 1 or any(len(b) != p for b in blocks) or sorted(j for b in blocks for j in b) != list(range(nk)):
        raise Invalid("residual claim: the blocks must split the keys into equal parts")
    w = _ints(claim["w"], "w", D)
    d = len(w)
    xs, ys = claim["x"], _ints(claim["y"], "y", D)
    if type(xs) is not list or len(xs) != nq or len(ys) != nq:
        raise Invalid("residual claim: x and y need one entry per query")
    for i in range(nq):
        _ints(xs[i], f"x[{i}]", D)
        if len(xs[i]) != d:
            raise Invalid(f"residual claim: x[{i}] needs {d} indices")
    used = list(w) + [k for row in xs for k in row] + list(ys)
    if len(set(used)) != len(used) or d < 1:
        raise Invalid("residual claim: the inputs named by w, x and y must be distinct")
    if claim["loss"] not in ("squared", "logcosh"):
        raise Invalid("residual claim: loss must be squared or logcosh")
    _check_shapes(net, head, layer, nq, nk)
    tok = _affine_tokens(net, D)
    wq, wk, wv, wo = (_fractions(head[k], k) for k in ("wq", "wk", "wv", "wo"))
    beta = fr(rat(head["beta"], "beta"))
    bias = head.get("bias")
    qrows = [tok[r] for r in layer["query_rows"]]
    krows = [tok[r] for r in layer["key_rows"]]
    Q = [_matvec(t, wq, D) for t in qrows]
    K = [_matvec(t, wk, D) for t in krows]
    # values: t WV WO, composed as (t WV) WO on affine forms
    V = [_matvec(_matvec(t, wv, D), wo, D) for t in krows]
    if len(V[0]) < d:
        raise Invalid("residual claim: the head has fewer value columns than outputs")
    # 2. values: key k of block i' is w_c + b_k x_i'c in column c
    b = [None] * p
    for i2, blk in enumerate(blocks):
        for k, j in enumerate(blk):
            for c in range(d):
                c0, co = V[j][c]
                bk = co[xs[i2][c]]
                want = [Fraction(0)] * D
                want[w[c]] = Fraction(1)
                want[xs[i2][c]] = bk
                if c0 != 0 or co != want:
                    raise Invalid(f"residual claim: key {j}'s value in column {c} is not w_c + b x_ic")
                if b[k] is None:
                    b[k] = bk
                elif b[k] != bk:
                    raise Invalid("residual claim: the value slopes b_k differ between queries or columns")

    def logit(i, j):
        bij = fr(rat(bias[i][j], "bias")) if bias is not None else Fraction(0)
        return _dot(Q[i], K[j], beta, bij, D)
    # 1. own keys: logit gaps alpha_k + beta_k r_i
    alpha, slope = [None] * p, [None] * p
    dom = list(domain)
    leak = []
    for i, blk in enumerate(blocks):
        base = logit(i, blk[0])
        for k, j in enumerate(blk):
            gap = _psub(logit(i, j), base)
            bk = -gap.get((ys[i],), Fraction(0))
            want: Poly = {}
            _padd(want, (), gap.get((), Fraction(0)))
            _padd(want, (ys[i],), -bk)
            for c in range(d):
                _padd(want, tuple(sorted((w[c], xs[i][c]))), bk)
            if gap != want:
                raise Invalid(f"residual claim: query {i}'s logit gap to its key {k} is not alpha + beta r_{i}")
            ak = gap.get((), Fraction(0))
            if alpha[k] is None:
                alpha[k], slope[k] = ak, bk
            elif (alpha[k], slope[k]) != (ak, bk):
                raise Invalid("residual claim: the logit gaps differ between queries")
        # m_i <= sum over foreign keys of e^{sup (logit_j - logit_(i, blk[0]))}
        own = set(blk)
        m = arb(0)
        for j in range(nk):
            if j not in own:
                _, hi = _prange(_psub(logit(i, j), base), dom)
                m = (m + (arb(hi.numerator) / hi.denominator).exp()).upper()
        leak.append(m)
    # 3. readout: output c = (1/n) sum_i Y[i, c]
    readout, lin = net["readout"], net["readout_linear"]
    if len(lin) != d or len(target) != d:
        raise Invalid("residual claim: one output (and one target) per coordinate of w is required")
    n = nq
    for c, row in enumerate(lin):
        if fr(rat(row["bias"], "readout bias")) != 0 or len(row["weights"]) != len(readout):
            raise Invalid("residual claim: the readout must average the queries without a bias")
        coef = {}
        for (r, col), wt in zip(readout, row["weights"]):
            coef[(r, col)] = coef.get((r, col), Fraction(0)) + fr(rat(wt, "readout weight"))
        want = {(i, c): Fraction(1, n) for i in range(n)}
        if {k: v for k, v in coef.items() if v} != want:
            raise Invalid(f"residual claim: output {c} is not the average of the queries' column {c}")
        if target[c] != _expected_target(c, claim, n):
            raise Invalid(f"residual claim: target {c} is not w_c - (eta/n) sum_i l'(r_i) x_ic")
    return alpha, slope, b, leak, n


def residual_range(domain, claim, n):
    """Exact range of every r_i = w . x_i - y_i over the domain (a sum of products of distinct inputs)."""
    lo, hi = None, None
    d = len(claim["w"])
    for i in range(n):
        a = b = Fraction(0)
        for c in range(d):
            (l1, h1), (l2, h2) = domain[claim["w"][c]], domain[claim["x"][i][c]]
            ps = (l1 * l2, l1 * h2, h1 * l2, h1 * h2)
            a, b = a + min(ps), b + max(ps)
        yl, yh = domain[claim["y"][i]]
        a, b = a - yh, b - yl
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return lo, hi


def _arb(x: Fraction):
    return arb(x.numerator) / x.denominator


def check_residual(doc, domain, check_sub):
    """The proved bound (arb upper end) of sup |N - f| and the 1-D box count, for a residual
    certificate; ``check_sub(sub_doc)`` checks the embedded 1-D certificate (a CheckReport)."""
    ev = doc["evidence"]
    claim = ev["claim"]
    net = doc["construction"]["network"]
    alpha, slope, b, leak, n = verify_claim(net, domain, doc["target"], claim)
    sub = ev["certificate"]   # a paving (check_doc refuses any other method before estimating work)
    R = [fr(rat(v, "residual range")) for v in claim["residual"]]
    if len(R) != 2 or not R[0] < R[1]:
        raise Invalid("residual claim: the residual range must be [lo, hi] with lo < hi")
    rlo, rhi = residual_range(domain, claim, n)
    if not (R[0] <= rlo and rhi <= R[1]):
        raise Invalid(f"residual claim: [{float(R[0]):.6g}, {float(R[1]):.6g}] does not contain every residual's "
                      f"range [{float(rlo):.6g}, {float(rhi):.6g}]")
    sub_dom = [(fr(rat(a, "residual domain")), fr(rat(c, "residual domain"))) for a, c in sub["domain"]]
    if sub_dom != [(R[0], R[1])]:
        raise Invalid("residual claim: the embedded certificate's domain is not the residual range")
    if sub["target"] != [_expected_g(claim)]:
        raise Invalid("residual claim: the embedded certificate's target is not -eta l'(r)")
    if sub.get("norm") != {"kind": "Linf"} or "norm_bound" in sub.get("result", {}):
        raise Invalid("residual claim: the embedded certificate must bound the sup norm")
    heads = affine_heads(sub["construction"]["network"], 1)
    if len(heads) != 1 or len(heads[0]) != 1:
        raise Invalid("residual claim: the embedded network must have one output and one head")
    c, G, e, F = heads[0][0]
    if len(c) != len(alpha):
        raise Invalid("residual claim: the embedded network must have one key per anchor")
    for k in range(len(alpha)):
        if (fr(c[k]) - fr(c[0]), fr(G[k][0]) - fr(G[0][0])) != (alpha[k], slope[k]) \
                or fr(e[k]) != b[k] or any(fr(v) != 0 for v in F[k]):
            raise Invalid(f"residual claim: the embedded network's key {k} is not the query's anchor {k}")
    report = check_sub(sub)
    if not report.ok:
        raise Invalid(f"residual claim: the embedded certificate does not hold: {report.message}")
    stated = fr(rat(sub["result"]["max_bound"], "residual max_bound"))
    S = arb.max(_arb(stated), arb(report.checked_max_bound)).upper()
    B = _arb(max(abs(v) for v in b))
    worst = arb(0)
    for cc in range(len(claim["w"])):
        X = [max(abs(lo_), abs(hi_)) for lo_, hi_ in (domain[claim["x"][i][cc]] for i in range(n))]
        top = max(X)
        total = sum((_arb(x) * S + leak[i] * B * _arb(x + top) for i, x in enumerate(X)), arb(0))
        worst = arb.max(worst, (total / n).upper()).upper()
    return worst, report.boxes
