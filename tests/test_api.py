"""The public Python API: typed results, the README example script (acceptance 4)."""
import os
import pathlib
import subprocess
import sys
from fractions import Fraction

import pytest

import certificates
import constructions
import verify
from certificates.model import canonical

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_example_script_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "api_example.py")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first.startswith("CERTIFIED sup error <= 0.013974")
    assert second.startswith("CERTIFIED 546 boxes")   # centred boxes: 1138 with --enclosure plain
    res = certificates.check(tmp_path / "ramp41.cert.json")
    assert res.ok and res.eps == Fraction(7, 500) and res.max_bound < res.eps


def test_readme_shows_the_example_script():
    readme = (ROOT / "README.md").read_text()
    body = (ROOT / "scripts" / "api_example.py").read_text().split('"""', 2)[2].strip()
    assert body in readme


def test_typed_results_and_tampering(ramp41_cert):
    res = certificates.check(str(ramp41_cert))
    assert isinstance(res, certificates.CheckResult) and res.ok and bool(res)
    assert res.status == "CERTIFIED" and res.eps == Fraction(1, 50) and res.boxes > 100
    assert res.checked_max_bound < 0.02 and res.max_bound < Fraction(1, 50)
    doc = certificates.load(ramp41_cert)
    doc["evidence"]["bounds"][3] = "1/1000000"        # understate one box, rehash: still caught
    doc["sha256"] = certificates.model.digest(doc)
    bad = certificates.check(doc)
    assert not bad.ok and bad.status == "INVALID" and "box 3" in bad.reason and bad.checked_max_bound == 0.0
    with pytest.raises(certificates.CertificateError):
        certificates.check(canonical(doc)[:-40])       # truncated bytes: an input error, not a verdict


def test_certify_is_the_function_and_result_is_typed():
    c = constructions.build("ramp", p=9, kappa="27/10")
    r = verify.certify(c, "0.0175")
    assert isinstance(r, verify.CertifyResult) and r.status == verify.CERTIFIED
    assert r.observed <= r.max_bound < 0.0175 and len(r.witness) == 1
    r2 = verify.certify(c, "0.015")                    # below the sup error 0.01575: refuted
    assert r2.status == verify.REFUTED and r2.witness_lower > 0.015


def test_reproducible_certificate_bytes():
    c = constructions.build("ramp", p=9, kappa="27/10")
    a = certificates.certificate(c, verify.certify(c, "0.0175"), reproducible=True)
    b = certificates.certificate(c, verify.certify(c, "0.0175"), reproducible=True)
    assert canonical(a) == canonical(b) and "seconds" not in a["stats"]
    assert certificates.check(a).ok
    full = certificates.certificate(c, verify.certify(c, "0.0175"))
    assert "seconds" in full["stats"] and full["evidence"] == a["evidence"]


def test_certificates_package_does_not_import_verify():
    code = "import sys, certificates; certificates.check; assert 'verify' not in sys.modules, sorted(sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
