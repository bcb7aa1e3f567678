"""The ``attncert`` command line.

``main.py`` builds the parser and runs a command (the console script is
``certificates.cli.main:main``; ``python -m certificates.cli`` does the same).
``common.py`` holds what the commands share: exit codes, ``UserError`` and the output
and argument helpers.  Every other module is one subcommand, named after it
(``spec_audit.py`` is ``attncert spec-audit``), with ``add_command(subparsers)`` and its
``cmd_*`` function; no command module imports another.
"""
