"""Rucio 41's own S3 URL signing (rucio.core.credential, sign_url=s3) against a TLS S3 site, used by gfal2."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.storage import gfal
from testbed.storage.gfal import S3Site

gfal2 = pytest.importorskip("gfal2")

RSE_ID = "0123456789abcdef0123456789abcdef"
# What the Rucio server runs for GET /credentials/signurl, with its two DB/file look-ups replaced.
SIGN_SCRIPT = """
import json, sys
import rucio.core.credential as credential
rse_id, creds, urls = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
credential.get_rse_attribute = lambda rse, key: "path"          # RSE attribute s3_url_style
credential.get_rse_credentials = lambda *a, **k: {rse_id: creds}  # rse-accounts.cfg
print(json.dumps({op: credential.get_signed_url(rse_id, "s3", op, url, 600) for op, url in urls.items()}))
"""
RUCIO_CFG = """[common]
[database]
default = sqlite:///{home}/rucio.db
[trace]
tracedir = {home}
brokers = 127.0.0.1
port = 1
topic = /topic/rucio.tracer
username = x
password = x
"""


def rucio_signed_urls(site: S3Site, home: Path, urls: dict[str, str]) -> dict[str, str]:
    """Presigned URLs made by rucio.core.credential.get_signed_url in a separate interpreter."""
    (home / "etc").mkdir(parents=True, exist_ok=True)
    (home / "etc" / "rucio.cfg").write_text(RUCIO_CFG.format(home=home))
    creds = {"access_key": site.access_key, "secret_key": site.secret_key,
             "signature_version": "s3v4", "region": site.region}
    out = subprocess.run(
        [sys.executable, "-c", SIGN_SCRIPT, RSE_ID, json.dumps(creds), json.dumps(urls)],
        env={**os.environ, "RUCIO_HOME": str(home)}, capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def tls_site(
    tmp_path: Path, launch_s3: Callable[[S3Site, Path | None], Any], port_on: Callable[[str], int],
    monkeypatch: pytest.MonkeyPatch,
) -> S3Site:
    """An https S3 site whose CA gfal2 trusts through X509_CERT_DIR."""
    site = S3Site("127.0.0.58", port_on("127.0.0.58"), "TLSKEY00000000000004", "tls-secret")
    tls_dir = tmp_path / "tls"
    launch_s3(site, None, ["--tls-dir", str(tls_dir)], "https")
    monkeypatch.setenv("X509_CERT_DIR", str(tls_dir / "ca"))
    return site


def test_rucio_signed_put_get_delete(tls_site: S3Site, tmp_path: Path) -> None:
    base = f"https://{tls_site.host}:{tls_site.port}/cygno-data/LNGS/run00099.mid.gz"
    urls = rucio_signed_urls(tls_site, tmp_path / "rucio", {"write": base, "read": base, "delete": base})
    assert all(u.startswith(base + "?") and "X-Amz-Signature=" in u for u in urls.values())
    ctx = gfal.context()
    src = tmp_path / "run00099.mid.gz"
    src.write_bytes(os.urandom(123_456))

    params = ctx.transfer_parameters()
    params.strict_copy = True  # what rucio.rse.protocols.gfal.NoRename does
    ctx.filecopy(params, src.as_uri(), urls["write"])
    back = tmp_path / "back.gz"
    params = ctx.transfer_parameters()
    params.strict_copy = True
    ctx.filecopy(params, urls["read"], back.as_uri())
    assert back.read_bytes() == src.read_bytes()
    assert ctx.stat(urls["read"]).st_size == src.stat().st_size

    with pytest.raises(gfal2.GError):  # a read URL does not allow writing
        params = ctx.transfer_parameters()
        params.strict_copy = True
        ctx.filecopy(params, src.as_uri(), urls["read"].replace("run00099", "run00100"))
    ctx.unlink(urls["delete"])
    with pytest.raises(gfal2.GError) as err:  # Rucio's exists() needs ENOENT, not EACCES
        ctx.stat(urls["read"])
    assert err.value.code == errno.ENOENT


def test_s3s_url_with_host_credentials(tls_site: S3Site, tmp_path: Path) -> None:
    ctx = gfal.context([tls_site])
    src = tmp_path / "f.bin"
    src.write_bytes(b"over tls" * 1000)
    url = f"s3s://{tls_site.host}:{tls_site.port}/cygno-data/LNGS/tls.bin"
    params = ctx.transfer_parameters()
    params.create_parent = True
    ctx.filecopy(params, src.as_uri(), url)
    assert ctx.stat(url).st_size == src.stat().st_size

