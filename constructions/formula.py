"""Exact closed-form bounds as safe expression trees, built with ordinary arithmetic.

A-priori error bounds (Delta/2 + 2(b-a)q/(1-q), ...) are written once with ``+ - * / **``
and ``exp``; on exact numbers the operators fold to one ``Fraction`` and keep ``exp`` as a
node, on ``Formula.var`` they stay symbolic.  The result is a tree of ``constructions.expr``:
printed with its printer, evaluated with mpmath, and turned into sympy only for LaTeX, so
building a construction never imports a computer-algebra system.
"""
from __future__ import annotations

import operator
from fractions import Fraction
from numbers import Rational

from .expr import mp_eval, to_str, to_sympy

_FOLD = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


class Formula:
    """An immutable expression tree with exact constant folding."""

    __slots__ = ("tree",)

    def __init__(self, tree):
        object.__setattr__(self, "tree", tree)

    def __setattr__(self, name, value):
        raise AttributeError("Formula is immutable")

    def __reduce__(self):   # work units send constructions to worker processes
        return Formula, (self.tree,)

    @staticmethod
    def var(name: str) -> "Formula":
        return Formula(("var", name))

    @staticmethod
    def num(q) -> "Formula":
        return Formula(("num", Fraction(q)))

    def number(self):
        """The exact value when the tree is one number, else None."""
        return self.tree[1] if self.tree[0] == "num" else None

    # ---- arithmetic: numbers fold exactly, anything else becomes a node
    def _bin(self, op, other, swap=False):
        other = lift(other)
        a, b = (other, self) if swap else (self, other)
        x, y = a.number(), b.number()
        if x is not None and y is not None and not (op == "div" and y == 0):
            return Formula.num(_FOLD[op](x, y))
        if op in ("add", "mul") and x == (0 if op == "add" else 1):
            return b
        if op in ("add", "sub", "mul", "div") and y == (0 if op in ("add", "sub") else 1):
            return a
        if op == "mul" and (x == 0 or y == 0):
            return Formula.num(0)
        if op in ("add", "mul"):   # chains stay one n-ary node, as the parser reads them
            parts = [t for t in (a.tree, b.tree) for t in (t[1:] if t[0] == op else (t,))]
            return Formula((op,) + tuple(parts))
        return Formula((op, a.tree, b.tree))

    def __add__(self, o):
        return self._bin("add", o)

    def __radd__(self, o):
        return self._bin("add", o, True)

    def __sub__(self, o):
        return self._bin("sub", o)

    def __rsub__(self, o):
        return self._bin("sub", o, True)

    def __mul__(self, o):
        return self._bin("mul", o)

    def __rmul__(self, o):
        return self._bin("mul", o, True)

    def __truediv__(self, o):
        return self._bin("div", o)

    def __rtruediv__(self, o):
        return self._bin("div", o, True)

    def __neg__(self):
        x = self.number()
        return Formula.num(-x) if x is not None else Formula(("neg", self.tree))

    def __pow__(self, n):
        if not isinstance(n, int):
            raise TypeError("Formula powers are integers")
        x = self.number()
        if x is not None and not (x == 0 and n < 0):
            return Formula.num(x ** n)
        return Formula(("pow", self.tree, ("num", Fraction(n))))

    def __eq__(self, other):
        return isinstance(other, Formula) and self.tree == other.tree

    def __hash__(self):
        return hash(self.tree)

    # ---- views
    def __str__(self):
        return to_str(self.tree)

    def __repr__(self):
        return f"Formula({self})"

    def value(self, point: dict | None = None):
        """mpmath value at the current precision (variables from ``point``)."""
        return mp_eval(self.tree, point or {})

    def to_sympy(self, symbols: dict | None = None):
        return to_sympy(self.tree, symbols)


def lift(x) -> Formula:
    """A Formula from a Formula or an exact number (int, Fraction: any numbers.Rational)."""
    if isinstance(x, Formula):
        return x
    if isinstance(x, Rational):
        return Formula.num(x)
    raise TypeError(f"not an exact number: {x!r}")


def exp(x) -> Formula:
    """e^x as a node (e^0 folds to 1)."""
    x = lift(x)
    return Formula.num(1) if x.number() == 0 else Formula(("exp", x.tree))
