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
