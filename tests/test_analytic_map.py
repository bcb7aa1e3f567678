"""[MAP] max-affine by the analytic route: pieces are the partition cells, partition lemmas in the certificate."""
import copy
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from certificates.check.partition import lead_text
from certificates.check.core import Invalid, affine_heads
from certificates.check.document import check_doc
from certificates.cli.main import main
from certificates.model import analytic_certificate_doc, digest, load, save
from constructions.expr import mp_eval
from verify.search.certify import certify
from verify.analytic.certify import certify_analytic
from verify.analytic.mesh import MESH_CUT
from verify.forward import forward_float, forward_mp
from verify.enclose.target import float_eval

EPS1 = "0.0215"


def _map1():
    return constructions.build("max-affine", f="sin(3*x0)", G=32, kappa=3)


def _map2():
    return constructions.build("max-affine", f="sin(2*x0)*cos(3*x1)", G=6, kappa=2)


@pytest.fixture(scope="module")
def cert1(tmp_path_factory):
    c = _map1()
    res = certify_analytic(c, EPS1, method="analytic")
    assert res.status == "CERTIFIED", res.reason
    path = tmp_path_factory.mktemp("map") / "m1.json"
    save(analytic_certificate_doc(c, res), path)
    return c, res, path


@pytest.fixture(scope="module")
def cert2(tmp_path_factory):
    c = _map2()
    res = certify_analytic(c, "0.5", method="analytic", mesh=4)
    assert res.status == "CERTIFIED", res.reason
    path = tmp_path_factory.mktemp("map") / "m2.json"
    save(analytic_certificate_doc(c, res), path)
    return c, res, path


def test_1d_pieces_are_the_partition_cells_and_check(cert1):
    c, res, path = cert1
    assert len(res.pieces) == 32 and all(p.method == "analytic" for p in res.pieces)
    # the Voronoi cells of the 32 nodes on [-1, 1]: the end cells are clipped to half width
    h = Fraction(2, 31)
    assert res.pieces[0].cell == ((Fraction(-1), Fraction(-1) + h / 2),)
    assert res.pieces[5].cell == ((Fraction(-1) + h * 9 / 2, Fraction(-1) + h * 11 / 2),)
    doc = load(path)
    part = doc["evidence"]["partition"]
    assert [lm["kind"] for lm in part["lemmas"]] == ["lead"] * 32 + ["cover"]
    assert part["anchors"] == list(range(1, 33))      # key 0 is the query token (self key)
    rep = check_doc(doc)
    assert rep.details["partition_lemmas"] == 33 and rep.details["lemmas"] == 32 + 33
    assert rep.checked_max_bound < float(EPS1)


def test_1d_analytic_bound_is_close_to_the_paving_bound(cert1):
    c, res, _ = cert1
    pv = certify(c, "0.0158", progress=False)
    assert pv.status == "CERTIFIED"
    assert res.max_bound < 1.4 * pv.max_bound          # measured 1.36x
    assert res.observed > 0.7 * res.max_bound          # the bound is not far from the truth either


def test_2d_grid_cubes_certify_and_check(cert2):
    c, res, path = cert2
    assert len(res.pieces) == 36 and res.lemma_count == 36 + 37
    doc = load(path)
    assert doc["evidence"]["pieces"][0]["mesh"] == 4
    lm = doc["evidence"]["partition"]["lemmas"][7]
    assert "(declare-fun x1 () Real)" in lm["smt2"] and lm["smt2"].count("(< ") == 35
    rep = check_doc(doc)
    assert rep.boxes == 36 and rep.details["partition_lemmas"] == 37


def test_self_key_is_a_key_with_its_exact_margin(cert1):
    """The query token (key 0, logit 0, value 0) is in every gap lemma, with margin lam + beta*min(2c.x - c^2)."""
    c, res, _ = cert1
    prm = c.param_dict()
    lam, beta = Fraction(prm["lam"]), Fraction(prm["beta"])
    nodes = [Fraction(-1) + Fraction(2 * k, 31) for k in range(32)]
    for p in res.pieces:
        hp = p.plan.heads[0]
        (lo, hi), = p.cell
        node = nodes[hp.top - 1]
        assert lo <= node <= hi
        want = lam + beta * min(2 * node * x - node * node for x in (lo, hi))
        assert dict(hp.lemma.claims)[0] == want
        assert (0 in hp.active) == (want < MESH_CUT)   # near x = 0 it joins the ratio bound, else it trails
        assert want > 0                                 # lam keeps the anchor ahead of the query token
    assert any(0 in p.plan.heads[0].active for p in res.pieces)


def test_auto_paves_only_where_the_closed_form_is_short():
    c = _map1()
    res = certify_analytic(c, "0.02", method="auto")
    methods = [p.method for p in res.pieces]
    assert res.status == "CERTIFIED" and "paving" in methods and "analytic" in methods
    assert res.partition is not None


def _rehash(doc):
    doc["sha256"] = digest(doc)
    return doc


def _swap_anchors(doc):
    """Assign cells 3 and 4 each other's anchor and re-render every lead lemma: z3 must say sat."""
    part = doc["evidence"]["partition"]
    a = part["anchors"]
    a[3], a[4] = a[4], a[3]
    c, G, _, _ = affine_heads(doc["construction"]["network"], len(doc["domain"]))[0][0]
    for i in range(len(a)):
        cell = [(Fraction(x), Fraction(y)) for x, y in part["cells"][i]]
        part["lemmas"][i]["smt2"] = lead_text(f"part.lead.{i}", cell, c, G, a[i], [k for k in a if k != a[i]])


def _drop_neighbour(doc):
    """Move the neighbour anchor of piece 9 (margin 0 at the shared face) from active to trailing."""
    head = doc["evidence"]["pieces"][9]["heads"][0]
    head["active"].remove(head["top"] + 1)


def _lemma(doc, n=3):
    return doc["evidence"]["partition"]["lemmas"][n]


TAMPERS = {
    "partition lemma text edited": (lambda d: _lemma(d).__setitem__("smt2", _lemma(d)["smt2"].replace("(< ", "(<= ", 1)),
                                    "does not state the partition fact"),
    "partition lemma trivially unsat": (lambda d: _lemma(d).__setitem__("smt2", "(set-logic QF_LRA)\n(assert false)\n(check-sat)\n"),
                                        "does not state the partition fact"),
    "partition lemma removed": (lambda d: d["evidence"]["partition"]["lemmas"].pop(3), "part.lead.3 is missing"),
    "cover lemma removed": (lambda d: d["evidence"]["partition"]["lemmas"].pop(), "part.cover is missing"),
    "anchor left out of the partition": (lambda d: (d["evidence"]["partition"]["anchors"].pop(),
                                                   d["evidence"]["partition"]["cells"].pop()), "not an anchor"),
    "anchors swapped (re-rendered)": (_swap_anchors, "part.lead.3: z3 answers sat at x0 = "),
    "partition cell shrunk": (lambda d: d["evidence"]["partition"]["cells"][0][0].__setitem__(1, "-99/100"), "cover|overlap|inside"),
    "gap margin raised": (lambda d: d["evidence"]["lemmas"][4]["claims"][0].__setitem__(
        1, str(Fraction(d["evidence"]["lemmas"][4]["claims"][0][1]) + 1)), "does not state"),
    "mesh coarsened": (lambda d: d["evidence"]["pieces"][9].__setitem__("mesh", 2), "not below eps"),
    "tied neighbour declared trailing": (_drop_neighbour, "not below eps"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_max_affine_certificate_is_rejected(cert1, tmp_path, name, capsys):
    doc = load(cert1[2])
    fn, why = TAMPERS[name]
    fn(doc)
    _rehash(doc)
    with pytest.raises(Invalid, match=why):
        check_doc(copy.deepcopy(doc))
    path = tmp_path / "t.json"
    save(doc, path)
    assert main(["check", str(path)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_partition_facts_are_optional_and_reported(cert1, tmp_path):
    """Every analytic piece carries its own gap lemma and the tiling is checked exactly, so the bound
    never rests on the partition facts: without them the certificate holds, and the report says so.
    (A name never decides what the checker requires.)"""
    doc = load(cert1[2])
    assert check_doc(copy.deepcopy(doc)).details["partition"] == "verified"
    doc["evidence"].pop("partition")
    _rehash(doc)
    assert check_doc(copy.deepcopy(doc)).details["partition"] == "not carried"
    doc["construction"]["name"] = "renamed"
    _rehash(doc)
    assert check_doc(doc).details["partition"] == "not carried"


def test_piece_bounds_hold_at_dense_samples(cert1):
    """float64 dense (1e-12 margin) over every piece, then mpmath at 40 digits on the tightest pieces."""
    c, res, _ = cert1
    xs = np.linspace(-1.0, 1.0, 200_001)
    err = np.abs(forward_float(c.network, xs[:, None], np)[:, 0] - float_eval(c.target[0], {"x0": xs}, np))
    ratios = []
    for k, p in enumerate(res.pieces):
        (lo, hi), = p.cell
        m = (xs >= float(lo)) & (xs <= float(hi))
        assert m.any()
        worst = float(err[m].max())
        assert worst <= float(p.bound) + 1e-12, (p.cell, worst, p.bound)
        ratios.append((worst / float(p.bound), k, float(xs[m][np.argmax(err[m])])))
    ratios.sort(reverse=True)
    assert ratios[0][0] > 0.7
    for _, k, x_at in ratios[:3]:
        (lo, hi), = res.pieces[k].cell
        pts = [lo + (hi - lo) * Fraction(i, 24) for i in range(25)] + [Fraction(x_at)]
        bound = mpmath.mpf(res.pieces[k].bound.numerator) / res.pieces[k].bound.denominator
        with mpmath.workdps(40):
            for x in pts:
                if lo <= x <= hi:
                    y = forward_mp(c.network, [x], 40)[0]
                    e = abs(y - mp_eval(c.target[0], {"x0": mpmath.mpf(x.numerator) / x.denominator}))
                    assert e <= bound, (res.pieces[k].cell, x, e, bound)


def test_2d_piece_bounds_hold_at_dense_samples(cert2):
    c, res, _ = cert2
    g = np.linspace(-1.0, 1.0, 301)
    X = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    err = np.abs(forward_float(c.network, X, np)[:, 0] - float_eval(c.target[0], {"x0": X[:, 0], "x1": X[:, 1]}, np))
    for p in res.pieces:
        (a0, b0), (a1, b1) = p.cell
        m = (X[:, 0] >= float(a0)) & (X[:, 0] <= float(b0)) & (X[:, 1] >= float(a1)) & (X[:, 1] <= float(b1))
        assert float(err[m].max()) <= float(p.bound) + 1e-12, p.cell


def test_cli_certify_max_affine_analytic(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["certify", "max-affine", "--set", "f=sin(3*x0)", "--set", "G=32", "--set", "kappa=3",
                 "--eps", EPS1, "--method", "analytic", "-o", str(out)]) == 0
    assert "CERTIFIED (analytic)" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    assert main(["certify", "max-affine", "--set", "f=sin(3*x0)", "--set", "G=32", "--set", "kappa=3",
                 "--eps", "0.02", "--method", "analytic"]) == 1
    assert main(["certify", "max-affine", "--set", "f=sin(3*x0)", "--eps", "0.1", "--method", "analytic",
                 "--mesh", "0"]) == 2


def test_partition_and_mesh_checkers_share_no_code_with_search():
    import ast
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "certificates"
    for name in ("check/partition.py", "check/mesh.py"):
        for node in ast.walk(ast.parse((root / name).read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] in {"verify", "constructions"} for m in mods), (name, mods)


@pytest.mark.slow
def test_2d_acceptance_case_at_eps_0_1(tmp_path):
    """The README's 2-D row: G=12, kappa=2, a 12x12 sub-mesh per cube, eps 0.1 (about 30-50 s each way)."""
    c = constructions.build("max-affine", f="sin(2*x0)*cos(3*x1)", G=12, kappa=2)
    res = certify_analytic(c, "0.1", method="analytic", mesh=12)
    assert res.status == "CERTIFIED" and len(res.pieces) == 144 and res.lemma_count == 144 + 145, res.reason
    path = tmp_path / "m.json"
    save(analytic_certificate_doc(c, res), path)
    rep = check_doc(load(path))
    assert rep.checked_max_bound < 0.1 and rep.details["partition_lemmas"] == 145
