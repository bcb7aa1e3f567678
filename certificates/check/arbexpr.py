"""The checker's own evaluator of JSON target expressions in Arb ball arithmetic.

By design this module shares no code with ``constructions`` or ``verify``: it
validates the JSON form strictly itself and evaluates it with python-flint, at the
current ``flint.ctx.prec``.  Every result is a rigorous enclosure; anything
undefined or unbounded comes out non-finite (NaN), and callers reject non-finite
balls.  NaN is never turned back into a number.
"""
from __future__ import annotations

import re

from flint import arb, fmpq

MAX_DEPTH = 200
MAX_NODES = 100_000
MAX_EXPONENT = 1024
MAX_NUMBER_CHARS = 5000
MAX_NUM_BITS = 8192

_ARITY = {
    "add": (2, None), "mul": (2, None), "sub": (2, 2), "neg": (1, 1), "div": (2, 2),
    "pow": (2, 2), "sin": (1, 1), "cos": (1, 1), "exp": (1, 1), "log": (1, 1),
    "sqrt": (1, 1), "tanh": (1, 1), "abs": (1, 1), "min": (1, None), "max": (1, None),
    "relu": (1, 1), "range": (3, 3),
}
_NUMBER = re.compile(r"-?[0-9]+(/[0-9]+)?\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_RESERVED = frozenset(_ARITY) | {"pi", "num", "var", "const"}


class ArbExprError(ValueError):
    """A JSON expression the checker refuses: unknown op, bad arity, malformed number."""


def _check(obj, path: str, depth: int, count: list):
    """Validate one node and return an internal tuple (tag, payload or children)."""
    if depth > MAX_DEPTH:
        raise ArbExprError(f"expression nested deeper than {MAX_DEPTH} at {path}")
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ArbExprError(f"expression has more than {MAX_NODES} nodes")
    if type(obj) is not dict:
        raise ArbExprError(f"expected an object at {path}")
    keys = set(obj)
    if keys == {"num"}:
        s = obj["num"]
        if type(s) is not str or len(s) > MAX_NUMBER_CHARS or not _NUMBER.match(s):
            raise ArbExprError(f"malformed number at {path}")
        p, _, q = s.partition("/")
        try:
            p, q = int(p), int(q) if q else 1
        except ValueError:
            raise ArbExprError(f"number too long at {path}") from None
        if q == 0:
            raise ArbExprError(f"zero denominator at {path}")
        if p.bit_length() > MAX_NUM_BITS or q.bit_length() > MAX_NUM_BITS:
            raise ArbExprError(f"number too large at {path}")
        return ("num", fmpq(p, q))
    if keys == {"var"}:
        name = obj["var"]
        if type(name) is not str or not _NAME.match(name) or name in _RESERVED:
            raise ArbExprError(f"invalid variable name at {path}")
        return ("var", name)
    if keys == {"const"}:
        if obj["const"] != "pi":
            raise ArbExprError(f"unknown constant at {path}")
        return ("pi",)
    if keys != {"op", "args"}:
        raise ArbExprError(f"unexpected keys at {path}")
    op, args = obj["op"], obj["args"]
    if type(op) is not str or op not in _ARITY:
        raise ArbExprError(f"unknown operation {str(op)[:40]!r} at {path}")
    if type(args) is not list:
        raise ArbExprError(f"args must be a list at {path}")
    lo, hi = _ARITY[op]
    if len(args) < lo or (hi is not None and len(args) > hi):
        raise ArbExprError(f"{op} with {len(args)} argument(s) at {path}")
    kids = tuple(_check(a, f"{path}.args[{i}]", depth + 1, count) for i, a in enumerate(args))
    if op == "pow":
        e = kids[1]
        if e[0] != "num" or e[1].q != 1 or abs(int(e[1].p)) > MAX_EXPONENT:
            raise ArbExprError(f"pow exponent must be an integer of magnitude <= {MAX_EXPONENT} at {path}")
        return ("pow", kids[0], int(e[1].p))
    return (op,) + kids


def _finite(x) -> bool:
    return x.is_finite()


def _pow(x, n: int):
    """x^n from the ends of the ball: Arb's own power of a ball around 0 returns NaN."""
    if n == 0:
        return arb(1)
    if n < 0:
        return arb(1) / _pow(x, -n)
    if n % 2:  # odd powers are increasing
        return (x.lower() ** n).union(x.upper() ** n)
    return (x.abs_lower() ** n).union(x.abs_upper() ** n).nonnegative_part()


def _imul(x, y):
    """Product as the hull of the four end products: the exact interval product, which a
    ball product (mid*mid +/- radii) overestimates for wide balls away from 0."""
    xs, ys = (x.lower(), x.upper()), (y.lower(), y.upper())
    r = xs[0] * ys[0]
    for a in xs:
        for b in ys:
            r = r.union(a * b)
    return r


def _eval(t, env):
    tag = t[0]
    if tag == "num":
        return arb(t[1])
    if tag == "var":
        if t[1] not in env:
            raise ArbExprError(f"no value for variable {t[1]!r}")
        v = env[t[1]]
        return v if isinstance(v, arb) else arb(v)
    if tag == "pi":
        return arb.pi()
    if tag == "pow":
        x = _eval(t[1], env)
        return _pow(x, t[2]) if _finite(x) else arb.nan()
    a = [_eval(c, env) for c in t[1:]]
    # A non-finite argument means "undefined or unbounded": the result must not become
    # a number again (e.g. 0 * NaN, or min(NaN, 1)).
    if not all(_finite(x) for x in a):
        return arb.nan()
    if tag == "add":
        r = a[0]
        for x in a[1:]:
            r = r + x
        return r
    if tag == "mul":
        r = a[0]
        for x in a[1:]:
            r = _imul(r, x)
        return r
    if tag == "sub":
        return a[0] - a[1]
    if tag == "neg":
        return -a[0]
    if tag == "div":
        return a[0] / a[1]  # Arb gives NaN when the divisor contains 0
    if tag == "min":
        r = a[0]
        for x in a[1:]:
            r = r.min(x)
        return r
    if tag == "max":
        r = a[0]
        for x in a[1:]:
            r = r.max(x)
        return r
    if tag == "relu":
        return a[0].max(arb(0)).nonnegative_part()
    if tag == "range":
        return a[2].max(a[0]).min(a[1])
    if tag == "abs":
        return abs(a[0]).nonnegative_part()  # Arb's abs keeps a ball around 0 symmetric
    if tag == "exp":
        return a[0].exp().nonnegative_part()
    if tag == "sqrt":
        return a[0].sqrt()  # NaN if the ball reaches below 0
    if tag == "log":
        return a[0].log()  # NaN if the ball reaches 0
    if tag == "sin":
        return _trig(a[0], 0)
    if tag == "cos":
        return _trig(a[0], 1)
    if tag == "tanh":  # increasing: the hull of the end values (a ball tanh widens wide balls)
        return a[0].lower().tanh().union(a[0].upper().tanh())
    raise ArbExprError(f"unknown operation {tag!r}")  # unreachable after _check


def arb_compile(obj):
    """Validate once; return a function env -> arb (for evaluating many boxes)."""
    tree = _check(obj, "$", 1, [0])
    return lambda env: _eval(tree, env)


def arb_eval(obj, env: dict):
    """Enclosure of the JSON expression for variables bound to the balls in ``env``."""
    return arb_compile(obj)(env)


def arb_variables(obj) -> set:
    """Names of the variables of a (validated) JSON expression."""
    out, stack = set(), [_check(obj, "$", 1, [0])]
    while stack:
        t = stack.pop()
        if t[0] == "var":
            out.add(t[1])
        elif t[0] == "pow":
            stack.append(t[1])
        elif t[0] not in ("num", "pi"):
            stack.extend(t[1:])
    return out


def _imul(x, y):
    """Product as the hull of the four end products: a ball product is centred at m1*m2 and
    so wider than the (asymmetric) interval product; the hull is as tight as interval math."""
    if x.rad() == 0 or y.rad() == 0:
        return x * y
    xl, xu, yl, yu = x.lower(), x.upper(), y.lower(), y.upper()
    p = [xl * yl, xl * yu, xu * yl, xu * yu]
    r = p[0]
    for q in p[1:]:
        r = r.union(q)
    return r


def _trig(x, shift: int):
    """sin (shift 0) or cos (shift 1) of a ball: the hull of the end values when no extremum
    pi/2 + k pi (sin) or k pi (cos) lies in the ball (then the function is monotone there),
    which is much tighter than Arb's derivative bound on wide balls; else Arb's enclosure."""
    fn = arb.sin if shift == 0 else arb.cos
    wide = fn(x)
    if not (x.is_finite() and x.rad() < 1):
        return wide
    pi = arb.pi()
    off = pi / 2 if shift == 0 else arb(0)
    u = (x.lower() - off) / pi
    w = (x.upper() - off) / pi
    n = int(float(u.mid()) // 1)
    if arb(n) < u and w < arb(n + 1):
        return fn(x.lower()).union(fn(x.upper()))
    return wide


def arb_interval(lo, hi):
    """A ball containing the real interval [lo, hi] (exact ints, fmpq or finite floats).

    A ball's radius is rounded up, so the ball of [0, 2] dips below 0 and sqrt of it
    would be NaN; when lo >= 0 the ball is intersected with [0, inf), which keeps it
    rigorous (it still contains [lo, hi]).
    """
    if not lo <= hi:
        raise ArbExprError("empty interval: lo > hi")
    ball = arb(lo).union(arb(hi))
    return ball.nonnegative_part() if lo >= 0 else ball
