"""What the ``attncert`` commands share: exit codes, the one-line user error, and the
helpers that read ``--set``/``--eps``/``--backend`` and print text or JSON.

Exit codes: 0 the claim holds, 1 it does not hold (or a certificate is invalid),
2 a tool or input error.  Kept light: nothing heavy is imported at module level.
"""
from __future__ import annotations

import json

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


class UserError(Exception):
    """Bad input: reported as one line with exit code 2."""


def command(sub, name: str, help: str, example: str):
    """A subcommand's parser whose help ends with an example."""
    import argparse
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                          epilog="example:\n  " + example.replace("\n", "\n  "),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_format(sp) -> None:
    """The ``--format text|json`` option that most commands take."""
    sp.add_argument("--format", choices=["text", "json"], default="text",
                    help="text for people (default) or json for scripts, on stdout")


def sets(pairs) -> dict:
    """``--set NAME=VALUE`` pairs as a dict of strings."""
    out = {}
    for item in pairs or ():
        if "=" not in item:
            raise UserError(f"--set expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def add_construction(sp) -> None:
    """The construction name, its ``--set`` parameters and the size limit, for commands that build one."""
    sp.add_argument("name", help="construction name (see attncert list)")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                    help="an exact parameter value, e.g. --set p=41 --set kappa=27/10 (repeatable)")
    sp.add_argument("--max-tokens", type=int, default=None, metavar="N",
                    help="refuse constructions with more than N tokens, estimated before building "
                         "(default 400000)")


def construction_from_args(args):
    """The construction named by ``args.name`` with the ``--set`` parameters, within ``--max-tokens``."""
    import constructions
    limit = getattr(args, "max_tokens", None)
    if limit is not None and limit < 1:
        raise UserError("--max-tokens must be at least 1")
    return constructions.build(args.name, **({} if limit is None else {"max_tokens": limit}), **sets(args.set))


def parse_eps(text):
    """``--eps`` as a positive exact rational."""
    from constructions.exact import ParameterError, parse_rational
    try:
        eps = parse_rational(text)
    except ParameterError as e:
        raise UserError(f"--eps: {e}") from None
    if eps <= 0:
        raise UserError("--eps must be positive")
    return eps


def backend(name):
    """The array module for ``--backend``/``--device``: numpy, or cupy when a device answers."""
    if name == "numpy":
        import numpy
        return numpy
    if name == "cupy":
        try:
            import cupy
            cupy.zeros(1) + 1
        except Exception as e:  # no device, no driver, or no cupy
            raise UserError(f"cupy backend unavailable: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return cupy
    raise UserError(f"unknown backend {name!r}")


def positive_finite(value: float, flag: str) -> float:
    """A flag that must be a finite positive number (no nan, no inf)."""
    if value is not None and not (value > 0 and value != float("inf")):
        raise UserError(f"{flag} must be a finite positive number, got {value!r}")
    return value


def writable_output(path) -> None:
    """Refuse an output path that cannot be written, before any work starts."""
    import os
    if path is None:
        return
    if os.path.isdir(path):
        raise UserError(f"output {path} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output folder {parent} is not writable")


def decimal_point(point) -> str:
    """An exact point in decimal, with its exact value after it: x = [0.25, -1.5] (exact 1/4, -3/2)."""
    dec = ", ".join(f"{float(v):.10g}" for v in point)
    exact = ", ".join(str(v) for v in point)
    return f"x = [{dec}]" + ("" if dec == exact else f" (exact {exact})")


def apriori_phrase(construction) -> str:
    """The a-priori bound for a message: what it is, or that there is none."""
    v = construction.apriori_float()
    if v == float("inf"):
        return "no a-priori bound is known for this construction"
    return f"a-priori bound {v:.6g} (the construction's closed form; not machine-checked)"


def printable(text) -> str:
    """A string from a file, safe for a terminal: control characters (ANSI escapes, newlines,
    carriage returns, ...) are shown as \\xNN / \\uNNNN escapes instead of acting."""
    import unicodedata
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def json_safe(obj):
    """Non-finite floats (e.g. no a-priori bound: inf) become null, so the output is valid JSON."""
    if isinstance(obj, float) and obj != obj or obj in (float("inf"), float("-inf")):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def emit(args, text: str, obj) -> None:
    """Print ``text``, or ``obj`` as JSON with ``--format json``."""
    if getattr(args, "format", "text") == "json":
        print(json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False))
    else:
        print(text)
