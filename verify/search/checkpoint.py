"""Checkpoints of a running branch and bound: finished leaves and pending boxes, as plain JSON.

Written atomically (temporary file, then rename) at the start of a generation, so a
resumed run replays exactly the generations a single run would have, and the final
certificate is identical.  Floats are stored as ``float.hex`` strings (exact); boxes
as bisection paths (their dyadic indices follow from the path).  Loading parses JSON
only (duplicate keys refused), checks the file's own SHA-256 and that it belongs to the
same job: weights, target, domain, eps, method and library versions.  Its leaves are
never trusted: ``certify`` re-bounds every one of them on resume.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from constructions.files import read_regular, unique_keys, write_atomic

from .paving import MAX_LEVEL, Leaf, dim_token, token_dim

FORMAT = "attncert/checkpoint-2"
MAX_BYTES = 1 << 30   # a checkpoint of 10^7 leaves is about 500 MB


class CheckpointError(ValueError):
    """The checkpoint is unreadable, malformed, or belongs to another job."""


def _versions() -> list:
    from importlib import metadata
    out = []
    for dist in ("attncert", "numpy"):
        try:
            out.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            out.append(None)
    return out


def job_key(construction, eps, method: str = "paving") -> str:
    """Identity of a job: exact weights, target, domain, eps, method and library versions."""
    ident = json.dumps([construction.network.weights_hash(), repr(construction.target),
                        [[str(a), str(b)] for a, b in construction.domain], str(eps), method, _versions()])
    return hashlib.sha256(ident.encode()).hexdigest()


def _content_hash(doc) -> str:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def path_indices(path: str, D: int):
    """Dyadic (i, k) per dimension of the box reached by a bisection path."""
    i, k = [0] * D, [0] * D
    for t in range(0, len(path), 2):
        d, side = token_dim(path[t]), int(path[t + 1])
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
    doc["sha256"] = _content_hash(doc)
    write_atomic(path, json.dumps(doc, separators=(",", ":")).encode())


def _hexf(s, what) -> float:
    if type(s) is not str:
        raise CheckpointError(f"checkpoint field {what} is not a hex float string")
    try:
        return float.fromhex(s)
    except ValueError:
        raise CheckpointError(f"checkpoint field {what} is not a hex float") from None


def load(path, key, D: int) -> dict:
    """The state saved by ``save``; raises CheckpointError (one line) on any mismatch."""
    data = read_regular(path, MAX_BYTES, CheckpointError, "checkpoint")
    try:
        doc = json.loads(data.decode("utf-8"), parse_float=lambda t: _hexf(None, "number"),
                         parse_constant=lambda t: _hexf(None, "number"),
                         object_pairs_hook=unique_keys(CheckpointError))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"checkpoint {path} is not valid JSON (truncated?)") from None
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an attncert checkpoint of this version")
    if doc.get("sha256") != _content_hash(doc):
        raise CheckpointError(f"checkpoint {path} was changed after it was written (sha256 mismatch)")
    if doc.get("job") != key:
        raise CheckpointError(f"checkpoint {path} belongs to another job (construction, target, domain or eps differ)")
    ok_path = lambda p: type(p) is str and len(p) % 2 == 0 and len(p) <= 2 * D * MAX_LEVEL and all(
        0 <= token_dim(p[t]) < D and p[t + 1] in "01" for t in range(0, len(p), 2)) and all(
        p[0::2].count(dim_token(d)) <= MAX_LEVEL for d in range(D))
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
