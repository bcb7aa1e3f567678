"""Peak memory (maximum resident set size) of every ``attncert`` command at its defaults.

Each command runs as ``python -m certificates.cli ...`` in a fresh process, under a tiny
wrapper process that waits for it and reads ``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the peak
RSS of the largest single process in the command's tree (not the sum over worker processes;
every command here runs in one process at its defaults).  Where a command needs ``--eps`` it
gets a generous one, and ``--time-limit`` bounds the searches, so the whole run takes a few
minutes on two cores; UNKNOWN or REFUTED outcomes are fine, memory is what is measured.
The baseline is ``python -c "import certificates.cli.main"``.

    python scripts/bench_memory.py                      # every command; exit 1 if one passes 1024 MiB
    python scripts/bench_memory.py --only certify --limit-mib 512 --json mem.json

``--group anchors`` measures instead every stage a user runs on a [MAP] grid of 4 096 anchors
(max-affine and cross-attention of f = sin(x0 + ... + x5), D = 6, G = 4: 4 097 tokens), against
2048 MiB: build; eval (--points 4096: sampling is chunked, so its peak does not depend on the
count, and the default 10^5 points take half an hour on two busy cores); certify at its defaults
(--enclosure auto) with an eps above the sampled error but far below what the first boxes
prove, bounded by --time-limit, so that the search runs generation after generation; certify
--float64 with a generous eps, which writes the (one-box) certificate that check, export (all
five formats), check --weights and plot then read.  The group takes about half an hour.

    python scripts/bench_memory.py --group anchors --json anchors.json
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIB = ROOT / "certificates" / "library"
RAMP_CERT = str(LIB / "ramp-p41-kappa8.json")        # a float64 certificate, so it exports
MAP_CERT = str(LIB / "max-affine-2d-sin2x-cos3y.json")
TIME_LIMIT = "30"
# A generous eps per construction (about twice the sampled error at the defaults).
CERTIFY_EPS = {"cross-attention": "0.05", "icl-gd": "0.15", "max-affine": "0.05", "max-affine-seq": "0.08",
               "ramp": "0.03", "ramp-multihead": "0.04", "ramp-seq": "0.15", "relu-net": "0.05"}
EXPORTS = {"safetensors": "safetensors", "torch": "pt", "onnx": "onnx", "flax": "msgpack", "npz": "npz"}

# --group anchors: D = 6, G = 4 (4 096 anchors + 1 query token).
ANCHOR_F = "sin(x0+x1+x2+x3+x4+x5)"
ANCHOR_SET = ["--set", f"f={ANCHOR_F}", "--set", "G=4"]
ANCHOR_NAMES = ("max-affine", "cross-attention")
ANCHOR_POINTS = "4096"
ANCHOR_SEARCH_EPS = "1/2"     # above the sampled error (about 0.33), far below the first boxes' bounds
                              # (about 2): never refuted, the search runs generation after generation
ANCHOR_CERT_EPS = "5/2"       # |N|, |f| <= 1: certified by the first box, so the certificate exists
ANCHOR_TIME_LIMIT = "300"     # building and preparing the bounders takes a minute or two of it
ANCHOR_LIMIT_MIB = 2048

# Runs argv[1:], waits, prints {"rc", "seconds", "maxrss"} of that child as JSON.
WRAPPER = """\
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
print(json.dumps({"rc": p.returncode, "seconds": time.perf_counter() - t,
                  "maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "stderr": p.stderr.strip().splitlines()[-1:]}))
"""


def commands(tmp: str) -> list[tuple[str, list[str]]]:
    """(label, attncert arguments) for every command at its defaults."""
    sys.path.insert(0, str(ROOT))
    from constructions import REGISTRY
    names = sorted(REGISTRY)
    rows = [("list", ["list"]), ("demo", ["demo"])]
    rows += [(f"build {n}", ["build", n]) for n in names]
    rows += [(f"eval {n}", ["eval", n]) for n in names]
    rows += [(f"certify {n} --eps {CERTIFY_EPS.get(n, '0.2')}",
              ["certify", n, "--eps", CERTIFY_EPS.get(n, "0.2"), "--time-limit", TIME_LIMIT]) for n in names]
    rows += [("certify-lp max-affine --eps 0.2", ["certify-lp", "max-affine", "--eps", "0.2", "--time-limit", TIME_LIMIT]),
             ("spec-audit ramp", ["spec-audit", "ramp"]),
             ("tune ramp --set p=41", ["tune", "ramp", "--set", "p=41"]),
             ("tune ramp --eps 0.05", ["tune", "ramp", "--eps", "0.05"]),
             ("tune max-affine --eps 0.05", ["tune", "max-affine", "--eps", "0.05", "--time-limit", TIME_LIMIT]),
             ("check library/*.json", ["check", *sorted(str(p) for p in LIB.glob("*.json"))]),
             ("audit library", ["audit", str(LIB)]),
             ("plot ramp (1-D)", ["plot", RAMP_CERT, "-o", os.path.join(tmp, "ramp.png")]),
             ("plot max-affine (2-D)", ["plot", MAP_CERT, "-o", os.path.join(tmp, "map.png")]),
             ("plot --rates", ["plot", "--rates", "-o", os.path.join(tmp, "rates.png")]),
             ("info ramp", ["info", RAMP_CERT]),
             ("import ramp", ["import", RAMP_CERT, "-o", os.path.join(tmp, "net.json")])]
    rows += [(f"export ramp --to {fmt}", ["export", RAMP_CERT, "--to", fmt, "-o", os.path.join(tmp, f"ramp.{ext}")])
             for fmt, ext in EXPORTS.items()]
    rows.append(("check --weights ramp.onnx", ["check", "--weights", os.path.join(tmp, "ramp.onnx"), RAMP_CERT]))
    return rows


def anchor_commands(tmp: str) -> list[tuple[str, list[str]]]:
    """(label, attncert arguments) for every stage at 4 096 anchors (see the module doc)."""
    rows = []
    for n in ANCHOR_NAMES:
        cert = os.path.join(tmp, f"{n}.json")
        rows += [(f"build {n}", ["build", n, *ANCHOR_SET]),
                 (f"eval {n} --points {ANCHOR_POINTS}", ["eval", n, *ANCHOR_SET, "--points", ANCHOR_POINTS]),
                 (f"certify {n} --eps {ANCHOR_SEARCH_EPS}",
                  ["certify", n, *ANCHOR_SET, "--eps", ANCHOR_SEARCH_EPS, "--time-limit", ANCHOR_TIME_LIMIT]),
                 (f"certify {n} --float64 --eps {ANCHOR_CERT_EPS} -o",
                  ["certify", n, *ANCHOR_SET, "--float64", "--eps", ANCHOR_CERT_EPS, "-o", cert]),
                 (f"check {n}.json", ["check", cert])]
        rows += [(f"export {n} --to {fmt}", ["export", cert, "--to", fmt, "-o", os.path.join(tmp, f"{n}.{ext}")])
                 for fmt, ext in EXPORTS.items()]
        rows += [(f"check --weights {n}.onnx", ["check", "--weights", os.path.join(tmp, f"{n}.onnx"), cert]),
                 (f"plot {n} (6-D)", ["plot", cert, "-o", os.path.join(tmp, f"{n}.png")])]
    return rows


def measure(argv: list[str]) -> dict:
    """Peak RSS (MiB), seconds and exit code of ``argv`` run in a fresh process."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, *argv], cwd=ROOT, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    unit = 1 if sys.platform == "darwin" else 1024         # ru_maxrss: bytes on macOS, KiB on Linux
    return {"peak_mib": r["maxrss"] * unit / 2 ** 20, "seconds": r["seconds"], "rc": r["rc"], "stderr": r["stderr"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", metavar="SUBSTRING", help="only the commands whose label contains SUBSTRING")
    ap.add_argument("--group", choices=("defaults", "anchors"), default="defaults",
                    help="defaults: every command at its defaults; anchors: every stage at 4 096 [MAP] anchors")
    ap.add_argument("--limit-mib", type=float, default=None,
                    help=f"peak RSS allowed per command (default 1024; {ANCHOR_LIMIT_MIB} with --group anchors)")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    a = ap.parse_args(argv)
    if a.limit_mib is None:
        a.limit_mib = ANCHOR_LIMIT_MIB if a.group == "anchors" else 1024

    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        table = anchor_commands(tmp) if a.group == "anchors" else commands(tmp)
        cmds = [(label, args) for label, args in table if not a.only or a.only in label]
        base = measure([sys.executable, "-c", "import certificates.cli.main"])
        w = max([40] + [len(label) for label, _ in cmds])
        print(f"{'command':{w}s} {'peak MiB':>9s} {'x base':>7s} {'seconds':>8s} {'exit':>5s}")
        print(f"{'baseline: import certificates.cli.main':{w}s} {base['peak_mib']:9.1f} {1:7.2f} "
              f"{base['seconds']:8.2f} {base['rc']:5d}", flush=True)
        rows = []
        for label, args in cmds:
            r = measure([sys.executable, "-m", "certificates.cli", *args])
            rows.append({"command": label, "argv": args, **r, "ratio": r["peak_mib"] / base["peak_mib"]})
            note = f"  {r['stderr'][0][:60]}" if r["rc"] and r["stderr"] else ""
            print(f"{label:{w}s} {r['peak_mib']:9.1f} {rows[-1]['ratio']:7.2f} {r['seconds']:8.2f} {r['rc']:5d}{note}",
                  flush=True)

    over = [r for r in rows if r["peak_mib"] > a.limit_mib]
    total = sum(r["seconds"] for r in rows)
    if not rows:
        print(f"no command matches --only {a.only!r}")
    elif over:
        print(f"OVER the limit of {a.limit_mib:g} MiB: "
              + ", ".join(f"{r['command']} ({r['peak_mib']:.1f} MiB)" for r in over))
    else:
        top = max(rows, key=lambda r: r["peak_mib"])
        print(f"all {len(rows)} command(s) stayed under {a.limit_mib:g} MiB "
              f"(largest: {top['command']}, {top['peak_mib']:.1f} MiB); {total:.1f} s in all")
    if a.json:
        doc = {"group": a.group, "limit_mib": a.limit_mib, "baseline": base, "rows": rows}
        fd, part = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(a.json)), suffix=".partial")
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(part, a.json)
    return 2 if not rows else 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
