"""A corpus of hostile certificate files: each ends fast with exit 1 or 2, one line, no traceback.

Every file goes through ``attncert check FILE`` in its own process, with 1 GiB of address space
and a 10 s timeout: truncated and malformed JSON, float/NaN/Infinity literals, repeated keys,
deep nesting, huge numbers and exponents, unknown operations and code-looking strings, FIFOs,
devices and huge files, huge meshes, huge L_p exponents, stacked and overlapping pieces, and
tampered eps, bounds, witness and observed error.  The certificates are built here by hand (a
one-key network whose error is known exactly), so the corpus needs neither the searcher nor
the library.
"""
from __future__ import annotations

import copy
import json
import os
import pathlib
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from certificates.check.core import sha
from certificates.model import canonical, digest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 10.0
MEMORY = 1 << 30


# ----------------------------------------------------------------------------- the base documents

def tiny(D=1, *, target=None, value="0", eps="1", bounds=None, max_bound="0", observed="0", witness=None,
         evidence=None, name="tiny"):
    """A schema-valid certificate of a one-key network: the output is the constant ``value``, so
    |N - f| is known exactly.  Rehashed; callers that tamper rehash with ``rehash``."""
    zero = [["0"], ["0"]]
    net = {"embedding": {"const": [["1"], ["1"]], "linear": [zero] * D},
           "layers": [{"query_rows": [0], "key_rows": [1],
                       "heads": [{"wq": [["1"]], "wk": [["1"]], "wv": [[value]], "wo": [["1"]],
                                  "beta": "1", "bias": None}]}],
           "readout": [[0, 0]]}
    if evidence is None:
        evidence = {"method": "paving", "tree": "L", "bounds": bounds or [max_bound], "hints": [[0]]}
    doc = {"schema": "attncert/certificate", "schema_version": 1,
           "construction": {"name": name, "paper": "test", "theorem": "test", "params": {"kappa": "6"},
                            "network": net, "weights_sha256": sha(net)},
           "inputs": [f"x{i}" for i in range(D)], "target": [target or {"num": "0"}],
           "domain": [["0", "1"]] * D, "eps": eps, "norm": {"kind": "Linf"}, "status": "CERTIFIED",
           "result": {"max_bound": max_bound, "observed_error": observed, "witness": witness or ["1/2"] * D},
           "evidence": evidence, "versions": {"python": "3"}}
    return rehash(doc)


def rehash(doc):
    doc["construction"]["weights_sha256"] = sha(doc["construction"]["network"])
    doc["sha256"] = digest(doc)
    return doc


def slabs(n, *, overlap=False):
    """n analytic pieces stacked in x1 over [0,1]^2 (one key: no lemma needed); ``overlap``
    repeats the last piece's lower half."""
    pieces = [{"cell": [["0", "1"], [f"{k}/{n}", f"{k + 1}/{n}"]], "method": "analytic", "bound": "0",
               "heads": [{"output": 0, "head": 0, "top": 0, "active": [], "lemma": None}]} for k in range(n)]
    if overlap:
        pieces[-1] = copy.deepcopy(pieces[-1])
        pieces[-1]["cell"][1] = [f"{2 * n - 3}/{2 * n}", "1"]
    return {"method": "analytic", "pieces": pieces, "lemmas": []}


def deep_expr(depth, leaf=None):
    e = leaf or {"num": "0"}
    for _ in range(depth - 1):
        e = {"op": "neg", "args": [e]}
    return e


def text(doc) -> bytes:
    return canonical(doc) + b"\n"


def _with(fn, **kw):
    doc = tiny(**kw)
    fn(doc)
    return text(rehash(doc))


# ----------------------------------------------------------------------------- the corpus
# name -> (builder(tmp) -> path, expected exit code, a substring of the one-line message)

def _file(data: bytes, name="c.json"):
    def build(tmp):
        p = tmp / name
        p.write_bytes(data)
        return p
    return build


def _fifo(tmp):
    p = tmp / "fifo.json"
    os.mkfifo(p)
    return p


def _sparse(tmp):
    p = tmp / "huge.json"
    with open(p, "wb") as fh:
        fh.truncate(3 << 30)     # a /dev/zero-like file: 3 GiB of zeros, sparse on disk
    return p


def _dir(tmp):
    p = tmp / "dir.json"
    p.mkdir()
    return p


GOOD = text(tiny())
HOSTILE = {
    "truncated": (_file(GOOD[: len(GOOD) // 2]), 2, "not valid JSON"),
    "empty file": (_file(b""), 2, "not valid JSON"),
    "not UTF-8": (_file(GOOD.replace(b'"tiny"', b'"t\xff\xfey"')), 2, "not UTF-8"),
    "UTF-8 byte order mark": (_file(b"\xef\xbb\xbf" + GOOD), 2, "not valid JSON"),
    "NaN literal": (_file(GOOD.replace(b'"eps":"1"', b'"eps":NaN')), 2, "float literal"),
    "Infinity literal": (_file(GOOD.replace(b'"eps":"1"', b'"eps":-Infinity')), 2, "float literal"),
    "float literal": (_file(GOOD.replace(b'"eps":"1"', b'"eps":0.5')), 2, "float literal"),
    "duplicate key": (_file(GOOD.replace(b'"eps":"1"', b'"eps":"1/1000000","eps":"1"')), 2, "repeats the key"),
    "top level array": (_file(b"[" + GOOD + b"]"), 2, "not a JSON object"),
    "nested 100000 deep": (_file(b"[" * 100_000 + b"]" * 100_000), 2, "nested"),
    "nested 600 deep in stats": (_file(GOOD.replace(b'"status"', b'"stats":' + b'[' * 600 + b']' * 600 + b',"status"')),
                                 2, "nested"),
    "integer of 5000 digits": (_file(GOOD.replace(b'"hints":[[0]]', b'"hints":[[' + b"9" * 5000 + b']]')), 2,
                               "not valid JSON"),
    "FIFO": (_fifo, 2, "FIFO"),
    "/dev/zero": (lambda tmp: pathlib.Path("/dev/zero"), 2, "device"),
    "3 GiB sparse file": (_sparse, 2, "--max-size"),
    "directory": (_dir, 2, "directory"),
    "missing file": (lambda tmp: tmp / "missing.json", 2, "cannot read"),
    "hash not updated": (_file(GOOD.replace(b'"eps":"1"', b'"eps":"2"')), 1, "sha256"),
    "unknown op": (_file(_with(lambda d: d.__setitem__("target", [{"op": "system", "args": [{"num": "0"}]}]))),
                   1, "unknown operation"),
    "code in an op": (_file(_with(lambda d: d.__setitem__("target", [{"op": "__import__('os').system('touch /tmp/pwn')",
                                                                     "args": [{"num": "0"}]}]))), 1, "unknown operation"),
    "code in a variable": (_file(_with(lambda d: d.__setitem__("target", [{"var": "__import__('os')"}]))), 1,
                           "schema violation"),
    "code in a number": (_file(_with(lambda d: d.__setitem__("eps", "__import__('os').getcwd()"))), 1,
                         "schema violation"),
    "eps of 3000 digits": (_file(_with(lambda d: d.__setitem__("eps", "1" * 3000))), 1, "schema violation"),
    "huge pow exponent": (_file(_with(lambda d: d.__setitem__("target", [
        {"op": "pow", "args": [{"var": "x0"}, {"num": "1" + "0" * 12}]}]))), 1, "exponent"),
    "target nested 240 deep": (_file(_with(lambda d: d.__setitem__("target", [deep_expr(240)]))), 1, "nested deeper"),
    "target nested 300 deep": (_file(_with(lambda d: d.__setitem__("target", [deep_expr(300)]))), 2, "nested more"),
    "120000-node target": (_file(_with(lambda d: d.__setitem__("target", [
        {"op": "add", "args": [{"num": "0"}] * 120_000}]))), 1, "nodes"),
    "exp overflow": (_file(_with(lambda d: d.__setitem__("target", [
        {"op": "exp", "args": [{"num": "1" + "0" * 2000}]}]))), 1, "not finite"),
    "hint of 4000 digits": (_file(_with(lambda d: d["evidence"].__setitem__("hints", [[10 ** 4000]]))), 1, "hint"),
    "bound of 2600 digits": (_file(_with(lambda d: (d["evidence"].__setitem__("bounds", ["1/" + "9" * 2600]),
                                                    d["result"].__setitem__("max_bound", "1/" + "9" * 2600)),
                                         target={"num": "1/2"})), 1, "below the re-derived"),
    "tree 500 deep": (_file(_with(lambda d: d["evidence"].update(tree="0" * 500 + "L" * 501, bounds=["0"] * 501,
                                                                 hints=[[0]] * 501))), 1, "too deep"),
    "a million leaves, one bound": (_file(_with(lambda d: d["evidence"].__setitem__("tree", "0L" * 10 ** 6 + "L"))), 1,
                                    "bounds for"),
    "all bounds 0 under eps 2^20": (_file(text(tiny(target={"num": "1/50"}, eps=str(2 ** 20))), "eps.json"), 1,
                                    "below the re-derived"),
    "witness outside the domain": (_file(_with(lambda d: d["result"].__setitem__("witness", ["2"]))), 1,
                                   "outside the domain"),
    "observed error above the witness error": (_file(text(tiny(max_bound="1/2", observed="1/4"))), 1,
                                               "error at the witness"),
    "observed error above max_bound": (_file(_with(lambda d: d["result"].__setitem__("observed_error", "1")))
                                       , 1, "exceeds max_bound"),
    "negative observed error": (_file(_with(lambda d: d["result"].__setitem__("observed_error", "-1"))), 1,
                                "negative"),
    "L_p exponent 10^9": (_file(_with(lambda d: (d.__setitem__("norm", {"kind": "Lp", "p": str(10 ** 9)}),
                                                 d["result"].__setitem__("norm_bound", "0")))), 2, "--max-p"),
    "L_p exponent 1/3": (_file(_with(lambda d: (d.__setitem__("norm", {"kind": "Lp", "p": "1/3"}),
                                                d["result"].__setitem__("norm_bound", "0")))), 1, "norm.p"),
    "L_p norm bound understated": (_file(_with(lambda d: (d.__setitem__("norm", {"kind": "Lp", "p": "64"}),
                                                          d["result"].__setitem__("norm_bound", "0")),
                                               target={"num": "1/50"}, max_bound="1/50")), 1, "norm_bound^p"),
    "mesh 256 on many 2-D pieces": (_file(_with(lambda d: d.__setitem__("evidence", {
        "method": "analytic", "lemmas": [],
        "pieces": [dict(p, mesh=256) for p in slabs(200)["pieces"]]}), D=2)), 2, "--max-work"),
    "8000 stacked pieces, one overlapping": (_file(_with(lambda d: d.__setitem__("evidence", slabs(8000, overlap=True)),
                                                          D=2)), 1, "overlap"),
    "8000 stacked pieces, one missing": (_file(_with(lambda d: d["evidence"]["pieces"].pop(7),
                                                      D=2, evidence=slabs(8000))), 1, "cover"),
    "lemma smuggling SMT commands": (_file(_with(lambda d: d.__setitem__("evidence", {
        "method": "analytic", "pieces": slabs(1)["pieces"],
        "lemmas": [{"id": "x\n(set-option :regular-output-channel \"/tmp/pwn\")", "kind": "gap",
                    "cell": [["0", "1"], ["0", "1"]], "output": 0, "head": 0, "top": 0, "claims": [],
                    "expect": "unsat", "smt2": "(set-option :regular-output-channel \"/tmp/pwn\")"}]}), D=2)),
                                     1, "schema violation"),
    "status REFUTED": (_file(_with(lambda d: d.__setitem__("status", "REFUTED"))), 1, "schema violation"),
}


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def _run(path):
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "certificates.cli.main", "check", str(path)], cwd=ROOT,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT, preexec_fn=_limits)
    except subprocess.TimeoutExpired:
        return None, TIMEOUT
    return r, time.monotonic() - t0


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every hostile file checked in its own process (a few at a time)."""
    paths = {}
    for name, (build, _, _) in HOSTILE.items():
        tmp = tmp_path_factory.mktemp("hostile")
        paths[name] = build(tmp)
    with ThreadPoolExecutor(max_workers=3) as pool:
        out = dict(zip(paths, pool.map(_run, paths.values())))
    return out


def test_the_corpus_is_large():
    assert len(HOSTILE) >= 25


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_ends_fast_with_one_line(results, name):
    r, seconds = results[name]
    _, code, words = HOSTILE[name]
    assert r is not None, f"{name}: still running after {TIMEOUT} s"
    both = r.stdout + r.stderr
    assert "Traceback" not in both and "internal error" not in both, both[-2000:]
    assert r.returncode == code, (r.returncode, both[-500:])
    assert len(r.stderr.strip().splitlines()) <= 1 and len(r.stdout.strip().splitlines()) <= 1, both[-1000:]
    assert words in both, both[-500:]
    assert seconds < TIMEOUT


def test_the_base_document_and_stacked_pieces_hold(tmp_path):
    """The corpus is built on documents that do check, so each tamper is what fails."""
    from certificates.cli.main import main
    for name, doc in (("tiny", tiny()), ("slabs", tiny(D=2, evidence=slabs(2000)))):
        p = tmp_path / f"{name}.json"
        p.write_bytes(text(doc))
        assert main(["check", str(p)]) == 0, name


def test_metadata_tampering_is_accepted_but_reported_unverified(tmp_path, capsys):
    """Name and parameters are metadata the checker cannot test (``attncert audit`` can): a
    rehashed rename to code-looking text still checks, runs nothing, and the report says so."""
    from certificates.cli.main import main
    doc = tiny(name="__import__('os').system('touch /tmp/pwn')")
    doc["construction"]["params"] = {"kappa": "60", "p": "9999", "f": "__import__('os').getcwd()"}
    p = tmp_path / "meta.json"
    p.write_bytes(text(rehash(doc)))
    from certificates.check.document import check_doc
    rep = check_doc(json.loads(p.read_text()))
    assert rep.ok and any("parameters" in u and "not verified" in u and "attncert audit" in u for u in rep.unverified)
    assert main(["check", str(p)]) == 0
    capsys.readouterr()
