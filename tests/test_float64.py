"""``certify --float64`` for every construction and every library entry (issue 14).

What is certified is what is exported: the certificate's weights must be float64 values
(beta folded into W_Q, beta = 1), the independent checker must accept the certificate, and
`attncert audit` must rebuild the same weights from the stored parameters.  For the [MAP]
grid constructions the float64 version keeps the grid exact (dyadic centres,
``constructions.max_affine.grid_to_float64``), so the grid bounder and the checker's grid
path still apply; the soundness tests sample those float64 networks densely.
"""
from __future__ import annotations

import importlib.util
import pathlib
from fractions import Fraction

import numpy as np
import pytest

import constructions
from certificates.audit import audit_doc
from certificates.cli.main import main
from certificates.model import load
from constructions.float64 import is_float64, network_to_float64, to_float64
from constructions.max_affine import dyadic_centres, grid_anchors, grid_centres
from verify.analytic.certify import certify_analytic
from verify.enclose.grid import GridBounder
from verify.enclose.linearize import affine_form
from verify.search.certify import certify

from soundcheck import check_float, check_mp, float_errors

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_library", ROOT / "scripts" / "make_library.py")
LIB = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(LIB)

MAP = ("max-affine", "cross-attention", "max-affine-seq")
SLOW_ROWS = {"max-affine-2d-sin2x-cos3y.json"}  # 401 tokens: certify ~8 s, check ~15-30 s on 2 cores
# defaults that are not already a library row (checked by test_every_default_is_covered)
DEFAULTS = {"cross-attention": "1/10", "max-affine-seq": "1/10"}


def _exact_params(params):
    return {k: v for k, v in params.items() if k != "float64"}


CASES = [pytest.param(name, _exact_params(params), eps, id=fname[:-5],
                      marks=[pytest.mark.slow] if fname in SLOW_ROWS else [])
         for fname, name, params, eps, _ in LIB.LIBRARY]
# the defaults' 401-token grids take 6-11 s each with the check; their constructions have library rows above
CASES += [pytest.param(name, {}, eps, id=f"{name}-default", marks=pytest.mark.slow)
          for name, eps in sorted(DEFAULTS.items())]


def _sets(params):
    out = []
    for k, v in params.items():
        out += ["--set", f"{k}={v}"]
    return out


def _all_weights_float64(net_json) -> bool:
    """Every weight string of a certificate's network is the exact value of a float64 and every beta is 1."""
    def walk(v):
        if isinstance(v, str):
            q = Fraction(v)
            yield Fraction(float(q)) == q
        elif isinstance(v, list):
            for x in v:
                yield from walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                yield from walk(x)
    betas = [h["beta"] for layer in net_json["layers"] for h in layer["heads"]]
    return all(b == "1" for b in betas) and all(walk(net_json))


def test_every_default_is_covered():
    """Each registered construction's default parameters are a library row or have a DEFAULTS eps."""
    resolved = {}
    for _, name, params, _, _ in LIB.LIBRARY:
        spec = constructions.REGISTRY[name]
        resolved.setdefault(name, []).append(constructions.resolve_params(spec, _exact_params(params)))
    for name, spec in constructions.REGISTRY.items():
        default = constructions.resolve_params(spec, {})
        assert name in DEFAULTS or default in resolved.get(name, []), name
    assert {row[1] for row in LIB.LIBRARY} == set(constructions.REGISTRY)
    assert all(row[2].get("float64") == "1" for row in LIB.LIBRARY)  # the library is float64 throughout


@pytest.mark.parametrize("name,params,eps", CASES)
def test_certify_float64_is_certified_checked_and_float64(name, params, eps, tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["certify", name, *_sets(params), "--float64", "--eps", eps, "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith("CERTIFIED")
    assert main(["check", str(out)]) == 0
    doc = load(out)
    cons = doc["construction"]
    assert cons["params"]["float64"] == "1"
    assert _all_weights_float64(cons["network"])
    # the certificate speaks about exactly the weights that to_float64 gives (and audit rebuilds)
    c64 = to_float64(constructions.build(name, **params))
    assert is_float64(c64.network) and network_to_float64(c64.network) == c64.network
    assert cons["weights_sha256"] == c64.network.weights_hash()  # what audit rebuilds (test_audit audits the library)
    if name in MAP:  # the grid stays exact: the certificate used (and the checker verified) the grid path
        assert doc["evidence"].get("bounder") == "grid"


# ------------------------------------------------------------------ the float64-exact grid

@pytest.mark.parametrize("name,kw", [("max-affine", {}), ("max-affine", {"f": "sin(x0+x1)*x2", "G": "5"}),
                                     ("max-affine", {"f": "x0", "lo": "-3/7", "hi": "5/3", "G": "9",
                                                     "centres": "cells"}),
                                     ("cross-attention", {"f": "x0*x1", "lo": "2", "hi": "3", "G": "7"}),
                                     ("max-affine-seq", {"G": "6"})])
def test_float64_grid_is_exact(name, kw):
    """Dyadic centres: 2c and |c|^2 exact float64s, the separable grid verified from the float64 weights."""
    c = constructions.build(name, **kw)
    f = to_float64(c)
    assert is_float64(f.network) and not is_float64(c.network)
    assert dict(f.params)["float64"] == 1 and f.domain == c.domain and f.target == c.target
    mm = dict(f.meta)["map"]
    cen = mm["centres"]
    A, Bv = grid_anchors(cen)
    for a, b in zip(A, Bv):
        assert all(Fraction(float(v)) == v for v in a) and Fraction(float(b)) == b  # no rounding anywhere
    exact = grid_centres(c.domain, int(dict(c.params)["G"]), dict(c.params)["centres"])
    h = min(r[1] - r[0] for r in exact)
    assert max(abs(x - y) for r0, r1 in zip(exact, cen) for x, y in zip(r0, r1)) <= h * Fraction(1, 2 ** 20)
    GridBounder(f)  # raises unless the product grid (and its shifted copies) holds exactly
    # idempotent, and the construction parameter float64=1 builds the same network
    assert to_float64(f) == f
    again = constructions.build(name, **{k: v for k, v in f.params})
    assert again.network == f.network


def test_is_float64_is_rounding_changes_nothing():
    """The fast is_float64 agrees with its definition network_to_float64(net) == net."""
    from constructions.float64 import exact_f64
    nets = []
    for name, kw in [("ramp", {}), ("relu-net", {"variant": "2"}), ("icl-gd", {}), ("ramp-multihead", {}),
                     ("max-affine", {"f": "sin(3*x0)", "G": "8"}), ("max-affine-seq", {"G": "3"})]:
        c = constructions.build(name, **kw)
        nets += [c.network, to_float64(c).network, network_to_float64(c.network)]
    for net in nets:
        assert is_float64(net) == (network_to_float64(net) == net)
    for v in [Fraction(0), Fraction(1, 3), Fraction(2 ** 53 - 1), Fraction(2 ** 53 + 1), Fraction(1, 2 ** 1074),
              Fraction(3, 2 ** 1075), Fraction((2 ** 53 - 1) * 2 ** 971), Fraction(2 ** 1024), Fraction(-5, 8)]:
        ok = True
        try:
            ok = Fraction(float(v)) == v
        except OverflowError:
            ok = False
        assert exact_f64(v) == ok, v


def test_dyadic_centres_merge_falls_back_to_general_rounding():
    """Centres that a float64 grid cannot separate: generic rounding, no grid claim, still certified."""
    assert dyadic_centres([[Fraction(2 ** 40), Fraction(2 ** 40) + Fraction(1, 2 ** 20)]]) is None
    c = constructions.build("max-affine", f="sin(x0)", lo=str(2 ** 40), hi=str(Fraction(2 ** 50 + 1, 2 ** 10)),
                            G=4, kappa=2)
    f = to_float64(c)
    assert is_float64(f.network) and "grid" not in dict(f.meta) and "map" not in dict(f.meta)
    res = certify(f, 3, progress=False)
    assert res.status == "CERTIFIED"


def test_set_float64_equals_flag_and_audit_of_generic_float64(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    common = ["--set", "f=sin(3*x0)", "--set", "G=16", "--set", "kappa=3", "--eps", "1/10"]
    assert main(["certify", "max-affine", *common, "--float64", "-o", str(a)]) == 0
    assert main(["certify", "max-affine", *common, "--set", "float64=1", "-o", str(b)]) == 0
    assert load(a)["construction"]["weights_sha256"] == load(b)["construction"]["weights_sha256"]
    r = tmp_path / "r.json"
    assert main(["certify", "ramp", "--set", "p=9", "--set", "kappa=27/10", "--float64", "--eps", "1/20",
                 "-o", str(r)]) == 0
    doc = load(r)
    assert audit_doc(doc).ok
    doc["construction"]["params"].pop("float64")        # the exact construction has other weights
    assert audit_doc(doc).status == "DRIFT"


# ------------------------------------------------------------------ analytic / auto

ANALYTIC = [
    pytest.param("max-affine", {"f": "sin(3*x0)", "G": "32", "kappa": "3"}, "1/20", "analytic", id="map1d-analytic"),
    pytest.param("max-affine", {"f": "sin(3*x0)", "G": "32", "kappa": "3"}, "1/20", "auto", id="map1d-auto"),
    pytest.param("ramp", {"p": "65", "kappa": "1000000", "lo": "-2", "hi": "3"}, "0.015626", "analytic",
                 id="ramp65-analytic"),
    pytest.param("cross-attention", {"f": "sin(x0)*cos(2*x1)", "G": "8"}, "3/20", "analytic", id="cross2d-analytic",
                 marks=pytest.mark.slow),
    pytest.param("ramp", {"p": "41", "kappa": "8", "lo": "-2", "hi": "2"}, "7/500", "auto", id="ramp41-auto",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,params,eps,method", ANALYTIC)
def test_float64_analytic_and_auto(name, params, eps, method, tmp_path, capsys):
    """Where the analytic route certifies the exact weights, it certifies the float64 ones (partition lemmas too)."""
    out = tmp_path / "c.json"
    assert main(["certify", name, *_sets(params), "--float64", "--eps", eps, "--method", method,
                 "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    doc = load(out)
    assert _all_weights_float64(doc["construction"]["network"])
    if name in ("max-affine", "cross-attention"):
        assert doc["evidence"]["partition"]["lemmas"]


def test_analytic_on_a_network_it_does_not_model_is_a_clean_error(capsys):
    assert main(["certify", "relu-net", "--float64", "--eps", "1/20", "--method", "analytic"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "one plain attention layer" in err


@pytest.mark.slow
@pytest.mark.parametrize("row", [r for r in LIB.LIBRARY if r[0] not in SLOW_ROWS], ids=lambda r: r[0][:-5])
def test_analytic_routes_agree_exact_and_float64(row):
    """Every library row, analytic and auto: the float64 version ends as the exact one does."""
    from verify.enclose.linearize import UnsupportedNetwork
    fname, name, params, eps, _ = row
    exact = constructions.build(name, **_exact_params(params))
    f64 = to_float64(exact)
    for method in ("analytic", "auto"):
        got = []
        for c in (exact, f64):
            try:
                got.append(certify_analytic(c, eps, method=method, time_limit=120).status)
            except UnsupportedNetwork:
                got.append("unsupported")
        assert got[1] == got[0] or got[1] == "CERTIFIED", (fname, method, got)


# ------------------------------------------------------------------ soundness of the float64 [MAP] networks

SOUND = [pytest.param("max-affine", {"f": "sin(3*x0)", "G": "32", "kappa": "3"}, "1/20", id="map1d"),
         pytest.param("cross-attention", {"f": "sin(x0)*cos(2*x1)", "G": "8"}, "3/20", id="cross2d"),
         pytest.param("max-affine-seq", {"f": "sin(x0+x1); x0*x1", "G": "6"}, "1/5", id="seq"),
         pytest.param("max-affine", {"f": "sin(x0+x1)*x2", "G": "4", "kappa": "3"}, "1/5", id="map3d",
                      marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,params,eps", SOUND)
def test_float64_map_bounds_are_sound(name, params, eps):
    """Proved bounds >= a dense float64 sample in every box, >= mpmath in the tightest boxes."""
    c = to_float64(constructions.build(name, **params))
    res = certify(c, eps, progress=False)
    assert res.status == "CERTIFIED" and res.evidence.get("bounder") == "grid"
    D = len(c.domain)
    sampled, bound = check_float(c, res, per_dim={1: 33, 2: 5, 3: 3}[D])
    check_mp(c, res, top=3, per_dim={1: 9, 2: 3, 3: 2}[D], dps=30)
    rng = np.random.default_rng(14)
    lo = np.array([float(a) for a, _ in c.domain])
    hi = np.array([float(b) for _, b in c.domain])
    X = lo + (hi - lo) * rng.uniform(0, 1, (20_000, D))
    assert float(float_errors(c, X).max()) <= res.max_bound + 1e-12
    assert sampled <= bound
