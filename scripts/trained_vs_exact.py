"""A trained float32 attention model against attncert's exact construction, both certified.

The [UAP] paper's public code (MAGICS-LAB/UAP_Attention, truncated.py) trains one softmax
attention layer on Range_[a,b]: an input token x -> Linear(x) * modulation, learned
interpolation tokens appended, one self-attention layer with biased q/k/v/out projections
and logits / sqrt(head_dim), the first token's output; Adam, float32, and it reports the
sampled test MSE.  This script trains that shape (input dim 1, sequence length 1, channel 0
as the prediction) on Range_[-1,1] over [-2, 2] for several token counts, exports each model
with torch.onnx.export, imports it with attncert (every float32 weight as the exact rational
it is), certifies its sup error, has `attncert check` confirm the certificate, and certifies
the exact ramp construction with the same number of interpolation tokens.

    python scripts/trained_vs_exact.py              # p = 5, 9, 17, 33: under 2 minutes on 2 cores
    python scripts/trained_vs_exact.py --tokens 5,9 --steps 3000 --out results.md

Everything runs on the CPU (torch with one thread: the tensors are tiny).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

A, B, LO, HI = -1.0, 1.0, -2.0, 2.0
TARGET = "min(max(x0, -1), 1)"
KAPPA = "27/10"


def model_class():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class UAPModel(nn.Module):
        """ExtendedMappingA + MultiHeadAttentionLayer of the [UAP] code, one head, sequence length 1."""

        def __init__(self, p: int, hidden: int):
            super().__init__()
            self.token_proj = nn.Linear(1, hidden)
            self.modulation = nn.Parameter(torch.ones(1, hidden))
            self.interp_tokens = nn.Parameter(torch.linspace(-1.0, 1.0, p).unsqueeze(1).expand(p, hidden).clone())
            self.q_proj, self.k_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            self.v_proj, self.out_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            self.hidden = hidden

        def forward(self, x):                                   # x: (N, 1) -> (N,)
            tok = self.token_proj(x.unsqueeze(1)) * self.modulation            # (N, 1, hidden)
            interp = self.interp_tokens.unsqueeze(0).expand(x.shape[0], -1, -1)
            Z = torch.cat([tok, interp], dim=1)                               # (N, 1 + p, hidden)
            Q, K, V = self.q_proj(Z), self.k_proj(Z), self.v_proj(Z)
            att = F.softmax(Q @ K.transpose(-2, -1) / (self.hidden ** 0.5), dim=-1)
            return self.out_proj(att @ V)[:, 0, 0]                           # first token, channel 0
    return UAPModel


def train(p, hidden, steps, seed, lr):
    import torch
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train = torch.from_numpy(rng.uniform(LO, HI, (2048, 1)).astype(np.float32))
    x_test = torch.from_numpy(rng.uniform(LO, HI, (1024, 1)).astype(np.float32))
    f = lambda x: torch.clamp(x[:, 0], A, B)
    model = model_class()(p, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        idx = torch.randint(0, len(x_train), (256,))
        opt.zero_grad()
        loss = torch.mean((model(x_train[idx]) - f(x_train[idx])) ** 2)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        mse = float(torch.mean((model(x_test) - f(x_test)) ** 2))
    return model, mse


def export_onnx(model, path):
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(4, 1),), path, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def dense_sup(network, n=200_001):
    from verify.forward import forward_float
    xs = np.linspace(LO, HI, n)
    y = forward_float(network, xs[:, None])[:, 0]
    err = np.abs(y - np.clip(xs, A, B))
    return float(err.max()), float(xs[err.argmax()])


def certify_tight(c, sup, budget):
    """Certify at eps slightly above the sampled sup; widen if the sample missed the peak."""
    import verify
    factor = 1.02
    for _ in range(4):
        eps = Fraction(sup * factor).limit_denominator(10 ** 9) + Fraction(1, 10 ** 9)
        res = verify.certify(c, eps, max_boxes=2_000_000, time_limit=budget, progress=False)
        if res.status == "CERTIFIED":
            from certificates.confirm import confirmed_document
            return res, confirmed_document(c, res)
        if res.status == "UNKNOWN":
            return res, None
        sup = max(sup, res.observed)
        factor *= 1.03
    return res, None


def check_cli(path) -> tuple:
    """`attncert check PATH --format json`, in process: (exit code, checked bound)."""
    import contextlib
    import io
    from certificates.cli.main import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", path, "--format", "json"])
    try:
        info = json.loads(out.getvalue())
        info = info[0] if isinstance(info, list) else info
    except (ValueError, IndexError):
        info = {}
    return code, info.get("checked_max_bound")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", default="5,9,17,33", help="interpolation token counts p (comma list)")
    ap.add_argument("--hidden", type=int, default=16, help="hidden width (head dim; 16 keeps 1/sqrt(16) exact)")
    ap.add_argument("--steps", type=int, default=1500, help="Adam steps (batch 256)")
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (cosine schedule)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=40.0, help="seconds per certify")
    ap.add_argument("--out", help="also write the table (Markdown) here")
    ap.add_argument("--keep", help="keep the ONNX models, network files and certificates in this folder")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)   # tiny tensors: one thread is ~10x faster than two on a 2-core machine
    import constructions
    from certificates.imports import document, import_model
    from certificates.model import save
    from constructions.imported import build_imported
    folder = args.keep or tempfile.mkdtemp(prefix="trained-vs-exact-")
    os.makedirs(folder, exist_ok=True)
    rows, t_all = [], time.perf_counter()
    for p in [int(v) for v in args.tokens.split(",")]:
        t0 = time.perf_counter()
        model, mse = train(p, args.hidden, args.steps, args.seed, args.lr)
        t_train = time.perf_counter() - t0
        onnx_path = os.path.join(folder, f"uap-p{p}.onnx")
        export_onnx(model, onnx_path)
        imp = import_model(onnx_path)
        net_path = os.path.join(folder, f"uap-p{p}.net.json")
        doc = document(imp)
        save(doc, net_path)
        c = build_imported(doc, TARGET, f"x0={LO:g}:{HI:g}")
        xs = torch.linspace(LO, HI, 200_001)[:, None]
        with torch.no_grad():
            y32 = model(xs).numpy().astype(np.float64)
        sup32 = float(np.max(np.abs(y32 - np.clip(xs[:, 0].numpy().astype(np.float64), A, B))))
        sup, at = dense_sup(imp.network)
        t1 = time.perf_counter()
        res, cert = certify_tight(c, sup, args.budget)
        t_cert = time.perf_counter() - t1
        cert_path = os.path.join(folder, f"uap-p{p}.cert.json")
        code, checked = (None, None)
        if cert is not None:
            save(cert, cert_path)
            code, checked = check_cli(cert_path)
        ramp = constructions.build("ramp", a="-1", b="1", p=p, kappa=KAPPA, lo="-2", hi="2")
        rsup, _ = dense_sup(ramp.network)
        rres, _ = certify_tight(ramp, rsup, args.budget)
        rows.append({"p": p, "mse": mse, "sup32": sup32, "sup": sup, "at": at, "status": res.status,
                     "bound": res.max_bound if res.status == "CERTIFIED" else None, "check": code,
                     "checked": checked, "boxes": res.boxes_evaluated, "t_train": t_train, "t_cert": t_cert,
                     "ramp_bound": rres.max_bound if rres.status == "CERTIFIED" else None, "ramp_sup": rsup})
        r = rows[-1]
        print(f"p={p}: test MSE {mse:.3g}, sampled sup {sup:.4g} (float32 torch {sup32:.4g}), certified "
              f"{r['bound'] if r['bound'] is None else format(r['bound'], '.4g')} ({res.status}, {res.boxes_evaluated} "
              f"boxes, {t_cert:.1f}s), attncert check exit {code}; exact ramp certified "
              f"{r['ramp_bound'] if r['ramp_bound'] is None else format(r['ramp_bound'], '.4g')}; train {t_train:.1f}s",
              file=sys.stderr)
    fmt = lambda v: "-" if v is None else f"{v:.4g}"
    lines = ["| interpolation tokens p | test MSE (paper's metric) | sampled sup error | certified sup error "
             "(trained, float32 weights exact) | attncert check | certified sup error (exact ramp, kappa = 27/10) "
             "| trained / exact |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "-" if r["bound"] is None or r["ramp_bound"] is None else f"{r['bound'] / r['ramp_bound']:.1f}x"
        lines.append(f"| {r['p']} | {r['mse']:.3g} | {fmt(r['sup'])} | {fmt(r['bound'])} | "
                     f"{'exit 0, ' + fmt(r['checked']) if r['check'] == 0 else r['check']} | {fmt(r['ramp_bound'])} | "
                     f"{ratio} |")
    table = "\n".join(lines)
    print(table)
    print(f"\n(total {time.perf_counter() - t_all:.0f}s; files in {folder})")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")
    return 0 if all(r["check"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
