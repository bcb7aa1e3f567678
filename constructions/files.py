"""Writing files atomically, and reading files that may come from a stranger: regular files only, their size checked before
any byte is read, and JSON objects that repeat a key refused.

A FIFO, a device (``/dev/zero``) or a directory is refused at once (opened non-blocking, so a
FIFO without a writer never blocks).  JSON leaves a repeated key's meaning open and Python keeps
the last one, so a file could show one value to a reader and another to the tool.  Every
caller passes its own error type, so each layer reports in its own terms.
"""
from __future__ import annotations

import os
import stat
import tempfile


def read_regular(path, max_bytes: int, error=ValueError, what: str = "file", flag: str = "--max-size") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else raises ``error`` in one line."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise error(f"cannot read {path}: it is {kind}, not a regular {what} file")
        if st.st_size > max_bytes:
            raise error(f"{what} {path} has {st.st_size} bytes, more than the limit of {max_bytes}; raise it with {flag}")
        chunks, left = [], max_bytes + 1
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 1 << 24))
            except BlockingIOError:   # cannot happen for a regular file; never spin on it
                raise error(f"cannot read {path}: not a regular {what} file") from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise error(f"{what} {path} has more than {max_bytes} bytes; raise the limit with {flag}")
    return data


def unique_keys(error=ValueError):
    """An ``object_pairs_hook`` for ``json.loads`` that raises ``error`` on a repeated key."""
    def hook(pairs):
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen = set()
            for k, _ in pairs:
                if k in seen:
                    raise error(f"JSON object repeats the key {k[:40]!r}")
                seen.add(k)
        return obj
    return hook


def write_atomic(path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename,
    so that an interrupted write never leaves a half-written file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".attncert-", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
