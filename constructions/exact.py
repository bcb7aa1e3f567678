"""Exact parsing of user parameters: every number becomes an int or a Fraction.

Decimal strings are read exactly ("0.125" is 1/8), so no float ever enters a weight.
"""
from __future__ import annotations

import re
from fractions import Fraction

_NUM = re.compile(r"^\s*([+-]?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$|^\s*([+-]?)\.(\d+)(?:[eE]([+-]?\d+))?\s*$")
_RAT = re.compile(r"^\s*([+-]?\d+)\s*/\s*(\d+)\s*$")


class ParameterError(ValueError):
    """A parameter value that is not an exact finite rational, or out of range."""


def parse_rational(text) -> Fraction:
    """Parse an int, Fraction or string ("-3", "5/2", "0.125", "1e-3") exactly."""
    if isinstance(text, bool):
        raise ParameterError(f"not a number: {text!r}")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, Fraction):
        return text
    if isinstance(text, float):
        raise ParameterError(f"floats are not exact; give {text!r} as a string")
    if hasattr(text, "p") and hasattr(text, "q"):  # sympy.Rational
        return Fraction(int(text.p), int(text.q))
    if not isinstance(text, str):
        raise ParameterError(f"not a number: {text!r}")
    if len(text) > 200:
        raise ParameterError("number too long")
    m = _RAT.match(text)
    if m:
        if int(m.group(2)) == 0:
            raise ParameterError(f"zero denominator in {text!r}")
        return Fraction(int(m.group(1)), int(m.group(2)))
    m = _NUM.match(text)
    if not m:
        raise ParameterError(f"not an exact finite number: {text!r}")
    if m.group(2) is not None:
        sign, whole, frac, exp = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    else:
        sign, whole, frac, exp = m.group(5), "0", m.group(6), m.group(7)
    e = int(exp) if exp else 0
    if abs(e) > 1000:
        raise ParameterError(f"exponent out of range in {text!r}")
    value = Fraction(int(whole + frac), 10 ** len(frac)) * Fraction(10) ** e
    return -value if sign == "-" else value


def parse_int(text) -> int:
    """Parse an exact integer parameter (rejects 2.5, accepts "4" and "8/2")."""
    value = parse_rational(text)
    if value.denominator != 1:
        raise ParameterError(f"expected an integer, got {text!r}")
    return int(value)


def rat_str(value) -> str:
    """Canonical string of an exact rational: "p" or "p/q"."""
    f = parse_rational(value) if not isinstance(value, Fraction) else value
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
