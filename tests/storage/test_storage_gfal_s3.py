"""gfal2 against the two S3 sites: per-host credentials, uploads, downloads, streamed S3->S3 copies."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from rucio.common.checksum import adler32

from testbed.storage import gfal
from testbed.storage.gfal import S3Site

gfal2 = pytest.importorskip("gfal2")


def make_file(path: Path, size: int = 3 * 1024 * 1024 + 17) -> Path:
    """A random file of `size` bytes."""
    path.write_bytes(os.urandom(size))
    return path


def copy(ctx: Any, src: str, dst: str, checksum: str | None = None) -> None:
    """gfal2 copy with overwrite and parent creation, optionally verifying a checksum on both ends."""
    params = ctx.transfer_parameters()
    params.overwrite = True
    params.create_parent = True
    if checksum:
        params.set_checksum(gfal2.checksum_mode.both, checksum, "")
    ctx.filecopy(params, src, dst)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_file_to_s3_to_s3_to_file(s3_sites: tuple[S3Site, S3Site], tmp_path: Path) -> None:
    site_a, site_b = s3_sites
    ctx = gfal.context(s3_sites, streamed=True)
    src = make_file(tmp_path / "run00042.mid.gz")
    url_a = site_a.url("cygno-data", "LNGS/run00042.mid.gz")
    url_b = site_b.url("cygno-data", "LNGS/run00042.mid.gz")

    copy(ctx, src.as_uri(), url_a, checksum="MD5")
    copy(ctx, url_a, url_b)  # S3 -> S3 between sites: streamed through gfal2
    copy(ctx, url_b, (tmp_path / "back.gz").as_uri(), checksum="MD5")

    assert ctx.stat(url_a).st_size == ctx.stat(url_b).st_size == src.stat().st_size
    assert ctx.checksum(url_a, "MD5") == ctx.checksum(url_b, "MD5") == md5(src)
    assert adler32(tmp_path / "back.gz") == adler32(src)
    assert "run00042.mid.gz" in ctx.listdir(site_b.url("cygno-data", "LNGS"))


def test_s3_download_to_file(s3_sites: tuple[S3Site, S3Site], tmp_path: Path) -> None:
    site_a, _ = s3_sites
    ctx = gfal.context([site_a])
    src = make_file(tmp_path / "in.bin", 1000)
    url = site_a.url("cygno-sim", "MC/sim00001.root")
    copy(ctx, src.as_uri(), url)
    copy(ctx, url, (tmp_path / "out.bin").as_uri())
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()


def test_wrong_host_credentials_refused(s3_sites: tuple[S3Site, S3Site], tmp_path: Path) -> None:
    site_a, site_b = s3_sites
    # site B's key pair configured for site A's host: every signed request is refused
    wrong = S3Site(site_a.host, site_a.port, site_b.access_key, site_b.secret_key)
    ctx = gfal.context([wrong])
    src = make_file(tmp_path / "x.bin", 100)
    url = site_a.url("cygno-data", "LNGS/refused.bin")
    with pytest.raises(gfal2.GError):
        copy(ctx, src.as_uri(), url)
    with pytest.raises(gfal2.GError):
        gfal.context([site_a]).stat(url)


def test_gfal2_ini_has_one_group_per_host(s3_sites: tuple[S3Site, S3Site]) -> None:
    text = gfal.gfal2_ini(s3_sites, streamed=True)
    assert "[S3:127.0.0.51]" in text and "[S3:127.0.0.52]" in text
    assert "ALTERNATE=true" in text and "DEFAULT_COPY_MODE=streamed" in text
