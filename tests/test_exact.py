from fractions import Fraction

import pytest
import sympy

from constructions.exact import ParameterError, parse_int, parse_rational


@pytest.mark.parametrize("text,value", [
    ("-3", Fraction(-3)), ("5/2", Fraction(5, 2)), ("0.125", Fraction(1, 8)), ("1e-3", Fraction(1, 1000)),
    (".5", Fraction(1, 2)), ("-2.5E2", Fraction(-250)), (7, Fraction(7)), (sympy.Rational(3, 7), Fraction(3, 7)),
    ("0.1", Fraction(1, 10)),
])
def test_parse_rational_is_exact(text, value):
    assert parse_rational(text) == value


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1/0", "abc", "", "1.2.3", 0.5, None, True, "2**3"])
def test_parse_rational_rejects(bad):
    with pytest.raises(ParameterError):
        parse_rational(bad)


def test_parse_int():
    assert parse_int("8/2") == 4
    with pytest.raises(ParameterError):
        parse_int("2.5")
