"""CuPy backend: same float results, rigorous exp widening on the device, GPU certificates pass the CPU checker.

Every test is marked ``gpu``; conftest skips them when a CuPy kernel cannot run.
"""
import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import constructions
from certificates.check.document import check_doc
from certificates.cli.main import main
from certificates.model import certificate_doc, load, save
from tests.conftest import dense_sup_error
from verify.enclose import interval as iv
from verify.search.certify import certify
from verify.forward import float_weights, forward_float

pytestmark = pytest.mark.gpu

CERTIFY = ["certify", "ramp", "--set", "a=-1", "--set", "b=1", "--set", "p=41", "--set", "kappa=8",
           "--set", "lo=-2", "--set", "hi=2"]


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


def test_forward_float_on_cupy_equals_numpy(cp, ramp41):
    X = np.random.default_rng(1).uniform(-2, 2, size=(100_000, 1))
    y_np = forward_float(ramp41.network, X, np)
    y_cp = forward_float(ramp41.network, cp.asarray(X), cp, float_weights(ramp41.network, cp)).get()
    assert np.max(np.abs(y_cp - y_np)) <= 1e-12


def test_exp_widening_encloses_mpmath_on_a_million_device_points(cp):
    """iv.exp on the device (cupy.exp widened by EXP_ULPS steps) encloses exp(x) computed in 120-bit mpmath."""
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-745.0, 709.7, 400_000), rng.uniform(-40.0, 40.0, 400_000),
                        rng.normal(0.0, 1e-3, 100_000), -np.abs(rng.standard_cauchy(100_000))])
    xd = cp.asarray(x)
    lo, hi = iv.exp((xd, xd), cp)
    raw = cp.exp(xd).get()
    lo, hi = lo.get(), hi.get()
    worst_ulps = 0.0
    with mpmath.workprec(120):
        for xi, l, h, r in zip(x.tolist(), lo.tolist(), hi.tolist(), raw.tolist()):
            e = mpmath.exp(xi)
            assert mpmath.mpf(l) <= e <= mpmath.mpf(h), (xi, l, h)
            if r > 0 and np.isfinite(r):
                worst_ulps = max(worst_ulps, float(abs(mpmath.mpf(r) - e) / np.spacing(r)))
    # the device's exp error stays well inside the margin we widen by
    assert worst_ulps < iv.EXP_ULPS - 1, worst_ulps


def test_certify_on_cupy_checks_with_cpu_checker(cp, ramp41, tmp_path):
    res = certify(ramp41, "0.02", xp=cp, progress=False)
    assert res.status == "CERTIFIED"
    cpu = certify(ramp41, "0.02", progress=False)
    # the float sample agrees; the proved bound is above every sampled error (a soundness check)
    assert abs(res.observed - cpu.observed) <= 1e-12
    sup, _ = dense_sup_error(ramp41)
    assert sup <= res.max_bound < 0.02
    path = tmp_path / "gpu.json"
    save(certificate_doc(ramp41, res), path)
    rep = check_doc(load(path), str(path))
    assert rep.checked_max_bound < 0.02


def test_cupy_refutes_below_the_true_sup(cp, ramp41):
    res = certify(ramp41, "0.0132", xp=cp, progress=False)
    assert res.status == "REFUTED" and res.witness_lower > 0.0132


def test_cli_eval_cupy_matches_numpy_and_certify_device_gpu(capsys, tmp_path):
    out = {}
    for backend in ("numpy", "cupy"):
        assert main(["eval", "ramp", "--backend", backend, "--points", "200001", "--format", "json"]) == 0
        out[backend] = json.loads(capsys.readouterr().out)
    assert abs(out["cupy"]["max_error"] - out["numpy"]["max_error"]) <= 1e-12
    cert = tmp_path / "c.json"
    assert main(CERTIFY + ["--eps", "0.02", "--device", "gpu", "-o", str(cert)]) == 0
    assert main(["check", str(cert)]) == 0


@pytest.mark.slow
def test_cli_eval_cupy_hundred_million_points(capsys):
    assert main(["eval", "ramp", "--backend", "cupy", "--points", "100000000", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["points"] == 100_000_000 and 0.0134 < info["max_error"] < 0.0135


@pytest.mark.parametrize("name,params,eps", [
    ("max-affine", {"f": "sin(3*x0)", "G": "32", "kappa": "3"}, "1/20"),         # [MAP] grid bounder, 1-D
    ("max-affine", {"f": "sin(2*x0)*cos(3*x1)", "B": "1"}, "1/20"),              # [MAP] grid bounder, 2-D
    ("relu-net", {"f": "sin(3*x0)", "lo": "-1", "hi": "2", "variant": "2"}, "1/20"),  # layered bounder
])
def test_every_bounder_certifies_on_cupy_and_the_cpu_checker_agrees(cp, name, params, eps, tmp_path):
    """The grid and layered bounders run on device arrays too; their certificates check on the CPU."""
    c = constructions.build(name, **params)
    res = certify(c, eps, xp=cp, progress=False)
    cpu = certify(c, eps, progress=False)
    assert res.status == cpu.status == "CERTIFIED"
    # the pavings may differ by a split (ulps of the device's exp), so only the claims are compared
    assert res.observed <= res.max_bound < float(Fraction(eps)) and cpu.observed <= cpu.max_bound
    path = tmp_path / "gpu.json"
    save(certificate_doc(c, res), path)
    rep = check_doc(load(path), str(path))
    assert rep.ok and rep.checked_max_bound < float(Fraction(eps))
