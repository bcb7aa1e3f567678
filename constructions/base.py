"""The immutable Construction record and the registry of builders."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

from .exact import ParameterError, parse_int, parse_rational
from .formula import Formula, lift
from .network import Network


@dataclass(frozen=True)
class Construction:
    """An exactly specified network, its target, its domain and its a-priori error bound.

    ``target`` holds one safe expression tree (see ``constructions.expr``) per network
    output; ``domain`` is a box of rational (lo, hi) pairs, one per input ``x0, x1, ...``.
    ``apriori_bound`` is an exact closed form (a ``Formula``; an exact number is lifted to
    one), or None where no a-priori bound is known.
    """
    name: str
    paper: str
    theorem: str
    params: tuple  # ((name, exact value), ...) in declaration order
    network: Network
    target: tuple
    domain: tuple
    apriori_bound: Formula | None
    notes: tuple = ()
    chain: tuple = ()  # optional ((label, expression tree), ...): intermediate functions g whose
    #                    terms |target - g| and |g - network| a certificate reports (one output)
    meta: tuple = ()  # ((key, value), ...) hints for the certifier, e.g. ("grid", ...) for [MAP]

    def __post_init__(self):
        if self.apriori_bound is not None:
            object.__setattr__(self, "apriori_bound", lift(self.apriori_bound))

    @property
    def inputs(self) -> tuple:
        return tuple(f"x{i}" for i in range(len(self.domain)))

    def param_dict(self) -> dict:
        return dict(self.params)

    def apriori_float(self) -> float:
        """The a-priori bound rounded up to a float (inf when there is none), for display."""
        if self.apriori_bound is None:
            return float("inf")
        import mpmath
        with mpmath.workdps(30):
            v = self.apriori_bound.value()
        return float(v) * (1 + 1e-12)

    def apriori_text(self) -> str:
        """The exact a-priori bound as text ("oo" when there is none)."""
        return "oo" if self.apriori_bound is None else str(self.apriori_bound)


@dataclass(frozen=True)
class Param:
    """A declared parameter: name, kind ("rational", "int" or "expr"), default, help, and ``shown``:
    how ``list`` states a default that is derived from other parameters (e.g. "-B")."""
    name: str
    kind: str
    default: object
    help: str
    shown: str = ""

    def parse(self, value):
        if self.kind == "int":
            return parse_int(value)
        if self.kind == "rational":
            return parse_rational(value)
        if self.kind == "expr":
            if not isinstance(value, str):
                raise ParameterError(f"{self.name}: expected an expression string")
            return value
        if self.kind == "choice":
            return str(value)
        raise AssertionError(self.kind)


MAX_TOKENS = 400_000   # default limit on tokens (anchors) a construction may have; raise with --max-tokens


@dataclass(frozen=True)
class Spec:
    """A registered construction: its builder, declared parameters, and ``size``: the number of
    tokens (anchors) it will have, computed from the parsed parameters before anything is built."""
    name: str
    summary: str
    paper: str
    theorem: str
    params: tuple
    builder: Callable
    symbolic: Callable | None = None
    size: Callable | None = None


def check_size(spec: Spec, params: dict, max_tokens: int = MAX_TOKENS) -> None:
    """Refuse, before building, a construction whose token count passes ``max_tokens``."""
    if spec.size is None:
        return
    n = spec.size(params)
    if n > max_tokens:
        raise ParameterError(f"{spec.name}: {n} tokens is more than the limit {max_tokens} "
                             f"(raise it with --max-tokens)")


REGISTRY: dict = {}


def register(spec: Spec) -> Spec:
    REGISTRY[spec.name] = spec
    return spec


def resolve_params(spec: Spec, given: dict) -> dict:
    """Parse user values exactly, fill defaults, reject unknown names."""
    known = {p.name: p for p in spec.params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ParameterError(f"{spec.name}: unknown parameter {unknown[0]!r} "
                             f"(known: {', '.join(known)})")
    out = {}
    for p in spec.params:
        raw = given.get(p.name, p.default)
        if raw is None:
            raise ParameterError(f"{spec.name}: parameter {p.name!r} is required")
        try:
            out[p.name] = p.parse(raw)
        except ParameterError as e:
            raise ParameterError(f"{spec.name}: {p.name}: {e}") from None
    return out
