"""What every reader shares: the import error, exact arrays, and the limits on what is read.

A float is an exact rational: ``exact(a)`` turns a NumPy array into an object array of
``Fraction`` (floats) and ``int`` (integers) without rounding anything, and refuses NaN and
infinities, naming the tensor.  Nothing here executes code from a file.
"""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

MAX_FILE_BYTES = 2 << 30         # the largest model file read (protobuf's own limit is 2 GiB)
MAX_ELEMENTS = 50_000_000         # tensor elements in one file
MAX_SYMBOLIC = 20_000_000         # entries (elements x width) of one symbolic tensor


class ImportFailure(ValueError):
    """The model cannot be mapped exactly onto the network model (exit code 2).

    ``op`` and ``node`` name where, ``why`` says why; ``str()`` is one line."""

    def __init__(self, why: str, op: str | None = None, node: str | None = None):
        self.why, self.op, self.node = why, op, node
        where = ""
        if op is not None:
            where = f"op {op}" + (f" (node {node!r})" if node else "") + ": "
        super().__init__(f"cannot import: {where}{why}")


def fail(why, op=None, node=None):
    raise ImportFailure(why, op, node)


def _frac(v):
    return Fraction(v)


def exact(a, name: str = "tensor") -> np.ndarray:
    """Object array of exact values (Fraction for floats, int for integers and bools)."""
    a = np.asarray(a)
    if a.dtype == object:
        return a
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))[0]
            v = a[tuple(bad)]
            raise ImportFailure(f"{name} holds {'NaN' if np.isnan(v) else 'an infinite value'} at index "
                                f"{tuple(int(i) for i in bad)}; only finite weights have an exact value")
        vals = [Fraction(v) for v in a.astype(np.float64).ravel().tolist()]
    elif a.dtype.kind in "iub":
        vals = [int(v) for v in a.ravel().tolist()]
    else:
        raise ImportFailure(f"{name} has dtype {a.dtype}, which is not a number")
    out = np.empty(len(vals), dtype=object)
    out[:] = vals
    return out.reshape(a.shape)


def zeros(shape) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    out.fill(0)
    return out


def ones(shape) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    out.fill(1)
    return out


def identity(n: int) -> np.ndarray:
    out = zeros((n, n))
    for i in range(n):
        out[i, i] = 1
    return out


def all_zero(a) -> bool:
    return a is None or not np.any(np.asarray(a, dtype=object) != 0)


def check_finite_array(a, name):
    """Refuse NaN or infinite values in a float array (a weight or a constant), naming it."""
    a = np.asarray(a)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        exact(a, name)   # raises with the index


def frac(v) -> Fraction:
    return v if isinstance(v, Fraction) else Fraction(v)


def rows_of(m) -> tuple:
    """A 2-D object array as the network model's tuple of tuples of Fractions."""
    return tuple(tuple(frac(v) for v in row) for row in np.asarray(m, dtype=object).tolist())


def read_model_bytes(path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file (a FIFO, device or folder is refused at once, never waited on)."""
    from constructions.files import read_regular
    data = read_regular(path, max_bytes, ImportFailure, "model")
    if not data:
        raise ImportFailure(f"{os.fspath(path)} is empty")
    return data