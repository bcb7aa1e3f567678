"""The independent checker: accepts a good certificate, rejects every tampering (exit 1)."""
import ast
import copy
import json
import pathlib
from fractions import Fraction

import pytest

from certificates.check.core import Invalid, sha
from certificates.check.document import check_doc
from certificates.cli.main import main
from certificates.model import digest, load, save

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rehash(doc, weights=False):
    if weights:
        doc["construction"]["weights_sha256"] = sha(doc["construction"]["network"])
    doc["sha256"] = digest(doc)
    return doc


def test_good_certificate_checks(ramp41_cert):
    rep = check_doc(load(ramp41_cert))
    assert rep.ok and rep.boxes > 10 and rep.checked_max_bound < 0.02
    assert main(["check", str(ramp41_cert)]) == 0


def _half(s):
    f = Fraction(s) / 2
    return f"{f.numerator}/{f.denominator}"


def _worst_box(doc):
    bounds = [Fraction(b) for b in doc["evidence"]["bounds"]]
    return bounds.index(max(bounds))


TAMPERS = {
    "eps lowered": lambda d: d.__setitem__("eps", "1/100"),
    "bound lowered": lambda d: d["evidence"]["bounds"].__setitem__(_worst_box(d), _half(d["evidence"]["bounds"][_worst_box(d)])),
    "box removed (bound list)": lambda d: d["evidence"]["bounds"].pop(),
    "box removed (tree)": lambda d: (d["evidence"].__setitem__("tree", d["evidence"]["tree"].replace("0LL", "L", 1)),
                                     d["evidence"]["bounds"].pop(), d["evidence"]["hints"].pop()),
    "weight changed": lambda d: d["construction"]["network"]["embedding"]["const"][20].__setitem__(4, "1/5"),
    "beta changed": lambda d: d["construction"]["network"]["layers"][0]["heads"][0].__setitem__("beta", "100"),
    "target changed": lambda d: d.__setitem__("target", [{"var": "x0"}]),
    "domain widened": lambda d: d["domain"][0].__setitem__(1, "3"),
    "max bound lowered": lambda d: d["result"].__setitem__("max_bound", "1/1000"),
    "hint out of range": lambda d: d["evidence"]["hints"].__setitem__(0, [999]),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
@pytest.mark.parametrize("rehash", [False, True], ids=["plain", "rehashed"])
def test_tampering_is_rejected(ramp41_cert, tmp_path, name, rehash, capsys):
    doc = load(ramp41_cert)
    TAMPERS[name](doc)
    if rehash:  # a forger who also recomputes both hashes must still be caught
        _rehash(doc, weights=True)
    with pytest.raises(Invalid):
        check_doc(doc)
    path = tmp_path / "t.json"
    save(doc, path)
    assert main(["check", str(path)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_hash_altered(ramp41_cert, tmp_path):
    doc = load(ramp41_cert)
    doc["sha256"] = "0" * 64
    with pytest.raises(Invalid, match="sha256"):
        check_doc(doc)


def test_float_literal_and_truncation_are_input_errors(ramp41_cert, tmp_path, capsys):
    raw = pathlib.Path(ramp41_cert).read_bytes()
    bad = tmp_path / "trunc.json"
    bad.write_bytes(raw[: len(raw) // 2])
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not valid JSON" in err
    doc = json.loads(raw)
    doc["eps"] = 0.5
    fl = tmp_path / "float.json"
    fl.write_text(json.dumps(doc))
    assert main(["check", str(fl)]) == 2
    assert main(["check", str(tmp_path / "missing.json")]) == 2


def test_checker_shares_no_code_with_search():
    """certificates/check/ imports neither verify nor constructions."""
    for name in sorted(p.relative_to(ROOT / "certificates").as_posix()
                       for p in (ROOT / "certificates" / "check").glob("*.py")):
        tree = ast.parse((ROOT / "certificates" / name).read_text())
        mods = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                mods.add((node.module or "").split(".")[0] if node.level == 0 else "certificates")
        assert not mods & {"verify", "constructions"}, (name, mods)


def test_loading_never_evaluates():
    """No eval/exec/compile calls, and no sympy or pickle, in the loading and checking code."""
    names = sorted(p.relative_to(ROOT / "certificates").as_posix()
                   for p in (ROOT / "certificates" / "check").glob("*.py")) + ["model.py"]
    for name in names:
        tree = ast.parse((ROOT / "certificates" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, (name, node.func.id)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                assert not any(n.split(".")[0] in {"pickle", "sympy", "marshal", "dill"} for n in names), name


def test_inconsistent_structure_is_invalid_not_a_crash(ramp41_cert, tmp_path, capsys):
    """A readout row past the layer's query rows passes the schema but must be rejected (exit 1)."""
    doc = load(ramp41_cert)
    doc["construction"]["network"]["readout"] = [[5, 0]]
    _rehash(doc, weights=True)
    path = tmp_path / "r.json"
    save(doc, path)
    assert main(["check", str(path)]) == 1
    assert "INVALID" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# issue 15: tolerances relative to the number itself, the norm in the report, metadata, strict
# loading, work limits, deep targets.

import os  # noqa: E402
import time  # noqa: E402

from flint import arb, fmpq  # noqa: E402

from certificates.check.core import REL_SLACK, LimitExceeded, check_tiling, undercuts  # noqa: E402
from certificates.check.document import estimate_work, schema_validator  # noqa: E402
from certificates.model import CertificateError, unique_keys  # noqa: E402


from test_hostile import deep_expr, slabs as _slabs, tiny as _tiny  # noqa: E402  (hand-built certificates)


def test_zero_bounds_under_a_huge_eps_are_rejected(ramp41_cert):
    """eps = 2^20 once made the slack 1: every bound 0 passed and the report said max_bound 0."""
    doc = load(ramp41_cert)
    doc["eps"] = str(2 ** 20)
    doc["evidence"]["bounds"] = ["0"] * len(doc["evidence"]["bounds"])
    doc["result"]["max_bound"] = doc["result"]["observed_error"] = "0"
    with pytest.raises(Invalid, match="below the re-derived bound"):
        check_doc(_rehash(doc))
    # the same for a piece bound and for a one-key network whose error is 1/50 everywhere
    with pytest.raises(Invalid, match="below the re-derived"):
        check_doc(_tiny(target={"num": "1/50"}, eps=str(2 ** 20)))
    d = _tiny(D=2, evidence=_slabs(3), target={"num": "1/50"}, eps=str(2 ** 20))
    with pytest.raises(Invalid, match="below the re-derived"):
        check_doc(d)


def test_stored_bounds_are_confirmed_relative_to_themselves(ramp41_cert):
    rep = check_doc(load(ramp41_cert))
    stated = Fraction(rep.max_bound)
    assert stated >= Fraction(rep.checked_max_bound) * (1 - Fraction(1, 2 ** 20)) * (1 - Fraction(1, 2 ** 50))
    assert rep.to_json()["checked_max_bound"] == rep.checked_max_bound
    # the slack scales with the bound, not with eps
    assert not undercuts(1 - fmpq(1, 2 ** 21), arb(1)) and undercuts(1 - fmpq(1, 2 ** 19), arb(1))
    assert not undercuts(fmpq(10 ** 9) - fmpq(1, 2 ** 11), arb(10 ** 9))
    assert undercuts(fmpq(0), arb("1e-30")) and not undercuts(fmpq(0), arb(0))
    assert REL_SLACK == fmpq(1, 2 ** 20)


def test_flat_piece_is_bounded_as_tightly_as_the_searcher(tmp_path):
    """A Range target is exactly -1 on [-2, -1]: the checker's interval ends do not widen it by
    Arb's 30-bit radius (2^-30 of the width), so a bound of 1e-38 there is confirmed."""
    from flint import ctx
    from certificates.check.arbexpr import arb_compile
    from certificates.check.core import PREC
    f = arb_compile({"op": "range", "args": [{"num": "-1"}, {"num": "1"}, {"var": "x0"}]})
    old, ctx.prec = ctx.prec, PREC
    try:
        lo, hi = f.bounds({"x0": (fmpq(-2), fmpq(-1))})
        assert lo == hi == arb(-1)
        lo, hi = f.bounds({"x0": (fmpq(1, 3), fmpq(1, 2))})
        exact = [Fraction(int(m)) * Fraction(2) ** int(e) for m, e in (x.mid().man_exp() for x in (lo, hi))]
        assert lo.rad() == hi.rad() == 0 and exact[1] == Fraction(1, 2)
        assert Fraction(1, 3) - Fraction(1, 2 ** 120) < exact[0] <= Fraction(1, 3)
    finally:
        ctx.prec = old
    d = _tiny(D=1, target={"op": "range", "args": [{"num": "-1"}, {"num": "1"}, {"var": "x0"}]}, value="-1",
              max_bound="0")
    d["domain"], d["result"]["witness"] = [["-2", "-1"]], ["-3/2"]
    assert check_doc(_rehash(d)).checked_max_bound == 0.0


def test_lp_report_names_the_norm_and_its_checked_bound(ramp41):
    from certificates import check as api_check
    from certificates.model import certificate_doc
    from verify.lp import certify_lp
    res = certify_lp(ramp41, "1/5", 2)
    assert res.status == "CERTIFIED"
    doc = certificate_doc(ramp41, res)
    rep = check_doc(doc)
    assert (rep.norm, rep.p) == ("Lp", "2") and rep.norm_bound == doc["result"]["norm_bound"]
    assert 0 < rep.checked_norm_bound <= float(Fraction(rep.norm_bound)) * (1 + 1e-12) < 0.2
    assert rep.checked_norm_bound < rep.checked_max_bound * 2 ** 0.5 * 1.000001   # ||e||_2 <= sqrt(|domain|) sup|e|
    js = rep.to_json()
    assert js["norm"] == "Lp" and js["p"] == "2" and js["checked_norm_bound"] == rep.checked_norm_bound
    r = api_check(doc)
    assert r.ok and r.norm == "Lp" and r.p == 2 and r.norm_bound == Fraction(doc["result"]["norm_bound"])
    assert r.checked_norm_bound == rep.checked_norm_bound
    # an Linf report carries its norm too
    lin = check_doc(_tiny())
    assert (lin.norm, lin.p, lin.norm_bound) == ("Linf", "", lin.max_bound) and lin.to_json()["p"] is None
    # the sum uses the checker's own box bounds: understating norm_bound fails however large eps is
    bad = copy.deepcopy(doc)
    bad["result"]["norm_bound"] = str(Fraction(doc["result"]["norm_bound"]) * Fraction(99, 100))
    with pytest.raises(Invalid, match="norm_bound"):
        check_doc(_rehash(bad))


def test_observed_error_and_witness_are_checked(ramp41_cert):
    doc = load(ramp41_cert)
    rep = check_doc(doc)
    assert Fraction(doc["result"]["observed_error"]) <= Fraction(rep.witness_error) * (1 + Fraction(1, 2 ** 20))
    for field, value, why in (("observed_error", doc["result"]["max_bound"], "error at the witness"),
                              ("observed_error", "1", "exceeds max_bound"),
                              ("observed_error", "-1/2", "negative"),
                              ("witness", ["3"], "outside the domain"),
                              ("witness", ["0", "0"], "outside the domain")):
        bad = copy.deepcopy(doc)
        bad["result"][field] = value
        with pytest.raises(Invalid, match=why):
            check_doc(_rehash(bad))
    # moving the witness elsewhere in the domain: the error there is smaller than the claim
    bad = copy.deepcopy(doc)
    bad["result"]["witness"] = ["2"]
    with pytest.raises(Invalid, match="error at the witness"):
        check_doc(_rehash(bad))


def test_unverified_metadata_is_reported_and_names_change_nothing():
    doc = _tiny(D=2, evidence=_slabs(4))
    doc["construction"]["params"] = {"kappa": "60", "p": "9999"}
    reports = []
    for name in ("max-affine", "cross-attention", "renamed"):
        doc["construction"]["name"] = name
        reports.append(check_doc(_rehash(copy.deepcopy(doc))))
    assert all(r.ok and r.details["partition"] == "not carried" for r in reports)
    assert any("parameters" in u and "attncert audit" in u for u in reports[0].unverified)
    assert reports[0].to_json()["unverified"] == list(reports[0].unverified)


def test_repeated_keys_are_rejected_everywhere(ramp41_cert, tmp_path):
    raw = pathlib.Path(ramp41_cert).read_bytes()
    dup = raw.replace(b'"eps":', b'"eps":"1/1000000","eps":', 1)
    with pytest.raises(CertificateError, match="repeats the key 'eps'"):
        load(dup)
    p = tmp_path / "dup.json"
    p.write_bytes(dup)
    assert main(["check", str(p)]) == 2
    with pytest.raises(CertificateError, match="repeats the key 'a'"):
        json.loads('{"b": {"a": 1, "a": 1}}', object_pairs_hook=unique_keys)
    assert json.loads('{"a": {"a": 1}}', object_pairs_hook=unique_keys) == {"a": {"a": 1}}


def test_non_regular_and_oversized_files_are_refused_at_once(tmp_path):
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(CertificateError, match="FIFO"):
        load(fifo)
    with pytest.raises(CertificateError, match="device"):
        load("/dev/zero")
    with pytest.raises(CertificateError, match="directory"):
        load(tmp_path)
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(5 << 30)
    with pytest.raises(CertificateError, match="--max-size"):
        load(big)
    assert time.monotonic() - t0 < 2
    small = tmp_path / "s.json"
    small.write_bytes(b'{"a": "' + b"x" * 2000 + b'"}')
    with pytest.raises(CertificateError, match="--max-size"):
        load(small, max_bytes=1000)
    assert load(small, max_bytes=4000) == {"a": "x" * 2000}


def test_huge_lp_exponent_is_refused_before_any_arithmetic(ramp41_cert):
    doc = load(ramp41_cert)
    doc["norm"] = {"kind": "Lp", "p": str(10 ** 9)}
    doc["result"]["norm_bound"] = "1/100"
    _rehash(doc)
    with pytest.raises(LimitExceeded, match="--max-p"):
        check_doc(doc)
    doc["norm"]["p"] = "65"
    with pytest.raises(LimitExceeded, match="--max-p"):
        check_doc(_rehash(doc))
    with pytest.raises(Invalid, match="norm_bound"):      # raised: now computed, and false
        check_doc(doc, max_p=65)


def test_work_is_estimated_before_it_starts(ramp41_cert):
    doc = _tiny(D=2, evidence={"method": "analytic", "lemmas": [],
                               "pieces": [dict(p, mesh=256) for p in _slabs(200)["pieces"]]})
    t0 = time.monotonic()
    with pytest.raises(LimitExceeded, match="--max-work"):
        check_doc(doc)
    assert time.monotonic() - t0 < 2
    assert estimate_work(doc, 2) > 10 ** 7
    rep = check_doc(load(ramp41_cert))
    assert rep.details["estimated_work"] < 10 ** 6
    with pytest.raises(LimitExceeded, match="--max-work"):
        check_doc(load(ramp41_cert), max_work=1000)


def _brute_tiles(cells, domain):
    for i, a in enumerate(cells):
        for b in cells[i + 1:]:
            if all(max(x0, y0) < min(x1, y1) for (x0, x1), (y0, y1) in zip(a, b)):
                return False
    vol = sum((_prod(b - a for a, b in c) for c in cells), Fraction(0))
    return vol == _prod(b - a for a, b in domain)


def _prod(xs):
    out = Fraction(1)
    for x in xs:
        out *= x
    return out


def _random_tiling(rng, D, n):
    cells = [tuple((Fraction(0), Fraction(1)) for _ in range(D))]
    while len(cells) < n:
        k = rng.randrange(len(cells))
        c = cells.pop(k)
        d = rng.randrange(D)
        a, b = c[d]
        s = a + (b - a) * Fraction(rng.randint(1, 6), 7)
        cells += [c[:d] + ((a, s),) + c[d + 1:], c[:d] + ((s, b),) + c[d + 1:]]
    return [list(c) for c in cells]


def test_tiling_check_agrees_with_brute_force():
    import random
    rng = random.Random(15)
    pinwheel = [[(Fraction(0), Fraction(2)), (Fraction(0), Fraction(1))],
                [(Fraction(2), Fraction(3)), (Fraction(0), Fraction(2))],
                [(Fraction(1), Fraction(3)), (Fraction(2), Fraction(3))],
                [(Fraction(0), Fraction(1)), (Fraction(1), Fraction(3))],
                [(Fraction(1), Fraction(2)), (Fraction(1), Fraction(2))]]
    cases = [(pinwheel, [(Fraction(0), Fraction(3))] * 2)]
    for _ in range(150):
        D = rng.randint(1, 3)
        cells = _random_tiling(rng, D, rng.randint(1, 40))
        if rng.random() < 0.6:   # nudge one face: a gap or an overlap (or, rarely, nothing)
            i, d = rng.randrange(len(cells)), rng.randrange(D)
            a, b = cells[i][d]
            cells[i][d] = (a, b + (b - a) * Fraction(rng.choice([-1, 1]), 3 * rng.randint(1, 4)))
            if not cells[i][d][0] < cells[i][d][1] or cells[i][d][1] > 1:
                continue
        if rng.random() < 0.2:
            cells.append(list(cells[rng.randrange(len(cells))]))
        rng.shuffle(cells)
        cases.append((cells, [(Fraction(0), Fraction(1))] * D))
    for cells, domain in cases:
        try:
            t = check_tiling(cells, domain)
            ok = True
        except Invalid:
            ok = False
        assert ok == _brute_tiles(cells, domain), cells
        if ok:   # every tile is found as its own container
            assert all(t.container(c) == i for i, c in enumerate(cells))


def test_tiling_of_stacked_pieces_is_fast():
    F = Fraction
    n = 20_000
    cells = [[(F(0), F(1)), (F(k, n), F(k + 1, n))] for k in range(n)]
    t0 = time.monotonic()
    tiling = check_tiling(cells, [(F(0), F(1))] * 2)
    assert time.monotonic() - t0 < 15     # was 79 s for 8,000 (quadratic)
    assert tiling.container([(F(1, 3), F(1, 2)), (F(7, n), F(8, n))]) == 7
    assert tiling.container([(F(0), F(1)), (F(7, n), F(9, n))]) is None
    cells[-1] = [(F(0), F(1)), (F(2 * n - 3, 2 * n), F(1))]
    with pytest.raises(Invalid, match="overlap"):
        check_tiling(cells, [(F(0), F(1))] * 2)


def test_deep_targets_up_to_the_documented_limit_check(ramp41_cert, tmp_path):
    """A target nested 130 deep (65 double negations of the ramp's) checks; past 200 it is Invalid,
    past the file nesting limit the file is refused; never a RecursionError."""
    doc = load(ramp41_cert)
    t = doc["target"][0]
    for _ in range(65):
        t = {"op": "neg", "args": [{"op": "neg", "args": [t]}]}
    doc["target"] = [t]
    path = tmp_path / "deep.json"
    save(_rehash(doc), path)
    assert check_doc(load(path)).ok
    assert main(["check", str(path)]) == 0
    assert check_doc(_tiny(target=deep_expr(200))).ok
    with pytest.raises(Invalid, match="nested deeper than 200"):
        check_doc(_tiny(target=deep_expr(201)))
    deep = _tiny()
    deep["target"] = [deep_expr(2000)]
    with pytest.raises(Invalid, match="nested"):
        check_doc(deep)     # a dict handed in directly (too deep even to hash): no RecursionError either
    path.write_bytes(b'{"a":' + b"[" * 600 + b"]" * 600 + b"}")
    with pytest.raises(CertificateError, match="nested more than 512"):
        load(path)


def test_own_schema_validator_agrees_with_jsonschema(ramp41_cert):
    """The checker applies the published schema with its own compiled validator (fast on large
    arrays); on valid and broken documents it agrees with jsonschema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "certificates" / "schema" / "certificate.schema.json").read_text())
    good = load(ramp41_cert)
    mutations = [
        lambda d: None,
        lambda d: d["evidence"]["bounds"].__setitem__(3, "1.5"),
        lambda d: d["evidence"]["bounds"].__setitem__(3, "1/0"),
        lambda d: d["evidence"]["hints"].__setitem__(2, [-1]),
        lambda d: d["evidence"]["hints"].__setitem__(2, 7),
        lambda d: d["construction"]["network"]["embedding"]["const"][0].__setitem__(0, 1),
        lambda d: d["construction"]["network"]["layers"][0]["heads"][0].__setitem__("extra", 1),
        lambda d: d["target"].__setitem__(0, {"op": "neg", "args": [{"num": "1", "var": "x0"}]}),
        lambda d: d["target"].__setitem__(0, {"op": 3, "args": []}),
        lambda d: d["target"].__setitem__(0, {"const": "e"}),
        lambda d: d.__setitem__("schema_version", True),
        lambda d: d.__setitem__("status", "REFUTED"),
        lambda d: d["domain"].__setitem__(0, ["0"]),
        lambda d: d.pop("versions"),
        lambda d: d["norm"].__setitem__("kind", "L2"),
        lambda d: d["evidence"].__setitem__("method", "analytic"),
        lambda d: d["evidence"].__setitem__("bounder", "magic"),
        lambda d: d["result"].__setitem__("witness", "0"),
    ]
    mine = schema_validator()
    for n, mutate in enumerate(mutations):
        d = copy.deepcopy(good)
        mutate(d)
        theirs = jsonschema.Draft202012Validator(schema).is_valid(d)
        try:
            mine(d, ())
            ours = True
        except Exception as e:
            assert type(e).__name__ == "_Fail", e
            ours = False
        assert ours == theirs, n


def test_control_characters_from_a_file_never_reach_the_terminal(ramp41_cert, tmp_path, capsys):
    """A name with a newline and an ANSI escape is printed escaped: it cannot forge report lines."""
    doc = load(ramp41_cert)
    doc["construction"]["name"] = "ramp\nfake.json: OK forged\x1b[2K\x1b[31m\u202e"
    _rehash(doc)
    path = tmp_path / "c.json"
    save(doc, path)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert not any(line.startswith("fake.json") for line in out.splitlines())
    assert "ramp\\x0afake.json: OK forged\\x1b[2K\\x1b[31m\\u202e" in out


def test_one_unreadable_file_does_not_stop_the_others(ramp41_cert, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["check", str(bad), str(ramp41_cert)]) == 2
    cap = capsys.readouterr()
    assert f"{ramp41_cert}: OK" in cap.out and str(bad) in cap.err and cap.err.count("\n") == 1


def test_target_variable_outside_the_inputs_means_the_certificate_does_not_hold(ramp41_cert, tmp_path, capsys):
    doc = load(ramp41_cert)
    doc["target"] = [{"var": "x7"}]
    _rehash(doc)
    path = tmp_path / "c.json"
    save(doc, path)
    assert main(["check", str(path)]) == 1
    assert "INVALID" in capsys.readouterr().out
