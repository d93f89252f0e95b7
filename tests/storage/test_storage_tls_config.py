"""Testbed CA / host certificates and the generated XRootD configuration (no servers)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.storage import webdav
from testbed.storage.tls import ensure_host_cert


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A world-searchable temporary directory (xrootd's user must reach it when tests run as root)."""
    base = Path(tempfile.mkdtemp(prefix="cygno-tls-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_one_ca_signs_every_host_once(open_dir: Path) -> None:
    cert_a, key_a, ca = ensure_host_cert(open_dir, "127.0.0.11")
    cert_b, _, ca_b = ensure_host_cert(open_dir, "127.0.0.12")
    assert ca == ca_b and any(p.suffix == ".0" for p in ca.iterdir())  # hashed X509_CERT_DIR layout
    before = cert_a.read_bytes()
    assert ensure_host_cert(open_dir, "127.0.0.11")[0].read_bytes() == before
    for cert in (cert_a, cert_b):
        subprocess.run(["openssl", "verify", "-CApath", str(ca), str(cert)], check=True, capture_output=True)
    text = subprocess.run(["openssl", "x509", "-in", str(cert_a), "-noout", "-text"], check=True,
                          capture_output=True, text=True).stdout
    assert "IP Address:127.0.0.11" in text
    assert key_a.stat().st_mode & 0o077 == 0


def test_print_config_writes_state_and_does_not_start(open_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = webdav.main(["--host", "127.0.0.13", "--port", "9444", "--root", str(open_dir / "root"),
                      "--state-dir", str(open_dir / "state"), "--print-config"])
    out = capsys.readouterr().out
    assert rc == 0 and (open_dir / "state" / "xrootd.cfg").read_text() == out
    assert "xrd.port 9444" in out and "xrd.protocol XrdHttp:9444 libXrdHttp.so" in out
    assert f"oss.localroot {open_dir / 'root'}" in out and (open_dir / "root").is_dir()
    assert "http.exthandler xrdtpc libXrdHttpTPC.so" in out
