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
    """The certificate cannot be drawn (e.g. malformed evidence): an input error."""


@dataclass
class Boxes:
    """The paving: exact float ends ``lo, hi`` (N, D) and the stored bound of each box (N,)."""
    lo: np.ndarray
    hi: np.ndarray
    bounds: np.ndarray
    eps: float
    domain: list
    witness: list


def _exact(s) -> Fraction:
    from constructions.exact import parse_rational
    return parse_rational(s)


def paving(doc) -> Boxes:
    """Decode the certificate's evidence (a bisection tree, or pieces) into boxes with their proved bounds."""
    from .check.core import leaves as tree_leaves
    domain = [(_exact(a), _exact(b)) for a, b in doc["domain"]]
    ev = doc["evidence"]
    if ev["method"] == "paving":
        parts = [(domain, ev["tree"], ev["bounds"])]
        leaves, bounds = [], []
    elif ev["method"] == "outputs":   # one paving of the whole domain per group of outputs
        parts = [(domain, g["tree"], g["bounds"]) for g in ev["groups"]]
        leaves, bounds = [], []
    else:   # analytic pieces are one box each; paving pieces carry their own tree
        parts = [([(_exact(a), _exact(b)) for a, b in p["cell"]], p["tree"], p["bounds"])
                 for p in ev["pieces"] if p["method"] != "analytic"]
        cells = [p for p in ev["pieces"] if p["method"] == "analytic"]
        leaves = [tuple((_exact(a), _exact(b)) for a, b in p["cell"]) for p in cells]
        bounds = [float(_exact(p["bound"])) for p in cells]
    for root, tree, stored in parts:
        boxes = tree_leaves(tree, root, len(domain))
        if len(stored) != len(boxes):
            raise PlotError("the evidence lists a different number of bounds than boxes")
        leaves += boxes
        bounds += [float(_exact(b)) for b in stored]
    bounds = np.array(bounds)
    if len(doc["result"]["witness"]) != len(domain):
        raise PlotError("the witness has another dimension than the domain")
    lo = np.array([[float(a) for a, _ in box] for box in leaves])
    hi = np.array([[float(b) for _, b in box] for box in leaves])
    return Boxes(lo, hi, bounds, float(_exact(doc["eps"])), [(float(a), float(b)) for a, b in domain],
                 [float(_exact(v)) for v in doc["result"]["witness"]])


def curves_1d(doc, points: int = 4001) -> dict:
    """Dense float64 target, network and error |N - f| (max over outputs) on a 1-D domain."""
    from constructions.expr import from_json
    from constructions.network import Network
    from verify.forward import forward_float
    from verify.enclose.target import float_eval
    (a, b), = [(float(Fraction(x)), float(Fraction(y))) for x, y in doc["domain"]]
    xs = np.linspace(a, b, points)
    net = Network.from_json(doc["construction"]["network"])
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
    """Draw a 1-D or 2-D certificate to ``out`` (format from the extension); returns the kind.
    A residual certificate (icl-gd) is drawn as its 1-D certificate: psi(r) against -eta l'(r)
    over the residual range, with the boxes that bound it (the prompt box's bound follows from it)."""
    if doc["evidence"]["method"] == "residual":
        plot_certificate(doc["evidence"]["certificate"], out, points=points, dpi=dpi)
        return "residual"
    D = len(doc["domain"])
    if D == 1:
        _plot_1d(doc, out, points, dpi)
        return "1d"
    if D == 2:
        _plot_2d(doc, out, dpi)
        return "2d"
    _plot_nd(doc, out, dpi)
    return "nd"


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
    (x0, x1), (y0, y1) = B.domain
    if doc["evidence"]["method"] == "outputs":   # overlapping pavings: the largest bound at each pixel
        field = _bound_raster(B, 400)
        pc = ax.imshow(field.T, origin="lower", extent=(x0, x1, y0, y1), cmap="viridis", vmin=0, vmax=B.eps,
                       interpolation="nearest", aspect="auto")
    else:
        rects = [Rectangle((l[0], l[1]), h[0] - l[0], h[1] - l[1]) for l, h in zip(B.lo, B.hi)]
        pc = PatchCollection(rects, cmap="viridis", edgecolor="white",
                             linewidth=0.4 if len(rects) < 400 else 0.15)
        pc.set_array(B.bounds)
        pc.set_clim(0, B.eps)
        ax.add_collection(pc)
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


def _bound_raster(B, n: int) -> np.ndarray:
    """(n, n) pixels of a 2-D domain: the largest stored bound of the boxes that meet each pixel
    centre (boxes of several pavings may overlap)."""
    (x0, x1), (y0, y1) = B.domain
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    field = np.zeros((n, n))
    for lo, hi, b in zip(B.lo, B.hi, B.bounds):
        i = slice(np.searchsorted(xs, lo[0]), np.searchsorted(xs, hi[0], side="right"))
        j = slice(np.searchsorted(ys, lo[1]), np.searchsorted(ys, hi[1], side="right"))
        field[i, j] = np.maximum(field[i, j], b)
    return field


def _plot_nd(doc, out, dpi) -> None:
    """D >= 3: per input, the proved bound of every box against the box's centre in that input."""
    plt = pyplot()
    B = paving(doc)
    D = B.lo.shape[1]
    cols = min(D, 3)
    rows = -(-D // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), dpi=dpi, squeeze=False, sharey=True)
    centres = 0.5 * (B.lo + B.hi)
    for d in range(rows * cols):
        ax = axes[d // cols][d % cols]
        if d >= D:
            ax.axis("off")
            continue
        ax.scatter(centres[:, d], B.bounds, s=2, color="tab:orange", label="proved bound of a box")
        ax.axhline(B.eps, color="tab:red", ls="--", lw=1.0, label=f"eps = {doc['eps']}")
        ax.plot(B.witness[d], float(_exact(doc["result"]["observed_error"])), "kx", ms=6,
                label="largest observed error")
        ax.set_xlabel(f"x{d} (box centre)")
        ax.set_xlim(*B.domain[d])
        ax.set_ylim(0, B.eps * 1.15)
        if d % cols == 0:
            ax.set_ylabel("error bound")
    axes[0][0].legend(loc="lower right", fontsize=7, frameon=False)
    fig.suptitle(f"{_title(doc)}: {len(B.bounds)} boxes, max bound "
                 f"{float(_exact(doc['result']['max_bound'])):.4g} < eps", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
