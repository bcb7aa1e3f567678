"""Memory at many anchors: the grid path and the checker's grid memo are cut into pieces, and the
pieces change no number (issue 17, item 4)."""
import numpy as np

import constructions
from certificates.check import grid as check_grid
from verify.enclose import grid as vgrid
from verify.search.batches import Job


def _boxes(c, n, seed=0):
    rng = np.random.default_rng(seed)
    lo = np.array([float(a) for a, _ in c.domain])
    hi = np.array([float(b) for _, b in c.domain])
    a = lo + (hi - lo) * rng.random((n, len(lo)))
    w = (hi - lo) * rng.random((n, len(lo))) * 0.3
    return a, np.minimum(a + w, hi)


def test_grid_passes_change_no_bound(monkeypatch):
    """Bounds and hints of the grid path are bit-identical however the boxes are cut into passes."""
    for name, f in (("max-affine", "sin(2*x0)*cos(3*x1)"), ("cross-attention", "x0*x1 - x2/2")):
        c = constructions.build(name, f=f, G=5)
        b = vgrid.GridBounder(c)
        xl, xh = _boxes(c, 203)
        assert b.boxes_per_pass(b.parts[0]) >= 203
        whole = b.error_bounds(xl, xh)
        for elements in (1, 7 * int(np.prod([w + 1 for w in b.parts[0]["W"]])) + 3):
            monkeypatch.setattr(vgrid, "TABLE_ELEMENTS", elements)
            assert b.boxes_per_pass(b.parts[0]) < 203
            cut = b.error_bounds(xl, xh)
            assert np.array_equal(whole[0], cut[0]) and np.array_equal(whole[1], cut[1])
        monkeypatch.undo()


def test_job_variants_share_the_prepared_bounder():
    """A variant of a prepared job reuses its bounder (no second preparation, no pickling)."""
    c = constructions.build("max-affine", f="sin(3*x0)", G=8)
    job = Job(c)
    prep = job.prepared()
    twin = job.variant(each=True, observe=False)
    assert twin.prepared() is prep and twin.construction is c and (twin.each, twin.observe) == (True, False)
    late = Job(c).variant(bound=False)     # a variant made before the job was prepared shares it too
    assert late.prepared() is late._origin.prepared()


def test_checker_memo_limits_change_no_bound(monkeypatch):
    """The checker's grid memo tables may be emptied between boxes: every box bound stays the same."""
    import json
    from certificates.check.arbexpr import arb_compile
    from certificates.check.core import affine_heads, fr, leaves, rat
    from certificates.model import certificate_doc
    from verify.search.certify import certify
    c = constructions.build("max-affine", f="sin(2*x0)*cos(3*x1)", G=6)
    r = certify(c, "0.3", progress=False, enclosure="plain")
    assert r.status == "CERTIFIED" and len(r.leaves) > 10
    doc = json.loads(json.dumps(certificate_doc(c, r)))
    ev = doc["evidence"]
    domain = [(fr(rat(a, "domain")), fr(rat(b, "domain"))) for a, b in doc["domain"]]
    heads = affine_heads(doc["construction"]["network"], 2)
    targets = [arb_compile(t).on_domain(domain) for t in doc["target"]]

    def bounds():
        g = check_grid.GridCheck(heads, ev["grid"], 2)
        return [g.box_bound(box, targets, h) for box, h in zip(leaves(ev["tree"], domain, 2), ev["hints"])], g

    full, g_full = bounds()
    monkeypatch.setattr(check_grid, "MEMO_ENTRIES", 3)
    monkeypatch.setattr(check_grid, "W1D_ENTRIES", 2)
    small, g_small = bounds()
    assert len(g_small.parts[0]._memo) < len(g_full.parts[0]._memo)
    assert [(a.mid(), a.rad()) for a in full] == [(b.mid(), b.rad()) for b in small]
