"""Where jobs run: a local process pool (default), a Dask distributed cluster, or HTCondor.

Every executor takes a job spec (lifecycle.jobs.JobSpec as a dict) and returns a future with `done()` and
`result()`; `result()` raises the job's error, or WorkerDied when the process running it was lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lifecycle.jobs import run_job

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent.parent
# what a job process inherits: paths, locale, the CA settings and the profile; not the daemon's credentials
_ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "X509_CERT_DIR", "REQUESTS_CA_BUNDLE", "PYTHONPATH",
             "CYGNO_DM_PROFILE", "NUMBA_CACHE_DIR")


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)[-80:]


class WorkerDied(RuntimeError):
    """The worker running a job died (killed, out of memory) before the job ended."""


class ExecutorError(RuntimeError):
    """The executor cannot be used as configured; the message says why."""


class JobFuture(Protocol):
    def done(self) -> bool: ...

    def result(self) -> dict[str, Any]: ...


class _Translated:
    """A future whose lost-worker errors read as WorkerDied."""

    def __init__(self, inner: Any, lost: tuple[type[BaseException], ...]) -> None:
        self.inner, self.lost = inner, lost

    def done(self) -> bool:
        return self.inner.done()

    def result(self) -> dict[str, Any]:
        try:
            return self.inner.result()
        except self.lost as err:
            raise WorkerDied(f"the worker running the job died: {type(err).__name__}: {err}") from None


class _ProcessFuture:
    """A job running as `python -m lifecycle.jobs SPEC RESULT` in its own process."""

    def __init__(self, proc: subprocess.Popen, result_file: Path) -> None:
        self.proc, self.result_file = proc, result_file

    def done(self) -> bool:
        return self.proc.poll() is not None

    def result(self) -> dict[str, Any]:
        code = self.proc.wait()
        try:
            out = json.loads(self.result_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            how = f"killed by signal {-code}" if code < 0 else f"exit {code} without a result"
            raise WorkerDied(f"the worker process running the job died ({how})") from None
        if out["ok"]:
            return out
        from cygno_dm.processing.errors import ProcessingError, Unavailable

        raise (Unavailable if out.get("unavailable") else ProcessingError)(out["error"])


def _die_with_parent() -> None:
    """In the child: be killed when the daemon dies, so a job never outlives the daemon that owns its row."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LocalExecutor:
    """Each job in its own local process (`python -m lifecycle.jobs`, the same entry point as an HTCondor job),
    with only the job's spec, the production account's Rucio configuration and a minimal environment. A job whose
    process dies reports WorkerDied; jobs die with the daemon (their rows are reclaimed at the next start)."""

    name = "local"

    def __init__(self, work_dir: Path, command: list[str] | None = None) -> None:
        self.work_dir = work_dir
        self.command = command or [sys.executable, "-m", "lifecycle.jobs"]  # + SPEC RESULT
        work_dir.mkdir(parents=True, exist_ok=True)

    def submit(self, key: str, spec: dict[str, Any]) -> JobFuture:
        """Start the job's process."""
        tag = f"{_safe(key)}-{uuid.uuid4().hex[:8]}"
        spec_file, result_file = self.work_dir / f"{tag}.json", self.work_dir / f"{tag}.result.json"
        spec_file.write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if k in _ENV_KEPT}
        env["RUCIO_CONFIG"] = spec["rucio_config"]
        with open(self.work_dir / f"{tag}.log", "wb") as out:
            proc = subprocess.Popen([*self.command, str(spec_file), str(result_file)],
                                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=_ROOT,
                                    preexec_fn=_die_with_parent)
        log.info("%s: job started (pid %d, log %s)", spec["did"], proc.pid, out.name)
        return _ProcessFuture(proc, result_file)

    def close(self) -> None:
        """Nothing to stop: running jobs die with the daemon."""


class DaskExecutor:
    """Jobs on a Dask distributed scheduler (`dask scheduler` + `dask worker` processes on any machines). The
    scheduler reruns the task of a worker that died elsewhere; after its allowed failures it reports KilledWorker."""

    name = "dask"

    def __init__(self, address: str, fn: Callable[[dict[str, Any]], dict[str, Any]] = run_job,
                 timeout: float = 30) -> None:
        from distributed import Client

        self.fn = fn
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except OSError as err:
            raise ExecutorError(f"--executor dask: cannot reach the scheduler at {address}: {err}") from None

    def submit(self, key: str, spec: dict[str, Any]) -> JobFuture:
        """Run fn(spec) on a worker; the task key names the run and the attempt."""
        from distributed import KilledWorker

        fut = self.client.submit(self.fn, spec, key=f"{key}-{uuid.uuid4().hex[:8]}", pure=False)
        return _Translated(fut, (KilledWorker,))

    def close(self) -> None:
        """Disconnect from the scheduler."""
        self.client.close()


def condor_description(spec_file: Path, result_file: Path, rucio_config: str, python: str = sys.executable,
                       request_memory_mb: int = 4096, request_cpus: int = 1) -> Any:
    """The HTCondor submit description of one job: `python -m lifecycle.jobs SPEC RESULT`, with the spec and the
    production account's Rucio client configuration as its only input files."""
    import htcondor2

    cfg = Path(rucio_config)
    job_spec = json.loads(spec_file.read_text())
    job_spec["rucio_config"] = cfg.name  # transferred into the job's scratch directory
    spec_file.write_text(json.dumps(job_spec))
    tag = spec_file.stem
    return htcondor2.Submit({
        "universe": "vanilla",
        "executable": python,
        "arguments": shlex.join(["-m", "lifecycle.jobs", spec_file.name, result_file.name]),
        "transfer_executable": "false",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT_OR_EVICT",
        "transfer_input_files": f"{spec_file},{cfg}",
        "transfer_output_files": result_file.name,
        "output_destination": "",
        "initialdir": str(spec_file.parent),
        "environment": f"RUCIO_CONFIG={cfg.name}",
        "getenv": "false",
        "request_cpus": str(request_cpus),
        "request_memory": f"{request_memory_mb}MB",
        "max_retries": "0",  # retries are the daemon's, counted in its database
        "output": f"{tag}.out",
        "error": f"{tag}.err",
        "log": f"{tag}.log",
        "+CygnoDid": json.dumps(job_spec["did"]),
        "+CygnoCampaign": json.dumps(job_spec["campaign"]),
    })


def condor_submit(description: Any, schedd_name: str | None = None) -> int:
    """Queue a description on the local (or named) schedd; its cluster id. ExecutorError when no pool answers."""
    import htcondor2

    try:
        schedd = htcondor2.Schedd(htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, schedd_name)) \
            if schedd_name else htcondor2.Schedd()
        return schedd.submit(description).cluster()
    except Exception as err:  # the bindings raise HTCondorException or plain RuntimeError/ValueError
        raise ExecutorError(f"--executor htcondor: no HTCondor pool reachable: {type(err).__name__}: {err}") from None
