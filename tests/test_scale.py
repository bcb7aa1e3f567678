"""Distributed branch and bound and checkpoint/resume give the single-process certificate, byte for byte."""
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

import constructions
from certificates.cli.main import main
from certificates.model import canonical, certificate_doc, load
from verify.search.certify import CertifyInterrupted, certify

RAMP = dict(p=201, kappa=30)          # about 8000 boxes, a dozen generations, ~3 s serial
EPS = "0.00424"                       # 1.02 x the dense sup error 0.0041537
CLI = [sys.executable, "-m", "certificates.cli", "certify", "ramp", "--set", "p=201", "--set", "kappa=30",
       "--eps", "0.00457", "--format", "json"]


def stable(doc) -> bytes:
    """Canonical bytes without the volatile fields (run time, library versions, hash over them)."""
    doc = json.loads(json.dumps(doc))
    doc.pop("versions")
    doc.pop("sha256")
    doc["stats"].pop("seconds")
    return canonical(doc)


@pytest.fixture(scope="module")
def ramp201():
    return constructions.build("ramp", **RAMP)


QUICK_EPS = "0.00457"                 # 1.1 x the sup error: ~3300 boxes evaluated, ~1 s serial


@pytest.fixture(scope="module")
def quick_cert(ramp201):
    res = certify(ramp201, QUICK_EPS, progress=False)
    assert res.status == "CERTIFIED" and len(res.leaves) > 1000
    return stable(certificate_doc(ramp201, res))


@pytest.fixture(scope="module")
def serial_cert(ramp201):
    res = certify(ramp201, EPS, progress=False)
    assert res.status == "CERTIFIED" and len(res.leaves) > 2000   # 2882 (centred boxes; 3300 plain)
    return stable(certificate_doc(ramp201, res))


def test_process_pool_gives_identical_certificate(ramp201, quick_cert):
    import multiprocessing
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as ex:
        res = certify(ramp201, QUICK_EPS, progress=False, executor=ex, batch=256)  # many units per generation
    assert stable(certificate_doc(ramp201, res)) == quick_cert


def test_dask_local_cluster_gives_identical_certificate(ramp201, quick_cert):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            res = certify(ramp201, QUICK_EPS, progress=False, executor=client.get_executor(), batch=512)
            assert len(client.scheduler_info()["workers"]) == 2
    assert res.status == "CERTIFIED"
    assert stable(certificate_doc(ramp201, res)) == quick_cert


@pytest.mark.slow   # the client waits for its connect timeout
def test_cli_scheduler_flag_unreachable_is_one_line(capsys):
    pytest.importorskip("distributed")
    assert main(["certify", "ramp", "--set", "p=5", "--eps", "0.5", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "scheduler" in err


def _wait_for_checkpoint_with_leaves(path, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, "certify finished before it could be interrupted"
        if os.path.exists(path):
            with open(path) as fh:
                doc = json.load(fh)   # atomic rename: never a half-written file
            if len(doc["leaves"]) > 0:
                return doc
        time.sleep(0.02)
    raise AssertionError("no checkpoint with finished leaves appeared")


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGKILL])
def test_interrupted_certify_resumes_to_identical_certificate(sig, tmp_path, quick_cert):
    out = tmp_path / "c.json"
    ckpt = str(out) + ".partial"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen(CLI + ["-o", str(out), "--checkpoint-every", "0.05"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = _wait_for_checkpoint_with_leaves(ckpt, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert not out.exists()
    if sig == signal.SIGINT:
        assert proc.returncode == 2
        assert err.strip().count("\n") == 0 and "checkpoint written" in err and "--resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    saved = json.loads(open(ckpt).read())
    assert len(saved["leaves"]) >= len(first["leaves"]) and saved["pending"]
    r = subprocess.run(CLI + ["-o", str(out), "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert stable(load(out)) == quick_cert
    assert not os.path.exists(ckpt)   # a finished job removes its checkpoint
    assert main(["check", str(out)]) == 0


@pytest.mark.parametrize("exc,raised", [(KeyboardInterrupt, CertifyInterrupted), (BrokenProcessPool, BrokenProcessPool)])
def test_resume_in_process_after_interrupt_or_dead_worker(exc, raised, ramp201, serial_cert, tmp_path, monkeypatch):
    """Ctrl-C or a dead worker mid-generation: the checkpoint holds the generation's start, nothing half-merged."""
    from verify.search import certify as ex   # certify calls run_units through its own name
    ckpt = tmp_path / "c.partial"
    real, calls = ex.run_units, {"n": 0}

    def flaky(job, units, executor=None):
        calls["n"] += 1
        if calls["n"] == 7:
            raise exc("worker died") if exc is BrokenProcessPool else exc()
        return real(job, units, executor)

    monkeypatch.setattr(ex, "run_units", flaky)
    with pytest.raises(raised):
        certify(ramp201, EPS, progress=False, checkpoint=ckpt, checkpoint_every=1e9)
    monkeypatch.setattr(ex, "run_units", real)
    res = certify(ramp201, EPS, progress=False, checkpoint=ckpt, resume=True)
    assert stable(certificate_doc(ramp201, res)) == serial_cert
    assert not ckpt.exists()


def test_resume_after_budget_continues(ramp201, serial_cert, tmp_path):
    ckpt = tmp_path / "c.partial"
    res = certify(ramp201, EPS, progress=False, max_boxes=2000, checkpoint=ckpt)
    assert res.status == "UNKNOWN" and ckpt.exists()
    res = certify(ramp201, EPS, progress=False, checkpoint=ckpt, resume=True)
    assert stable(certificate_doc(ramp201, res)) == serial_cert


def test_resume_rejects_other_job_and_garbage(tmp_path, capsys):
    ckpt = tmp_path / "c.partial"
    base = ["certify", "ramp", "--checkpoint", str(ckpt)]
    assert main(base + ["--eps", "0.0135", "--max-boxes", "50"]) == 1   # UNKNOWN leaves a checkpoint
    assert ckpt.exists()
    capsys.readouterr()
    assert main(base + ["--eps", "0.0136", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "another job" in err
    ckpt.write_text('{"format": "attncert/checkpoint-1", "job": 1.5}')
    assert main(base + ["--eps", "0.0135", "--resume"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()
    ckpt.write_text("{trunc")
    assert main(base + ["--eps", "0.0135", "--resume"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["certify", "ramp", "--eps", "0.1", "--resume"]) == 2
    assert main(["certify", "ramp", "--eps", "0.1", "--workers", "0"]) == 2
