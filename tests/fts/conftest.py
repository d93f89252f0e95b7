"""Fixtures for the FTS-compatible service: moto S3 servers, the service as a real process, helpers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
S3_A = ("127.0.0.41", "fts-test-key-a", "fts-test-secret-a")
S3_B = ("127.0.0.42", "fts-test-key-b", "fts-test-secret-b")
DOWN_HOST = "127.0.0.43"
DOWN_KEYS = ("fts-test-key-c", "fts-test-secret-c")
FTS_HOST = "127.0.0.45"
TAPE_HOST = "127.0.0.46"
# The service copies only between configured endpoints: the test hosts (any port) and the test's tmp dir.
TEST_ENDPOINTS = [f"https://{h}" for h in (S3_A[0], S3_B[0], DOWN_HOST, TAPE_HOST)]
USER, OTHER, ADMIN, SERVICE = "fts-test-user", "fts-test-other", "fts-test-admin", "fts-test-service"
TERMINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}


def free_port(host: str) -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll until predicate() is truthy (a safety net against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what or predicate}")
        time.sleep(interval)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class MotoServer:
    """A moto S3 server process on its own loopback address."""

    def __init__(self, host: str, access_key: str, secret_key: str, log_dir: Path):
        self.host, self.access_key, self.secret_key = host, access_key, secret_key
        self.log_dir = log_dir
        self.port = free_port(host)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """http://host:port of the server."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        """Start the server and wait until it answers."""
        with open(self.log_dir / f"moto-{self.host}.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, 30, what=f"moto on {self.endpoint}")
        return self

    def _up(self) -> bool:
        try:
            requests.get(self.endpoint + "/", timeout=1)
            return True
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """Stop the server."""
        if self.proc is not None:
            _stop(self.proc)

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")

    def url(self, bucket: str, key: str, scheme: str = "s3") -> str:
        """A URL of an object on this server."""
        return f"{scheme}://{self.host}:{self.port}/{bucket}/{key}"


class FtsTls:
    """The testbed CA of the tests: the service's host certificate and client certificates of three actors."""

    def __init__(self, tls_dir: Path):
        from testbed.storage.tls import ensure_client_cert

        self.dir = tls_dir
        self.ca = str(tls_dir / "ca" / "ca.pem")
        self.certs = {name: str(ensure_client_cert(tls_dir, name)) for name in (USER, OTHER, ADMIN, SERVICE)}

    @staticmethod
    def dn(name: str) -> str:
        """The DN of a test actor."""
        return f"/O=cygno-dm testbed/CN={name}"

    def pem(self, name: str) -> str:
        """The certificate (without its key) of a test actor."""
        text = Path(self.certs[name]).read_text()
        return text[:text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"

    def client(self, app: Any, name: str | None = USER) -> Any:
        """A Flask test client whose requests carry the actor's verified certificate, as the TLS server sets it."""
        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        if name:
            client.environ_base["SSL_CLIENT_CERT"] = self.pem(name)
        return client


class FtsProcess:
    """The service started with `python -m testbed.fts`, restartable and killable."""

    def __init__(self, workdir: Path, creds: Path, tls: FtsTls, extra: list[str] | None = None,
                 host: str = FTS_HOST):
        self.workdir, self.creds, self.tls, self.extra, self.host = workdir, creds, tls, extra or [], host
        self.cert = tls.certs[USER]
        self.port = free_port(host)
        self.db = workdir / "fts.db"
        self.log = workdir / "fts.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return f"https://{self.host}:{self.port}"

    def request(self, method: str, path: str, as_: str | None = USER, **kw: Any) -> requests.Response:
        """An HTTPS request as the test actor `as_` (None: no certificate)."""
        kw.setdefault("timeout", 10)
        return requests.request(method, self.url + path, verify=self.tls.ca,
                                cert=self.tls.certs[as_] if as_ else None, **kw)

    def start(self) -> FtsProcess:
        """Start (or restart) the service and wait for its health check to answer."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("X509_USER_PROXY", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.fts", "--host", self.host, "--port", str(self.port), "--db",
                 str(self.db), "--s3-credentials", str(self.creds), "--tape-poll", "0.3", "--tls-dir",
                 str(self.tls.dir), "--admin-dn", self.tls.dn(ADMIN), "--client-cert", self.tls.certs[SERVICE],
                 "--s3-user-dn", self.tls.dn(USER), "--s3-user-dn", "rucio",
                 "--storage-endpoint", f"file://{self.workdir}",
                 *(x for e in TEST_ENDPOINTS for x in ("--storage-endpoint", e)), *self.extra],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        wait_for(self.healthy, 30, what="FTS service health")
        return self

    def healthy(self) -> bool:
        """GET /health answers 200 (no credential needed)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"service exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        try:
            r = requests.get(self.url + "/health", timeout=2, verify=self.tls.ca)
            return r.status_code == 200 and r.json()["status"] == "ok"
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL the service."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the service gracefully."""
        if self.proc is not None:
            _stop(self.proc)

    def submit(self, files: list[dict[str, Any]], **params: Any) -> str:
        """POST /jobs and return the job id."""
        r = self.request("POST", "/jobs", json={"files": files, "params": params})
        assert r.status_code == 200, r.text
        return r.json()["job_id"]

    def job(self, job_id: str) -> dict[str, Any]:
        """The job with all its file fields."""
        r = self.request("GET", f"/jobs/{job_id}?files=")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, job_id: str, timeout: float = 90) -> dict[str, Any]:
        """Wait until the job is in a terminal state and return it."""
        return wait_for(lambda: (j := self.job(job_id))["job_state"] in TERMINAL and j, timeout, 0.1,
                        what=f"job {job_id} terminal")


@pytest.fixture(scope="session")
def s3_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, MotoServer]]:
    """Two moto S3 servers (127.0.0.41 and 127.0.0.42) with distinct credentials."""
    logs = tmp_path_factory.mktemp("moto")
    a = MotoServer(*S3_A, log_dir=logs).start()
    b = MotoServer(*S3_B, log_dir=logs).start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture(scope="session")
def s3_creds_file(tmp_path_factory: pytest.TempPathFactory, s3_servers: tuple[MotoServer, MotoServer]) -> Path:
    """The credentials JSON the service reads, keyed by host."""
    path = tmp_path_factory.mktemp("creds") / "s3.json"
    creds = {s.host: {"access_key": s.access_key, "secret_key": s.secret_key, "region": "us-east-1"}
             for s in s3_servers}
    creds[DOWN_HOST] = {"access_key": DOWN_KEYS[0], "secret_key": DOWN_KEYS[1], "region": "us-east-1"}
    path.write_text(json.dumps(creds))
    return path


@pytest.fixture(scope="session")
def fts_tls(tmp_path_factory: pytest.TempPathFactory) -> FtsTls:
    """CA, host and client certificates shared by the tests of the service."""
    return FtsTls(tmp_path_factory.mktemp("fts-tls"))


@pytest.fixture
def fts_factory(tmp_path: Path, s3_creds_file: Path, fts_tls: FtsTls) -> Iterator[Callable[..., FtsProcess]]:
    """Start service processes in a test's tmp dir; all are stopped at teardown."""
    started: list[FtsProcess] = []

    def make(*extra: str) -> FtsProcess:
        proc = FtsProcess(tmp_path, s3_creds_file, fts_tls, list(extra))
        started.append(proc)
        return proc.start()

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def fts(fts_factory: Callable[..., FtsProcess]) -> FtsProcess:
    """A running service with default limits."""
    return fts_factory("--max-active", "4", "--max-per-link", "2", "--retry-delay", "0.5")


@pytest.fixture
def buckets(s3_servers: tuple[MotoServer, MotoServer], request: pytest.FixtureRequest) -> tuple[str, str]:
    """Fresh source bucket on server A and destination bucket on server B."""
    name = "t" + str(abs(hash(request.node.nodeid)) % 10**10)
    s3_servers[0].client().create_bucket(Bucket=name + "-src")
    s3_servers[1].client().create_bucket(Bucket=name + "-dst")
    return name + "-src", name + "-dst"
