"""Shared fixtures: small ramp constructions and a cached certificate."""
from __future__ import annotations

import numpy as np
import pytest

import constructions


def _gpu_available() -> bool:
    try:
        import cupy
        cupy.zeros(1).sum().item()
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device (cupy kernels cannot run)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ramp41():
    return constructions.build("ramp", a="-1", b="1", p=41, kappa=8, lo=-2, hi=2)


def dense_sup_error(construction, n=400_001, chunk=50_000):
    """Dense float64 estimate of sup |N - f| for a 1-D construction (an estimate)."""
    from verify.forward import float_weights, forward_float
    from verify.enclose.target import float_eval
    (a, b), = construction.domain
    w = float_weights(construction.network)
    xs = np.linspace(float(a), float(b), n)
    best, arg = 0.0, None
    for s in range(0, n, chunk):
        X = xs[s:s + chunk]
        e = np.abs(forward_float(construction.network, X[:, None], np, w)[:, 0]
                   - float_eval(construction.target[0], {"x0": X}, np))
        j = int(np.argmax(e))
        if e[j] > best:
            best, arg = float(e[j]), float(X[j])
    return best, arg


@pytest.fixture(scope="session")
def ramp41_cert(ramp41, tmp_path_factory):
    from certificates.model import certificate_doc, save
    from verify.search.certify import certify
    res = certify(ramp41, "0.02", progress=False)
    assert res.status == "CERTIFIED"
    path = tmp_path_factory.mktemp("cert") / "ramp41.json"
    save(certificate_doc(ramp41, res), path)
    return path
