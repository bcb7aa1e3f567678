"""attncert tune ramp: the certified kappa optimum and the fewest anchors for eps."""
import json
from fractions import Fraction

from certificates.cli.main import main
from verify.tune import apriori_recipe


def test_tune_kappa_finds_the_smooth_optimum(capsys):
    assert main(["tune", "ramp", "--set", "p=9", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    kappa = float(Fraction(info["kappa"]))
    assert 2.4 < kappa < 3.1                      # the optimum near 2.7
    assert 0.060 < info["certified_over_delta"] < 0.066   # ~0.063 Delta, certified
    assert info["gain_over_hard_max"] > 7


def test_tune_eps_smallest_p_beats_apriori(capsys):
    assert main(["tune", "ramp", "--eps", "0.02", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # the certified sup error at kappa 2.7 is ~0.063*2/(p-1): p = 8 gives 0.0180, p = 7 gives 0.0210
    assert info["p"] == 8 and info["certified_sup_error"] < 0.02
    assert [t for t in info["tried"] if t[0] == 7][0][1] != "CERTIFIED"
    assert info["p_apriori"] == apriori_recipe(-1, 1, Fraction(1, 50))[0] and info["anchor_ratio"] > 6


def test_apriori_recipe_is_minimal():
    p, kappa = apriori_recipe(-1, 1, Fraction(1, 50))
    delta = Fraction(2, p - 1)
    assert delta / 2 < Fraction(1, 50) <= Fraction(2, p - 2) / 2


def test_tune_rejects_conflicting_sets(capsys):
    assert main(["tune", "ramp", "--set", "kappa=2", "--set", "p=9"]) == 2
    assert main(["tune", "ramp", "--eps", "0.1", "--set", "p=9"]) == 2
    assert main(["tune", "ramp", "--eps", "-1"]) == 2
