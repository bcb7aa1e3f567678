"""The analytic route: z3 gap lemmas, closed-form piece bounds, piecewise certificates and their checker."""
import ast
import copy
import json
import pathlib
from fractions import Fraction

import mpmath
import pytest

import constructions
from certificates.check.analytic import expected_text
from certificates.check.core import Invalid, affine_heads, sha
from certificates.check.document import check_doc
from certificates.cli.main import main
from certificates.model import analytic_certificate_doc, digest, load, save
from constructions.expr import mp_eval
from verify.analytic.closed_form import default_cells
from verify.analytic.certify import certify_analytic
from verify.forward import forward_mp
from verify.enclose.linearize import affine_form

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ramp(p, kappa, lo="-2", hi="2"):
    return constructions.build("ramp", a="-1", b="1", p=p, kappa=kappa, lo=lo, hi=hi)


@pytest.fixture(scope="module")
def sharp9(tmp_path_factory):
    """p = 9, kappa = 10^6: Delta/2 = 1/8; an all-analytic certificate at eps = 0.126."""
    c = _ramp(9, "1000000")
    res = certify_analytic(c, "0.126", method="analytic")
    assert res.status == "CERTIFIED", res.reason
    path = tmp_path_factory.mktemp("an") / "sharp9.json"
    save(analytic_certificate_doc(c, res), path)
    return c, res, path


@pytest.fixture(scope="module")
def mixed17(tmp_path_factory):
    """p = 17, kappa = 8: the closed form (~Delta/2) is too weak inside [a, b]; auto paves there."""
    c = _ramp(17, 8)
    res = certify_analytic(c, "0.04", method="auto")
    assert res.status == "CERTIFIED", res.reason
    path = tmp_path_factory.mktemp("an") / "mixed17.json"
    save(analytic_certificate_doc(c, res), path)
    return c, res, path


def test_acceptance_kappa_1e6_p65_certifies_analytically(tmp_path):
    c = _ramp(65, "1000000")
    res = certify_analytic(c, "0.0157", method="analytic")
    assert res.status == "CERTIFIED", res.reason
    assert len(res.pieces) == 2 * 64 + 2 and all(p.method == "analytic" for p in res.pieces)
    assert res.lemma_count == 130
    # the bound is Delta/2 = 1/64 up to Arb rounding, and sampling sees nearly that much
    assert Fraction(1, 64) <= Fraction(res.max_bound) < Fraction(1, 64) * (1 + Fraction(1, 10 ** 6))
    assert res.observed > 0.99 * res.max_bound
    path = tmp_path / "k6.json"
    save(analytic_certificate_doc(c, res), path)
    rep = check_doc(load(path))
    assert rep.details["method"] == "analytic" and rep.details["lemmas"] == 130 and rep.boxes == 130


def test_piece_count_does_not_grow_with_kappa():
    counts = {k: len(default_cells(c, affine_form(c.network)))
              for k, c in ((k, _ramp(65, k)) for k in ("1000", "1000000", "1000000000"))}
    assert set(counts.values()) == {130}, counts


def _dense_points(cell, kappa, delta, n=12):
    """Points across the cell plus points crowding its ends, where a sharp transition sits."""
    lo, hi = cell
    pts = [lo + (hi - lo) * Fraction(i, n) for i in range(n + 1)]
    for s in (1, 3, 10, 30):
        w = delta * s / (4 * kappa)
        pts += [lo + w, hi - w]
    return [x for x in pts if lo <= x <= hi]


@pytest.mark.parametrize("which", ["sharp9", "mixed17"])
def test_piece_bounds_hold_at_dense_high_precision_samples(which, request):
    c, res, _ = request.getfixturevalue(which)
    kappa = Fraction(c.param_dict()["kappa"])
    delta = Fraction(2, int(c.param_dict()["p"]) - 1)
    worst_ratio = 0.0
    for piece in res.pieces:
        cell, = piece.cell
        for x in _dense_points(cell, kappa, delta):
            with mpmath.workdps(60):
                y = forward_mp(c.network, [x], 60)[0]
                err = abs(y - mp_eval(c.target[0], {"x0": mpmath.mpf(x.numerator) / x.denominator}))
                bound = mpmath.mpf(piece.bound.numerator) / piece.bound.denominator
            assert err <= bound, (piece.cell, x, err, piece.bound)  # a soundness bug, never noise
            worst_ratio = max(worst_ratio, float(err / bound))
    assert worst_ratio > 0.5  # the samples do reach the bounds somewhere (tightness is visible)


def test_leakage_only_pieces_are_tight(mixed17):
    """Outside [a, b] the target is constant and the bound is pure leakage: it must be near the truth."""
    c, res, _ = mixed17
    for piece in (res.pieces[0], res.pieces[-1]):
        assert piece.method == "analytic"
        (lo, hi), = piece.cell
        end = hi if piece is res.pieces[0] else lo   # x = a or x = b, where leakage peaks
        with mpmath.workdps(60):
            err = abs(forward_mp(c.network, [end], 60)[0] - mp_eval(c.target[0], {"x0": mpmath.mpf(end.numerator) / end.denominator}))
        bound = mpmath.mpf(piece.bound.numerator) / piece.bound.denominator
        assert err <= bound < 1.01 * err, (piece.cell, err, bound)


def test_mixed_certificate_records_methods_and_checks(mixed17):
    c, res, path = mixed17
    methods = [p.method for p in res.pieces]
    assert methods[0] == methods[-1] == "analytic" and "paving" in methods
    doc = load(path)
    assert doc["evidence"]["method"] == "mixed"
    rep = check_doc(doc)
    assert rep.details["method"] == "mixed" and rep.checked_max_bound < 0.04


def test_analytic_only_reports_the_cell_that_is_too_weak():
    res = certify_analytic(_ramp(17, 8), "0.04", method="analytic")
    assert res.status == "UNKNOWN" and "closed-form bound" in res.reason and "--method auto" in res.reason


def _rehash(doc):
    doc["sha256"] = digest(doc)
    return doc


def _lemma(doc, n=3):
    return doc["evidence"]["lemmas"][n]


def _raise_margin(doc):
    """A forger raises a true margin and re-renders the lemma text consistently: z3 must say sat."""
    lm = _lemma(doc)
    j, m = lm["claims"][0]
    lm["claims"][0][1] = str(Fraction(m) + 1)
    heads = affine_heads(doc["construction"]["network"], len(doc["domain"]))
    c, G, _, _ = heads[lm["output"]][lm["head"]]
    cell = [(Fraction(a), Fraction(b)) for a, b in lm["cell"]]
    lm["smt2"] = expected_text(lm["id"], cell, c, G, lm["top"], [(k, Fraction(v)) for k, v in lm["claims"]])


def _pieces_with_lemma(doc, lid):
    return [p for p in doc["evidence"]["pieces"] if any(h["lemma"] == lid for h in p.get("heads", []))]


TAMPERS = {
    "smt2 text edited": (lambda d: _lemma(d).__setitem__("smt2", _lemma(d)["smt2"].replace("(< ", "(<= ", 1)),
                         "does not state"),
    "margin raised (text kept)": (lambda d: _lemma(d)["claims"][0].__setitem__(1, str(Fraction(_lemma(d)["claims"][0][1]) + 1)),
                                  "does not state"),
    "margin raised (text re-rendered)": (_raise_margin, "z3 answers sat"),
    "lemma removed": (lambda d: d["evidence"]["lemmas"].pop(3), "does not hold"),
    "claim removed": (lambda d: _lemma(d)["claims"].pop(), "claims must cover"),
    "id smuggles SMT commands": (lambda d: (_lemma(d).__setitem__("id", "x\n(set-option :regular-output-channel \"/tmp/pwn\")"),
                                            [p["heads"][0].__setitem__("lemma", _lemma(d)["id"])
                                             for p in _pieces_with_lemma(d, d["evidence"]["lemmas"][3]["id"])]),
                                 "schema violation|malformed id"),
    "trivially unsat lemma": (lambda d: _lemma(d).__setitem__("smt2", "(set-logic QF_LRA)\n(assert false)\n(check-sat)\n"),
                              "does not state"),
    "piece removed": (lambda d: d["evidence"]["pieces"].pop(0) and d["evidence"]["lemmas"].pop(0), "cover"),
    "piece bound lowered": (lambda d: d["evidence"]["pieces"][4].__setitem__("bound", "1/1000"), "below the re-derived"),
    "tied key declared trailing": (lambda d: d["evidence"]["pieces"][4]["heads"][0].__setitem__("active", []),
                                   "not below eps"),
    "lemma of another cell cited": (lambda d: d["evidence"]["pieces"][5]["heads"][0].__setitem__(
        "lemma", d["evidence"]["pieces"][6]["heads"][0]["lemma"]), "another cell"),
    "cell widened": (lambda d: d["evidence"]["pieces"][0]["cell"][0].__setitem__(0, "-3"), "leaves the domain|another cell"),
    "method mislabelled": (lambda d: d["evidence"].__setitem__("method", "mixed"), "does not match"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_piecewise_certificate_is_rejected(sharp9, tmp_path, name, capsys):
    doc = load(sharp9[2])
    fn, why = TAMPERS[name]
    fn(doc)
    _rehash(doc)
    with pytest.raises(Invalid, match=why):
        check_doc(copy.deepcopy(doc))
    path = tmp_path / "t.json"
    save(doc, path)
    assert main(["check", str(path)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_tiling_is_checked_exactly():
    from certificates.check.core import check_tiling
    F = Fraction
    dom = [(F(-2), F(2))]
    check_tiling([[(F(-2), F(1, 3))], [(F(1, 3), F(2))]], dom)
    for cells, why in (([[(F(-2), F(1, 3))], [(F(1, 3) + F(1, 10 ** 30), F(2))]], "cover"),
                       ([[(F(-2), F(1, 3))], [(F(1, 3) - F(1, 10 ** 30), F(2))]], "overlap"),
                       ([[(F(-3), F(1, 3))], [(F(1, 3), F(2))]], "leaves the domain")):
        with pytest.raises(Invalid, match=why):
            check_tiling(cells, dom)
    sq = [(F(0), F(1)), (F(0), F(1))]
    check_tiling([[(F(0), F(1, 2)), (F(0), F(1))], [(F(1, 2), F(1)), (F(0), F(1, 2))],
                   [(F(1, 2), F(1)), (F(1, 2), F(1))]], sq)
    with pytest.raises(Invalid, match="overlap"):
        check_tiling([[(F(0), F(1, 2)), (F(0), F(1))], [(F(1, 4), F(1)), (F(0), F(1, 2))],
                       [(F(1, 2), F(1)), (F(1, 2), F(1))]], sq)


def test_sat_lemma_is_named_with_its_point(sharp9):
    doc = load(sharp9[2])
    _raise_margin(doc)
    with pytest.raises(Invalid) as e:
        check_doc(_rehash(doc))
    assert f"lemma {_lemma(doc)['id']}: z3 answers sat at x0 = " in str(e.value)


def test_cli_certify_analytic_and_cross_check(tmp_path, capsys, monkeypatch):
    out = tmp_path / "c.json"
    assert main(["certify", "ramp", "--set", "p=9", "--set", "kappa=1000000", "--eps", "0.126",
                 "--method", "analytic", "-o", str(out)]) == 0
    assert "CERTIFIED (analytic)" in capsys.readouterr().out
    assert main(["check", str(out), "--cross-check", "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)[0]
    try:
        import cvc5  # noqa: F401
        assert rep["cross_check"] == "cvc5"
    except ImportError:
        assert rep["cross_check"] is None
    import certificates.cli.check as check_cmd
    monkeypatch.setattr(check_cmd, "_have_cvc5", lambda: False)
    assert main(["check", str(out), "--cross-check"]) == 0
    assert "cvc5 package is not installed" in capsys.readouterr().err
    assert main(["certify", "ramp", "--set", "p=17", "--set", "kappa=8", "--eps", "0.04", "--method", "analytic"]) == 1
    assert main(["check", str(out), "--lemma-timeout", "0"]) == 2
    assert main(["check", str(out), "--lemma-timeout", "5"]) == 0


def test_cvc5_agrees_on_every_lemma(sharp9):
    cvc5 = pytest.importorskip("cvc5")  # noqa: F841
    from certificates.check.core import cvc5_answer
    doc = load(sharp9[2])
    assert {cvc5_answer(lm["smt2"], 10_000) for lm in doc["evidence"]["lemmas"]} == {"unsat"}
    _raise_margin(doc)
    assert cvc5_answer(_lemma(doc)["smt2"], 10_000) == "sat"


def test_spec_audit_passes_and_names_the_broken_gap_lemma_with_a_point(tmp_path, capsys):
    assert main(["spec-audit", "ramp", "--set", "p=9"]) == 0
    assert "AUDIT OK" in capsys.readouterr().out
    built = tmp_path / "b.json"
    assert main(["build", "ramp", "--set", "p=9", "-o", str(built)]) == 0
    doc = json.loads(built.read_text())
    doc["construction"]["network"]["embedding"]["const"][6][3] = "-1/2"  # key of anchor 5: v = L^2 - L_0^2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["spec-audit", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "lemma ramp.logit.k5: z3 answers sat at x0 = " in out
    gap = [l for l in out.splitlines() if "ramp.gap." in l]
    assert gap and all("z3 answers sat at x0 = " in l and "spec margin" in l for l in gap)
    assert main(["spec-audit", "nosuch"]) == 2


def test_check_analytic_shares_no_code_with_search():
    for name in ("check/analytic.py", "check/document.py"):
        tree = ast.parse((ROOT / "certificates" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] in {"verify", "constructions"} for m in mods), (name, mods)


def test_lemma_id_cannot_smuggle_smt_commands_without_the_schema(sharp9, monkeypatch):
    """Even if jsonschema were absent, an id with a newline never reaches a solver."""
    from certificates.check import document as checker
    monkeypatch.setattr(checker, "_validate_schema", lambda doc: None)
    doc = load(sharp9[2])
    lm = _lemma(doc)
    old = lm["id"]
    lm["id"] = "x\n(set-option :regular-output-channel \"/tmp/pwn\")"
    for p in _pieces_with_lemma(doc, old):
        p["heads"][0]["lemma"] = lm["id"]
    with pytest.raises(Invalid, match="malformed id"):
        check_doc(_rehash(doc))


def _grid_network(G=4, beta=6400):
    """A 2-D nearest-centre (max-affine) head on [0,1]^2: logit beta(2c.x - |c|^2), value c0 + c1."""
    from constructions.network import Embedding, Head, Layer, Network, mat
    F = Fraction
    cs = [((F(2 * i + 1, 2 * G)), F(2 * j + 1, 2 * G)) for i in range(G) for j in range(G)]
    const = [[0, 0, 1, 0, 0, 0, 0]] + [[0, 0, 0, 2 * a, 2 * b, -(a * a + b * b), a + b] for a, b in cs]
    lin0 = [[1, 0, 0, 0, 0, 0, 0]] + [[0] * 7 for _ in cs]
    lin1 = [[0, 1, 0, 0, 0, 0, 0]] + [[0] * 7 for _ in cs]
    eye = lambda rows: mat([[1 if (r, c) in rows else 0 for c in range(3)] for r in range(7)])
    head = Head(wq=eye({(0, 0), (1, 1), (2, 2)}), wk=eye({(3, 0), (4, 1), (5, 2)}),
                wv=mat([[0]] * 6 + [[1]]), wo=mat([[1]]), beta=F(beta))
    return Network(embedding=Embedding(const=mat(const), linear=(mat(lin0), mat(lin1))),
                   layers=(Layer(heads=(head,), query_rows=(0,), key_rows=tuple(range(1, len(cs) + 1))),),
                   readout=((0, 0),))


def test_two_dimensional_grid_cells_plug_in(tmp_path):
    """Cells need not be 1-D: grid cubes of a max-affine partition go through the same machinery."""
    from constructions.base import Construction
    F = Fraction
    G = 4
    c = Construction(name="grid2d", paper="test", theorem="test", params=(), network=_grid_network(G),
                     target=(("add", ("var", "x0"), ("var", "x1")),), domain=((F(0), F(1)), (F(0), F(1))),
                     apriori_bound=1)
    cells = [((F(i, G), F(i + 1, G)), (F(j, G), F(j + 1, G))) for i in range(G) for j in range(G)]
    res = certify_analytic(c, "1", method="analytic", cells=cells)
    assert res.status == "CERTIFIED" and len(res.pieces) == 16 and res.lemma_count == 16, res.reason
    path = tmp_path / "g.json"
    save(analytic_certificate_doc(c, res), path)
    doc = load(path)
    assert "(declare-fun x1 () Real)" in doc["evidence"]["lemmas"][0]["smt2"]
    rep = check_doc(doc)
    assert rep.boxes == 16 and rep.details["lemmas"] == 16
    # every top key leads its own cube: all margins are >= 0, and far keys trail by >= beta*h^2/...
    for lm in doc["evidence"]["lemmas"]:
        assert min(Fraction(m) for _, m in lm["claims"]) == 0
    _raise_margin(doc)
    with pytest.raises(Invalid, match="z3 answers sat at x0 = .*, x1 = "):
        check_doc(_rehash(doc))


@pytest.mark.slow
def test_full_certify_piece_count_is_the_same_at_kappa_1e9():
    counts = []
    for kappa in ("1000000", "1000000000"):
        res = certify_analytic(_ramp(65, kappa, hi="3"), "0.015626", method="analytic")
        assert res.status == "CERTIFIED", res.reason
        counts.append((len(res.pieces), res.lemma_count))
    assert counts[0] == counts[1] == (130, 130)


def test_a_lemma_z3_does_not_prove_is_never_written(monkeypatch):
    import verify.analytic.certify as ca
    from verify.analytic.smt import LemmaFailed

    def refuse(lemma_id, text, n, timeout):
        raise LemmaFailed(lemma_id, "unknown", None, "timeout")
    monkeypatch.setattr(ca, "run_z3", refuse)
    res = ca.certify_analytic(_ramp(9, "1000000"), "0.126", method="analytic")
    assert res.status == "UNKNOWN" and "z3 answers unknown" in res.reason
    res = ca.certify_analytic(_ramp(9, "1000000"), "0.126", method="auto")  # paves instead
    assert res.status == "CERTIFIED" and {p.method for p in res.pieces} == {"paving"}
