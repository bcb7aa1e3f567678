"""Work is estimated before it starts: oversized constructions and exploding targets are refused
fast, in one line with exit code 2, naming the flag that raises the limit."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from certificates.cli.main import main

HUGE = [
    ["build", "ramp", "--set", "p=1000000000"],
    ["build", "relu-net", "--set", "n=100000000"],
    ["build", "icl-gd", "--set", "p=100000000"],
    ["build", "ramp-multihead", "--set", "n=100000", "--set", "H=100000"],
    ["build", "ramp-seq", "--set", "p=1000000000"],
    ["certify", "ramp", "--set", "p=1000000000", "--eps", "0.1"],
    ["eval", "ramp", "--set", "p=1000000000"],
]


@pytest.mark.parametrize("argv", HUGE, ids=lambda a: " ".join(a[:4]))
def test_oversized_construction_is_refused_before_it_is_built(argv, capsys):
    t0 = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - t0 < 2.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-tokens" in err and "tokens is more than the limit" in err


def test_max_tokens_flag_raises_and_lowers_the_limit(capsys):
    assert main(["build", "ramp", "--set", "p=41", "--max-tokens", "41"]) == 2
    assert "42 tokens" in capsys.readouterr().err
    assert main(["build", "ramp", "--set", "p=41", "--max-tokens", "42"]) == 0
    assert main(["build", "ramp", "--set", "p=41", "--max-tokens", "0"]) == 2


@pytest.mark.parametrize("f", ["exp(exp(x0*100))", "exp(exp(exp(x0*100)))"])
def test_exploding_target_is_refused_in_bounded_memory(f):
    """These used to pass 4 GB in exact Fractions, or end in MemoryError."""
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from certificates.cli.main import main\n"
            f"sys.exit(main(['build', 'max-affine', '--set', 'f={f}']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "2^4096" in r.stderr and "Traceback" not in r.stderr
