"""certify and check always agree: CERTIFIED is written only for what the independent checker accepts,
and a checkpoint can never smuggle a bound into a certificate."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from certificates.cli.main import main
from certificates.model import load

# (construction, --set pairs, sampled sup error at those parameters, methods that apply)
CASES = [
    ("ramp", ["p=9", "kappa=27/10"], 0.01575, ("paving", "analytic", "auto")),
    ("ramp", ["p=41", "kappa=8"], 0.01342, ("paving", "analytic", "auto")),
    ("ramp", ["p=201", "kappa=30"], 0.004154, ("paving",)),
    ("ramp-multihead", ["n=5", "H=2", "kappa=27/10"], 0.01575, ("paving",)),
    ("relu-net", ["f=sin(3*x0)", "units=6"], 0.12, ("paving",)),
    ("max-affine", ["f=sin(3*x0)", "G=16", "kappa=5/2"], 0.05, ("paving", "analytic", "auto")),
    # 2-D grid: near its sup most leaves are centred boxes of the grid's own form ("centred": "grid")
    ("max-affine", ["f=cos(x0)*x1", "G=4"], 0.1372, ("paving",)),
    # the residual route: one embedded 1-D paving instead of the 5-D one
    ("icl-gd", ["n=2"], 0.003938, ("residual",)),
]
# the paving's box bound: the search's default, the centred form (one layer: affine or grid;
# relu-net: the layered one), or plain interval bounds only
ENCLOSURES = ("auto", "centred", "plain")


def _certify_then_check(tmp_path, name, sets, eps, method, float64=False, enclosure="auto"):
    import uuid
    out = tmp_path / f"c-{uuid.uuid4().hex}.json"   # hypothesis reuses tmp_path across examples
    argv = ["certify", name, *sum((["--set", s] for s in sets), []), "--eps", repr(eps), "-o", str(out),
            "--method", method, "--format", "json", "--max-boxes", "40000", "--enclosure", enclosure]
    if float64:
        argv.append("--float64")
    code = main(argv)
    if code == 0:
        assert out.exists()
        assert main(["check", str(out)]) == 0, (name, sets, eps, method)
    else:
        assert not out.exists()
    return code


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), ratio=st.floats(0.9, 3.0), pick=st.integers(0, 2), f64=st.booleans(),
       enc=st.sampled_from(ENCLOSURES))
def test_certified_means_the_checker_agrees(tmp_path, capsys, case, ratio, pick, f64, enc):
    name, sets, sup, methods = case
    _certify_then_check(tmp_path, name, sets, sup * ratio, methods[pick % len(methods)],
                        float64=f64 and name != "max-affine", enclosure=enc)
    capsys.readouterr()


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), ratio=st.floats(0.9, 5.0), pick=st.integers(0, 2), f64=st.booleans(),
       enc=st.sampled_from(ENCLOSURES))
def test_certified_means_the_checker_agrees_long(tmp_path, capsys, case, ratio, pick, f64, enc):
    name, sets, sup, methods = case
    _certify_then_check(tmp_path, name, sets, sup * ratio, methods[pick % len(methods)], float64=f64,
                        enclosure=enc)
    capsys.readouterr()


def test_float_margin_case_from_the_issue_certifies_and_checks(tmp_path, capsys):
    """ramp p=201 kappa=30 at eps 0.005 used to stop on a float bound < eps the checker re-derived above eps."""
    assert _certify_then_check(tmp_path, "ramp", ["p=201", "kappa=30"], 0.005, "paving") == 0


def test_tampered_checkpoint_never_yields_certified(tmp_path, capsys):
    """Pending boxes turned into leaves with bound 0 (and the file re-hashed): resume re-bounds every leaf."""
    import hashlib
    out, ckpt = tmp_path / "c.json", tmp_path / "c.json.partial"
    base = ["certify", "ramp", "--set", "p=41", "--set", "kappa=27/10", "--eps", "0.003", "-o", str(out)]
    assert main(base + ["--max-boxes", "2"]) == 1          # UNKNOWN: the budget is spent, checkpoint kept
    doc = json.loads(ckpt.read_text())
    doc["leaves"] += [[p, (0.0).hex(), [0]] for p in doc["pending"]]
    doc["pending"] = []
    body = {k: v for k, v in doc.items() if k != "sha256"}
    doc["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    ckpt.write_text(json.dumps(doc))
    capsys.readouterr()
    code = main(base + ["--resume", "--max-boxes", "200000"])
    text = capsys.readouterr().out
    assert code != 0 and "CERTIFIED" not in text       # the true sup is 0.00315 > eps: REFUTED
    assert "REFUTED" in text and not out.exists()


def test_checkpoint_edited_without_rehash_is_refused(tmp_path, capsys):
    out, ckpt = tmp_path / "c.json", tmp_path / "c.json.partial"
    base = ["certify", "ramp", "--set", "p=41", "--set", "kappa=27/10", "--eps", "0.0035", "-o", str(out)]
    assert main(base + ["--max-boxes", "2"]) == 1
    doc = json.loads(ckpt.read_text())
    doc["evaluated"] += 1
    ckpt.write_text(json.dumps(doc))
    assert main(base + ["--resume"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_checkpoint_with_duplicate_keys_is_refused(tmp_path, capsys):
    out, ckpt = tmp_path / "c.json", tmp_path / "c.json.partial"
    base = ["certify", "ramp", "--set", "p=41", "--set", "kappa=27/10", "--eps", "0.0035", "-o", str(out)]
    assert main(base + ["--max-boxes", "2"]) == 1
    text = ckpt.read_text()
    ckpt.write_text(text[:-1] + ', "evaluated": 0}')
    assert main(base + ["--resume"]) == 2
    assert "repeats the key" in capsys.readouterr().err


def test_certificate_is_written_before_the_checkpoint_goes(tmp_path, capsys):
    """An output path that turned into a folder is refused before any work; the checkpoint stays until saved."""
    out = tmp_path / "c.json"
    out.mkdir()
    assert main(["certify", "ramp", "--set", "p=41", "--eps", "0.02", "-o", str(out)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--max-boxes", "-1"), ("--max-boxes", "0"), ("--time-limit", "nan"),
                                        ("--time-limit", "inf"), ("--time-limit", "-1"),
                                        ("--checkpoint-every", "nan"), ("--workers", "0")])
def test_bad_flags_are_input_errors(flag, value, capsys):
    assert main(["certify", "ramp", "--eps", "0.1", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err


def test_sigterm_writes_the_checkpoint_and_exits_2(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "c.json"
    proc = subprocess.Popen([sys.executable, "-m", "certificates.cli", "certify", "ramp", "--set", "p=1001",
                             "--set", "kappa=4", "--eps", "0.0004", "-o", str(out), "--checkpoint-every", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "c.json.partial"
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "checkpoint written" in err and err.strip().count("\n") == 0
    assert ckpt.exists() and not out.exists()


@pytest.mark.parametrize("sets,eps", [
    (["f=sin(3*x0)", "G=16", "kappa=30"], 0.168135),          # a closed-form piece above the checker's bound
    (["f=cos(x0)*x1", "G=6", "kappa=3"], 0.0702),             # paving pieces used to carry grid hints
], ids=["1-D kappa 30", "2-D grid fallback pieces"])
def test_auto_method_cases_from_the_issue_certify_and_check(tmp_path, capsys, sets, eps):
    assert _certify_then_check(tmp_path, "max-affine", sets, eps, "auto") == 0
