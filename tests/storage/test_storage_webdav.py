"""The XRootD WebDAV endpoint with real clients: gfal2 copies with ADLER32, digests, listing, TPC."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from rucio.common.checksum import adler32

from testbed.storage import gfal, webdav_ready
from testbed.storage.gfal import S3Site
from testbed.storage.tls import ensure_client_cert
from testbed.storage.webdav import WebdavConfig, WebdavEndpoint, render_config

gfal2 = pytest.importorskip("gfal2")


def copy(ctx: Any, src: str, dst: str, checksum: str | None = "ADLER32") -> None:
    """gfal2 copy with overwrite, parent creation and checksum verification on both ends."""
    params = ctx.transfer_parameters()
    params.overwrite = True
    params.create_parent = True
    if checksum:
        params.set_checksum(gfal2.checksum_mode.both, checksum, "")
    ctx.filecopy(params, src, dst)


def tpc_only_context(sites: tuple[S3Site, ...] = (), mode: str = "3rd pull") -> Any:
    """A gfal2 context that must do a third-party copy in `mode` (no streaming fallback)."""
    ctx = gfal.context(sites)
    ctx.set_opt_string("HTTP PLUGIN", "DEFAULT_COPY_MODE", mode)
    ctx.set_opt_boolean("HTTP PLUGIN", "ENABLE_FALLBACK_TPC_COPY", False)
    return ctx


def raw_put(url: str, path: str, data: bytes) -> int:
    """PUT over plain http with the path sent exactly as given (no client-side normalisation of '..')."""
    host, port = url.split("://", 1)[1].split(":")
    request = (f"PUT {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(data)}\r\n"
               "Connection: close\r\n\r\n").encode() + data
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_config_enables_digests_and_tpc(tmp_path: Path) -> None:
    cfg = WebdavConfig("127.0.0.56", 1, tmp_path / "root", tmp_path / "state")
    tls = (tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca")
    text = render_config(cfg, tls)
    assert "xrootd.chksum max 8 adler32 md5" in text
    assert f"oss.localroot {tmp_path / 'root'}" in text
    assert "libXrdHttpTPC.so" in text
    assert "libXrdHttpTPC.so" not in render_config(cfg, None)


def test_upload_download_with_adler32(webdav: WebdavEndpoint, tmp_path: Path) -> None:
    url, root, _ = webdav
    src = tmp_path / "run00077.mid.gz"
    src.write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    ctx = gfal.context()
    for scheme_url in (f"{url}/cygno-data/LNGS/run00077.mid.gz", f"davs://{url[8:]}/cygno-data/LNGS/dav.mid.gz"):
        copy(ctx, src.as_uri(), scheme_url)
        back = tmp_path / "back.gz"
        copy(ctx, scheme_url, back.as_uri())
        assert back.read_bytes() == src.read_bytes()
        back.unlink()
    assert (root / "cygno-data/LNGS/run00077.mid.gz").read_bytes() == src.read_bytes()
    assert ctx.checksum(f"{url}/cygno-data/LNGS/run00077.mid.gz", "ADLER32") == adler32(src)


def test_rfc3230_digests(webdav: WebdavEndpoint, tmp_path: Path) -> None:
    url, _, tls = webdav
    data = os.urandom(100_000)
    ca = str(tls / "ca" / "ca.pem")
    assert requests.put(f"{url}/cygno-data/LNGS/digest.bin", data=data, timeout=10, verify=ca,
                        cert=os.environ["X509_USER_PROXY"]).status_code in (200, 201)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    adler = requests.head(f"{url}/cygno-data/LNGS/digest.bin", headers={"Want-Digest": "adler32"}, timeout=10,
                          verify=ca)
    assert adler.headers["Digest"] == f"adler32={adler32(src)}"
    md5 = requests.head(f"{url}/cygno-data/LNGS/digest.bin", headers={"Want-Digest": "md5"}, timeout=10, verify=ca)
    assert md5.headers["Digest"] == "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()


def test_stat_and_listing(webdav: WebdavEndpoint, tmp_path: Path) -> None:
    url, _, _ = webdav
    ctx = gfal.context()
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1234)
    copy(ctx, src.as_uri(), f"{url}/cygno-data/MAN/run10001.mid.gz")
    copy(ctx, src.as_uri(), f"{url}/cygno-data/MAN/run10002.mid.gz")
    assert ctx.stat(f"{url}/cygno-data/MAN/run10001.mid.gz").st_size == 1234
    assert sorted(ctx.listdir(f"{url}/cygno-data/MAN")) == ["run10001.mid.gz", "run10002.mid.gz"]
    with pytest.raises(gfal2.GError):
        ctx.stat(f"{url}/cygno-data/MAN/missing.mid.gz")


@pytest.mark.parametrize("path", ["/../escape.txt", "/cygno-data/../../escape.txt",
                                  "/cygno-data/%2e%2e/%2e%2e/escape.txt", "/cygno-data/LNGS/../../../escape.txt"])
def test_dotdot_paths_refused(webdav: WebdavEndpoint, path: str) -> None:
    url, root, _ = webdav
    assert raw_put(url, path, b"should not land") in (400, 403, 404)
    assert not any(p.name == "escape.txt" for p in root.parent.rglob("escape.txt"))


def test_gfal2_dotdot_refused(webdav: WebdavEndpoint, tmp_path: Path) -> None:
    url, root, _ = webdav
    src = tmp_path / "e.bin"
    src.write_bytes(b"e")
    with pytest.raises(gfal2.GError):
        copy(gfal.context(), src.as_uri(), f"{url}/cygno-data/../../escape2.txt", checksum=None)
    assert not list(root.parent.rglob("escape2.txt"))


def test_third_party_pull_webdav_to_webdav(webdav: WebdavEndpoint, tmp_path: Path) -> None:
    url, root, _ = webdav
    src = tmp_path / "tpc.bin"
    src.write_bytes(os.urandom(500_000))
    copy(gfal.context(), src.as_uri(), f"{url}/cygno-data/LNF/src.bin")
    # an https source would make gfal2 ask for a delegated proxy (Credential: gridsite), which XrdHttpTPC refuses;
    # the pull reads the source over plain http on the same port (reads are open to anyone)
    plain = url.replace("https://", "http://")
    copy(tpc_only_context(), f"{plain}/cygno-data/LNF/src.bin", f"{url}/cygno-data/LNF/tpc.bin")
    assert (root / "cygno-data/LNF/tpc.bin").read_bytes() == src.read_bytes()


def test_third_party_pull_s3_to_webdav(
    webdav: WebdavEndpoint, s3_sites: tuple[S3Site, S3Site], tmp_path: Path
) -> None:
    url, root, _ = webdav
    site_a, _ = s3_sites
    src = tmp_path / "s3.bin"
    src.write_bytes(os.urandom(300_000))
    s3_url = site_a.url("cygno-data", "LNF/from-s3.bin")
    copy(gfal.context([site_a]), src.as_uri(), s3_url, checksum=None)
    # XRootD pulls the presigned URL gfal2 makes from the s3:// source
    copy(tpc_only_context((site_a,)), s3_url, f"{url}/cygno-data/LNF/from-s3.bin")
    assert (root / "cygno-data/LNF/from-s3.bin").read_bytes() == src.read_bytes()


def test_third_party_push_webdav_to_s3(
    webdav: WebdavEndpoint, s3_sites: tuple[S3Site, S3Site], tmp_path: Path
) -> None:
    """What Rucio's conveyor asks for (source URL + '?copy_mode=push'): XRootD PUTs to a presigned URL."""
    url, _, _ = webdav
    _, site_b = s3_sites
    src = tmp_path / "p.bin"
    src.write_bytes(os.urandom(250_000))
    copy(gfal.context(), src.as_uri(), f"{url}/cygno-data/LNF/push.bin")
    ctx = tpc_only_context((site_b,), mode="3rd push")
    copy(ctx, f"{url}/cygno-data/LNF/push.bin?copy_mode=push", site_b.url("cygno-data", "LNF/push.bin"), checksum=None)
    assert ctx.checksum(site_b.url("cygno-data", "LNF/push.bin"), "MD5") == hashlib.md5(src.read_bytes()).hexdigest()


def test_webdav_to_s3_streamed(
    webdav: WebdavEndpoint, s3_sites: tuple[S3Site, S3Site], tmp_path: Path
) -> None:
    url, _, _ = webdav
    _, site_b = s3_sites
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(200_000))
    copy(gfal.context(), src.as_uri(), f"{url}/cygno-data/LNF/to-s3.bin")
    ctx = gfal.context([site_b], streamed=True)
    copy(ctx, f"{url}/cygno-data/LNF/to-s3.bin", site_b.url("cygno-data", "LNF/to-s3.bin"), checksum="MD5")
    assert ctx.checksum(site_b.url("cygno-data", "LNF/to-s3.bin"), "MD5") == hashlib.md5(src.read_bytes()).hexdigest()


def test_ready_false_on_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.57", 0))
        port = sock.getsockname()[1]
    assert not webdav_ready(f"http://127.0.0.57:{port}/")


def test_https_s3_to_davs_third_party_pull(
    webdav: WebdavEndpoint, tmp_path: Path, launch_s3: Callable[..., Any], port_on: Callable[[str], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The production shape: s3s:// source, davs:// destination, XRootD pulls over https (shared CA)."""
    site = S3Site("127.0.0.59", port_on("127.0.0.59"), "HTTPSKEY000000000005", "https-secret")
    launch_s3(site, None, ["--tls-dir", str(webdav.tls_dir)], "https")
    monkeypatch.setenv("X509_CERT_DIR", str(webdav.tls_dir / "ca"))
    src = tmp_path / "run00123.mid.gz"
    src.write_bytes(os.urandom(400_000))
    s3s = f"s3s://{site.host}:{site.port}/cygno-data/LNGS/run00123.mid.gz"
    copy(gfal.context([site]), src.as_uri(), s3s, checksum=None)
    davs = webdav.url.replace("https://", "davs://") + "/cygno-data/LNGS/run00123.mid.gz"
    copy(tpc_only_context((site,)), s3s, davs)
    assert (webdav.root / "cygno-data/LNGS/run00123.mid.gz").read_bytes() == src.read_bytes()
    assert gfal.context().checksum(davs, "ADLER32") == adler32(src)


def _status(method: str, url: str, tls: Path, cert: str | None = None, **kw: Any) -> int:
    return requests.request(method, url, verify=str(tls / "ca" / "ca.pem"), cert=cert, timeout=10, **kw).status_code


def test_anonymous_and_unlisted_clients_cannot_write_delete_or_pull(webdav: WebdavEndpoint, tmp_path: Path) -> None:
    url, root, tls = webdav
    target = f"{url}/cygno-data/LNGS/guarded.bin"
    reader = str(ensure_client_cert(tls, "webdav-test-reader"))  # same CA, not a writer
    for cert in (None, reader):
        assert _status("PUT", target, tls, cert, data=b"x") == 403
        assert _status("MKCOL", f"{url}/cygno-data/anon-dir", tls, cert) == 403
        assert _status("COPY", target, tls, cert, headers={"Source": "http://127.0.0.1:9/"}) in (401, 403)
    assert not (root / "cygno-data/LNGS/guarded.bin").exists()
    assert _status("PUT", target, tls, os.environ["X509_USER_PROXY"], data=b"kept") in (200, 201)
    for cert in (None, reader):
        assert _status("DELETE", target, tls, cert) == 403
    assert (root / "cygno-data/LNGS/guarded.bin").read_bytes() == b"kept"
    assert _status("GET", target, tls) == 200 and _status("PROPFIND", url + "/", tls, headers={"Depth": "0"}) == 207
    assert _status("DELETE", target, tls, os.environ["X509_USER_PROXY"]) in (200, 204)


def test_peers_that_are_not_on_loopback_are_refused(webdav: WebdavEndpoint) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the address of the default route
        lan = probe.getsockname()[0]
    if lan.startswith("127."):
        pytest.skip("this machine has no non-loopback address")
    port = int(webdav.url.rsplit(":", 1)[1])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"https://{lan}:{port}/", verify=False, timeout=10)
