"""scripts/bench_memory.py: the peak-RSS benchmark runs and reports a peak under the limit."""
import json
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "bench_memory.py"


@pytest.mark.slow
def test_bench_memory_demo(tmp_path):
    out = tmp_path / "mem.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--only", "demo", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("demo "))
    peak = float(line.split()[1])
    assert 0 < peak < 1024
    assert "stayed under 1024 MiB" in p.stdout
    doc = json.loads(out.read_text())
    assert [r["command"] for r in doc["rows"]] == ["demo"]
    assert doc["rows"][0]["rc"] == 0 and 0 < doc["rows"][0]["peak_mib"] < doc["limit_mib"]
    assert doc["baseline"]["peak_mib"] > 0


def _bench_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_memory", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_anchor_group_covers_every_stage_at_4096_anchors(tmp_path):
    """--group anchors: every stage a user runs, for max-affine and cross-attention at G^D = 4 096."""
    from constructions import REGISTRY
    mod = _bench_module()
    labels = [label for label, _ in mod.anchor_commands(str(tmp_path))]
    for n in mod.ANCHOR_NAMES:
        size = REGISTRY[n].size({"f": mod.ANCHOR_F, "G": "4"})
        assert size == 4 ** 6 + 1
        for stage in ("build", "eval", "certify", "check", "plot"):
            assert any(label.startswith(stage + " ") and n in label for label in labels), (stage, n)
        for fmt in ("safetensors", "torch", "onnx", "flax", "npz"):
            assert f"export {n} --to {fmt}" in labels
    p = subprocess.run([sys.executable, str(SCRIPT), "--group", "anchors", "--only", "no such stage"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no command matches" in p.stdout
