"""``attncert audit``: re-check + construction drift (acceptance 1) and the shipped library."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import constructions
import verify
import certificates
from certificates.audit import audit_dir, first_weight_difference
from certificates.cli.main import main
from certificates.model import digest, load, save

ROOT = pathlib.Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "commit.gpgsign=false"]


def _small_cert(path):
    c = constructions.build("ramp", p=9, kappa="27/10")
    save(certificates.certificate(c, verify.certify(c, "0.0175")), path)


def test_drift_in_a_git_repo_names_the_weight(tmp_path):
    repo = tmp_path / "repo"
    for pkg in ("constructions", "verify", "certificates"):
        shutil.copytree(ROOT / pkg, repo / pkg, ignore=shutil.ignore_patterns("__pycache__", "library"))
    (repo / "library").mkdir()
    _small_cert(repo / "library" / "ramp9.json")
    run = lambda *a: subprocess.run(a, cwd=repo, capture_output=True, text=True, timeout=120,
                                    env={**os.environ, "PYTHONPATH": str(repo)})
    assert run("git", "init", "-q").returncode == 0
    assert run(*GIT, "add", ".").returncode == 0 and run(*GIT, "commit", "-qm", "base").returncode == 0
    src = repo / "constructions" / "ramp.py"
    text = src.read_text()
    assert text.count("wo = [[1]]") == 1
    src.write_text(text.replace("wo = [[1]]", "wo = [[2]]"))
    assert run(*GIT, "commit", "-qam", "change one weight").returncode == 0
    r = run(sys.executable, "-m", "certificates.cli", "audit", "library")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "library/ramp9.json: DRIFT: ramp rebuilt from its parameters has different weights" in r.stdout
    assert "first differing weight layer0.head0.wo[0, 0]: stored 1 -> now 2" in r.stdout
    assert "1 DRIFT" in r.stdout.splitlines()[-1]


def test_unchanged_code_audits_clean(tmp_path, capsys):
    _small_cert(tmp_path / "a.json")
    (tmp_path / "notes.json").write_text('{"x": 1.5}')          # not a certificate: ignored
    assert main(["audit", str(tmp_path), "--format", "json"]) == 0
    (e,) = json.loads(capsys.readouterr().out)
    assert e["status"] == "OK" and e["certificate_holds"] and e["stored_weights_sha256"] == e["current_weights_sha256"]


def test_invalid_certificate_and_missing_input(tmp_path, capsys):
    _small_cert(tmp_path / "a.json")
    doc = load(tmp_path / "a.json")
    doc["result"]["max_bound"] = doc["evidence"]["bounds"][0]   # not the largest box bound
    doc["sha256"] = digest(doc)
    save(doc, tmp_path / "a.json")
    assert main(["audit", str(tmp_path)]) == 1
    assert "INVALID: max_bound is not the largest box bound" in capsys.readouterr().out
    (tmp_path / "b.json").write_text('{"schema": "attncert/certificate", "eps": 0.1}')
    assert main(["audit", str(tmp_path)]) == 2                  # a float: unreadable, an input error
    assert "ERROR" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["audit", str(empty)]) == 2
    assert "no attncert certificates" in capsys.readouterr().err


def test_changed_parameters_are_drift(tmp_path, capsys):
    _small_cert(tmp_path / "a.json")
    doc = load(tmp_path / "a.json")
    doc["construction"]["params"]["zeta"] = "1"                  # a parameter the code no longer knows
    doc["sha256"] = digest(doc)
    save(doc, tmp_path / "a.json")
    assert main(["audit", str(tmp_path)]) == 1
    assert "DRIFT: cannot rebuild ramp" in capsys.readouterr().out


def test_first_weight_difference_names():
    a = constructions.build("ramp", p=5).network.to_json()
    b = constructions.build("ramp", p=5, kappa=9).network.to_json()
    assert first_weight_difference(a, b) == "layer0.head0.beta: stored 32 -> now 36"
    c = constructions.build("ramp", p=6).network.to_json()
    assert first_weight_difference(a, c) == "embed.const: shape 6x5 -> 7x5"
    d = constructions.build("ramp", p=5, a="-1/2").network.to_json()
    assert first_weight_difference(a, d) == "embed.const[1, 4]: stored -1 -> now -1/2"
    assert first_weight_difference(a, a) is None


def test_shipped_library_audits_clean(capsys):
    entries = audit_dir(ROOT / "certificates" / "library")
    names = sorted(os.path.basename(e.path) for e in entries)
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_library", ROOT / "scripts" / "make_library.py")
    lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib)
    assert names == sorted(row[0] for row in lib.LIBRARY)
    # every registered construction has a reference certificate in the library
    assert {row[1] for row in lib.LIBRARY} == set(constructions.REGISTRY)
    assert all(e.ok for e in entries), [(e.path, e.reason) for e in entries]


def test_schema_marker_found_past_the_first_mebibyte(tmp_path):
    from certificates.audit import find_certificates
    big = tmp_path / "big.json"
    big.write_bytes(b'{"a": "' + b"x" * ((1 << 20) - 10) + b'", "schema": "attncert/certificate"}')
    (tmp_path / "other.json").write_text('{"schema": "something/else"}')
    assert find_certificates(tmp_path) == [str(big)]


def test_audit_github_format_and_summary(tmp_path, capsys, monkeypatch):
    from test_github import CMD
    lib = tmp_path / "lib"
    lib.mkdir()
    _small_cert(lib / "good.json")
    doc = load(lib / "good.json")
    doc["construction"]["params"]["p"] = "10"                   # rebuilds to other weights
    doc["sha256"] = digest(doc)
    save(doc, lib / "moved.json")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["audit", str(lib), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert CMD.match(lines[0]) and lines[0].startswith(f"::notice file={lib}/good.json,title=attncert audit%3A OK::")
    assert CMD.match(lines[1]) and lines[1].startswith(f"::error file={lib}/moved.json,title=attncert audit%3A DRIFT::")
    assert "first differing weight embed.const: shape 10x5 -> 11x5" in lines[1]
    rows = [l for l in summary.read_text().splitlines() if l.startswith("| ")]
    assert len(rows) == 3 and "| OK |" in rows[1] and "| DRIFT |" in rows[2]
