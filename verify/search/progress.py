"""Progress bars on stderr (tqdm) for long work; off when stderr is not a terminal."""
from __future__ import annotations

import sys


def progress_bar(enabled=None, **kw):
    """A tqdm bar on stderr; ``enabled=None`` means "when stderr is a TTY"."""
    from tqdm import tqdm
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True, **kw)
