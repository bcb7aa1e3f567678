"""What every reader shares: the import error, exact arrays, and the limits on what is read.

A float is an exact rational: ``exact(a)`` turns a NumPy array into an object array of
``Fraction`` (floats) and ``int`` (integers) without rounding anything, and refuses NaN and
infinities, naming the tensor.  Nothing here executes code from a file.
"""
from __future__ import annotations

import os
import stat
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
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise ImportFailure(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
                "not a regular file"
            raise ImportFailure(f"cannot read {path}: it is {kind}")
        if st.st_size > max_bytes:
            raise ImportFailure(f"cannot read {path}: larger than the limit of {max_bytes >> 20} MiB")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as e:
        raise ImportFailure(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise ImportFailure(f"cannot read {path}: larger than the limit of {max_bytes >> 20} MiB")
    if not data:
        raise ImportFailure(f"{path} is empty")
    return data
