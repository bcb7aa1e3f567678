"""Safe target expressions: a whitelist parser, an immutable tuple tree, its JSON form.

Targets come from users ("sin(2*x0)*cos(3*x1)") and from certificates, so they are
read by our own tokenizer and recursive-descent (Pratt) parser, never by ``eval``,
``sympify`` or ``parse_expr``; numbers are read exactly as ``Fraction``.

Tree nodes are tuples: ``("num", Fraction)``, ``("var", name)``, ``("pi",)`` or
``(op, child, ...)`` with ``op`` in ``OPS``.  ``range(lo, hi, y)`` means
``min(max(y, lo), hi)``; ``pow``'s exponent is always ``("num", integer)``.

Round trip guarantee: ``parse(to_str(t)) == t`` for every tree ``t`` returned by
``parse`` and more generally for every valid tree without a ``neg`` of a number or
a ``div`` of two numbers (the parser folds those into one exact number), as long
as the printed text stays within the parser's length and nesting limits (printing
may add parentheses).  For any such valid tree, ``parse(to_str(t))`` denotes the
same function.  Chains ``a + b + c`` and ``a*b*c`` become one n-ary node;
parenthesised groups stay separate nodes, so ``(a + b) + c`` is add(add(a, b), c).
"""
from __future__ import annotations

import re
from fractions import Fraction

import mpmath

MAX_LENGTH = 10_000      # characters of expression text
MAX_DEPTH = 200          # nodes on the longest root-to-leaf path
MAX_NODES = 100_000      # nodes of a tree read from JSON
MAX_EXPONENT = 1024      # |n| in x^n: larger powers only overflow and slow sympy down
MAX_NUM_BITS = 8192      # numerator and denominator sizes of any number
MAX_NUMBER_CHARS = 2600  # one numeric literal: room for any number within MAX_NUM_BITS
MAX_JSON_NUMBER_CHARS = 5000

# op -> (min arity, max arity or None for n-ary)
OPS = {
    "add": (2, None), "mul": (2, None), "sub": (2, 2), "neg": (1, 1), "div": (2, 2),
    "pow": (2, 2), "sin": (1, 1), "cos": (1, 1), "exp": (1, 1), "log": (1, 1),
    "sqrt": (1, 1), "tanh": (1, 1), "abs": (1, 1), "min": (1, None), "max": (1, None),
    "relu": (1, 1), "range": (3, 3),
}
# names callable in text: every op spelled as a function
FUNCTIONS = ("sin", "cos", "exp", "log", "sqrt", "tanh", "abs", "min", "max", "relu", "range")
RESERVED = frozenset(OPS) | {"pi", "num", "var", "const"}

_DEFAULT_VAR = re.compile(r"x(0|[1-9][0-9]{0,3})\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_JSON_NUM = re.compile(r"-?[0-9]+(/[0-9]+)?\Z")


class ExprError(ValueError):
    """A target expression that is malformed, unsafe, or outside the whitelist."""


# ---------------------------------------------------------------- tokenizer

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/^(),])
""", re.VERBOSE | re.ASCII)


def _tokens(text: str) -> list:
    """Split into (kind, text, position) triples; a foreign character ends the list."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            # reported when the parser reaches it, so "__import__('os')" names the function
            out.append(("bad", text[pos], pos))
            break
        kind = m.lastgroup
        if kind != "ws":
            tok = m.group()
            out.append((kind, "^" if tok == "**" else tok, pos))
        pos = m.end()
    out.append(("end", "", len(text)))
    return out


def _found(kind: str, tok: str) -> str:
    if kind == "end":
        return "end of input"
    return f"character {tok!r}" if kind == "bad" else repr(tok)


def _check_num(q: Fraction, where: str) -> Fraction:
    if q.numerator.bit_length() > MAX_NUM_BITS or q.denominator.bit_length() > MAX_NUM_BITS:
        raise ExprError(f"number too large {where}")
    return q


def _literal(tok: str, pos: int) -> Fraction:
    """Exact value of a decimal literal ("0.125" -> 1/8, "1e-3" -> 1/1000)."""
    if len(tok) > MAX_NUMBER_CHARS:
        raise ExprError(f"number too long at position {pos}")
    mant, _, exp = tok.lower().partition("e")
    whole, _, frac = mant.partition(".")
    e = int(exp) if exp else 0
    if abs(e) > 1000:
        raise ExprError(f"exponent out of range in {tok!r} at position {pos}")
    q = Fraction(int((whole or "0") + frac), 10 ** len(frac)) * Fraction(10) ** e
    return _check_num(q, f"at position {pos}")


# ---------------------------------------------------------------- parser

_INFIX = {"+": (1, 2, "add"), "-": (1, 2, "sub"), "*": (3, 4, "mul"), "/": (3, 4, "div"),
          "^": (7, 6, "pow")}  # (left binding power, right binding power, op); ^ is right-assoc
_PREFIX_BP = 5  # unary minus binds looser than ^ (-x^2 = -(x^2)) and tighter than * /


class _Parser:
    def __init__(self, text: str, variables):
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0
        self.variables = variables

    def peek(self):
        return self.toks[self.i]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str):
        kind, tok, pos = self.take()
        if kind != "op" or tok != text:
            raise ExprError(f"expected {text!r} but found {_found(kind, tok)} at position {pos}")

    def expr(self, min_bp: int = 0):
        """Pratt loop: one Python frame per nesting level keeps deep input cheap."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested too deeply at position {self.peek()[2]}")
        left = self.prefix()
        chain = None  # the n-ary op that this loop built `left` with (for flattening)
        while True:
            kind, tok, pos = self.peek()
            if kind != "op" or tok not in _INFIX:
                break
            lbp, rbp, op = _INFIX[tok]
            if lbp < min_bp:
                break
            self.take()
            right = self.expr(rbp)
            if op in ("add", "mul") and chain == op:
                left = left + (right,)
            else:
                left = _combine(op, left, right, pos)
            chain = op if op in ("add", "mul") else None
        self.depth -= 1
        return left

    def prefix(self):
        kind, tok, pos = self.take()
        if kind == "op" and tok in "-+":
            operand = self.expr(_PREFIX_BP)
            return _negate(operand) if tok == "-" else operand
        if kind == "num":
            return ("num", _literal(tok, pos))
        if kind == "op" and tok == "(":
            inner = self.expr(0)
            self.expect(")")
            return inner
        if kind == "name":
            return self.name(tok, pos)
        raise ExprError(f"unexpected {_found(kind, tok)} at position {pos}")

    def name(self, tok: str, pos: int):
        is_call = self.peek()[1] == "(" and self.peek()[0] == "op"
        if tok in FUNCTIONS:
            if not is_call:
                raise ExprError(f"function {tok!r} at position {pos} needs arguments in parentheses")
            self.take()
            args = [self.expr(0)]
            while self.peek()[1] == ",":
                self.take()
                args.append(self.expr(0))
            self.expect(")")
            lo, hi = OPS[tok]
            if len(args) < lo or (hi is not None and len(args) > hi):
                want = f"{lo}" if lo == hi else f"at least {lo}"
                raise ExprError(f"{tok} expects {want} argument(s), got {len(args)} at position {pos}")
            return (tok,) + tuple(args)
        known = tok in self.variables if self.variables is not None else _DEFAULT_VAR.match(tok)
        if is_call:
            what = "is not a function" if known or tok == "pi" else "is an unknown function"
            raise ExprError(f"{tok!r} at position {pos} {what}")
        if tok == "pi":
            return ("pi",)
        if not known:
            raise ExprError(f"unknown identifier {tok!r} at position {pos}")
        return ("var", tok)


def _negate(t):
    """Unary minus, folded into a number literal so "-0.5" is one exact number."""
    if t[0] == "num":
        return ("num", -t[1])
    return ("neg", t)


def _combine(op: str, left, right, pos: int):
    if op == "div":
        if right[0] == "num" and right[1] == 0:
            raise ExprError(f"division by zero at position {pos}")
        if left[0] == "num" and right[0] == "num":
            return ("num", _check_num(left[1] / right[1], f"at position {pos}"))
    if op == "pow":
        if right[0] != "num" or right[1].denominator != 1:
            raise ExprError(f"exponent at position {pos} must be an integer literal (use sqrt, exp, log)")
        n = right[1]
        if abs(n) > MAX_EXPONENT:
            raise ExprError(f"exponent {n} at position {pos} exceeds {MAX_EXPONENT} in magnitude")
        if n < 0 and left[0] == "num" and left[1] == 0:
            raise ExprError(f"division by zero (0 to a negative power) at position {pos}")
    return (op, left, right)


def parse(text: str, variables: tuple | None = None) -> tuple:
    """Parse a target string into a tree; variables default to x0, x1, ... .

    Raises ExprError (one line, naming the offending item and its position).
    """
    if not isinstance(text, str):
        raise ExprError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    if variables is not None:
        variables = tuple(variables)
        for v in variables:
            if not isinstance(v, str) or not _NAME.match(v) or v in RESERVED:
                raise ExprError(f"invalid variable name {v!r}")
    p = _Parser(text, variables)
    tree = p.expr(0)
    kind, tok, pos = p.peek()
    if kind != "end":
        raise ExprError(f"unexpected {_found(kind, tok)} at position {pos}")
    if depth(tree) > MAX_DEPTH:
        raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels")
    return tree


def depth(tree) -> int:
    """Nodes on the longest root-to-leaf path (iterative, so any input is safe)."""
    best, stack = 0, [(tree, 1)]
    while stack:
        t, d = stack.pop()
        best = max(best, d)
        if t[0] not in ("num", "var", "pi"):
            stack.extend((c, d + 1) for c in t[1:])
    return best


# ---------------------------------------------------------------- JSON form

def _rat_str(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def to_json(tree):
    """JSON-ready form: {"num": "p/q"}, {"var": name}, {"const": "pi"}, {"op", "args"}."""
    tag = tree[0]
    if tag == "num":
        return {"num": _rat_str(tree[1])}
    if tag == "var":
        return {"var": tree[1]}
    if tag == "pi":
        return {"const": "pi"}
    return {"op": tag, "args": [to_json(c) for c in tree[1:]]}


def from_json(obj, variables=None) -> tuple:
    """Strictly validate a JSON expression and return its tree; never evaluates anything.

    Numbers must be canonical "p" or "p/q" strings (lowest terms, q > 1, no leading
    zeros, no "-0"), so that ``to_json(from_json(obj)) == obj`` for every accepted obj.
    ``variables``, when given, lists the names allowed.
    """
    count = [0]
    allowed = None if variables is None else set(variables)
    return _from_json(obj, "$", 1, count, allowed)


def _from_json(obj, path: str, d: int, count: list, allowed):
    if d > MAX_DEPTH:
        raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels at {path}")
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ExprError(f"expression has more than {MAX_NODES} nodes")
    if not isinstance(obj, dict):
        raise ExprError(f"expected an object at {path}, got {type(obj).__name__}")
    keys = set(obj)
    if keys == {"num"}:
        return ("num", _json_number(obj["num"], path))
    if keys == {"var"}:
        name = obj["var"]
        if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
            raise ExprError(f"invalid variable name {name!r} at {path}")
        if allowed is not None and name not in allowed:
            raise ExprError(f"unknown variable {name!r} at {path}")
        return ("var", name)
    if keys == {"const"}:
        if obj["const"] != "pi":
            raise ExprError(f"unknown constant {obj['const']!r} at {path}")
        return ("pi",)
    if keys != {"op", "args"}:
        raise ExprError(f"unexpected keys {sorted(map(str, keys))} at {path}")
    op, args = obj["op"], obj["args"]
    if not isinstance(op, str) or op not in OPS:
        raise ExprError(f"unknown operation {op!r} at {path}")
    if not isinstance(args, list):
        raise ExprError(f"args of {op} must be a list at {path}")
    lo, hi = OPS[op]
    if len(args) < lo or (hi is not None and len(args) > hi):
        raise ExprError(f"{op} with {len(args)} argument(s) at {path}")
    kids = tuple(_from_json(a, f"{path}.args[{i}]", d + 1, count, allowed) for i, a in enumerate(args))
    if op == "pow":
        n = kids[1]
        if n[0] != "num" or n[1].denominator != 1 or abs(n[1]) > MAX_EXPONENT:
            raise ExprError(f"pow exponent must be an integer number of magnitude <= {MAX_EXPONENT} at {path}")
    return (op,) + kids


def _json_number(s, path: str) -> Fraction:
    if not isinstance(s, str) or len(s) > MAX_JSON_NUMBER_CHARS or not _JSON_NUM.match(s):
        raise ExprError(f"malformed number {str(s)[:40]!r} at {path}")
    num, _, den = s.partition("/")
    try:
        p, q = int(num), int(den) if den else 1
    except ValueError:  # more digits than Python converts
        raise ExprError(f"number too long at {path}") from None
    if q == 0:
        raise ExprError(f"zero denominator at {path}")
    value = _check_num(Fraction(p, q), f"at {path}")
    if _rat_str(value) != s:  # one number, one spelling: keeps canonical hashes unique
        raise ExprError(f"number {s[:40]!r} at {path} is not in lowest terms "
                        f"(write {_rat_str(value)[:40]!r})")
    return value


# ---------------------------------------------------------------- printing

_ADD, _MUL, _NEG, _POW, _ATOM = 1, 2, 3, 4, 5
_LEVEL = {"add": _ADD, "sub": _ADD, "mul": _MUL, "div": _MUL, "neg": _NEG, "pow": _POW}
_SYMBOL = {"add": " + ", "sub": " - ", "mul": "*", "div": "/"}


def _num_text(q: Fraction):
    """(text, level) of an exact number: integers and short decimals as literals."""
    sign, a = ("-" if q < 0 else ""), abs(q)
    if a.denominator == 1:
        text = str(a.numerator)
    else:
        d, twos, fives = a.denominator, 0, 0
        while d % 2 == 0:
            d, twos = d // 2, twos + 1
        while d % 5 == 0:
            d, fives = d // 5, fives + 1
        if d != 1 or max(twos, fives) > 30:
            return f"({sign}{a.numerator}/{a.denominator})", _ATOM
        k = max(twos, fives)
        digits = str(a.numerator * 10 ** k // a.denominator).rjust(k + 1, "0")
        text = f"{digits[:-k]}.{digits[-k:]}"
    return (sign + text, _NEG) if sign else (text, _ATOM)


def _show(t):
    tag = t[0]
    if tag == "num":
        return _num_text(t[1])
    if tag == "var":
        return t[1], _ATOM
    if tag == "pi":
        return "pi", _ATOM
    if tag in _SYMBOL:
        level = _LEVEL[tag]
        parts = []
        for i, c in enumerate(t[1:]):
            text, cl = _show(c)
            if i == 0:
                # "a - b + c" reads back as add(sub(a, b), c); only same-op n-ary nesting
                # would be flattened and so needs parentheses.
                wrap = cl < level or (c[0] == tag and tag in ("add", "mul"))
            else:
                wrap = cl <= level or cl == _NEG  # "x0*(-y)", also for readability
            parts.append(f"({text})" if wrap else text)
        return _SYMBOL[tag].join(parts), level
    if tag == "neg":
        text, cl = _show(t[1])
        return ("-" + (f"({text})" if cl < _POW else text)), _NEG
    if tag == "pow":
        text, cl = _show(t[1])
        n = t[2][1]
        exp = str(n) if n >= 0 else f"({n})"
        return (f"({text})" if cl < _ATOM else text) + "^" + exp, _POW
    return f"{tag}({', '.join(_show(c)[0] for c in t[1:])})", _ATOM


def to_str(tree) -> str:
    """Readable text that ``parse`` reads back (see the module docstring for the guarantee)."""
    return _show(tree)[0]


# ---------------------------------------------------------------- other views

def variables(tree) -> set:
    """Names of the variables that occur in the tree."""
    out, stack = set(), [tree]
    while stack:
        t = stack.pop()
        if t[0] == "var":
            out.add(t[1])
        elif t[0] not in ("num", "pi"):
            stack.extend(t[1:])
    return out


def to_sympy(tree, symbols: dict | None = None):
    """The tree as a sympy expression, built directly (no parsing).

    Variables missing from ``symbols`` become real sympy Symbols of the same name.
    sympy is imported here, not at module level: only LaTeX and z3 audits need it.
    """
    import sympy
    symbols = {} if symbols is None else symbols
    fns = {"sin": sympy.sin, "cos": sympy.cos, "exp": sympy.exp, "log": sympy.log,
           "sqrt": sympy.sqrt, "tanh": sympy.tanh, "abs": sympy.Abs}

    def go(t):
        tag = t[0]
        if tag == "num":
            return sympy.Rational(t[1].numerator, t[1].denominator)
        if tag == "var":
            if t[1] not in symbols:
                symbols[t[1]] = sympy.Symbol(t[1], real=True)
            return symbols[t[1]]
        if tag == "pi":
            return sympy.pi
        a = [go(c) for c in t[1:]]
        if tag == "add":
            return sympy.Add(*a)
        if tag == "mul":
            return sympy.Mul(*a)
        if tag == "sub":
            return a[0] - a[1]
        if tag == "neg":
            return -a[0]
        if tag == "div":
            return a[0] / a[1]
        if tag == "pow":
            return a[0] ** a[1]
        if tag == "min":
            return sympy.Min(*a)
        if tag == "max":
            return sympy.Max(*a)
        if tag == "relu":
            return sympy.Max(a[0], 0)
        if tag == "range":
            return sympy.Min(sympy.Max(a[2], a[0]), a[1])
        return fns[tag](a[0])

    return go(tree)


def mp_eval(tree, point: dict):
    """Reference value at a point with the current mpmath precision.

    Outside the real domain (log of x <= 0, sqrt of x < 0, division by zero, 0 to a
    negative power) the value is mpmath NaN: never a complex number, never an exception.
    """
    nan = mpmath.mpf("nan")

    def val(x):
        if isinstance(x, Fraction):
            return mpmath.mpf(x.numerator) / x.denominator
        return mpmath.mpf(x)

    def go(t):
        tag = t[0]
        if tag == "num":
            return val(t[1])
        if tag == "var":
            return val(point[t[1]])
        if tag == "pi":
            return +mpmath.mp.pi
        a = [go(c) for c in t[1:]]
        if any(mpmath.isnan(x) for x in a):
            return nan
        if tag == "add":
            return mpmath.fsum(a)
        if tag == "mul":
            r = a[0]
            for x in a[1:]:
                r = r * x
            return r
        if tag == "sub":
            return a[0] - a[1]
        if tag == "neg":
            return -a[0]
        if tag == "div":
            return nan if a[1] == 0 else a[0] / a[1]
        if tag == "pow":
            n = int(t[2][1])
            if n < 0 and a[0] == 0:
                return nan
            return mpmath.mpf(1) if n == 0 else a[0] ** n
        if tag == "log":
            return mpmath.log(a[0]) if a[0] > 0 else nan
        if tag == "sqrt":
            return mpmath.sqrt(a[0]) if a[0] >= 0 else nan
        if tag == "min":
            return min(a)
        if tag == "max":
            return max(a)
        if tag == "relu":
            return max(a[0], mpmath.mpf(0))
        if tag == "range":
            return min(max(a[2], a[0]), a[1])
        return _MP_FN[tag](a[0])

    return go(tree)


_MP_FN = {"sin": mpmath.sin, "cos": mpmath.cos, "exp": mpmath.exp, "tanh": mpmath.tanh,
          "abs": mpmath.fabs}
