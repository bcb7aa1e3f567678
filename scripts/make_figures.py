"""Regenerate the README figures in docs/ with one command: ``python scripts/make_figures.py``.

docs/ramp.png        a 1-D certificate: target, network, error, proved per-box bound, eps
docs/ramp_rates.png  certified error against the number of anchors p (data in docs/ramp_rates.json)
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import certificates  # noqa: E402
import constructions  # noqa: E402
import verify  # noqa: E402
from certificates.plot import plot_certificate  # noqa: E402
from certificates.rates import certified_series, plot_rates, save_series  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
RAMP = {"a": "-1", "b": "1", "lo": "-2", "hi": "2"}


def main() -> int:
    os.makedirs(DOCS, exist_ok=True)
    c = constructions.build("ramp", **RAMP, p="9", kappa="27/10")
    res = verify.certify(c, "0.0175", progress=False)
    assert res.status == verify.CERTIFIED, res.reason
    doc = certificates.certificate(c, res, reproducible=True)
    assert certificates.check(doc).ok
    plot_certificate(doc, os.path.join(DOCS, "ramp.png"), points=8001, dpi=80)
    params = {**RAMP, "kappa": "8"}
    rows = certified_series("ramp", params, "p", ["9", "17", "33", "65", "129", "257"])
    save_series(rows, os.path.join(DOCS, "ramp_rates.json"), {"construction": "ramp", "params": params, "sweep": "p"})
    plot_rates(rows, os.path.join(DOCS, "ramp_rates.png"), xlabel="p (anchors)",
               title="ramp, kappa = 8: certified sup error against p", dpi=80)
    for r in rows:
        print(f"p={r['value']}: certified {r['certified']:.5g} observed {r['observed']:.5g} a-priori {r['apriori']:.5g}")
    print(f"wrote {DOCS}/ramp.png, ramp_rates.png, ramp_rates.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
