"""The independent checker: re-derives every bound of a certificate in Arb balls, sharing
no code with the search in ``verify`` and importing neither ``verify`` nor ``constructions``.

``core`` and ``arbexpr`` are its core (error and report types, exact rationals, the Arb
pieces every path shares); each kind of evidence has one module that imports only the core
(``paving``, ``grid``, ``layered``, ``analytic``, ``mesh``, ``partition``, ``lp``), and
``document`` checks a whole certificate by handing each part to its module.

This file stays empty: ``certificates.check`` is also the public API function, which
``certificates/__init__`` binds after loading this package, so import the modules by
their full names (``from certificates.check.document import check_doc``).
"""
