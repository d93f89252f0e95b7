"""Fixtures: tape endpoints run as real processes (gunicorn or werkzeug) on free loopback ports."""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
TLS: dict[str, str] = {}  # the tests' CA dir, CA file and client certificate (set by the session fixture)


@pytest.fixture(scope="session", autouse=True)
def tape_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A testbed CA for the endpoints (https) and a client certificate the tests (requests, gfal2) present."""
    from testbed.storage.tls import ensure_client_cert, ensure_host_cert

    tls_dir = tmp_path_factory.mktemp("tape-tls")
    _, _, ca_dir = ensure_host_cert(tls_dir, "127.0.0.1")
    TLS.update(dir=str(tls_dir), ca=str(ca_dir / "ca.pem"), cert=str(ensure_client_cert(tls_dir, "tape-test-client")))
    saved = {k: os.environ.get(k) for k in ("X509_USER_PROXY", "X509_CERT_DIR")}
    os.environ.update(X509_USER_PROXY=TLS["cert"], X509_CERT_DIR=str(ca_dir))  # gfal2 and its CLIs
    yield TLS
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class _Web:
    """requests as the authenticated test client over https (anonymous=True: without a certificate)."""

    def request(self, method: str, url: str, anonymous: bool = False, **kw: Any) -> requests.Response:
        return requests.request(method, url, verify=TLS["ca"], cert=None if anonymous else TLS["cert"], **kw)

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> requests.Response:
        return self.request("HEAD", url, **kw)

    def put(self, url: str, **kw: Any) -> requests.Response:
        return self.request("PUT", url, **kw)

    def post(self, url: str, **kw: Any) -> requests.Response:
        return self.request("POST", url, **kw)

    def delete(self, url: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", url, **kw)


web = _Web()


def with_certificate(app: Any) -> Any:
    """WSGI wrapper: every request carries the test client's certificate, as the TLS server hands it on."""
    text = Path(TLS["cert"]).read_text()
    pem = text[:text.index("-----END CERTIFICATE-----")] + "-----END CERTIFICATE-----\n"

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        environ.update({"SSL_CLIENT_CERT": pem, "wsgi.url_scheme": "https"})
        return app(environ, start_response)

    return wrapped


def https_connection(port: int, anonymous: bool = False) -> http.client.HTTPSConnection:
    """A raw https connection to 127.0.0.1:port (no client-side path normalisation)."""
    context = ssl.create_default_context(cafile=TLS["ca"])
    if not anonymous:
        context.load_cert_chain(TLS["cert"])
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)


def wait_until(predicate: Callable[[], object], limit: float = 30.0, every: float = 0.02) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``limit`` seconds (a safety net)."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {limit} s: {predicate}")
        time.sleep(every)


@dataclass
class TapeServer:
    """One tape endpoint process and how to reach it."""

    root: Path
    args: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    port: int = 0
    history: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base(self) -> str:
        """https://127.0.0.1:PORT"""
        return f"https://127.0.0.1:{self.port}"

    def url(self, path: str, scheme: str = "https") -> str:
        """Data URL of a namespace path."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self, *extra: str) -> TapeServer:
        """Start the process (new session, so that kill() reaches all its workers) and wait for health."""
        port_file = self.root.parent / f"{self.root.name}.port"
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "testbed.tape", "--host", "127.0.0.1", "--port", "0", "--root", str(self.root),
               "--port-file", str(port_file), "--tls-dir", TLS["dir"], *self.args, *extra]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.history.append(self.proc)
        wait_until(lambda: port_file.exists() or self.proc.poll() is not None, limit=60)
        assert self.proc.poll() is None, self.log_path.read_text()
        self.port = int(port_file.read_text())
        wait_until(self._healthy, limit=60)
        return self

    def _healthy(self) -> bool:
        try:
            return web.get(self.base + "/.well-known/wlcg-tape-rest-api", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group (master and workers) and reap it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
        # workers may outlive a SIGKILLed master for a moment: wait for the group to be gone
        wait_until(lambda: not _group_alive(self.proc.pid), limit=20)
        self.proc = None

    def log(self) -> str:
        """Everything the process printed."""
        return self.log_path.read_text(errors="replace")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _tape_servers(base: Path) -> Iterator[Callable[..., TapeServer]]:
    """Start tape endpoints under `base`; every process is stopped when the generator closes."""
    servers: list[TapeServer] = []

    def make(*args: str, name: str = "tape") -> TapeServer:
        server = TapeServer(root=base / name, args=list(args), log_path=base / f"{name}.log")
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        if server.proc is not None:
            server.kill(signal.SIGTERM)


@pytest.fixture
def tape_factory(tmp_path: Path) -> Iterator[Callable[..., TapeServer]]:
    """Start tape endpoints with given options; every process is stopped at teardown."""
    yield from _tape_servers(tmp_path)


@pytest.fixture(scope="module")
def module_tape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TapeServer]]:
    """Like tape_factory, shared by the tests of one module."""
    yield from _tape_servers(tmp_path_factory.mktemp("tape"))


def disk_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Return {relative path: (size, mtime_ns)} of the data files (buffer, tape, temporaries) under ``root``."""
    out: dict[str, tuple[int, int]] = {}
    for sub in ("buffer", "tape", "tmp"):
        for p in sorted((root / sub).rglob("*")):
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def archiveinfo(server: TapeServer, path: str) -> dict:
    """Return the archiveinfo entry of one path."""
    r = web.post(server.base + "/api/v1/archiveinfo", json={"paths": [path]}, timeout=10)
    r.raise_for_status()
    return r.json()[0]
