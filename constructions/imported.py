"""Imported networks: a trained model's exact weights as a construction.

``attncert import MODEL -o net.json`` writes a *network file*: the network model's exact JSON
(every float of the model as the rational it is), its weights hash, where it came from, and a
SHA-256 over the whole document.  ``build_imported(doc, f, domain)`` makes a ``Construction``
named "imported" from it, with the target and domain the user gives; its parameters (the
model's name, the weights hash, the target text and the domain text) are what ``attncert
audit`` verifies, since there is nothing to rebuild from.  Not in REGISTRY: it is built from a
file, never from parameters alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from fractions import Fraction

from .base import Construction
from .exact import ParameterError, parse_rational, rat_str
from .network import Network, canonical_bytes, sha256_canonical

NAME = "imported"
NETWORK_SCHEMA = "attncert/network"
NETWORK_SCHEMA_VERSION = 1
MAX_BYTES = 256 << 20
PAPER = "imported: a trained softmax-attention model, its weights read exactly from the model file"
CLAIM = "the trained network (every float weight taken as the exact rational it is) approximates the target"


def _digest(doc) -> str:
    return hashlib.sha256(canonical_bytes({k: v for k, v in doc.items() if k != "sha256"})).hexdigest()


def network_document(network: Network, name: str, source: dict, notes) -> dict:
    """The network file: canonical JSON with exact rationals and a SHA-256 over its content."""
    doc = {"schema": NETWORK_SCHEMA, "schema_version": NETWORK_SCHEMA_VERSION, "name": str(name),
           "inputs": [f"x{i}" for i in range(network.n_inputs)],
           "n_outputs": len(network.readout) if network.readout_linear is None else len(network.readout_linear),
           "network": network.to_json(), "weights_sha256": network.weights_hash(),
           "source": source, "notes": [str(n) for n in notes]}
    doc["sha256"] = _digest(doc)
    return doc


def _no_float(text):
    raise ParameterError(f"network file contains a float literal {text[:40]!r}; numbers must be exact strings")


def _unique(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ParameterError("network file: a JSON object repeats a key")
    return obj


def _read(path) -> bytes:
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ParameterError(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ParameterError(f"cannot read {path}: not a regular file")
        if st.st_size > MAX_BYTES:
            raise ParameterError(f"network file {path} is larger than {MAX_BYTES >> 20} MiB")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(MAX_BYTES + 1)
    finally:
        os.close(fd)


def load_network_document(path_or_bytes) -> dict:
    """Parse and verify a network file (JSON only, no floats, hashes checked)."""
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else _read(path_or_bytes)
    try:
        doc = json.loads(bytes(data).decode("utf-8"), parse_float=_no_float, parse_constant=_no_float,
                         object_pairs_hook=_unique)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParameterError(f"not a network file (not valid JSON: {str(e).splitlines()[0][:80]})") from None
    except RecursionError:
        raise ParameterError("network file nested too deeply") from None
    network_from_document(doc)
    return doc


def network_from_document(doc) -> Network:
    """The Network of a parsed network file, after checking its schema and both hashes."""
    if not isinstance(doc, dict) or doc.get("schema") != NETWORK_SCHEMA:
        raise ParameterError("not an attncert network file (made by attncert import)")
    if doc.get("schema_version") != NETWORK_SCHEMA_VERSION:
        raise ParameterError(f"network file schema version {doc.get('schema_version')!r} is not "
                             f"{NETWORK_SCHEMA_VERSION}")
    if doc.get("sha256") != _digest(doc):
        raise ParameterError("network file sha256 does not match its content (edited or truncated?)")
    try:
        net = Network.from_json(doc["network"])
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ParameterError(f"network file: malformed network ({type(e).__name__}: {e})") from None
    if sha256_canonical(doc["network"]) != doc.get("weights_sha256") or net.weights_hash() != doc["weights_sha256"]:
        raise ParameterError("network file weights_sha256 does not match its weights")
    return net


def n_outputs(net: Network) -> int:
    return len(net.readout) if net.readout_linear is None else len(net.readout_linear)


_DOM = re.compile(r"^\s*(?:x(\d+)\s*=)?\s*([^:=,]+?)\s*:\s*([^:=,]+?)\s*$")


def parse_domain(text: str, n: int) -> tuple:
    """``"x0=-1:1,x1=0:2"`` (every input once) or ``"-2:2"`` (the same interval for every input)."""
    if not isinstance(text, str) or not text.strip():
        raise ParameterError("--domain: give an interval per input, e.g. --domain \"x0=-1:1,x1=0:2\"")
    parts = [p for p in text.split(",")]
    got = {}
    for p in parts:
        m = _DOM.match(p)
        if not m:
            raise ParameterError(f"--domain: {p.strip()!r} is not NAME=LO:HI (e.g. x0=-1:1) or LO:HI")
        idx, lo, hi = m.group(1), parse_rational(m.group(2)), parse_rational(m.group(3))
        if not lo < hi:
            raise ParameterError(f"--domain: empty or inverted interval {p.strip()!r}")
        if idx is None:
            if len(parts) != 1:
                raise ParameterError("--domain: LO:HI without a name applies to every input and stands alone")
            return tuple((lo, hi) for _ in range(n))
        i = int(idx)
        if i >= n:
            raise ParameterError(f"--domain: x{i} is not an input (the network has {n}: x0..x{n - 1})")
        if i in got:
            raise ParameterError(f"--domain: x{i} is given twice")
        got[i] = (lo, hi)
    missing = [f"x{i}" for i in range(n) if i not in got]
    if missing:
        raise ParameterError(f"--domain: no interval for {', '.join(missing[:5])} (the network has {n} inputs)")
    return tuple(got[i] for i in range(n))


def domain_text(domain) -> str:
    return ",".join(f"x{i}={rat_str(a)}:{rat_str(b)}" for i, (a, b) in enumerate(domain))


def parse_targets(f: str, n_in: int, n_out: int) -> tuple:
    from .expr import ExprError, parse
    if not isinstance(f, str) or not f.strip():
        raise ParameterError("imported network: give the target with --set f=EXPR (';' between outputs)")
    parts = [p.strip() for p in f.split(";")]
    if len(parts) != n_out:
        raise ParameterError(f"f: the network has {n_out} output(s); give {n_out} expression(s) separated by ';', "
                             f"got {len(parts)}")
    names = tuple(f"x{i}" for i in range(n_in))
    try:
        return tuple(parse(p, names) for p in parts)
    except ExprError as e:
        raise ParameterError(f"f: {e}") from None


def build_imported(doc: dict, f: str, domain) -> Construction:
    """The Construction of a verified network file with target ``f`` on ``domain`` (text or pairs)."""
    net = network_from_document(doc)
    n = net.n_inputs
    dom = parse_domain(domain, n) if isinstance(domain, str) else tuple((Fraction(a), Fraction(b)) for a, b in domain)
    if len(dom) != n:
        raise ParameterError(f"domain has {len(dom)} intervals for {n} inputs")
    target = parse_targets(f, n, n_outputs(net))
    name = str(doc.get("name", ""))
    notes = tuple(str(x) for x in doc.get("notes", [])) + (
        f"imported from {doc.get('source', {}).get('format', '?')} file "
        f"{doc.get('source', {}).get('file', '?')} (sha256 {str(doc.get('source', {}).get('sha256', ''))[:16]})",)
    return Construction(
        name=NAME, paper=PAPER, theorem=CLAIM,
        params=(("model", name), ("weights_sha256", net.weights_hash()), ("f", f.strip()),
                ("domain", domain_text(dom))),
        network=net, target=target, domain=dom, apriori_bound=None, notes=notes)


def verify_params(params: dict, network_json: dict, target_json, domain_json) -> list:
    """What ``attncert audit`` checks of an imported certificate: problems found (empty: none).

    The stored network must hash to the parameter ``weights_sha256``; the parameters' target text
    and domain text must give the stored target and domain."""
    from .expr import to_json
    problems = []
    h = sha256_canonical(network_json)
    if params.get("weights_sha256") != h:
        problems.append(f"imported network: its weights hash {h[:12]} is not the imported model's "
                        f"{str(params.get('weights_sha256'))[:12]}")
    try:
        net = Network.from_json(network_json)
        dom = parse_domain(params.get("domain", ""), net.n_inputs)
        if [[rat_str(a), rat_str(b)] for a, b in dom] != domain_json:
            problems.append("imported network: the domain differs from its parameter 'domain'")
        trees = parse_targets(params.get("f", ""), net.n_inputs, n_outputs(net))
        if [to_json(t) for t in trees] != target_json:
            problems.append("imported network: the target differs from its parameter 'f'")
    except (ParameterError, KeyError, TypeError, ValueError) as e:
        problems.append(f"imported network: {e}")
    return problems
