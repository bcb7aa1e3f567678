"""Pictures of a certificate: 1-D curves with the proved per-box bound, 2-D heat maps of box bounds.

The boxes and their bounds come from the certificate itself (its bisection tree, decoded by the
checker's decoder); the curves are float64 evaluations of the certificate's own exact weights, so
a picture shows what was certified, not what the current code builds.  matplotlib is imported
inside the drawing functions (Agg backend), never at module import.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


class PlotError(ValueError):
    """The certificate cannot be drawn (e.g. a 3-D domain): an input error."""


def network_from_json(net: dict):
    """The exact ``Network`` stored in a certificate (strings parsed as exact rationals)."""
    from constructions.network import Embedding, Head, Layer, Network, mat
    m = lambda rows: mat([[Fraction(v) for v in r] for r in rows])
    emb = net["embedding"]
    layers = tuple(Layer(heads=tuple(Head(wq=m(h["wq"]), wk=m(h["wk"]), wv=m(h["wv"]), wo=m(h["wo"]),
                                          beta=Fraction(h["beta"]),
                                          bias=None if h["bias"] is None else m(h["bias"]))
                                     for h in L["heads"]),
                         query_rows=tuple(L["query_rows"]), key_rows=tuple(L["key_rows"]))
                   for L in net["layers"])
    return Network(embedding=Embedding(const=m(emb["const"]), linear=tuple(m(E) for E in emb["linear"])),
                   layers=layers, readout=tuple(tuple(rc) for rc in net["readout"]))


@dataclass
class Boxes:
    """The paving: exact float ends ``lo, hi`` (N, D) and the stored bound of each box (N,)."""
    lo: np.ndarray
    hi: np.ndarray
    bounds: np.ndarray
    eps: float
    domain: list
    witness: list


def paving(doc) -> Boxes:
    """Decode the certificate's bisection tree into boxes with their proved bounds."""
    from .check.core import leaves as tree_leaves
    domain = [(Fraction(a), Fraction(b)) for a, b in doc["domain"]]
    leaves = tree_leaves(doc["evidence"]["tree"], domain, len(domain))
    bounds = np.array([float(Fraction(b)) for b in doc["evidence"]["bounds"]])
    if len(bounds) != len(leaves):
        raise PlotError("the evidence lists a different number of bounds than boxes")
    lo = np.array([[float(a) for a, _ in box] for box in leaves])
    hi = np.array([[float(b) for _, b in box] for box in leaves])
    return Boxes(lo, hi, bounds, float(Fraction(doc["eps"])), [(float(a), float(b)) for a, b in domain],
                 [float(Fraction(v)) for v in doc["result"]["witness"]])


def curves_1d(doc, points: int = 4001) -> dict:
    """Dense float64 target, network and error |N - f| (max over outputs) on a 1-D domain."""
    from constructions.expr import from_json
    from verify.forward import forward_float
    from verify.enclose.target import float_eval
    (a, b), = [(float(Fraction(x)), float(Fraction(y))) for x, y in doc["domain"]]
    xs = np.linspace(a, b, points)
    net = network_from_json(doc["construction"]["network"])
    y = forward_float(net, xs[:, None], np)
    f = np.stack([float_eval(from_json(t), {"x0": xs}, np) for t in doc["target"]], axis=1)
    return {"x": xs, "network": y, "target": f, "error": np.max(np.abs(y - f), axis=1)}


def _title(doc) -> str:
    cons = doc["construction"]
    params = ", ".join(f"{k}={v}" for k, v in cons["params"].items())
    return f"{cons['name']}({params})" if params else cons["name"]


def save_figure(fig, out) -> None:
    """Write the figure atomically (temporary file in the same folder, then rename)."""
    out = os.fspath(out)
    ext = os.path.splitext(out)[1].lstrip(".").lower() or "png"
    fd, tmp = tempfile.mkstemp(prefix=".attncert-plot-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(out)))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        fig.savefig(tmp, format=ext, dpi=fig.dpi, bbox_inches="tight", metadata={"Software": None}
                    if ext == "png" else None)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_certificate(doc, out, *, points: int = 4001, dpi: int = 100) -> str:
    """Draw a 1-D or 2-D certificate to ``out`` (format from the extension); returns the kind."""
    D = len(doc["domain"])
    if D == 1:
        _plot_1d(doc, out, points, dpi)
        return "1d"
    if D == 2:
        _plot_2d(doc, out, dpi)
        return "2d"
    raise PlotError(f"can draw 1-D and 2-D domains, this certificate has {D} inputs")


def _plot_1d(doc, out, points, dpi) -> None:
    plt = pyplot()
    B = paving(doc)
    c = curves_1d(doc, points)
    fig, (top, bot) = plt.subplots(2, 1, sharex=True, figsize=(7.5, 5.2), dpi=dpi,
                                   gridspec_kw={"height_ratios": [1, 1.2]})
    for o in range(c["target"].shape[1]):
        top.plot(c["x"], c["target"][:, o], color="0.3", lw=2.2, label="target f" if o == 0 else None)
        top.plot(c["x"], c["network"][:, o], color="tab:blue", lw=1.0, label="network N" if o == 0 else None)
    top.set_ylabel("value")
    top.set_title(_title(doc), fontsize=10)
    order = np.argsort(B.lo[:, 0])
    edges = np.concatenate([B.lo[order, 0], B.hi[order[-1:], 0]])
    bot.stairs(B.bounds[order], edges, color="tab:orange", lw=1.0, baseline=None,
               label=f"proved bound per box ({len(B.bounds)} boxes)")
    bot.plot(c["x"], c["error"], color="tab:purple", lw=0.8, label="error |N - f| (float64 sample)")
    bot.axhline(B.eps, color="tab:red", ls="--", lw=1.0, label=f"eps = {doc['eps']}")
    bot.plot(B.witness[0], float(Fraction(doc["result"]["observed_error"])), "kx", ms=6,
             label="largest observed error")
    bot.set_ylim(0, B.eps * 1.15)
    bot.set_xlabel("x0")
    bot.set_ylabel("error")
    handles = top.get_legend_handles_labels()[0] + bot.get_legend_handles_labels()[0]
    top.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)  # the ramp's empty corner
    bot.set_title(f"certified: sup |N - f| <= {float(Fraction(doc['result']['max_bound'])):.5g} < eps", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def _plot_2d(doc, out, dpi) -> None:
    plt = pyplot()
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle
    B = paving(doc)
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=dpi)
    rects = [Rectangle((l[0], l[1]), h[0] - l[0], h[1] - l[1]) for l, h in zip(B.lo, B.hi)]
    pc = PatchCollection(rects, cmap="viridis", edgecolor="white", linewidth=0.4 if len(rects) < 400 else 0.15)
    pc.set_array(B.bounds)
    pc.set_clim(0, B.eps)
    ax.add_collection(pc)
    (x0, x1), (y0, y1) = B.domain
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal" if 0.2 < (y1 - y0) / (x1 - x0) < 5 else "auto")
    ax.plot(B.witness[0], B.witness[1], "rx", ms=7, label="largest observed error")
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(pc, ax=ax, label=f"proved bound on the box (eps = {doc['eps']})")
    ax.set_title(f"{_title(doc)}: {len(B.bounds)} boxes, max bound "
                 f"{float(Fraction(doc['result']['max_bound'])):.4g} < eps", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
