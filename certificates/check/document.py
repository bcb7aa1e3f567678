"""The independent checker of a whole certificate: schema, hashes and header, then each kind
of evidence handed to its own module (paving, grid, layered, analytic, mesh, partition, L_p).

It shares no code with ``verify`` (the search): it parses the exact weights itself,
forms the affine logits and values itself, rebuilds the paving from the bisection
tree in exact rationals (so the boxes tile the domain by construction), and bounds
each box with python-flint's Arb.  A bug in the searcher cannot vouch for itself.
"""
from __future__ import annotations

import json
from importlib import resources

from flint import arb, ctx, fmpq

from .analytic import analytic_bound, check_lemmas
from .arbexpr import ArbExprError, arb_compile
from .core import (LEMMA_TIMEOUT_MS, PREC, CheckReport, Invalid, affine_heads, box_bound, check_tiling,
                   exact_cell, fr, leaves, rat, sha)
from .grid import GridCheck, GridClaimError
from .layered import LayeredNet, check_chain, layered_box_bound
from .lp import check_lp, lp_norm
from .mesh import mesh_bound
from .partition import check_partition
from .paving import check_boxes


def _validate_schema(doc):
    try:
        import jsonschema
    except ImportError:  # core install has it; keep the structural checks below regardless
        return
    schema = json.loads(resources.files("certificates").joinpath("schema/certificate.schema.json").read_text())
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise Invalid(f"schema violation at {where}: {err.message[:200]}")


def _is_layered(net) -> bool:
    """Anything beyond one plain layer goes to the layered checker (check/layered.py)."""
    return (len(net["layers"]) != 1 or any("post" in layer for layer in net["layers"])
            or "final_softmax" in net or "readout_linear" in net)


def _check_witness(doc, domain):
    witness = [rat(v, "witness") for v in doc["result"]["witness"]]
    if len(witness) != len(domain) or any(not (fmpq(a.numerator, a.denominator) <= w <= fmpq(b.numerator, b.denominator))
                                          for w, (a, b) in zip(witness, domain)):
        raise Invalid("witness lies outside the domain")


def check_doc(doc, path="<certificate>", **opts) -> CheckReport:
    """Check a parsed certificate; raises Invalid with the first reason it fails.

    ``opts`` (cross_check, timeout_ms) go to the piecewise branch.
    """
    _validate_schema(doc)
    if doc.get("sha256") != sha({k: v for k, v in doc.items() if k != "sha256"}):
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
    layered = _is_layered(net)
    if layered:
        model = LayeredNet(net, D)
        heads_all = [()] * model.n_outputs
    else:
        heads_all = affine_heads(net, D)
    if len(doc["target"]) != len(heads_all):
        raise Invalid("one target expression per network output is required")
    try:
        targets = [arb_compile(t) for t in doc["target"]]
    except ArbExprError as e:
        raise Invalid(f"target: {e}") from None
    ev = doc["evidence"]
    if ev["method"] != "paving":  # "analytic" / "mixed": pieces with z3 gap lemmas
        if doc["norm"].get("kind") != "Linf":
            raise Invalid("an L_p norm is certified with paving evidence only")
        return _check_piecewise_doc(doc, path, domain, heads_all, targets, eps, **opts)
    boxes = leaves(ev["tree"], domain, D)
    if len(ev["bounds"]) != len(boxes) or len(ev["hints"]) != len(boxes):
        raise Invalid(f"evidence lists {len(ev['bounds'])} bounds for {len(boxes)} boxes")
    n_hints = None if layered else sum(len(p) for p in heads_all)
    if layered:
        bound = layered_box_bound(model, doc["target"])
    else:
        def bound(box, hints):
            return box_bound(box, heads_all, targets, hints)
    if ev.get("bounder", "affine") == "grid":
        try:
            grid = GridCheck(heads_all, ev.get("grid"), D)
        except GridClaimError as e:
            raise Invalid(f"grid evidence: {e}") from None
        n_hints = None if layered else grid.n_hints

        def bound(box, hints):
            return grid.box_bound(box, targets, hints)
    elif ev.get("bounder", "affine") != "affine":
        raise Invalid(f"unknown evidence bounder {ev.get('bounder')!r}")
    lp = lp_norm(doc)
    max_bound = rat(doc["result"]["max_bound"], "max_bound")
    if lp is None and not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")
    old = ctx.prec
    ctx.prec = PREC
    try:
        stored_max, checked_max, lp_terms = check_boxes(boxes, ev["bounds"], ev["hints"], bound, eps,
                                                        n_hints=n_hints, lp=lp is not None)
        if stored_max != max_bound:
            raise Invalid("max_bound is not the largest box bound")
        if lp is not None:
            check_lp(doc, lp, lp_terms, eps)
        _check_witness(doc, domain)
        details = {}
        if "chain" in doc["result"]:
            if not layered:
                raise Invalid("chain terms are checked for layered networks only")
            details["chain"] = check_chain(doc["result"]["chain"], boxes, ev["hints"], model, targets, eps)
    finally:
        ctx.prec = old
    return CheckReport(path=path, ok=True, message="certificate holds", name=cons["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"],
                       checked_max_bound=float(checked_max.mid()), boxes=len(boxes),
                       observed_error=doc["result"]["observed_error"], details=details)


def _check_pieces(doc, domain, heads_all, targets, eps, *, timeout_ms=LEMMA_TIMEOUT_MS, cross_check=False):
    """Check piecewise evidence; returns (pieces, checked max arb, stored max fmpq, lemma count)."""
    ev = doc["evidence"]
    D = len(domain)
    lemmas = check_lemmas(ev, heads_all, D, timeout_ms, cross_check)
    n_heads = sum(len(p) for p in heads_all)
    cells, used = [], set()
    stored_max, checked_max = fmpq(0), arb(0)
    for n, piece in enumerate(ev["pieces"]):
        cell = exact_cell(piece["cell"], f"piece {n} cell")
        if len(cell) != D:
            raise Invalid(f"piece {n}: cell has the wrong dimension")
        cells.append(cell)
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
                if arb(rat(b, "bound")) < pb - arb(eps) * arb(2) ** -20:
                    raise Invalid(f"piece {n} box {k}: stored bound is below the re-derived bound")
                proved = arb.max(proved, pb).upper()
        where = f"piece {n} [{', '.join(f'{a}..{b}' for a, b in cell)}] ({piece['method']})"
        if not proved < arb(eps):
            raise Invalid(f"{where}: re-derived bound {float(proved.mid()):.6g} is not below eps")
        if arb(stored) < proved - arb(eps) * arb(2) ** -20:
            raise Invalid(f"{where}: stored bound {float(stored):.6g} is below the re-derived "
                          f"bound {float(proved.mid()):.6g}")
        stored_max = max(stored_max, stored)
        checked_max = arb.max(checked_max, proved).upper()
    unused = sorted(set(lemmas) - used)
    if unused:
        raise Invalid(f"lemma {unused[0]} is not cited by any piece")
    check_tiling(cells, domain)
    # max-affine partition facts (cover, lead per cell)
    n_part = check_partition(doc, domain, heads_all, cells, timeout_ms=timeout_ms, cross_check=cross_check)
    return len(cells), checked_max, stored_max, len(lemmas) + n_part


def _check_piecewise_doc(doc, path, domain, heads_all, targets, eps, *, cross_check=False,
                         timeout_ms=LEMMA_TIMEOUT_MS):
    """check_doc's branch for evidence.method "analytic"/"mixed"; raises Invalid or returns a report."""
    max_bound = rat(doc["result"]["max_bound"], "max_bound")
    if not max_bound < eps:
        raise Invalid("the largest proved bound is not below eps")
    methods = {p["method"] for p in doc["evidence"]["pieces"]}
    if (doc["evidence"]["method"] == "analytic") != (methods == {"analytic"}):
        raise Invalid("evidence.method does not match the methods of its pieces")
    old = ctx.prec
    ctx.prec = PREC
    try:
        n, checked_max, stored_max, n_lemmas = _check_pieces(doc, domain, heads_all, targets, eps,
                                                             timeout_ms=timeout_ms, cross_check=cross_check)
    finally:
        ctx.prec = old
    if stored_max != max_bound:
        raise Invalid("max_bound is not the largest piece bound")
    _check_witness(doc, domain)
    return CheckReport(path=path, ok=True, message="certificate holds", name=doc["construction"]["name"],
                       eps=doc["eps"], max_bound=doc["result"]["max_bound"],
                       checked_max_bound=float(checked_max.mid()), boxes=n,
                       observed_error=doc["result"]["observed_error"],
                       details={"method": doc["evidence"]["method"], "pieces": n, "lemmas": n_lemmas,
                                "partition_lemmas": len(doc["evidence"].get("partition", {}).get("lemmas", [])),
                                "cross_check": "cvc5" if cross_check else None})
