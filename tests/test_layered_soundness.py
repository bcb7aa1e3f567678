"""Random small layered networks: the searcher's and the checker's enclosures contain 40-digit samples."""
import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from flint import ctx, fmpq

from certificates.check.layered import LayeredNet
from constructions.base import Construction
from constructions.network import Embedding, Head, Layer, Network, mat
from verify.forward import forward_float, forward_mp
from verify.enclose.layered import LayeredBounder


def _rand(rng, r, c, scale=2):
    return mat([[Fraction(int(rng.integers(-8, 9)), 4) * scale for _ in range(c)] for _ in range(r)])


def _network(rng, final_softmax, linear):
    T, d = 3, 2
    emb = Embedding(const=_rand(rng, T, d, 1), linear=(_rand(rng, T, d, 1),))
    h1 = Head(wq=_rand(rng, d, 2), wk=_rand(rng, d, 2), wv=_rand(rng, d, 2, 1), wo=_rand(rng, 2, 2, 1),
              beta=Fraction(3, 2), bias=_rand(rng, 3, 3))
    l1 = Layer(heads=(h1,), query_rows=(0, 1, 2), key_rows=(0, 1, 2), post=(_rand(rng, 2, 3, 1), _rand(rng, 3, 3, 1)))
    h2 = Head(wq=_rand(rng, 3, 2), wk=_rand(rng, 3, 2), wv=_rand(rng, 3, 2, 1), wo=_rand(rng, 2, 2, 1),
              beta=Fraction(1), bias=None)
    h3 = Head(wq=_rand(rng, 3, 2), wk=_rand(rng, 3, 2), wv=_rand(rng, 3, 2, 1), wo=_rand(rng, 2, 2, 1),
              beta=Fraction(1, 2), bias=_rand(rng, 2, 3))
    post2 = (_rand(rng, 2, 3, 1), _rand(rng, 2, 3, 1)) if rng.integers(0, 2) else None
    l2 = Layer(heads=(h2, h3), query_rows=(0, 1), key_rows=(0, 1, 2), post=post2)
    readout = ((0, 0), (1, 1), (0, 1))
    rl = ((Fraction(1, 3), (Fraction(1), Fraction(-2), Fraction(1, 2))),) if linear else None
    return Network(embedding=emb, layers=(l1, l2), readout=readout, final_softmax=final_softmax,
                   readout_linear=rl)


@pytest.mark.parametrize("seed", range(6))
def test_enclosures_contain_samples(seed):
    rng = np.random.default_rng(seed)
    net = _network(rng, final_softmax=bool(seed % 2), linear=seed % 3 == 0)
    n_out = 1 if net.readout_linear else len(net.readout)
    c = Construction(name="random", paper="", theorem="", params=(), network=net,
                     target=tuple(("num", Fraction(0)) for _ in range(n_out)), domain=((Fraction(-1), Fraction(1)),),
                     apriori_bound=None)
    b = LayeredBounder(c)
    model = LayeredNet(json.loads(json.dumps(net.to_json())), 1)
    for lo, hi in [(Fraction(-1), Fraction(-3, 4)), (Fraction(1, 8), Fraction(1, 8) + Fraction(1, 64)),
                   (Fraction(-1, 2), Fraction(1, 2))]:
        outs, hints = b.output_bounds(np.array([[float(lo)]]), np.array([[float(hi)]]))
        old = ctx.prec
        ctx.prec = 128
        try:
            balls = model.outputs([(fmpq(lo.numerator, lo.denominator), fmpq(hi.numerator, hi.denominator))],
                                  [int(v) for v in hints[0]])
            ends = [(float(x.lower()), float(x.upper())) for x in balls]
        finally:
            ctx.prec = old
        for t in np.linspace(0, 1, 9):
            x = lo + (hi - lo) * Fraction(t)
            ys = forward_mp(net, [x], 40)
            yf = forward_float(net, np.array([[float(x)]]))[0]
            for o, y in enumerate(ys):
                assert outs[o][0][0] <= y <= outs[o][1][0], (o, x, y, outs[o])
                assert ends[o][0] <= y <= ends[o][1], (o, x, y, ends[o])
                assert abs(float(y) - yf[o]) < 1e-9


def test_layered_checker_shares_no_code_with_search():
    """certificates/check/layered.py imports neither verify nor constructions."""
    import ast
    import pathlib
    src = (pathlib.Path(__file__).resolve().parents[1] / "certificates" / "check" / "layered.py").read_text()
    mods = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mods.add((node.module or "").split(".")[0] if node.level == 0 else "certificates")
    assert not mods & {"verify", "constructions"}, mods


def test_cli_json_has_no_infinity(capsys):
    from certificates.cli.main import main
    assert main(["certify", "relu-net", "--set", "units=4", "--eps", "1", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["apriori_bound"] is None and info["status"] == "CERTIFIED"
