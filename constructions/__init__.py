"""Exact symbolic weight specifications, one module per construction.

``build(name, **params)`` parses every parameter exactly and returns an immutable
``Construction``; ``REGISTRY`` lists what is available.
"""
from __future__ import annotations

from .base import REGISTRY, Construction, Param, Spec, resolve_params
from .exact import ParameterError, parse_rational
from . import ramp as _ramp  # noqa: F401  (registers itself)
from . import ramp_seq as _ramp_seq  # noqa: F401
from . import ramp_multihead as _ramp_multihead  # noqa: F401
from . import relu_net as _relu_net  # noqa: F401
from . import icl_gd as _icl_gd  # noqa: F401
from . import max_affine as _max_affine  # noqa: F401  (registers itself)


def build(name: str, **params) -> Construction:
    """Build a registered construction from exact parameters (ints, Fractions, strings)."""
    if name not in REGISTRY:
        raise ParameterError(f"unknown construction {name!r} (known: {', '.join(sorted(REGISTRY))})")
    spec = REGISTRY[name]
    return spec.builder(**resolve_params(spec, params))


__all__ = ["build", "REGISTRY", "Construction", "Param", "Spec", "ParameterError", "parse_rational"]
