"""Executors on real workers: a local job process that dies is reported as WorkerDied; a Dask scheduler with two
worker processes reruns the task of a worker that died; the HTCondor submit description carries only the job spec
and the production account's Rucio configuration (no HTCondor pool on this machine: nothing is queued)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.executors import (
    DaskExecutor,
    ExecutorError,
    LocalExecutor,
    WorkerDied,
    condor_description,
    condor_submit,
)
from lifecycle.jobs import JobSpec
from tests.conftest import free_port
from tests.lifecycle.jobs_for_tests import die_once

ROOT = Path(__file__).resolve().parents[2]


def spec(tmp_path: Path, rucio_config: Path) -> dict:
    return JobSpec(did="cygno-data:LNF/run01001.mid.gz", kind="reco", campaign="c", profile="cygno-testbed",
                   rucio_config=str(rucio_config), cache=str(tmp_path / "cache"),
                   output_dir=str(tmp_path / "out")).to_dict()


def test_a_local_job_whose_process_dies_reports_worker_died(tmp_path: Path) -> None:
    cfg = tmp_path / "prod.cfg"
    cfg.write_text("[client]\nrucio_host = http://127.0.0.1:1\nauth_host = http://127.0.0.1:1\n")
    ex = LocalExecutor(tmp_path / "jobs")
    fut = ex.submit("run01001", spec(tmp_path, cfg))
    fut.proc.send_signal(signal.SIGKILL)
    with pytest.raises(WorkerDied, match="killed by signal 9"):
        fut.result()


def test_a_local_job_gets_the_production_config_and_not_the_daemons_environment(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "prod.cfg"
    cfg.write_text("[client]\n")
    monkeypatch.setenv("RUCIO_ACCOUNT", "root")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "daemon-secret")
    dump_env = "import json, os, sys; json.dump({'ok': True, 'env': dict(os.environ)}, open(sys.argv[2], 'w'))"
    ex = LocalExecutor(tmp_path / "jobs", command=[sys.executable, "-c", dump_env])
    env = ex.submit("run01001", spec(tmp_path, cfg)).result()["env"]
    assert env["RUCIO_CONFIG"] == str(cfg)
    assert "RUCIO_ACCOUNT" not in env and "AWS_SECRET_ACCESS_KEY" not in env


def test_dask_reruns_the_job_of_a_worker_that_died(tmp_path: Path) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nworkers",
                                           "1", "--nthreads", "1", "--no-dashboard", "--no-nanny"], env=env, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ex = DaskExecutor(f"tcp://127.0.0.1:{port}", fn=die_once)
        ex.client.wait_for_workers(2, timeout=120)
        fut = ex.submit("run01001", {"did": "cygno-data:LNF/run01001.mid.gz", "marker": str(tmp_path / "m")})
        res = fut.result()
        assert res["pid"] != res["first_pid"], "the task ran again on the other worker"
        assert sum(p.poll() is None for p in procs[1:]) == 1, "one worker process was killed"
        ex.close()
    finally:
        for p in reversed(procs):  # workers first: a worker whose scheduler is gone keeps trying to reconnect
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_an_unreachable_dask_scheduler_is_one_clear_error() -> None:
    with pytest.raises(ExecutorError, match="cannot reach the scheduler at tcp://127.0.0.1:"):
        DaskExecutor(f"tcp://127.0.0.1:{free_port()}", timeout=2)


def test_the_htcondor_submit_description_carries_only_the_spec_and_the_production_config(tmp_path: Path) -> None:
    cfg = tmp_path / "client-cygno-prod.cfg"
    cfg.write_text("[client]\n")
    spec_file = tmp_path / "job1.json"
    spec_file.write_text(json.dumps(spec(tmp_path, cfg)))
    sub = condor_description(spec_file, tmp_path / "job1.result.json", str(cfg))
    text = str(sub)
    assert text.endswith("queue\n")
    assert sub["executable"] == sys.executable
    assert sub["arguments"] == "-m lifecycle.jobs job1.json job1.result.json"
    assert sub["transfer_input_files"] == f"{spec_file},{cfg}"
    assert sub["environment"] == "RUCIO_CONFIG=client-cygno-prod.cfg" and sub["getenv"] == "false"
    assert sub["max_retries"] == "0" and sub["transfer_output_files"] == "job1.result.json"
    assert sub["MY.CygnoDid"] == '"cygno-data:LNF/run01001.mid.gz"'
    assert json.loads(spec_file.read_text())["rucio_config"] == "client-cygno-prod.cfg", "read in the scratch dir"
    assert "password" not in text.lower() and "token" not in text.lower()
    with pytest.raises(ExecutorError, match="no HTCondor pool reachable"):
        condor_submit(sub)
