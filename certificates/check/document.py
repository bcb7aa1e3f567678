"""The independent checker of a whole certificate: schema, hashes and header, then each kind
of evidence handed to its own module (paving, grid, layered, analytic, mesh, partition, L_p).

It shares no code with ``verify`` (the search): it parses the exact weights itself,
forms the affine logits and values itself, rebuilds the paving from the bisection
tree in exact rationals (so the boxes tile the domain by construction), and bounds
each box with python-flint's Arb.  A bug in the searcher cannot vouch for itself.  A box of a
Linf paving (or output group) whose "slopes" entry is not empty is a centred box: its slopes
and its bound are confirmed by the centred (mean-value) bound (check/centred.py; for a layered
network, check/layered.py's; for a grid paving marked "centred": "grid", check/grid.py's product
form with grid hints).  Residual evidence (icl-gd) goes to check/residual.py.

Every number the certificate states is confirmed or the check fails: a stored bound may
undercut the checker's own by at most core.REL_SLACK of itself (never a slack in eps); the
observed error must not exceed the checker's bound of the error at the witness (in the domain)
nor max_bound.  What it cannot confirm (name, parameters, a-priori bound: metadata that only a
rebuild of the weights can test) is listed in the report's ``unverified``.

Work is estimated from the certificate's shapes before any is done (``max_work`` units, about
one Arb key evaluation each); past the limit the check refuses with LimitExceeded, which names
the flag that raises it.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from importlib import resources

from flint import arb, ctx, fmpq

from .analytic import analytic_bound, check_lemmas
from .arbexpr import ArbExprError, arb_compile, arb_variables
from .centred import centred_box_bound
from .core import (DEFAULT_MAX_P, DEFAULT_MAX_WORK, LEMMA_TIMEOUT_MS, MAX_NESTING, NOT_VERIFIED, PREC, REL_SLACK,
                   CheckReport, Invalid, LimitExceeded, affine_heads, box_bound, prepare_heads, check_tiling, exact_cell, float_up,
                   fr, leaves, rat, sha, undercuts)
from .grid import GridCheck, GridClaimError
from .layered import LayeredNet, check_chain, layered_box_bound, layered_centred_bound
from .lp import check_lp, lp_norm
from .residual import check_residual
from .mesh import mesh_bound
from .partition import check_partition
from .paving import check_boxes

__all__ = ["Invalid", "LimitExceeded", "check_doc", "estimate_work"]

# ---------------------------------------------------------------------------------------------
# Schema.  The published schema file is applied by the checker's own small validator: the file's
# keywords (type, const, enum, pattern, minimum, maximum, maxLength, minItems, maxItems, items,
# prefixItems, required, properties, additionalProperties, oneOf, $ref; 2020-12 meaning) are
# compiled once into closures, so a million bounds or twenty thousand pieces validate in about a
# second (jsonschema needs minutes there), and an unknown keyword in the file is an error, never
# silently ignored.  Expression trees ($defs/expr) are validated iteratively, so a 200-deep target
# never recurses.  Stricter than jsonschema in one way only: a JSON number with a fraction (1.0)
# is never an "integer" (a certificate carries no floats at all).

_KNOWN = {"type", "const", "enum", "pattern", "minimum", "maximum", "maxLength", "minItems", "maxItems",
          "items", "prefixItems", "required", "properties", "additionalProperties", "oneOf", "$ref",
          "description", "title", "$schema", "$id", "$defs"}
_TYPES = {"object": lambda v: type(v) is dict, "array": lambda v: type(v) is list,
          "string": lambda v: type(v) is str, "integer": lambda v: type(v) is int,
          "null": lambda v: v is None, "boolean": lambda v: type(v) is bool,
          "number": lambda v: type(v) in (int, float)}


class _Fail(Exception):
    def __init__(self, path, msg):
        super().__init__(msg)
        self.path, self.msg = path, msg


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _same(a, b) -> bool:
    """JSON equality (True is not 1)."""
    if type(a) is not type(b) and not (type(a) in (int, float) and type(b) in (int, float)
                                       and bool not in (type(a), type(b))):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


class _Compiler:
    def __init__(self, root):
        self.root = root
        self.cache = {}

    def ref(self, ref):
        if ref in self.cache:
            return lambda v, path: self.cache[ref](v, path)   # resolved lazily (recursive definitions)
        if not ref.startswith("#/"):
            raise ValueError(f"schema: only local $ref is supported, not {ref}")
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        self.cache[ref] = None
        fn = _expr_validator(self.root) if ref == "#/$defs/expr" else self.compile(node)
        self.cache[ref] = fn
        return fn

    def compile(self, sch):
        if sch is True or sch == {}:
            return lambda v, path: None
        if sch is False:
            def never(v, path):
                raise _Fail(path, f"{_short(v)} is not allowed")
            return never
        unknown = set(sch) - _KNOWN
        if unknown:
            raise ValueError(f"schema: keyword {sorted(unknown)[0]!r} is not supported by the checker")
        checks = []
        if "$ref" in sch:
            checks.append(self.ref(sch["$ref"]))
        if "type" in sch:
            names = sch["type"] if isinstance(sch["type"], list) else [sch["type"]]
            tests = [_TYPES[n] for n in names]

            def typ(v, path, tests=tests, names=names):
                if not any(t(v) for t in tests):
                    raise _Fail(path, f"{_short(v)} is not of type {', '.join(map(repr, names))}")
            checks.append(typ)
        if "const" in sch:
            c = sch["const"]

            def const(v, path, c=c):
                if not _same(v, c):
                    raise _Fail(path, f"{c!r} was expected")
            checks.append(const)
        if "enum" in sch:
            options = sch["enum"]

            def enum(v, path, options=options):
                if not any(_same(v, o) for o in options):
                    raise _Fail(path, f"{_short(v)} is not one of {options!r}")
            checks.append(enum)
        if "pattern" in sch:
            rx = re.compile(sch["pattern"])

            def pattern(v, path, rx=rx):
                if type(v) is str and rx.search(v) is None:
                    raise _Fail(path, f"{_short(v)} does not match {rx.pattern!r}")
            checks.append(pattern)
        if "maxLength" in sch:
            n = sch["maxLength"]

            def max_length(v, path, n=n):
                if type(v) is str and len(v) > n:
                    raise _Fail(path, f"string is longer than {n}")
            checks.append(max_length)
        for kw, ok, word in (("minimum", lambda v, m: v >= m, "less than the minimum"),
                             ("maximum", lambda v, m: v <= m, "greater than the maximum")):
            if kw in sch:
                m = sch[kw]

                def bound(v, path, m=m, ok=ok, word=word):
                    if type(v) in (int, float) and not ok(v, m):
                        raise _Fail(path, f"{_short(v)} is {word} of {m}")
                checks.append(bound)
        if "minItems" in sch or "maxItems" in sch:
            lo, hi = sch.get("minItems", 0), sch.get("maxItems")

            def size(v, path, lo=lo, hi=hi):
                if type(v) is list and (len(v) < lo or (hi is not None and len(v) > hi)):
                    raise _Fail(path, f"array of {len(v)} items; {lo}..{hi if hi is not None else ''} expected")
            checks.append(size)
        if "prefixItems" in sch or "items" in sch:
            prefix = [self.compile(x) for x in sch.get("prefixItems", [])]
            rest = self.compile(sch["items"]) if "items" in sch else None

            def items(v, path, prefix=prefix, rest=rest):
                if type(v) is not list:
                    return
                for i, (x, fn) in enumerate(zip(v, prefix)):
                    fn(x, path + (i,))
                if rest is not None:
                    for i in range(len(prefix), len(v)):
                        rest(v[i], path + (i,))
            checks.append(items)
        if "required" in sch:
            req = list(sch["required"])

            def required(v, path, req=req):
                if type(v) is dict:
                    for k in req:
                        if k not in v:
                            raise _Fail(path, f"{k!r} is a required property")
            checks.append(required)
        if "properties" in sch or "additionalProperties" in sch:
            props = {k: self.compile(x) for k, x in sch.get("properties", {}).items()}
            extra = sch.get("additionalProperties", True)
            extra_fn = None if extra is True else self.compile(extra)

            def properties(v, path, props=props, extra=extra, extra_fn=extra_fn):
                if type(v) is not dict:
                    return
                for k, x in v.items():
                    fn = props.get(k)
                    if fn is not None:
                        fn(x, path + (k,))
                    elif extra is False:
                        raise _Fail(path, f"additional property {_short(k)} is not allowed")
                    elif extra_fn is not None:
                        extra_fn(x, path + (k,))
            checks.append(properties)
        if "oneOf" in sch:
            alts = [self.compile(x) for x in sch["oneOf"]]

            def one_of(v, path, alts=alts):
                good, first = 0, None
                for fn in alts:
                    try:
                        fn(v, path)
                        good += 1
                    except _Fail as e:
                        first = first or e
                if good != 1:
                    raise _Fail(path, f"{_short(v)} is {'valid under more than one' if good else 'not valid under any'}"
                                      f" of the given schemas" + ("" if good else f" ({first.msg})"))
            checks.append(one_of)

        def run(v, path, checks=tuple(checks)):
            for c in checks:
                c(v, path)
        return run


def _expr_validator(root):
    """$defs/expr, iteratively: {num: rat} | {var: name} | {const: "pi"} | {op: string, args: [expr]}."""
    rx = re.compile(root["$defs"]["rat"]["pattern"])
    var = [b for b in root["$defs"]["expr"]["oneOf"] if "var" in b["required"]][0]
    vx = re.compile(var["properties"]["var"]["pattern"])

    def check(e, path):
        stack = [(e, path)]
        while stack:
            node, where = stack.pop()
            if type(node) is not dict:
                raise _Fail(where, f"{_short(node)} is not of type 'object'")
            n = len(node)
            if n == 2 and "op" in node and "args" in node:
                if type(node["op"]) is not str:
                    raise _Fail(where + ("op",), f"{_short(node['op'])} is not of type 'string'")
                args = node["args"]
                if type(args) is not list:
                    raise _Fail(where + ("args",), f"{_short(args)} is not of type 'array'")
                stack.extend((a, where + ("args", i)) for i, a in enumerate(args))
            elif n == 1 and "num" in node:
                if type(node["num"]) is not str or rx.search(node["num"]) is None:
                    raise _Fail(where + ("num",), f"{_short(node['num'])} is not an exact rational string")
            elif n == 1 and "var" in node:
                if type(node["var"]) is not str or vx.search(node["var"]) is None:
                    raise _Fail(where + ("var",), f"{_short(node['var'])} is not a valid variable name")
            elif n == 1 and "const" in node:
                if not _same(node["const"], "pi"):
                    raise _Fail(where + ("const",), "'pi' was expected")
            else:
                raise _Fail(where, f"{_short(node)} is not valid under any of the given schemas")
    return check


_VALIDATOR = []


def schema_validator():
    """The compiled validator of the published schema (built once)."""
    if not _VALIDATOR:
        root = json.loads(resources.files("certificates").joinpath("schema/certificate.schema.json").read_text())
        _VALIDATOR.append(_Compiler(root).compile(root))
    return _VALIDATOR[0]


def _validate_schema(doc):
    """Validate against the published schema (raises Invalid naming the first violation)."""
    try:
        schema_validator()(doc, ())
    except _Fail as e:
        where = "/".join(str(p) for p in e.path) or "(root)"
        raise Invalid(f"schema violation at {where[:120]}: {e.msg[:200]}") from None


# ---------------------------------------------------------------------------------------------
# Work estimate: from shapes and lengths only, before anything is parsed or bounded.

def _count_nodes(e) -> int:
    n, stack = 0, [e]
    while stack:
        node = stack.pop()
        n += 1
        if type(node) is dict and type(node.get("args")) is list:
            stack.extend(node["args"])
    return n


def _width(m) -> int:
    return len(m[0]) if m and type(m[0]) is list else 0


def _grid_box_work(claims, fallback):
    try:
        total = 0
        for cl in claims:
            shape = [int(g) for g in cl["shape"]]
            window = [int(w) for w in cl["window"]]
            if any(g > 10 ** 6 for g in shape) or len(window) > 64:
                return fallback
            total += sum(shape) + math.prod(w + 1 for w in window) + 4 * len(cl["copies"])
        return max(total, 1)
    except (KeyError, TypeError, ValueError):
        return fallback


def _n_centred(ev) -> int:
    """How many boxes of a (schema-valid) paving carry slopes."""
    slopes = ev.get("slopes")
    return sum(1 for s in slopes if s) if type(slopes) is list else 0


def estimate_work(doc, D: int) -> int:
    """Estimated work units of checking ``doc`` (schema-valid), about one Arb key evaluation each
    (10-30 us).  Counts: parsing and preparing the weights, every box / sub-mesh box / piece bound
    (keys x outputs, target nodes; a box with slopes 2 + 2 D times a plain one), lemma texts and
    their z3 runs, chain terms, the L_p sum."""
    net = doc["construction"]["network"]
    emb = net["embedding"]
    width = _width(emb["const"])
    entries = len(emb["const"]) * width * (1 + len(emb["linear"]))
    layered = (len(net["layers"]) != 1 or any("post" in layer for layer in net["layers"])
               or "final_softmax" in net or "readout_linear" in net)
    n_out = len(net.get("readout_linear") or net["readout"])
    prep, per_box, keys = 0, 0, 0
    for li, layer in enumerate(net["layers"]):
        nq, nk = len(layer["query_rows"]), len(layer["key_rows"])
        out_w = width
        for h in layer["heads"]:
            dk, dv, e = _width(h["wq"]), _width(h["wv"]), _width(h["wo"])
            entries += width * (2 * dk + dv) + dv * e + (nq * nk if h["bias"] else 0)
            prep += width * dv * e
            if layered:
                if li == 0:
                    per_box += (1 + D) * (nq + nk) * width * (dk + e) // 10 + 1
                per_box += nq * nk * (dk + e + 1)
            else:
                prep += n_out * (1 + D) * (1 + nk) * width * (dk + 1) // 10
                keys += nk
            out_w = e
        if "post" in layer:
            entries += len(layer["post"]["W"]) * _width(layer["post"]["W"]) * 2
            per_box += nq * len(layer["post"]["W"]) * _width(layer["post"]["W"])
            out_w = _width(layer["post"]["W"])
        width = out_w
    targets = sum(_count_nodes(t) for t in doc["target"])
    if layered:
        per_box += n_out * 4 + targets // 4
        keys = max(1, per_box)
    else:
        keys = keys * n_out
        per_box = keys * (1 + D // 4) + targets // 4
    work = prep + entries // 5
    ev = doc["evidence"]
    centred_factor = 2 + 2 * D   # a centred box: the box's parts, the centre's bound, 2 knapsacks per input
    if ev["method"] == "paving":
        n = len(ev["bounds"])
        if ev.get("bounder") == "grid" and isinstance(ev.get("grid"), list):
            per_box = _grid_box_work(ev["grid"], per_box) + targets // 4
        work += n * per_box + len(ev["tree"]) // 10
        work += _n_centred(ev) * per_box * (centred_factor - 1)
        for term in doc["result"].get("chain", []):
            work += n * (n_out + (targets + _count_nodes(term["g"])) // 4)
    elif ev["method"] == "residual":   # the embedded 1-D certificate, plus a polynomial per logit
        try:
            layer = net["layers"][0]
            nq, nk = len(layer["query_rows"]), len(layer["key_rows"])
            dq = _width(layer["heads"][0]["wq"])
        except (KeyError, IndexError, TypeError):
            nq = nk = dq = 1
        work += estimate_work(ev["certificate"], 1) + 4 * entries + nq * nk * (dq + 1) * (D + 1) * (D + 1) // 4
    elif ev["method"] == "outputs":
        for g in ev["groups"]:
            share = max(1, per_box * len(g["outputs"]) // max(1, n_out))
            work += len(g["bounds"]) * share + len(g["tree"]) // 10
            work += _n_centred(g) * share * (centred_factor - 1)
    else:
        for piece in ev["pieces"]:
            if piece["method"] == "paving":
                work += len(piece["bounds"]) * per_box + len(piece["tree"]) // 10
            elif "mesh" in piece and type(piece["mesh"]) is int:
                work += min(piece["mesh"], 10 ** 6) ** D * (2 * keys + targets // 4)
            else:
                work += 4 * keys + targets
        lemmas = list(ev["lemmas"]) + list(ev.get("partition", {}).get("lemmas", []))
        work += sum(200 + len(lm["smt2"]) // 20 for lm in lemmas)
        work += 4 * len(ev["pieces"]) * max(1, math.ceil(math.log2(len(ev["pieces"]) + 1))) * D
    return int(work + 1000)


# ---------------------------------------------------------------------------------------------

def _fmt(n) -> str:
    return f"{n:.3g}" if n < 10 ** 300 else "more than 1e300"


def _is_layered(net) -> bool:
    """Anything beyond one plain layer goes to the layered checker (check/layered.py)."""
    return (len(net["layers"]) != 1 or any("post" in layer for layer in net["layers"])
            or "final_softmax" in net or "readout_linear" in net)


def _witness(doc, domain):
    witness = [rat(v, "witness") for v in doc["result"]["witness"]]
    if len(witness) != len(domain) or any(not (fmpq(a.numerator, a.denominator) <= w <= fmpq(b.numerator, b.denominator))
                                          for w, (a, b) in zip(witness, domain)):
        raise Invalid("witness lies outside the domain")
    return witness


def _check_slopes(slopes, n_boxes, D, where, *, lp=False, bounder="affine"):
    """The shape of a (schema-valid) "slopes" list: aligned with the boxes, each entry [] or D
    slopes, and only where the centred bound is defined (bounder affine or grid, one layer or
    layered (check/layered.py's centred bound), Linf)."""
    if lp:
        raise Invalid(f"{where}: slopes (centred boxes) are checked for Linf certificates only")
    if bounder not in ("affine", "grid"):
        raise Invalid(f"{where}: slopes (centred boxes) go with bounder \"affine\" or \"grid\", not {str(bounder)[:20]!r}")
    if len(slopes) != n_boxes:
        raise Invalid(f"{where}: {len(slopes)} slope entries for {n_boxes} boxes")
    for k, s in enumerate(slopes):
        if len(s) not in (0, D):
            raise Invalid(f"{where}: box {k} lists {len(s)} slopes; 0 or {D} (one per input) expected")


def _point_hints(heads_all, w):
    """The leading key of every head at the point w (any leader is sound; this one keeps exp <= 1)."""
    hints = []
    for per in heads_all:
        for c, G, _, _ in per:
            logits = [c[j] + sum((g * x for g, x in zip(G[j], w)), fmpq(0)) for j in range(len(c))]
            hints.append(max(range(len(c)), key=lambda j: logits[j]))
    return hints


def _check_observed(doc, domain, point_bound, max_bound):
    """observed_error is a claim that the error reaches it at the witness: it must not exceed the
    checker's upper bound of |N - f| at the witness (plus REL_SLACK of that bound), nor max_bound.
    Returns that upper bound (an arb)."""
    w = _witness(doc, domain)
    observed = rat(doc["result"]["observed_error"], "observed_error")
    if observed < 0:
        raise Invalid("observed_error is negative")
    if observed > max_bound:
        raise Invalid(f"observed_error {float(observed):.6g} exceeds max_bound {float(max_bound):.6g}")
    at = point_bound([(fr(x), fr(x)) for x in w], w)
    if arb(observed) > at.upper() + abs(at).upper() * arb(REL_SLACK):
        raise Invalid(f"observed_error {float(observed):.6g} exceeds the error at the witness, which the "
                      f"checker bounds by {float_up(at):.6g}")
    return at


def _exact_arb(x) -> tuple:
    """An exact arb (radius 0) as (mantissa, exponent) integers, to cross a process boundary."""
    m, e = x.mid().man_exp()
    return int(m), int(e)


def _from_exact(me):
    m, e = me
    return arb(fmpq(m * 2 ** e) if e >= 0 else fmpq(m, 2 ** -e))


def check_paving_chunk(doc, start, stop):
    """A worker's part of ``check_doc(..., workers=N)``: boxes [start, stop) of a one-layer paving
    re-bounded with the same code as the serial path.  Returns ("ok", stored max, checked max as
    exact (mantissa, exponent)) or ("invalid", message) for the first failing box of the chunk."""
    old = ctx.prec
    ctx.prec = PREC
    try:
        domain = [(fr(rat(a, "domain")), fr(rat(b, "domain"))) for a, b in doc["domain"]]
        D = len(domain)
        ev = doc["evidence"]
        heads_all = affine_heads(doc["construction"]["network"], D)
        prep = prepare_heads(heads_all)
        targets = [arb_compile(t).on_domain(domain) for t in doc["target"]]
        n_hints = sum(len(p) for p in heads_all)

        def bound(box, hints):
            return box_bound(box, heads_all, targets, hints, prep)

        def centred(box, hints, s):
            return centred_box_bound(box, heads_all, targets, hints, prep, s)
        n_centred_hints = n_hints
        if ev.get("bounder", "affine") == "grid":
            grid = GridCheck(heads_all, ev.get("grid"), D)
            n_hints = grid.n_hints

            def bound(box, hints):
                return grid.box_bound(box, targets, hints)
            if ev.get("centred") == "grid":
                n_centred_hints = n_hints

                def centred(box, hints, s):
                    return grid.centred_box_bound(box, targets, hints, s)
        boxes = leaves(ev["tree"], domain, D)[start:stop]
        slopes = ev.get("slopes")
        if slopes is not None:
            slopes = slopes[start:stop]
        try:
            stored_max, checked_max, _ = check_boxes(boxes, ev["bounds"][start:stop], ev["hints"][start:stop],
                                                     bound, rat(doc["eps"], "eps"), n_hints=n_hints, start=start,
                                                     slopes=slopes, centred=centred,
                                                     n_centred_hints=n_centred_hints)
        except Invalid as e:
            return ("invalid", str(e))
        return ("ok", str(stored_max), _exact_arb(checked_max))
    finally:
        ctx.prec = old


def _check_boxes_parallel(doc, n_boxes, workers):
    """check_boxes over contiguous chunks in a spawn-context process pool, merged in order: the
    first failing chunk's first failing box is the serial run's first failing box."""
    import concurrent.futures
    import multiprocessing
    n = min(workers, n_boxes)
    cuts = [n_boxes * i // n for i in range(n + 1)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as ex:
        futs = [ex.submit(check_paving_chunk, doc, cuts[i], cuts[i + 1]) for i in range(n)]
        results = [f.result() for f in futs]
    stored_max, checked_max = fmpq(0), arb(0)
    for r in results:
        if r[0] == "invalid":
            raise Invalid(r[1])
        stored_max = max(stored_max, rat(r[1], "chunk"))
        checked_max = arb.max(checked_max, _from_exact(r[2])).upper()
    return stored_max, checked_max, []


def check_doc(doc, path="<certificate>", *, max_work=DEFAULT_MAX_WORK, max_p=DEFAULT_MAX_P,
              cross_check=False, timeout_ms=LEMMA_TIMEOUT_MS, workers=None, progress=False) -> CheckReport:
    """Check a parsed certificate; raises Invalid with the first reason it fails.

    ``max_work`` bounds the estimated work (LimitExceeded past it, CLI ``--max-work``), ``max_p``
    the L_p exponent (``--max-p``); None lifts a limit.  ``cross_check`` and ``timeout_ms`` go to
    the SMT lemmas.  ``workers`` > 1 checks a one-layer paving's boxes in that many processes
    (contiguous chunks, merged in order; the report is the serial one).  ``progress`` shows a
    bar of the boxes (and pieces) checked on stderr.
    """
    from tqdm import tqdm
    label = os.path.basename(str(path))
    bar = tqdm(total=None, desc=f"check {label[:30]}", unit=" boxes", disable=not progress, leave=False,
               file=sys.stderr, mininterval=0.5)
    try:
        return _check_doc(doc, path, max_work, max_p, cross_check, timeout_ms, workers, bar)
    finally:
        bar.close()


def _expect(bar, n: int) -> None:
    bar.total = n
    bar.refresh()


def _check_doc(doc, path, max_work, max_p, cross_check, timeout_ms, workers, bar) -> CheckReport:
    _validate_schema(doc)
    try:   # nothing else walks the document recursively (expressions are validated iteratively)
        digest = sha({k: v for k, v in doc.items() if k != "sha256"})
    except RecursionError:
        raise Invalid(f"certificate nested too deeply (a file may nest {MAX_NESTING} levels)") from None
    if doc.get("sha256") != digest:
        raise Invalid("sha256 does not match the certificate's contents")
    cons = doc["construction"]
    net = cons["network"]
    if sha(net) != cons["weights_sha256"]:
        raise Invalid("weights_sha256 does not match the weights")
    domain = [(fr(rat(a, "domain")), fr(rat(b, "domain"))) for a, b in doc["domain"]]
    if any(not a < b for a, b in domain):
        raise Invalid("domain is empty or inverted")
    D = len(domain)
    if doc["inputs"] != [f"x{i}" for i in range(D)]:
        raise Invalid("inputs must be x0..x{D-1}")
    eps = rat(doc["eps"], "eps")
    if not eps > 0:
        raise Invalid("eps must be positive")
    lp = lp_norm(doc, max_p)
    ev = doc["evidence"]
    if ev["method"] == "residual":   # the embedded 1-D certificate is validated (and estimated) first
        _validate_schema(ev["certificate"])
        if ev["certificate"]["evidence"]["method"] != "paving":
            raise Invalid("residual claim: the embedded certificate must be a paving")
    if ev["method"] == "paving" and len(ev["bounds"]) != ev["tree"].count("L"):
        raise Invalid(f"evidence lists {len(ev['bounds'])} bounds for {ev['tree'].count('L')} boxes")
    work = estimate_work(doc, D)
    if max_work is not None and work > max_work:
        raise LimitExceeded(f"checking this certificate needs an estimated {_fmt(work)} work units, more than "
                            f"the limit {_fmt(max_work)}; raise it with --max-work")
    layered = _is_layered(net)
    if layered:
        model = LayeredNet(net, D)
        heads_all = [()] * model.n_outputs
    else:
        heads_all = affine_heads(net, D)
    prep = prepare_heads(heads_all)
    if len(doc["target"]) != len(heads_all):
        raise Invalid("one target expression per network output is required")
    try:
        targets = [arb_compile(t).on_domain(domain) for t in doc["target"]]
        stray = sorted(set().union(*(arb_variables(t) for t in doc["target"])) - set(doc["inputs"]))
    except ArbExprError as e:
        raise Invalid(f"target: {e}") from None
    if stray:
        raise Invalid(f"the target uses {stray[0]}, which is not an input of the network")
    if layered:
        layered_bound = layered_box_bound(model, doc["target"], domain)

        def point_bound(box, w):
            return layered_bound(box, None)
    else:
        def point_bound(box, w):
            return box_bound(box, heads_all, targets, _point_hints(heads_all, w), prep)
    if ev["method"] == "residual":
        if lp is not None:
            raise Invalid("a residual certificate bounds the sup norm only")
        return _check_residual_doc(doc, path, domain, eps, point_bound, work, max_p, cross_check, timeout_ms, bar)
    if ev["method"] == "outputs":
        if lp is not None or layered:
            raise Invalid("output groups are checked for Linf certificates of one-layer networks only")
        return _check_groups_doc(doc, path, domain, heads_all, targets, eps, point_bound, work, bar)
    if ev["method"] != "paving":  # "analytic" / "mixed": pieces with z3 gap lemmas
        if lp is not None:
            raise Invalid("an L_p norm is certified with paving evidence only")
        return _check_piecewise_doc(doc, path, domain, heads_all, targets, eps, point_bound, work=max_work,
                                    cross_check=cross_check, timeout_ms=timeout_ms, bar=bar)
    boxes = leaves(ev["tree"], domain, D)
    if len(ev["bounds"]) != len(boxes) or len(ev["hints"]) != len(boxes):
        raise Invalid(f"evidence lists {len(ev['bounds'])} bounds for {len(boxes)} boxes")
    n_hints = None if layered else sum(len(p) for p in heads_all)
    n_centred_hints = n_hints
    slopes = ev.get("slopes")
    if slopes is not None:
        _check_slopes(slopes, len(boxes), D, "evidence", lp=lp is not None,
                      bounder=ev.get("bounder", "affine"))
    if layered:
        bound = layered_bound
        centred = layered_centred_bound(model, doc["target"], domain)   # slopes and bound re-derived
    else:
        def bound(box, hints):
            return box_bound(box, heads_all, targets, hints, prep)

        def centred(box, hints, s):
            return centred_box_bound(box, heads_all, targets, hints, prep, s)
    if ev.get("bounder", "affine") == "grid":
        try:
            grid = GridCheck(heads_all, ev.get("grid"), D)
        except GridClaimError as e:
            raise Invalid(f"grid evidence: {e}") from None
        n_hints = None if layered else grid.n_hints

        def bound(box, hints):
            return grid.box_bound(box, targets, hints)
        if ev.get("centred") == "grid":   # centred boxes carry grid hints and grid-derived slopes
            n_centred_hints = n_hints

            def centred(box, hints, s):
                return grid.centred_box_bound(box, targets, hints, s)
    elif ev.get("bounder", "affine") != "affine":
        raise Invalid(f"unknown evidence bounder {str(ev.get('bounder'))[:40]!r}")
    if "centred" in ev and (ev.get("bounder") != "grid" or ev["centred"] != "grid"):
        raise Invalid("evidence \"centred\": \"grid\" goes with bounder \"grid\" only")
    max_bound = rat(doc["result"]["max_bound"], "max_bound")
    if lp is None and not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")
    old = ctx.prec
    ctx.prec = PREC
    try:
        _expect(bar, len(boxes))
        if workers is not None and workers > 1 and lp is None and not layered and len(boxes) > 1:
            stored_max, checked_max, lp_terms = _check_boxes_parallel(doc, len(boxes), workers)
            bar.update(len(boxes))
        else:
            stored_max, checked_max, lp_terms = check_boxes(boxes, ev["bounds"], ev["hints"], bound, eps,
                                                            n_hints=n_hints, lp=lp is not None, tick=bar.update,
                                                            slopes=slopes, centred=centred,
                                                            n_centred_hints=n_centred_hints)
        if stored_max != max_bound:
            raise Invalid("max_bound is not the largest box bound")
        norm_bound, checked_norm = doc["result"]["max_bound"], float_up(checked_max)
        if lp is not None:
            checked_norm = check_lp(doc, lp, lp_terms, eps)
            norm_bound = doc["result"]["norm_bound"]
        elif "norm_bound" in doc["result"]:
            raise Invalid("an Linf certificate states no separate norm_bound")
        at = _check_observed(doc, domain, point_bound, max_bound)
        details = {"method": "paving", "estimated_work": work}
        if slopes is not None:
            details["centred_boxes"] = _n_centred(ev)
        if "chain" in doc["result"]:
            if not layered:
                raise Invalid("chain terms are checked for layered networks only")
            details["chain"] = check_chain(doc["result"]["chain"], boxes, ev["hints"], model, targets, eps)
    finally:
        ctx.prec = old
    return CheckReport(path=path, ok=True, message="certificate holds", name=cons["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"],
                       checked_max_bound=float_up(checked_max), boxes=len(boxes),
                       observed_error=doc["result"]["observed_error"], details=details,
                       norm="Linf" if lp is None else "Lp", p="" if lp is None else doc["norm"]["p"],
                       norm_bound=norm_bound, checked_norm_bound=checked_norm, witness_error=float_up(at),
                       unverified=NOT_VERIFIED)


def _check_residual_doc(doc, path, domain, eps, point_bound, work, max_p, cross_check, timeout_ms, bar):
    """check_doc's branch for evidence.method "residual" (check/residual.py): the claim verified
    against the weights and the target, the embedded 1-D certificate checked as any certificate,
    and the bound assembled from them must be below eps and not above the stated max_bound."""
    if "chain" in doc["result"] or "norm_bound" in doc["result"]:
        raise Invalid("a residual certificate carries no chain terms and no separate norm_bound")
    max_bound = rat(doc["result"]["max_bound"], "max_bound")
    if not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")

    def check_sub(sub):   # its work was counted in this certificate's estimate
        return _check_doc(sub, f"{path}#residual", None, max_p, cross_check, timeout_ms, None, bar)
    old = ctx.prec
    ctx.prec = PREC
    try:
        bound, n_boxes = check_residual(doc, domain, check_sub)
        if not bound < arb(eps):
            raise Invalid(f"the re-derived bound {float_up(bound):.6g} is not below eps")
        if undercuts(max_bound, bound):
            raise Invalid(f"stated max_bound {float(max_bound):.6g} is below the re-derived bound "
                          f"{float_up(bound):.6g}")
        at = _check_observed(doc, domain, point_bound, max_bound)
    finally:
        ctx.prec = old
    return CheckReport(path=path, ok=True, message="certificate holds", name=doc["construction"]["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"], checked_max_bound=float_up(bound),
                       boxes=n_boxes, observed_error=doc["result"]["observed_error"],
                       details={"method": "residual", "estimated_work": work}, norm_bound=doc["result"]["max_bound"],
                       checked_norm_bound=float_up(bound), witness_error=float_up(at), unverified=NOT_VERIFIED)


def _check_groups_doc(doc, path, domain, heads_all, targets, eps, point_bound, work, bar):
    """check_doc's branch for evidence.method "outputs": each group's tree tiles the whole domain
    and bounds the group's outputs only; the groups name every output exactly once, so the
    largest group bound bounds max over outputs of |N_o - f_o| everywhere."""
    groups = doc["evidence"]["groups"]
    if "chain" in doc["result"] or "norm_bound" in doc["result"]:
        raise Invalid("output groups carry no chain terms and no separate norm_bound")
    named = sorted(o for g in groups for o in g["outputs"])
    if named != list(range(len(heads_all))):
        raise Invalid("output groups must name every output of the network exactly once")
    max_bound = rat(doc["result"]["max_bound"], "max_bound")
    if not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")
    D = len(domain)
    _expect(bar, sum(len(g["bounds"]) for g in groups))
    stored_max, checked_max, n_boxes, n_centred = fmpq(0), arb(0), 0, 0
    old = ctx.prec
    ctx.prec = PREC
    try:
        for n, g in enumerate(groups):
            heads = [heads_all[o] for o in g["outputs"]]
            tg = [targets[o] for o in g["outputs"]]
            prep = prepare_heads(heads)
            boxes = leaves(g["tree"], domain, D)
            if len(g["bounds"]) != len(boxes) or len(g["hints"]) != len(boxes):
                raise Invalid(f"group {n}: evidence lists {len(g['bounds'])} bounds for {len(boxes)} boxes")
            slopes = g.get("slopes")
            if slopes is not None:
                _check_slopes(slopes, len(boxes), D, f"group {n}")
                n_centred += _n_centred(g)

            def bound(box, hints, heads=heads, tg=tg, prep=prep):
                return box_bound(box, heads, tg, hints, prep)

            def centred(box, hints, s, heads=heads, tg=tg, prep=prep):
                return centred_box_bound(box, heads, tg, hints, prep, s)
            try:
                s_max, c_max, _ = check_boxes(boxes, g["bounds"], g["hints"], bound, eps,
                                              n_hints=sum(len(p) for p in heads), tick=bar.update,
                                              slopes=slopes, centred=centred)
            except Invalid as e:
                raise Invalid(f"group {n} (outputs {g['outputs'][:8]}): {e}") from None
            stored_max = max(stored_max, s_max)
            checked_max = arb.max(checked_max, c_max).upper()
            n_boxes += len(boxes)
        if stored_max != max_bound:
            raise Invalid("max_bound is not the largest box bound")
        at = _check_observed(doc, domain, point_bound, max_bound)
    finally:
        ctx.prec = old
    return CheckReport(path=path, ok=True, message="certificate holds", name=doc["construction"]["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"],
                       checked_max_bound=float_up(checked_max), boxes=n_boxes,
                       observed_error=doc["result"]["observed_error"],
                       details={"method": "outputs", "groups": len(groups), "estimated_work": work,
                                **({"centred_boxes": n_centred} if n_centred else {})},
                       norm="Linf", p="", norm_bound=doc["result"]["max_bound"],
                       checked_norm_bound=float_up(checked_max), witness_error=float_up(at),
                       unverified=NOT_VERIFIED)


def _check_pieces(doc, domain, heads_all, targets, eps, *, timeout_ms=LEMMA_TIMEOUT_MS, cross_check=False,
                  budget=None, tick=None):
    """Check piecewise evidence; returns (pieces, checked max arb, stored max fmpq, lemma count, partition lemmas).
    ``tick(k)`` counts k boxes checked (an analytic piece is one)."""
    ev = doc["evidence"]
    D = len(domain)
    cells = []
    for n, piece in enumerate(ev["pieces"]):
        cell = exact_cell(piece["cell"], f"piece {n} cell")
        if len(cell) != D:
            raise Invalid(f"piece {n}: cell has the wrong dimension")
        cells.append(cell)
    check_tiling(cells, domain, budget)   # exact and cheap: before any piece is bounded or lemma re-run
    lemmas = check_lemmas(ev, heads_all, D, timeout_ms, cross_check)
    n_heads = sum(len(p) for p in heads_all)
    used = set()
    stored_max, checked_max = fmpq(0), arb(0)
    for n, (piece, cell) in enumerate(zip(ev["pieces"], cells)):
        stored = rat(piece["bound"], f"piece {n} bound")
        if piece["method"] == "analytic":
            if "mesh" in piece:  # ratio-interval bounds on a fixed sub-mesh (check/mesh.py)
                proved = mesh_bound(piece, cell, heads_all, targets, lemmas, used)
            else:
                proved = analytic_bound(piece, cell, heads_all, targets, lemmas, used)
        else:
            boxes = leaves(piece["tree"], cell, D)
            if len(piece["bounds"]) != len(boxes) or len(piece["hints"]) != len(boxes):
                raise Invalid(f"piece {n}: {len(piece['bounds'])} bounds for {len(boxes)} boxes")
            proved = arb(0)
            for k, (box, b, h) in enumerate(zip(boxes, piece["bounds"], piece["hints"])):
                if len(h) != n_heads:
                    raise Invalid(f"piece {n} box {k}: wrong number of hints")
                pb = box_bound(box, heads_all, targets, h)
                if undercuts(rat(b, "bound"), pb):
                    raise Invalid(f"piece {n} box {k}: stored bound is below the re-derived bound")
                proved = arb.max(proved, pb).upper()
        where = f"piece {n} [{', '.join(f'{str(a)[:40]}..{str(b)[:40]}' for a, b in cell)}] ({piece['method']})"
        if not proved < arb(eps):
            raise Invalid(f"{where}: re-derived bound {float(proved.mid()):.6g} is not below eps")
        if undercuts(stored, proved):
            raise Invalid(f"{where}: stored bound {float(stored):.6g} is below the re-derived "
                          f"bound {float(proved.mid()):.6g}")
        stored_max = max(stored_max, stored)
        checked_max = arb.max(checked_max, proved).upper()
        if tick is not None:
            tick(len(piece["bounds"]) if piece["method"] == "paving" else 1)
    unused = sorted(set(lemmas) - used)
    if unused:
        raise Invalid(f"lemma {unused[0]} is not cited by any piece")
    # max-affine partition facts (cover, lead per cell): optional, checked when carried (check/partition.py)
    n_part = check_partition(doc, domain, heads_all, cells, timeout_ms=timeout_ms, cross_check=cross_check,
                             budget=budget)
    return len(cells), checked_max, stored_max, len(lemmas), n_part


def _check_piecewise_doc(doc, path, domain, heads_all, targets, eps, point_bound, *, work=None,
                         cross_check=False, timeout_ms=LEMMA_TIMEOUT_MS, bar=None):
    """check_doc's branch for evidence.method "analytic"/"mixed"; raises Invalid or returns a report."""
    max_bound = rat(doc["result"]["max_bound"], "max_bound")
    if not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")
    if "norm_bound" in doc["result"]:
        raise Invalid("an Linf certificate states no separate norm_bound")
    methods = {p["method"] for p in doc["evidence"]["pieces"]}
    if (doc["evidence"]["method"] == "analytic") != (methods == {"analytic"}):
        raise Invalid("evidence.method does not match the methods of its pieces")
    if bar is not None:
        _expect(bar, sum(len(p["bounds"]) if p["method"] == "paving" else 1 for p in doc["evidence"]["pieces"]))
    old = ctx.prec
    ctx.prec = PREC
    try:
        n, checked_max, stored_max, n_gap, n_part = _check_pieces(
            doc, domain, heads_all, targets, eps, timeout_ms=timeout_ms, cross_check=cross_check, budget=work,
            tick=None if bar is None else bar.update)
        if stored_max != max_bound:
            raise Invalid("max_bound is not the largest piece bound")
        at = _check_observed(doc, domain, point_bound, max_bound)
    finally:
        ctx.prec = old
    part = doc["evidence"].get("partition")
    return CheckReport(path=path, ok=True, message="certificate holds", name=doc["construction"]["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"],
                       checked_max_bound=float_up(checked_max), boxes=n,
                       observed_error=doc["result"]["observed_error"],
                       details={"method": doc["evidence"]["method"], "pieces": n, "lemmas": n_gap + n_part,
                                "partition_lemmas": n_part,
                                "partition": "verified" if part is not None else "not carried",
                                "cross_check": "cvc5" if cross_check else None},
                       norm="Linf", p="", norm_bound=doc["result"]["max_bound"],
                       checked_norm_bound=float_up(checked_max), witness_error=float_up(at),
                       unverified=NOT_VERIFIED)
