"""Fixtures: two real S3 sites (moto) and a real WebDAV endpoint (XRootD), module-scoped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.private import write_private
from testbed.storage import s3_ready, webdav_ready
from testbed.storage.gfal import S3Site
from testbed.storage.tls import ensure_client_cert
from testbed.storage.webdav import WebdavEndpoint

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0


def free_port(host: str = "") -> int:
    """A TCP port nobody listens on (on `host`, or on every address when empty)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process started in its own process group, with its output in a log file."""

    def __init__(self, argv: list[str], log_path: Path, ready: Callable[[], bool]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[:4]} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Terminate the process group and wait for it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self._log.close()


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


HOST_A, HOST_B, HOST_DAV = "127.0.0.51", "127.0.0.52", "127.0.0.53"
WEBDAV_WRITER = "webdav-test-writer"
BUCKETS = ("cygno-data", "cygno-sim")


def start_s3(
    site: S3Site, state_dir: Path | None, log_path: Path, extra: list[str] | None = None, scheme: str = "http"
) -> Server:
    """Run one S3 site in a subprocess until it answers its health check."""
    secret = write_private(log_path.parent / "secrets" / f"{site.host}.key", site.secret_key)
    args = [*(extra or []), "--host", site.host, "--port", str(site.port), "--access-key", site.access_key,
            "--secret-key-file", str(secret)]
    for bucket in BUCKETS:
        args += ["--bucket", bucket]
    if state_dir:
        args += ["--state-dir", str(state_dir)]
    endpoint = f"{scheme}://{site.host}:{site.port}"
    return Server(python_module("testbed.storage.s3", *args), log_path, lambda: s3_ready(endpoint))


@pytest.fixture(scope="module")
def s3_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Site, S3Site]]:
    """Two S3 sites with different credentials."""
    base = tmp_path_factory.mktemp("s3")
    site_a = S3Site(HOST_A, free_port(HOST_A), "CNAFKEY0000000000001", "cnaf-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    site_b = S3Site(HOST_B, free_port(HOST_B), "BARIKEY0000000000002", "bari-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    servers = []
    try:
        servers.append(start_s3(site_a, base / "state-a", base / "a.log"))
        servers.append(start_s3(site_b, base / "state-b", base / "b.log"))
        yield site_a, site_b
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def webdav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebdavEndpoint]:
    """The XRootD WebDAV endpoint, with a testbed CA other endpoints can share."""
    if not shutil.which("xrootd"):
        pytest.skip("xrootd is not installed (apt: xrootd-server)")
    # xrootd runs as user 'xrootd' when the tests run as root: pytest's 0700 tmp dirs are out of its reach
    base = Path(tempfile.mkdtemp(prefix="cygno-dav-"))
    base.chmod(0o755)
    port = free_port()  # XRootD listens on every address (and accepts loopback peers only)
    url = f"https://{HOST_DAV}:{port}"
    root = base / "root"
    writer = ensure_client_cert(base / "tls", WEBDAV_WRITER)
    argv = python_module("testbed.storage.webdav", "--host", HOST_DAV, "--port", str(port),
                         "--root", str(root), "--state-dir", str(base / "state"), "--tls-dir", str(base / "tls"),
                         "--writer-dn", f"/O=cygno-dm testbed/CN={WEBDAV_WRITER}")
    log_path = tmp_path_factory.mktemp("dav-log") / "xrootd.log"
    saved = {k: os.environ.get(k) for k in ("X509_USER_PROXY", "X509_CERT_DIR")}
    # gfal2 (and XRootD's third-party pulls from itself) present the writer's certificate and trust the CA
    os.environ.update(X509_USER_PROXY=str(writer), X509_CERT_DIR=str(base / "tls" / "ca"))
    try:
        server = Server(argv, log_path, lambda: webdav_ready(url + "/"))
        try:
            yield WebdavEndpoint(url, root, base / "tls")
        finally:
            server.stop()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def launch_s3(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start extra S3 sites inside one test (site, state_dir[, extra args, scheme]); stopped at its end."""
    started: list[Server] = []

    def launch(site: S3Site, state_dir: Path | None, extra: list[str] | None = None, scheme: str = "http") -> Server:
        server = start_s3(site, state_dir, tmp_path / f"s3-{len(started)}.log", extra, scheme)
        started.append(server)
        return server

    yield launch
    for server in started:
        server.stop()


@pytest.fixture
def port_on() -> Callable[[str], int]:
    """A function returning a free port on an address."""
    return free_port
