"""Checkpoints of a running branch and bound: finished leaves and pending boxes, as plain JSON.

Written atomically (temporary file, then rename) at the start of a generation, so a
resumed run replays exactly the generations a single run would have, and the final
certificate is identical.  Floats are stored as ``float.hex`` strings (exact); boxes
as bisection paths (their dyadic indices follow from the path).  Loading parses JSON
only and checks that the checkpoint belongs to the same job.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

from .paving import Leaf

FORMAT = "attncert/checkpoint-1"


class CheckpointError(ValueError):
    """The checkpoint is unreadable, malformed, or belongs to another job."""


def job_key(construction, eps) -> str:
    """Identity of a job: exact weights, target, domain and eps."""
    ident = json.dumps([construction.network.weights_hash(), repr(construction.target),
                        [[str(a), str(b)] for a, b in construction.domain], str(eps)])
    return hashlib.sha256(ident.encode()).hexdigest()


def path_indices(path: str, D: int):
    """Dyadic (i, k) per dimension of the box reached by a bisection path."""
    i, k = [0] * D, [0] * D
    for t in range(0, len(path), 2):
        d, side = int(path[t]), int(path[t + 1])
        i[d] = 2 * i[d] + side
        k[d] += 1
    return i, k


def save(path, key, state) -> None:
    """Write ``state`` (dict from certify) atomically as JSON."""
    doc = {
        "format": FORMAT, "job": key,
        "evaluated": state["evaluated"],
        "seconds": float(state["seconds"]).hex(),
        "observed": float(state["obs_best"]).hex(),
        "witness": None if state["obs_point"] is None else [float(v).hex() for v in state["obs_point"]],
        "pending_max": float(state["pending_max"]).hex(),
        "pending": list(state["paths"]),
        "leaves": [[l.path, float(l.bound).hex(), list(l.hints)] for l in state["leaves"]],
    }
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".attncert-ckpt-", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _hexf(s, what) -> float:
    if type(s) is not str:
        raise CheckpointError(f"checkpoint field {what} is not a hex float string")
    try:
        return float.fromhex(s)
    except ValueError:
        raise CheckpointError(f"checkpoint field {what} is not a hex float") from None


def load(path, key, D: int) -> dict:
    """The state saved by ``save``; raises CheckpointError (one line) on any mismatch."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            doc = json.load(fh, parse_float=lambda t: _hexf(None, "number"))
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint {path} is not valid JSON (truncated?)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an attncert checkpoint")
    if doc.get("job") != key:
        raise CheckpointError(f"checkpoint {path} belongs to another job (construction, target, domain or eps differ)")
    ok_path = lambda p: type(p) is str and len(p) % 2 == 0 and all(
        p[t].isdigit() and int(p[t]) < D and p[t + 1] in "01" for t in range(0, len(p), 2))
    pending = doc.get("pending")
    leaves_in = doc.get("leaves")
    if type(pending) is not list or type(leaves_in) is not list or not all(ok_path(p) for p in pending):
        raise CheckpointError(f"checkpoint {path}: malformed pending boxes")
    leaves = []
    for item in leaves_in:
        if type(item) is not list or len(item) != 3 or not ok_path(item[0]) or type(item[2]) is not list \
                or not all(type(v) is int for v in item[2]):
            raise CheckpointError(f"checkpoint {path}: malformed leaf")
        i, k = path_indices(item[0], D)
        leaves.append(Leaf(item[0], tuple(i), tuple(k), _hexf(item[1], "bound"), tuple(item[2])))
    if type(doc.get("evaluated")) is not int:
        raise CheckpointError(f"checkpoint {path}: malformed counter")
    ik = [path_indices(p, D) for p in pending]
    witness = doc.get("witness")
    return {
        "evaluated": doc["evaluated"],
        "seconds": _hexf(doc.get("seconds"), "seconds"),
        "obs_best": _hexf(doc.get("observed"), "observed"),
        "obs_point": None if witness is None else [_hexf(v, "witness") for v in witness],
        "pending_max": _hexf(doc.get("pending_max"), "pending_max"),
        "paths": list(pending),
        "I": np.array([i for i, _ in ik], dtype=np.int64).reshape(len(ik), D),
        "K": np.array([k for _, k in ik], dtype=np.int64).reshape(len(ik), D),
        "leaves": leaves,
    }
