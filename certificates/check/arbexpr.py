"""The checker's own evaluator of JSON target expressions in Arb ball arithmetic.

By design this module shares no code with ``constructions`` or ``verify``: it
validates the JSON form strictly itself and evaluates it with python-flint, at the
current ``flint.ctx.prec``, as intervals with exact ends (see ``_ieval``).  Every result is a rigorous enclosure; anything
undefined or unbounded comes out non-finite (NaN), and callers reject non-finite
balls.  NaN is never turned back into a number.
"""
from __future__ import annotations

import re

from flint import arb, ctx, fmpq

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


def _short_path(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:20]}...{path[-50:]}"


def _check(obj, path: str, depth: int, count: list):
    """Validate one node and return an internal tuple (tag, payload or children)."""
    if depth > MAX_DEPTH:
        raise ArbExprError(f"expression nested deeper than {MAX_DEPTH} at {_short_path(path)}")
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ArbExprError(f"expression has more than {MAX_NODES} nodes")
    if type(obj) is not dict:
        raise ArbExprError(f"expected an object at {_short_path(path)}")
    keys = set(obj)
    if keys == {"num"}:
        s = obj["num"]
        if type(s) is not str or len(s) > MAX_NUMBER_CHARS or not _NUMBER.match(s):
            raise ArbExprError(f"malformed number at {_short_path(path)}")
        p, _, q = s.partition("/")
        try:
            p, q = int(p), int(q) if q else 1
        except ValueError:
            raise ArbExprError(f"number too long at {_short_path(path)}") from None
        if q == 0:
            raise ArbExprError(f"zero denominator at {_short_path(path)}")
        if p.bit_length() > MAX_NUM_BITS or q.bit_length() > MAX_NUM_BITS:
            raise ArbExprError(f"number too large at {_short_path(path)}")
        return ("num", fmpq(p, q))
    if keys == {"var"}:
        name = obj["var"]
        if type(name) is not str or not _NAME.match(name) or name in _RESERVED:
            raise ArbExprError(f"invalid variable name at {_short_path(path)}")
        return ("var", name)
    if keys == {"const"}:
        if obj["const"] != "pi":
            raise ArbExprError(f"unknown constant at {_short_path(path)}")
        return ("pi",)
    if keys != {"op", "args"}:
        raise ArbExprError(f"unexpected keys at {_short_path(path)}")
    op, args = obj["op"], obj["args"]
    if type(op) is not str or op not in _ARITY:
        raise ArbExprError(f"unknown operation {str(op)[:40]!r} at {_short_path(path)}")
    if type(args) is not list:
        raise ArbExprError(f"args must be a list at {_short_path(path)}")
    lo, hi = _ARITY[op]
    if len(args) < lo or (hi is not None and len(args) > hi):
        raise ArbExprError(f"{op} with {len(args)} argument(s) at {_short_path(path)}")
    kids = tuple(_check(a, f"{path}.args[{i}]", depth + 1, count) for i, a in enumerate(args))
    if op == "pow":
        e = kids[1]
        if e[0] != "num" or e[1].q != 1 or abs(int(e[1].p)) > MAX_EXPONENT:
            raise ArbExprError(f"pow exponent must be an integer of magnitude <= {MAX_EXPONENT} at {_short_path(path)}")
        return ("pow", kids[0], int(e[1].p))
    return (op,) + kids


def _finite(x) -> bool:
    return x.is_finite()


# The evaluator works on intervals [lo, hi] whose ends are Arb balls that are (almost) points:
# each operation takes its result's ends from the ends of its arguments (monotonicity, the four
# products, the extrema of sin/cos) and keeps ``.lower()`` / ``.upper()`` of what Arb computes.
# A ball whose radius holds the interval's width would be widened by Arb's 30-bit radius on every
# step (about 2^-30 of the width: far more than a tight certificate's error on a flat piece); ends
# carry only the working precision's rounding.  NaN (undefined or unbounded) stays NaN.

def _nan():
    n = arb.nan()
    return (n, n)


def _lo(x):
    return x.lower()


def _hi(x):
    return x.upper()


def _pt_min(a, b):
    return a if a < b else b


def _pt_max(a, b):
    return a if a > b else b


def _ok(iv) -> bool:
    return iv[0].is_finite() and iv[1].is_finite()


def _ends(v):
    """An env value (an arb ball, a number, or a (lo, hi) pair) as an interval of exact ends."""
    if type(v) is tuple:
        a, b = arb(v[0]), arb(v[1])
        if not (a.is_finite() and b.is_finite()):
            return _nan()
        if a > b:
            raise ArbExprError("empty interval: lo > hi")
        return (_lo(a), _hi(b))
    x = v if isinstance(v, arb) else arb(v)
    if not x.is_finite():
        return _nan()
    return (_lo(x), _hi(x))


def _ipow(x, n: int):
    lo, hi = x
    if n == 0:
        return (arb(1), arb(1))
    if n < 0:
        p = _ipow(x, -n)
        if not p[0] > 0 and not p[1] < 0:   # 0 may lie in x^|n|: 1/x^|n| is unbounded
            return _nan()
        return _ireciprocal(p)
    if n % 2 or lo >= 0:  # increasing
        return (_lo(lo ** n), _hi(hi ** n))
    if hi <= 0:
        return (_lo(hi ** n), _hi(lo ** n))
    top = _pt_max(-lo, hi)
    return (arb(0), _hi(top ** n))


def _ireciprocal(x):
    lo, hi = x
    if not (lo > 0 or hi < 0):   # 0 may lie in the divisor
        return _nan()
    return (_lo(1 / hi), _hi(1 / lo))


_AZ = arb(0)


def _sign_class(lo, hi):
    """1 when the interval is surely >= 0, -1 when surely <= 0, 0 when lo < 0 < hi surely,
    None when undecided (balls, reversed ends): then every corner is taken."""
    if lo >= _AZ:
        return 1 if hi >= lo else None
    if hi <= _AZ:
        return -1 if hi >= lo else None
    if lo < _AZ and hi > _AZ:
        return 0
    return None


def _imul2(x, y):
    """The product's interval from the corners that hold its extremes (the nine sign cases; the
    ends are exact points, so each extreme is at a known corner and the lower (upper) end of the
    Arb product there encloses it); all four corners when a sign class is undecided."""
    (a, b), (c, d) = x, y
    sx, sy = _sign_class(a, b), _sign_class(c, d)
    if sx is None or sy is None:
        ps = [a * c, a * d, b * c, b * d]
        lo, hi = _lo(ps[0]), _hi(ps[0])
        for p in ps[1:]:
            lo, hi = _pt_min(lo, _lo(p)), _pt_max(hi, _hi(p))
        return (lo, hi)
    if sy > 0:
        if sx > 0:
            return (_lo(a * c), _hi(b * d))
        if sx < 0:
            return (_lo(a * d), _hi(b * c))
        return (_lo(a * d), _hi(b * d))
    if sy < 0:
        if sx > 0:
            return (_lo(b * c), _hi(a * d))
        if sx < 0:
            return (_lo(b * d), _hi(a * c))
        return (_lo(b * c), _hi(a * c))
    if sx > 0:
        return (_lo(b * c), _hi(b * d))
    if sx < 0:
        return (_lo(a * d), _hi(a * c))
    return (_pt_min(_lo(a * d), _lo(b * c)), _pt_max(_hi(a * c), _hi(b * d)))


def _imono(fn, x):
    """An increasing function on the interval."""
    return (_lo(fn(x[0])), _hi(fn(x[1])))


_BIG = arb(2) ** 50


def _itrig(x, shift: int):
    """sin (shift 0) or cos (shift 1): the hull of the end values and of every extremum
    pi/2 + k pi (sin) or k pi (cos) that may lie in the interval; [-1, 1] when it is wide."""
    lo, hi = x
    fn = arb.sin if shift == 0 else arb.cos
    if not (abs(lo) < _BIG and abs(hi) < _BIG) or not (hi - lo < 7):
        return (arb(-1), arb(1))
    pi = arb.pi()
    off = pi / 2 if shift == 0 else arb(0)
    k0 = int(float(((lo - off) / pi).mid())) - 2
    k1 = int(float(((hi - off) / pi).mid())) + 2
    a, b = fn(lo), fn(hi)
    out_lo, out_hi = _pt_min(_lo(a), _lo(b)), _pt_max(_hi(a), _hi(b))
    for k in range(k0, k1 + 1):
        e = off + k * pi
        if e < lo or e > hi:   # surely outside
            continue
        v = arb(1 - 2 * (k % 2))   # sin(pi/2 + k pi) = cos(k pi) = (-1)^k
        out_lo, out_hi = _pt_min(out_lo, v), _pt_max(out_hi, v)
    return (_pt_max(out_lo, arb(-1)), _pt_min(out_hi, arb(1)))


def _affine(t):
    """(constant, {variable: coefficient}) in fmpq when t is affine in its variables, else None."""
    tag = t[0]
    if tag == "num":
        return t[1], {}
    if tag == "var":
        return fmpq(0), {t[1]: fmpq(1)}
    if tag in ("add", "sub", "neg"):
        parts = [_affine(c) for c in t[1:]]
        if any(p is None for p in parts):
            return None
        signs = [1] * len(parts) if tag == "add" else ([-1] if tag == "neg" else [1, -1])
        const, coef = fmpq(0), {}
        for s, (c0, cs) in zip(signs, parts):
            const += s * c0
            for v, c in cs.items():
                coef[v] = coef.get(v, fmpq(0)) + s * c
        return const, coef
    if tag == "mul":
        parts = [_affine(c) for c in t[1:]]
        if any(p is None for p in parts) or sum(1 for _, cs in parts if cs) > 1:
            return None
        const, coef = fmpq(1), {}
        for c0, cs in parts:
            if cs:
                coef = {v: c * const for v, c in cs.items()}
                const = const * c0
            else:
                const, coef = const * c0, {v: c * c0 for v, c in coef.items()}
        return const, coef
    if tag == "div":
        num, den = _affine(t[1]), _affine(t[2])
        if num is None or den is None or den[1] or den[0] == 0:
            return None
        return num[0] / den[0], {v: c / den[0] for v, c in num[1].items()}
    return None


def domain_guards(tree, domain: dict) -> dict:
    """Exact lower ends, over ``domain`` ({name: (lo, hi)} in fmpq), of every affine argument of
    sqrt and log.  Evaluated on boxes inside the domain, an argument's enclosure may then be cut
    at that end: at a non-dyadic domain end (x0 >= -1/3 in sqrt(3*x0 + 1)) its Arb enclosure
    otherwise dips below 0 and the bound would be NaN."""
    guards, stack = {}, [tree]
    while stack:
        t = stack.pop()
        if t[0] in ("sqrt", "log"):
            form = _affine(t[1])
            if form is not None and all(v in domain for v in form[1]):
                low = form[0] + sum((c * domain[v][0] if c > 0 else c * domain[v][1])
                                    for v, c in form[1].items())
                guards[id(t)] = low
        if t[0] == "pow":
            stack.append(t[1])
        elif t[0] not in ("num", "var", "pi"):
            stack.extend(t[1:])
    return guards


def _guarded(t, x, guards):
    """x, the enclosure of t's argument, cut below at the argument's exact minimum on the domain."""
    low = guards.get(id(t)) if guards else None
    if low is None:
        return x
    end = arb(low).lower()
    if t[0] == "sqrt" and low >= 0 and not end >= 0:
        end = arb(0)
    return (_pt_max(x[0], end), x[1]) if x[1] >= end else _nan()


def _ieval(t, env, cache, guards=None, consts=None):
    """``consts`` (optional): a dict, kept by the caller per working precision, of the enclosures
    of the constant leaves (num, pi) by node id: each is the same at every evaluation."""
    tag = t[0]
    if tag == "num" or tag == "pi":
        if consts is not None:
            hit = consts.get(id(t))
            if hit is not None:
                return hit
        x = arb(t[1]) if tag == "num" else arb.pi()
        hit = (_lo(x), _hi(x))
        if consts is not None:
            consts[id(t)] = hit
        return hit
    if tag == "var":
        if t[1] not in env:
            raise ArbExprError(f"no value for variable {t[1]!r}")
        hit = cache.get(t[1])
        if hit is None:
            hit = cache[t[1]] = _ends(env[t[1]])
        return hit
    if tag == "pow":
        x = _ieval(t[1], env, cache, guards, consts)
        return _ipow(x, t[2]) if _ok(x) else _nan()
    a = []
    if consts is None:
        for c in t[1:]:
            a.append(_ieval(c, env, cache, guards))
    else:
        get = consts.get
        for c in t[1:]:
            hit = get(id(c))   # a constant leaf seen before: no call
            a.append(_ieval(c, env, cache, guards, consts) if hit is None else hit)
    return _apply(t, a, guards)


def _apply(t, a, guards):
    """The enclosure of operation node ``t`` from its arguments' enclosures ``a`` (not pow)."""
    # A non-finite argument means "undefined or unbounded": the result must not become
    # a number again (e.g. 0 * NaN, or min(NaN, 1)).
    for x in a:
        if not _ok(x):
            return _nan()
    tag = t[0]
    if tag == "add":
        lo, hi = a[0]
        for x in a[1:]:
            lo, hi = _lo(lo + x[0]), _hi(hi + x[1])
        return (lo, hi)
    if tag == "mul":
        r = a[0]
        for x in a[1:]:
            r = _imul2(r, x)
        return r
    if tag == "sub":
        return (_lo(a[0][0] - a[1][1]), _hi(a[0][1] - a[1][0]))
    if tag == "neg":
        return (-a[0][1], -a[0][0])
    if tag == "div":
        r = _ireciprocal(a[1])
        return _imul2(a[0], r) if _ok(r) else r
    if tag in ("min", "max"):
        pick = _pt_min if tag == "min" else _pt_max
        lo, hi = a[0]
        for x in a[1:]:
            lo, hi = pick(lo, x[0]), pick(hi, x[1])
        return (lo, hi)
    if tag == "relu":
        return (_pt_max(a[0][0], arb(0)), _pt_max(a[0][1], arb(0)))
    if tag == "range":  # min(max(x, lo), hi): increasing in each argument
        (l0, h0), (l1, h1), (lx, hx) = a
        return (_pt_min(_pt_max(lx, l0), l1), _pt_min(_pt_max(hx, h0), h1))
    if tag == "abs":
        lo, hi = a[0]
        if lo >= 0:
            return (lo, hi)
        if hi <= 0:
            return (-hi, -lo)
        return (arb(0), _pt_max(-lo, hi))
    if tag == "exp":
        lo, hi = _imono(arb.exp, a[0])
        return (lo if lo > 0 else arb(0), hi)
    if tag == "tanh":
        return _imono(arb.tanh, a[0])
    if tag in ("sqrt", "log"):
        a[0] = _guarded(t, a[0], guards)
        if not _ok(a[0]):
            return a[0]
    if tag == "sqrt":
        if a[0][0] < 0:    # undefined below 0
            return _nan()
        lo, hi = _imono(arb.sqrt, a[0])
        return (lo if lo > 0 else arb(0), hi)
    if tag == "log":
        if not a[0][0] > 0:   # undefined at and below 0
            return _nan()
        return _imono(arb.log, a[0])
    if tag == "sin":
        return _itrig(a[0], 0)
    if tag == "cos":
        return _itrig(a[0], 1)
    raise ArbExprError(f"unknown operation {tag!r}")  # unreachable after _check


# ---------------------------------------------------------------------------------------------
# Forward-mode interval derivatives (``CompiledExpr.bounds_and_gradient``).  Each node gives its
# value enclosure (exactly what ``_ieval`` gives) and, per named input, an enclosure of its partial
# derivative over the box, in the same exact-ended interval form.  Where an argument interval
# straddles a kink (abs, min, max, relu, range) the derivative is the hull of the one-sided
# derivatives of the pieces that may be active: these functions are Lipschitz, so along every
# segment in the box the derivative exists almost everywhere and lies in the hull, which keeps
# the mean-value inequality |f(x) - f(c)| <= sum_i |x_i - c_i| sup |d_i f| true.  A derivative
# that is unbounded on the box (sqrt or log at 0, a divisor or a negative power's base whose
# interval holds 0) and anything undefined is NaN, and a NaN never becomes a number again: the
# value's NaN makes every derivative NaN, and a NaN factor or term makes its product or sum NaN.

_ZERO = (arb(0), arb(0))


def _gadd(x, y):
    if not (_ok(x) and _ok(y)):
        return _nan()
    if x is _ZERO:    # 0 + y: the same exact ends
        return y
    if y is _ZERO:
        return x
    return (_lo(x[0] + y[0]), _hi(x[1] + y[1]))


def _gsub(x, y):
    if not (_ok(x) and _ok(y)):
        return _nan()
    return (_lo(x[0] - y[1]), _hi(x[1] - y[0]))


def _gneg(x):
    return (-x[1], -x[0]) if _ok(x) else _nan()


def _gmul(x, y):
    if not (_ok(x) and _ok(y)):
        return _nan()
    if x is _ZERO or y is _ZERO:   # [0, 0] times a finite interval
        return _ZERO
    return _imul2(x, y)


def _ghull(x, y):
    if not (_ok(x) and _ok(y)):
        return _nan()
    return (_pt_min(x[0], y[0]), _pt_max(x[1], y[1]))


def _gscale(f, g):
    """The chain rule's product: the factor interval f times every derivative in g."""
    return [_gmul(f, gi) for gi in g]


def _gextreme(vals, grads, is_max):
    """Value and derivatives of max (or min) of the arguments.  For max, k0 is an argument with
    the largest lower end m; an argument whose upper end is <= m never exceeds argument k0, so on
    the box the max is that of k0 and the arguments whose upper end is > m, and its derivative
    lies in the hull of theirs (min: the mirror image)."""
    k0 = 0
    for k in range(1, len(vals)):
        if (vals[k][0] > vals[k0][0]) if is_max else (vals[k][1] < vals[k0][1]):
            k0 = k
    if is_max:
        top = vals[k0][0]
        live = [k for k, v in enumerate(vals) if k == k0 or v[1] > top]
        val = (top, vals[0][1])
        for v in vals[1:]:
            val = (top, _pt_max(val[1], v[1]))
    else:
        bot = vals[k0][1]
        live = [k for k, v in enumerate(vals) if k == k0 or v[0] < bot]
        val = (vals[0][0], bot)
        for v in vals[1:]:
            val = (_pt_min(val[0], v[0]), bot)
    g = list(grads[live[0]])
    for k in live[1:]:
        g = [_ghull(a, b) for a, b in zip(g, grads[k])]
    return val, g


def _deval(t, env, cache, guards, index, D, consts=None):
    """(value, [derivative per named input]) of node t; see the comment above."""
    tag = t[0]
    if tag in ("num", "pi"):
        return _ieval(t, env, cache, guards, consts), [_ZERO] * D
    if tag == "var":
        val = _ieval(t, env, cache, guards)
        if not _ok(val):
            return val, [_nan()] * D
        g = [_ZERO] * D
        k = index.get(t[1])
        if k is not None:
            g[k] = (arb(1), arb(1))
        return val, g
    if tag == "pow":
        x, gx = _deval(t[1], env, cache, guards, index, D, consts)
        n = t[2]
        val = _ipow(x, n) if _ok(x) else _nan()
        if not _ok(val):
            return val, [_nan()] * D
        if n == 0:
            return val, [_ZERO] * D
        f = _ipow(x, n - 1)
        f = _gmul((arb(n), arb(n)), f) if _ok(f) else f
        return val, _gscale(f, gx)
    vals, grads = [], []
    for c in t[1:]:
        v, g = _deval(c, env, cache, guards, index, D, consts)
        vals.append(v)
        grads.append(g)
    val = _apply(t, list(vals), guards)
    if not _ok(val):
        return val, [_nan()] * D
    if tag == "add":
        g = grads[0]
        for h in grads[1:]:
            g = [_gadd(a, b) for a, b in zip(g, h)]
        return val, g
    if tag == "sub":
        return val, [_gsub(a, b) for a, b in zip(grads[0], grads[1])]
    if tag == "neg":
        return val, [_gneg(a) for a in grads[0]]
    if tag == "mul":   # (r x)' = r' x + r x', folded left as the value is
        r, g = vals[0], grads[0]
        for x, h in zip(vals[1:], grads[1:]):
            g = [_gadd(_gmul(a, x), _gmul(r, b)) for a, b in zip(g, h)]
            r = _imul2(r, x)
        return val, g
    if tag == "div":   # (a / b)' = (a' - (a / b) b') / b
        rec = _ireciprocal(vals[1])
        return val, [_gmul(_gsub(a, _gmul(val, b)), rec) for a, b in zip(grads[0], grads[1])]
    if tag in ("min", "max"):
        return val, _gextreme(vals, grads, tag == "max")[1]
    if tag == "relu":   # max(u, 0)
        lo, hi = vals[0]
        if lo >= 0:
            return val, list(grads[0])
        if hi <= 0:
            return val, [_ZERO] * D
        return val, [_ghull(a, _ZERO) for a in grads[0]]
    if tag == "range":  # min(max(x, lo), hi)
        inner, gi = _gextreme([vals[2], vals[0]], [grads[2], grads[0]], True)
        return val, _gextreme([inner, vals[1]], [gi, grads[1]], False)[1]
    if tag == "abs":
        lo, hi = vals[0]
        if lo >= 0:
            return val, list(grads[0])
        if hi <= 0:
            return val, [_gneg(a) for a in grads[0]]
        return val, [_ghull(a, _gneg(a)) for a in grads[0]]
    if tag == "exp":
        return val, _gscale(val, grads[0])
    if tag == "tanh":   # 1 - tanh^2
        sq = _ipow(val, 2)
        return val, _gscale((_lo(1 - sq[1]), _hi(1 - sq[0])), grads[0])
    if tag == "sin":
        return val, _gscale(_itrig(vals[0], 1), grads[0])
    if tag == "cos":
        return val, _gscale(_gneg(_itrig(vals[0], 0)), grads[0])
    if tag == "log":    # 1 / u, on the argument cut as the value's
        return val, _gscale(_ireciprocal(_guarded(t, vals[0], guards)), grads[0])
    if tag == "sqrt":   # 1 / (2 sqrt u): unbounded where sqrt u may be 0
        return val, _gscale(_ireciprocal((_lo(2 * val[0]), _hi(2 * val[1]))), grads[0])
    raise ArbExprError(f"unknown operation {tag!r}")  # unreachable after _check


def _exact(x) -> fmpq:
    """An exact rational (int, fmpq, or anything with numerator/denominator) as fmpq."""
    if isinstance(x, (int, fmpq)):
        return fmpq(x)
    return fmpq(int(x.numerator), int(x.denominator))


class CompiledExpr:
    """A validated expression.  ``bounds(env)``: the exact ends (lo, hi), as point arbs, of an
    enclosure of its range (NaN ends when undefined or unbounded); ``expr(env)``: the same as
    one Arb ball; ``bounds_and_gradient(env, names)``: the same ends and enclosures of the
    partial derivatives by the named inputs.  Env values are arb balls, numbers, or (lo, hi) pairs of exact ends (fmpq).
    ``on_domain(domain)`` gives the same expression for boxes inside ``domain`` only, with the
    exact lower ends of its sqrt/log arguments there (``domain_guards``)."""
    __slots__ = ("tree", "guards", "_consts")

    def __init__(self, tree, guards=None):
        self.tree = tree
        self.guards = guards
        self._consts = {}   # working precision -> the constant leaves' enclosures (``_ieval``)

    def _leaves(self):
        c = self._consts.get(ctx.prec)
        if c is None:
            c = self._consts[ctx.prec] = {}
        return c

    def on_domain(self, domain):
        """This expression for boxes inside ``domain``: a list of (lo, hi) per input x0, x1, ..."""
        names = {f"x{i}": (_exact(lo), _exact(hi)) for i, (lo, hi) in enumerate(domain)}
        return CompiledExpr(self.tree, domain_guards(self.tree, names))

    def bounds(self, env):
        return _ieval(self.tree, env, {}, self.guards, self._leaves())

    def bounds_and_gradient(self, env, names):
        """((lo, hi), [(glo_i, ghi_i) for each name in names]): the value enclosure of ``bounds``
        and, per named input, the exact ends of an enclosure of the partial derivative over the
        box (forward mode; hulls of one-sided derivatives at kinks of abs/min/max/relu/range).
        NaN ends mean undefined or unbounded; an input not named has derivative 0."""
        index = {}
        for k, name in enumerate(names):
            if name not in env:
                raise ArbExprError(f"no value for variable {str(name)[:40]!r}")
            index[name] = k
        val, grad = _deval(self.tree, env, {}, self.guards, index, len(index), self._leaves())
        return val, list(grad)

    def __call__(self, env):
        lo, hi = self.bounds(env)
        if not (lo.is_finite() and hi.is_finite()):
            return arb.nan()
        return lo.union(hi)


def arb_compile(obj):
    """Validate once; return a CompiledExpr (callable env -> arb; ``.bounds(env)`` -> exact ends)."""
    return CompiledExpr(_check(obj, "$", 1, [0]))


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
