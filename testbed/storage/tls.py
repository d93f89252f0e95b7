"""A throw-away testbed CA and host certificates signed by it (openssl CLI), shared by the endpoints."""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

DAYS = 365


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@contextmanager
def _locked(tls_dir: Path) -> Iterator[None]:
    tls_dir.mkdir(parents=True, exist_ok=True)
    with open(tls_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _ensure_ca(tls_dir: Path) -> Path:
    ca_dir = tls_dir / "ca"
    ca_pem = ca_dir / "ca.pem"
    if not ca_pem.exists():
        ca_dir.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", str(ca_pem),
                 "-days", str(DAYS), "-subj", "/CN=cygno-dm testbed CA", cwd=tls_dir)
        _openssl("rehash", str(ca_dir), cwd=tls_dir)  # X509_CERT_DIR layout: <hash>.0 -> ca.pem
        log.info("created testbed CA %s", ca_pem)
    return ca_dir


def ensure_host_cert(tls_dir: Path, host: str) -> tuple[Path, Path, Path]:
    """Create (once) the CA in `tls_dir`/ca and a certificate for `host`; return (cert, key, CA dir)."""
    with _locked(tls_dir):
        ca_dir = _ensure_ca(tls_dir)
        hosts = tls_dir / "hosts"
        hosts.mkdir(exist_ok=True)
        cert, key = hosts / f"{host}.pem", hosts / f"{host}.key"
        if cert.exists() and key.exists():
            return cert, key, ca_dir
        try:
            ipaddress.ip_address(host)
            san = f"IP:{host}"
        except ValueError:
            san = f"DNS:{host}"
        ext = hosts / f"{host}.ext"
        ext.write_text(f"subjectAltName={san},DNS:localhost,IP:127.0.0.1\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(hosts / f"{host}.csr"),
                 "-subj", f"/CN={host}", cwd=tls_dir)
        _openssl("x509", "-req", "-in", str(hosts / f"{host}.csr"), "-CA", str(ca_dir / "ca.pem"), "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", str(cert), "-days", str(DAYS), "-extfile", str(ext), cwd=tls_dir)
        key.chmod(0o600)
        log.info("created certificate for %s in %s", host, hosts)
        return cert, key, ca_dir


def client_dn(name: str) -> str:
    """The DN of the testbed client certificate called `name`."""
    return f"/O=cygno-dm testbed/CN={name}"


def client_cert_path(tls_dir: Path, name: str) -> Path:
    """Where ensure_client_cert keeps the certificate + key of `name`."""
    return tls_dir / "clients" / f"{name}.pem"


def ensure_client_cert(tls_dir: Path, name: str) -> Path:
    """Create (once) a client certificate `/O=cygno-dm testbed/CN=<name>` signed by the testbed CA.

    Returns one 0600 PEM file holding certificate and key, as Rucio's `[conveyor] usercert` and X509_USER_PROXY
    expect it.
    """
    with _locked(tls_dir):
        ca_dir = _ensure_ca(tls_dir)
        combined = client_cert_path(tls_dir, name)
        clients = combined.parent
        clients.mkdir(mode=0o700, exist_ok=True)
        if combined.exists():
            return combined
        key, csr, cert = clients / f"{name}.key", clients / f"{name}.csr", clients / f"{name}.crt"
        ext = clients / f"{name}.ext"
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=clientAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", client_dn(name), cwd=tls_dir)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.pem"), "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", str(cert), "-days", str(DAYS), "-extfile", str(ext), cwd=tls_dir)
        tmp = clients / f".{name}.pem.tmp"
        tmp.touch(mode=0o600)
        tmp.write_text(cert.read_text() + key.read_text())
        tmp.replace(combined)
        for path in (key, csr, cert, ext):
            path.unlink()
        log.info("created client certificate %s", combined)
        return combined
