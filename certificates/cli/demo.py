"""``attncert demo``: build, certify and check a ramp in a few seconds."""
from __future__ import annotations

import time

from .common import EXIT_OK, UserError, command


def cmd_demo(args) -> int:
    import tempfile, os
    from constructions import build
    from verify.search.certify import certify
    from certificates.model import certificate_doc, save, load
    from certificates.check.document import check_doc
    t0 = time.perf_counter()
    c = build("ramp", a="-1", b="1", p=17, kappa="27/10", lo="-2", hi="2")
    print("ramp: one softmax head over 17 anchors approximates Range_[-1,1](x) on [-2, 2] (paper [UAP])")
    print(f"  a-priori bound (paper-style): {c.apriori_float():.4g}")
    res = certify(c, "0.009", progress=False)
    if res.status != "CERTIFIED":
        raise UserError(f"demo did not certify: {res.status} {res.reason}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ramp.cert.json")
        save(certificate_doc(c, res), path)
        rep = check_doc(load(path), path)
    print(f"  certified: sup_x |F(x) - Range(x)| <= {res.max_bound:.5g} < 0.009 over the whole domain "
          f"({len(res.leaves)} boxes; largest observed error {res.observed:.5g})")
    print(f"  independent Arb checker re-derived all {rep.boxes} box bounds: max {rep.checked_max_bound:.5g}")
    print(f"  done in {time.perf_counter() - t0:.1f}s. Try: attncert certify ramp --set p=41 --eps 0.02 -o c.json")
    return EXIT_OK


def add_command(sub) -> None:
    sp = command(sub, "demo", "build, certify and check a ramp in a few seconds", "attncert demo")
    sp.set_defaults(fn=cmd_demo)
