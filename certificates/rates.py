"""Certified error against a swept parameter (p, H, ...): compute the series, read/write it, draw it.

For each value the construction is built, its sup error estimated on a dense grid, and the
certifier run at eps = margin x that estimate (raised until it certifies), so every plotted
"certified" point is a proved upper bound on the whole-domain error, next to the observed error
and the a-priori bound.  Series can be saved as JSON and re-plotted (or come from CSV/JSON written
by a paper script with columns ``value, certified[, observed, apriori]``).
"""
from __future__ import annotations

import csv
import json
import os

MARGINS = (1.03, 1.2, 2.0)


def certified_series(name: str, params: dict, sweep: str, values, *, points: int = 200_001,
                     max_boxes: int = 2_000_000, progress=None) -> list:
    """Rows {value, certified, observed, apriori, eps, boxes, status} for each swept value."""
    import constructions
    import verify
    from verify.search.progress import progress_bar
    from verify.search.sampling import max_error_sampled
    rows = []
    values = list(values)
    bar = progress_bar(progress, total=len(values), unit=" values", desc=f"rates over {sweep}")
    for v in values:
        bar.update()
        c = constructions.build(name, **{**params, sweep: v})
        sup, _, _ = max_error_sampled(c, points)
        row = {"value": str(v), "observed": sup, "apriori": c.apriori_float(), "certified": None,
               "eps": None, "boxes": 0, "status": "UNKNOWN"}
        for m in MARGINS:
            eps = f"{sup * m:.4g}"
            res = verify.certify(c, eps, max_boxes=max_boxes, progress=False)
            row["status"] = res.status
            if res.status == verify.CERTIFIED:
                row.update(certified=res.max_bound, eps=eps, boxes=len(res.leaves),
                           observed=max(sup, res.observed))
                break
        rows.append(row)
    bar.close()
    return rows


def save_series(rows, path, meta: dict) -> None:
    """Atomic JSON write of a series (floats are fine here: this is a plot's data, not a proof)."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def load_series(path) -> tuple:
    """(rows, meta) from a JSON file written by save_series or a CSV with a header row."""
    path = os.fspath(path)
    if path.endswith(".csv"):
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        meta = {}
    else:
        with open(path) as fh:
            data = json.load(fh)
        rows, meta = (data["rows"], data.get("meta", {})) if isinstance(data, dict) else (data, {})
    out = []
    for r in rows:
        num = lambda k: None if r.get(k) in (None, "", "None") else float(r[k])
        if "value" not in r or num("certified") is None and num("observed") is None:
            raise ValueError(f"{path}: every row needs 'value' and 'certified' (or 'observed')")
        out.append({"value": str(r["value"]), "certified": num("certified"), "observed": num("observed"),
                    "apriori": num("apriori")})
    if not out:
        raise ValueError(f"{path}: no rows")
    return out, meta


def plot_rates(rows, out, *, xlabel: str = "p", title: str = "", dpi: int = 100) -> None:
    """Log-log plot of certified bound, observed error and a-priori bound against the swept value."""
    from .plot import pyplot, save_figure
    plt = pyplot()
    x = [float(r["value"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=dpi)
    for key, style, label in (("apriori", dict(color="0.5", ls=":", marker="s", ms=4), "a-priori bound"),
                              ("certified", dict(color="tab:orange", ls="-", marker="o", ms=5),
                               "certified bound (whole domain)"),
                              ("observed", dict(color="tab:blue", ls="--", marker=".", ms=6),
                               "observed max error (dense sample)")):
        pts = [(xi, r[key]) for xi, r in zip(x, rows) if r.get(key) is not None and r[key] > 0]
        if pts:
            ax.plot(*zip(*pts), label=label, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sup |N - f|")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
