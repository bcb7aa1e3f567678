"""Split-dimension choice by gain (issue 15 item 11, issue 17 item 5): the tree, never the proof.

Each unfinished box is bisected along the side whose worse child bound is smallest (ties: the
widest side), among the sides that an unfinished output of the box depends on at all.
"""
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import constructions
from certificates.check.document import check_doc
from certificates.model import certificate_doc
from verify.search.certify import certify
from verify.search.paving import (MAX_LEVEL, Domain, bisect_boxes, children_along, choose_dim,
                                  choose_dim_by_gain, split_candidates)

from test_scale import stable  # canonical bytes without the volatile fields

SEQ3 = dict(n=3, p=17, kappa=5, w="100,-1/3,7", t="0,50,-1")   # the ramp-seq, sampled sup 0.02266
MAP2 = dict(f="sin(2*x0)*cos(3*x1)", B=1, G=8)                 # a small 2-D grid: ~800 leaves at eps 0.2


@pytest.fixture(scope="module")
def seq3():
    return constructions.build("ramp-seq", **SEQ3)


@pytest.fixture(scope="module")
def map2():
    return constructions.build("max-affine", **MAP2)


@pytest.fixture(scope="module")
def map2_cert(map2):
    res = certify(map2, "0.2", progress=False)
    assert res.status == "CERTIFIED"
    return res, stable(certificate_doc(map2, res))


# ---------------------------------------------------------------- the choice itself

def _dom(D=3):
    return Domain([(-1, 1)] * D)


def test_smallest_worse_child_wins_and_ties_go_to_the_widest_side():
    K = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0]])
    cand = np.ones((3, 3), dtype=bool)
    pn = np.repeat(np.arange(3), 3)
    pd = np.tile(np.arange(3), 3)
    worse = {0: [0.5, 0.2, 0.3], 1: [0.4, 0.4, 0.4], 2: [np.inf, np.nan, np.inf]}
    cb = np.array([[worse[n][d] / 2, worse[n][d]][s] for n, d in zip(pn, pd) for s in (0, 1)])[:, None]
    dims = choose_dim_by_gain(cb, (pn, pd), cand, K, _dom())
    # box 0: side 1 gains most; box 1: a tie, side 0 is narrower (level 1), so side 1 (the lowest
    # of the widest); box 2: nothing finite (NaN counts as inf): the widest, lowest side
    assert dims.tolist() == [1, 1, 0]


def test_a_split_that_gains_less_than_min_gain_goes_to_the_widest_side():
    """One-step look-ahead is myopic: shaving 3% off by splitting the narrow side again and again
    makes slivers, while the wide side needs several splits before either child improves."""
    from verify.search.paving import MIN_GAIN
    K = np.array([[1, 0]])
    cand = np.ones((1, 2), dtype=bool)
    pairs = (np.array([0, 0]), np.array([0, 1]))
    for w0, want in ((0.97, 1), (0.9, 0)):
        assert (1 - w0 < MIN_GAIN) == (want == 1)
        cb = np.array([[w0], [0.5], [0.99], [0.99]])
        assert choose_dim_by_gain(cb, pairs, cand, K, _dom(2), parent=np.array([1.0])).tolist() == [want]


def test_worse_child_is_the_largest_over_outputs_and_children():
    K = np.zeros((1, 2), dtype=np.int64)
    cand = np.ones((1, 2), dtype=bool)
    pairs = (np.array([0, 0]), np.array([0, 1]))
    # side 0: children (0.1, 0.1) and (0.1, 0.9); side 1: (0.5, 0.5) and (0.5, 0.5)
    cb = np.array([[0.1, 0.1], [0.1, 0.9], [0.5, 0.5], [0.5, 0.5]])
    assert choose_dim_by_gain(cb, pairs, cand, K, _dom(2)).tolist() == [1]


def test_a_side_no_open_output_depends_on_is_never_a_candidate():
    depends = np.eye(3, dtype=bool)                 # output o depends on input o only (ramp-seq)
    parent = np.array([[0.5, 0.01, 0.3], [0.01, 0.01, 0.3], [0.01, 0.01, 0.01]])
    K = np.zeros((3, 3), dtype=np.int64)
    cand = split_candidates(parent, K, depends, accept=0.05)
    assert cand.tolist() == [[True, False, True], [False, False, True], [True, True, True]]
    K[0, 0] = MAX_LEVEL                             # a side at the finest level is never a candidate
    assert split_candidates(parent, K, depends, 0.05)[0].tolist() == [False, False, True]
    assert not split_candidates(parent[:1], np.full((1, 3), MAX_LEVEL), depends, 0.05).any()


def test_children_along_is_bisect_boxes():
    I = np.array([[1, 2], [0, 3]])
    K = np.array([[1, 2], [0, 2]])
    dims = np.array([1, 0])
    I2, K2 = children_along(I, K, dims)
    I3, K3, paths = bisect_boxes(I, K, dims, ["a", "b"])
    assert (I2 == I3).all() and (K2 == K3).all() and paths == ["a10", "a11", "b00", "b01"]
    assert I2.tolist() == [[1, 4], [1, 5], [0, 3], [1, 3]] and K2.tolist() == [[1, 3], [1, 3], [1, 2], [1, 2]]


# ---------------------------------------------------------------- the search

def test_ramp_seq_n3_certifies_where_the_widest_side_does_not(seq3):
    """Issue 15 item 11: at eps = 1.5x the sampled sup the widest-side rule ends UNKNOWN with
    bound ~1.7 after 400 000 boxes; choosing by gain certifies with ~30 000 leaves."""
    res = certify(seq3, "0.034", progress=False, max_boxes=400_000)
    assert res.status == "CERTIFIED", res.reason
    assert len(res.leaves) < 40_000
    old = certify(seq3, "0.034", progress=False, max_boxes=50_000, split="widest")
    assert old.status == "UNKNOWN" and old.max_bound > 1


def test_ramp_seq_n3_leaves_are_the_product_of_the_token_pavings(seq3):
    """Output i depends on x_i only, so a box of one joint paving is finished when each token's side
    is: its fewest leaves is the product of the 1-D pavings' sizes (80 and 64 at eps 0.05; token 1
    is flat).  One paving per output (the default) needs their sum."""
    res = certify(seq3, "0.05", progress=False, outputs="joint")
    sizes = []
    for w, t in (("100", "0"), ("-1/3", "50"), ("7", "-1")):
        one = certify(constructions.build("ramp-seq", n=1, p=17, kappa=5, w=w, t=t), "0.05", progress=False)
        sizes.append(len(one.leaves))
    assert res.status == "CERTIFIED" and len(res.leaves) == np.prod(sizes) == 5120
    rep = check_doc(json.loads(json.dumps(certificate_doc(seq3, res))))
    assert rep.boxes == 5120 and rep.checked_max_bound < 0.05
    grouped = certify(seq3, "0.05", progress=False)
    assert grouped.status == "CERTIFIED" and len(grouped.leaves) == sum(sizes) == 145
    assert check_doc(json.loads(json.dumps(certificate_doc(seq3, grouped)))).boxes == 145


def test_two_d_grid_needs_fewer_boxes_than_the_widest_side(map2, map2_cert):
    """The split rule alone (plain bounds: 836 against 1 724 leaves); with centred boxes, which
    finish many of the widest side's thin boxes, it still needs fewer (756 against 908)."""
    gain = certify(map2, "0.2", progress=False, enclosure="plain")
    old = certify(map2, "0.2", progress=False, split="widest", enclosure="plain")
    assert old.status == gain.status == "CERTIFIED" and len(gain.leaves) < 0.6 * len(old.leaves)
    assert gain.split_boxes > 0 and old.split_boxes == 0
    res, _ = map2_cert
    old_centred = certify(map2, "0.2", progress=False, split="widest")
    assert len(res.leaves) < len(old_centred.leaves)


def test_the_checker_accepts_a_gain_split_tree(map2, map2_cert):
    res, _ = map2_cert
    doc = json.loads(json.dumps(certificate_doc(map2, res)))
    assert set(doc["evidence"]["tree"]) >= {"0", "1"}    # both dimensions split somewhere
    rep = check_doc(doc)
    assert rep.boxes == len(res.leaves) and rep.checked_max_bound < 0.2


def test_one_dimension_is_unchanged():
    c = constructions.build("ramp", p=41, kappa=8)
    a = certify(c, "0.0147", progress=False)
    b = certify(c, "0.0147", progress=False, split="widest")
    assert a.tree == b.tree and a.split_boxes == 0


def test_unknown_split_rule_is_refused(map2):
    with pytest.raises(ValueError, match="split rule"):
        certify(map2, "0.2", split="random")


# ---------------------------------------------------------------- determinism

def test_process_pool_and_small_units_give_the_identical_certificate(map2, map2_cert):
    _, want = map2_cert
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as ex:
        res = certify(map2, "0.2", progress=False, executor=ex, batch=64, min_units=3)
    assert stable(certificate_doc(map2, res)) == want


def test_resume_after_budget_gives_the_identical_certificate(map2, map2_cert, tmp_path):
    _, want = map2_cert
    ckpt = tmp_path / "c.partial"
    res = certify(map2, "0.2", progress=False, max_boxes=600, checkpoint=ckpt)
    assert res.status == "UNKNOWN" and ckpt.exists()
    res = certify(map2, "0.2", progress=False, checkpoint=ckpt, resume=True)
    assert stable(certificate_doc(map2, res)) == want


def test_interrupt_mid_split_resumes_to_the_identical_certificate(map2, map2_cert, tmp_path, monkeypatch):
    """Ctrl-C while the candidate children are bounded: the checkpoint is the generation's start."""
    from verify.search import certify as cm
    from verify.search.certify import CertifyInterrupted
    _, want = map2_cert
    ckpt = tmp_path / "c.partial"
    real, calls = cm.run_units, {"n": 0}

    def flaky(job, units, executor=None):
        if job.each and not job.observe:   # bounds only: candidate children
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
        return real(job, units, executor)

    monkeypatch.setattr(cm, "run_units", flaky)
    with pytest.raises(CertifyInterrupted):
        certify(map2, "0.2", progress=False, checkpoint=ckpt, checkpoint_every=1e9)
    assert json.loads(ckpt.read_text())["leaves"] is not None
    monkeypatch.setattr(cm, "run_units", real)
    res = certify(map2, "0.2", progress=False, checkpoint=ckpt, resume=True)
    assert stable(certificate_doc(map2, res)) == want


def test_widest_rule_is_still_available(map2):
    res = certify(map2, "0.2", progress=False, split="widest")
    K = np.array([l.k for l in res.leaves])
    assert res.status == "CERTIFIED" and (np.abs(K[:, 0] - K[:, 1]) <= 1).all()   # always the widest side
    assert choose_dim(np.array([[1, 0]]), _dom(2)).tolist() == [1]


def test_trees_name_dimensions_beyond_nine_with_letters():
    """A 12-D bisection: dimensions 10 and 11 are written "a" and "b" in paths and in the tree,
    the checker's decoder gives back exactly the boxes the search made, and a checkpoint path
    decodes to the same dyadic indices."""
    from fractions import Fraction
    from certificates.check.core import leaves
    from verify.search.checkpoint import path_indices
    from verify.search.paving import tree_string
    D = 12
    I = np.zeros((1, D), dtype=np.int64)
    K = np.zeros((1, D), dtype=np.int64)
    paths = [""]
    for d in (11, 10, 3, 11):
        I, K, paths = bisect_boxes(I, K, np.full(len(paths), d), paths)
    tree = tree_string(paths)
    assert set(tree) == {"a", "b", "3", "L"} and tree.count("L") == 16
    boxes = leaves(tree, [(Fraction(0), Fraction(1))] * D, D)
    made = set()
    for p in paths:
        i, k = path_indices(p, D)
        made.add(tuple((Fraction(a, 2 ** b), Fraction(a + 1, 2 ** b)) for a, b in zip(i, k)))
    assert set(tuple(b) for b in boxes) == made
    with pytest.raises(Exception, match="splits dimension b of a 11-D domain"):
        leaves(tree, [(Fraction(0), Fraction(1))] * 11, 11)


def test_more_inputs_than_tree_characters_is_a_one_line_error():
    from verify.search.paving import MAX_INPUTS
    from dataclasses import replace
    c = constructions.build("ramp")
    wide = replace(c, domain=tuple(c.domain) * (MAX_INPUTS + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_INPUTS} inputs"):
        certify(wide, "0.1", progress=False)
