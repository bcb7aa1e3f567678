"""Exact symbolic weight specifications, one module per construction.

``build(name, **params)`` parses every parameter exactly and returns an immutable
``Construction``; ``REGISTRY`` lists what is available.
"""
from __future__ import annotations

from .base import MAX_TOKENS, REGISTRY, Construction, Param, Spec, check_size, resolve_params
from .exact import ParameterError, parse_rational
from . import ramp as _ramp  # noqa: F401  (registers itself)
from . import ramp_seq as _ramp_seq  # noqa: F401
from . import ramp_multihead as _ramp_multihead  # noqa: F401
from . import relu_net as _relu_net  # noqa: F401
from . import icl_gd as _icl_gd  # noqa: F401
from . import max_affine as _max_affine  # noqa: F401  (registers itself)


def build(name: str, max_tokens: int = MAX_TOKENS, **params) -> Construction:
    """Build a registered construction from exact parameters (ints, Fractions, strings).

    Its size is estimated from the parameters first: over ``max_tokens`` tokens it is refused."""
    if name not in REGISTRY:
        raise ParameterError(f"unknown construction {name!r} (known: {', '.join(sorted(REGISTRY))})")
    spec = REGISTRY[name]
    resolved = resolve_params(spec, params)
    check_size(spec, resolved, max_tokens)
    return spec.builder(**resolved)


__all__ = ["build", "MAX_TOKENS", "REGISTRY", "Construction", "Param", "Spec", "ParameterError", "parse_rational"]
