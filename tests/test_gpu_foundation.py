"""CuPy runs the same ``xp`` code as NumPy (skipped without a CUDA device)."""
import numpy as np
import pytest

from verify.certify import certify
from verify.forward import forward_float

pytestmark = pytest.mark.gpu


def test_forward_cupy_matches_numpy(ramp41):
    import cupy
    X = np.linspace(-2, 2, 10001)[:, None]
    y_np = forward_float(ramp41.network, X, np)
    y_cp = forward_float(ramp41.network, cupy.asarray(X), cupy).get()
    assert np.max(np.abs(y_np - y_cp)) < 1e-12


def test_certify_on_cupy_checks_on_cpu(ramp41, tmp_path):
    import cupy
    from certificates.checker import check_doc
    from certificates.model import certificate_doc, load, save
    res = certify(ramp41, "0.02", xp=cupy, progress=False)
    assert res.status == "CERTIFIED"
    save(certificate_doc(ramp41, res), tmp_path / "g.json")
    assert check_doc(load(tmp_path / "g.json")).ok
