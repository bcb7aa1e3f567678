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
