"""The command line: exit codes, one-line errors, outputs (acceptance 2, 3, 5)."""
import json
import subprocess
import sys

import pytest

from certificates.cli.main import main

CERTIFY = ["certify", "ramp", "--set", "a=-1", "--set", "b=1", "--set", "p=41", "--set", "kappa=8",
           "--set", "lo=-2", "--set", "hi=2"]


def test_certify_then_check(tmp_path):
    out = tmp_path / "c.json"
    assert main(CERTIFY + ["--eps", "0.02", "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0


def test_refuted_exits_1_with_witness(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(CERTIFY + ["--eps", "0.013", "-o", str(out), "--format", "json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "REFUTED" and info["witness_lower_bound"] > 0.013
    assert not out.exists()


@pytest.mark.parametrize("argv,needle", [
    (["certify", "ramp", "--set", "kappa=nan", "--eps", "0.1"], "kappa"),
    (["certify", "ramp", "--set", "lo=2", "--set", "hi=-2", "--eps", "0.1"], "inverted"),
    (["certify", "ramp", "--set", "p=1", "--eps", "0.1"], "at least 2"),
    (["certify", "nosuch", "--eps", "0.1"], "unknown construction"),
    (["certify", "ramp", "--set", "zeta=1", "--eps", "0.1"], "unknown parameter"),
    (["certify", "ramp", "--eps", "-1"], "positive"),
    (["certify", "ramp", "--eps", "abc"], "eps"),
    (["eval", "ramp", "--backend", "numpy", "--points", "0"], "points"),
])
def test_bad_input_exit_2_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err and "Traceback" not in err


def test_list_build_eval(capsys, tmp_path):
    assert main(["list"]) == 0
    assert "ramp" in capsys.readouterr().out
    assert main(["build", "ramp", "--symbolic"]) == 0
    assert "\\gamma" in capsys.readouterr().out
    assert main(["build", "ramp", "-o", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["construction"]["name"] == "ramp"
    capsys.readouterr()
    assert main(["eval", "ramp", "--backend", "numpy", "--points", "20001", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert 0.012 < info["max_error"] < 0.0135
    assert main(["eval", "ramp", "--set", "p=5", "--backend", "mpmath", "--points", "50", "--dps", "30"]) == 0


def test_console_script_demo_runs():
    r = subprocess.run([sys.executable, "-m", "certificates.cli", "demo"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "certified" in r.stdout and "Arb checker" in r.stdout


def test_list_shows_no_placeholders(capsys):
    """Every parameter in `list` shows a value or says how its default is derived (never `lo=`)."""
    assert main(["list"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("params:")]
    assert len(lines) >= 8
    for line in lines:
        shown = [kv.split("=", 1) for kv in line.split("params:", 1)[1].split(", ")]
        assert all(len(kv) == 2 and kv[1].strip() for kv in shown), line
        assert "D=0" not in line and "partition=," not in line
    assert main(["list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ma = next(r for r in rows if r["name"] == "max-affine")
    assert ma["params"]["lo"] == {"default": "", "shown": "-B", "help": ma["params"]["lo"]["help"]}
