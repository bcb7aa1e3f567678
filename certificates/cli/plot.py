"""``attncert plot``: draw a certificate (1-D curves or 2-D box heat map) or a certified-rate series.

    attncert plot CERT -o out.png                         # 1-D or 2-D, from the certificate itself
    attncert plot --rates -o rates.png                    # ramp: certified error against p
    attncert plot --rates --construction ramp --sweep p=9,17,33 --set kappa=8 --save-data r.json -o r.png
    attncert plot --rates --data r.json -o r.png          # re-plot a saved (or script-written) series
"""
from __future__ import annotations

from .common import EXIT_FAIL, EXIT_OK, UserError, command, sets


def cmd_plot(args) -> int:
    if not args.output:
        raise UserError("plot needs -o OUT (e.g. -o out.png)")
    ext = args.output.rsplit(".", 1)[-1].lower() if "." in args.output else ""
    if ext not in ("png", "svg", "pdf"):
        raise UserError(f"-o {args.output}: use a .png, .svg or .pdf file name")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("plot needs matplotlib: pip install matplotlib (it is in the [dev] extra)") from None
    if args.points is not None and args.points < 2:
        raise UserError("--points must be at least 2")
    if args.rates:
        if args.cert:
            raise UserError("--rates draws a series, not a certificate: drop the CERT argument")
        from certificates.rates import certified_series, load_series, plot_rates, save_series
        if args.data:
            rows, meta = load_series(args.data)
            sweep = meta.get("sweep", args.sweep.split("=", 1)[0] if args.sweep else "p")
        else:
            if "=" not in args.sweep:
                raise UserError(f"--sweep expects NAME=V1,V2,..., got {args.sweep!r}")
            sweep, values = args.sweep.split("=", 1)
            vals = [v.strip() for v in values.split(",") if v.strip()]
            if len(vals) < 2:
                raise UserError("--sweep needs at least two values")
            params = sets(args.set)
            rows = certified_series(args.construction, params, sweep.strip(), vals, points=args.points or 200_001)
            meta = {"construction": args.construction, "params": params, "sweep": sweep.strip()}
            if args.save_data:
                save_series(rows, args.save_data, meta)
            for r in rows:
                print(f"{sweep}={r['value']}: {r['status']} certified {r['certified']} observed {r['observed']:.5g} "
                      f"a-priori {r['apriori']:.5g}")
        title = meta.get("construction", "")
        if meta.get("params"):
            title += " (" + ", ".join(f"{k}={v}" for k, v in meta["params"].items()) + ")"
        plot_rates(rows, args.output, xlabel=sweep, title=title, dpi=args.dpi)
        print(f"wrote {args.output}")
        return EXIT_OK
    if not args.cert:
        raise UserError("plot needs a certificate file (or --rates)")
    from certificates.model import CertificateError, load
    from certificates.plot import PlotError, plot_certificate
    try:
        doc = load(args.cert)
    except CertificateError as e:
        raise UserError(f"{args.cert}: {e}") from None
    if not args.no_check:
        from certificates.api import check
        res = check(doc)
        if not res.ok:
            print(f"{args.cert}: INVALID: {res.reason} (nothing drawn; --no-check draws it anyway)")
            return EXIT_FAIL
    try:
        kind = plot_certificate(doc, args.output, points=args.points or 4001, dpi=args.dpi)
    except PlotError as e:
        raise UserError(str(e)) from None
    print(f"wrote {args.output} ({kind} plot of {doc['construction']['name']})")
    return EXIT_OK


def add_command(sub) -> None:
    sp = command(sub, "plot", "draw a certificate (1-D curves, 2-D heat map, or one panel per input) or, with "
                 "--rates, certified error against a swept parameter",
                 "attncert plot certificates/library/ramp-p41-kappa8.json -o ramp.png\n"
                 "attncert plot --rates --sweep p=9,17,33,65 --set kappa=8 -o rates.png")
    sp.add_argument("cert", nargs="?", help="certificate file (omit with --rates)")
    sp.add_argument("-o", "--output", help="output image (.png, .svg or .pdf)")
    sp.add_argument("--points", type=int, default=None,
                    help="float samples: curves (default 4001) or each sup estimate with --rates (200001)")
    sp.add_argument("--dpi", type=int, default=100, help="image resolution (dots per inch)")
    sp.add_argument("--no-check", action="store_true", help="draw without re-checking the certificate first")
    sp.add_argument("--rates", action="store_true", help="plot certified error against a swept parameter")
    sp.add_argument("--construction", default="ramp", help="construction to sweep (with --rates)")
    sp.add_argument("--sweep", default="p=9,17,33,65,129", help="NAME=V1,V2,... (with --rates)")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE", default=[], help="fixed parameters")
    sp.add_argument("--data", help="re-plot a series saved with --save-data (JSON) or a CSV")
    sp.add_argument("--save-data", help="write the computed series as JSON")
    sp.set_defaults(fn=cmd_plot)
