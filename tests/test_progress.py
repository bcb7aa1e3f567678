"""Progress bars (issue 15 item 24): on stderr when it is a terminal, never otherwise."""
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import pytest

LIB = os.path.join(os.path.dirname(__file__), "..", "certificates", "library")
CERT = os.path.join(LIB, "ramp-p41-kappa27_10.json")
CLI = [sys.executable, "-m", "certificates.cli"]


def _run_with_tty_stderr(args, timeout=120):
    """Run the CLI with stderr on a pseudo-terminal; returns (rc, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))   # a 120-column terminal
    env = dict(os.environ, PYTHONPATH=os.getcwd(), COLUMNS="120")
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            pytest.fail("no output from the command")
        try:
            chunk = os.read(master, 4096)
        except OSError:   # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out = proc.stdout.read()
    proc.wait(timeout=timeout)
    os.close(master)
    return proc.returncode, out.decode(), shown.decode(errors="replace")


@pytest.mark.parametrize("args,word", [(["check", CERT], "check"), (["audit", CERT], "check")])
def test_check_and_audit_show_a_bar_on_a_terminal(args, word):
    rc, out, shown = _run_with_tty_stderr(args)
    assert rc == 0, out + shown
    n_boxes = len(json.load(open(CERT))["evidence"]["bounds"])
    assert word in shown and "boxes" in shown and str(n_boxes) in shown   # the bar counts the certificate's boxes
    assert "\r" in shown                                             # a bar redraws, it does not scroll
    assert "OK" in out


@pytest.mark.parametrize("args", [["check", CERT], ["audit", CERT]])
def test_no_bar_when_stderr_is_not_a_terminal(args):
    p = subprocess.run(CLI + args, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert p.returncode == 0 and p.stderr == ""
