"""The ``attncert`` command line: the parser, built from one module per subcommand, and ``main``.

Exit codes: 0 the claim holds, 1 it does not hold (or a certificate is invalid),
2 a tool or input error.  Every error is one line on stderr, never a traceback.
Heavy modules are imported inside the commands so that ``attncert check`` starts fast.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from .common import EXIT_ERROR, EXIT_OK, UserError

# One module per subcommand, in the order ``attncert --help`` lists them.  Each has
# ``add_command(subparsers)`` and its ``cmd_*`` function, and keeps its top-level imports
# light (heavy work is imported inside the command function).
COMMAND_MODULES: tuple = tuple(f"certificates.cli.{m}" for m in (
    "list", "build", "eval", "certify", "check", "demo",
    "audit", "plot", "spec_audit", "export", "tune", "certify_lp", "info", "import_model"))


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("attncert")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="attncert", description="Certified softmax-attention constructions.",
                                epilog="example: attncert demo    (build, certify and check a ramp in a few seconds)")
    p.add_argument("--version", action="version", version=f"attncert {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_command(sub)
    return p


def _terminate(signum, frame):
    """SIGTERM is handled like Ctrl-C: a running certify writes its checkpoint first."""
    raise KeyboardInterrupt


def main(argv=None) -> int:
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        try:
            signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: leave the default
            pass
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed one usage line
        return EXIT_ERROR if e.code else EXIT_OK
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("attncert: interrupted; nothing was written", file=sys.stderr)
        return EXIT_ERROR
    except UserError as e:
        print(f"attncert: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, OSError, ArithmeticError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"attncert: error: {msg}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # never a traceback: one line, exit 2
        print(f"attncert: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
