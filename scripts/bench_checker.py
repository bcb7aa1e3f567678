"""Time the independent checker (serial and --workers 2) on the library certificates and on a
ramp p=201 kappa=30 eps=0.005 certificate; print check/certify where a search time is known.

    python scripts/bench_checker.py [--ramp CERT]   (make CERT with
    attncert certify ramp --set p=201 --set kappa=30 --eps 0.005 -o CERT)
"""
from __future__ import annotations

import argparse
import glob
import json
import pathlib
import time

from certificates.check.document import check_doc

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _search_seconds(name, params, eps):
    try:
        import constructions
        from verify.search.certify import certify
        c = constructions.build(name, **params)
        t = time.perf_counter()
        certify(c, eps, progress=False)
        return time.perf_counter() - t
    except Exception:   # noqa: BLE001 - a bench: no search time for this one
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ramp", default=None)
    a = ap.parse_args()
    rows = [(p, None) for p in sorted(glob.glob(str(ROOT / "certificates/library/*.json")))]
    if a.ramp:
        rows.append((a.ramp, ("ramp", {"p": 201, "kappa": 30}, 0.005)))
    print(f"{'certificate':40s} {'boxes':>6s} {'serial s':>9s} {'2 workers s':>12s} {'search s':>9s} {'check/search':>12s}")
    for path, search in rows:
        doc = json.loads(pathlib.Path(path).read_text())
        t = time.perf_counter(); rep = check_doc(doc, path, max_work=None); ts = time.perf_counter() - t
        t = time.perf_counter(); rep2 = check_doc(doc, path, max_work=None, workers=2); tw = time.perf_counter() - t
        assert rep.to_json() == rep2.to_json()
        sec = _search_seconds(*search) if search else None
        ratio = f"{ts / sec:12.1f}" if sec else f"{'n/a':>12s}"
        print(f"{pathlib.Path(path).name[:40]:40s} {rep.boxes:6d} {ts:9.2f} {tw:12.2f} "
              f"{(f'{sec:9.2f}' if sec else '      n/a')} {ratio}")


if __name__ == "__main__":
    main()
