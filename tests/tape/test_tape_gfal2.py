"""The endpoint driven by real gfal2 (Python bindings and CLI) over plain http:// and dav:// on loopback."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import zlib
from pathlib import Path

import pytest

from .conftest import TapeServer, archiveinfo, wait_until, web

gfal2 = pytest.importorskip("gfal2")

LNGS = "/cygno/cygno-data/LNGS"


def _gfal_cli_python() -> str | None:
    """Return an interpreter that can run gfal2-util's CLIs (Debian's python3), or None."""
    for cand in (os.environ.get("GFAL_PYTHONBIN"), "/usr/bin/python3"):
        if cand and shutil.which(cand) and subprocess.run(
                [cand, "-c", "import gfal2, gfal2_util"], capture_output=True).returncode == 0:
            return cand
    return None


def ctx() -> object:
    """A fresh gfal2 context (tape endpoint discovery is cached per context)."""
    c = gfal2.creat_context()
    c.set_opt_integer("HTTP PLUGIN", "OPERATION_TIMEOUT", 30)
    return c


def upload(server: TapeServer, local: Path, path: str, checksum: str = "ADLER32") -> None:
    """Copy a local file to the endpoint with gfal2, verifying the checksum end to end."""
    c = ctx()
    params = c.transfer_parameters()
    params.create_parent = True
    params.overwrite = True
    params.checksum_check = True
    params.set_checksum(gfal2.checksum_mode.both, checksum, "")
    c.filecopy(params, local.as_uri(), server.url(path))


def download(server: TapeServer, path: str, local: Path, checksum: str = "MD5") -> None:
    """Copy a file from the endpoint to local disk with gfal2, verifying the checksum."""
    c = ctx()
    params = c.transfer_parameters()
    params.overwrite = True
    params.checksum_check = True
    params.set_checksum(gfal2.checksum_mode.both, checksum, "")
    c.filecopy(params, server.url(path), local.as_uri())


@pytest.fixture(scope="module")
def tape(module_tape) -> TapeServer:
    """gunicorn endpoint whose files go to tape at once and leave the buffer unless pinned; 0.3 s recalls."""
    return module_tape("--migrate-after", "0", "--evict-after", "0", "--stage-latency", "0.3", name="tape")


@pytest.fixture(scope="module")
def disk(module_tape) -> TapeServer:
    """gunicorn endpoint whose files stay in the disk buffer during the tests (for data access)."""
    return module_tape("--migrate-after", "3600", name="disk")


@pytest.fixture(scope="module")
def slow_stage(module_tape) -> TapeServer:
    """Endpoint whose files reach tape at once and whose recalls never finish during a test."""
    return module_tape("--migrate-after", "0", "--evict-after", "0", "--stage-latency", "3600",
                       "--server", "werkzeug", name="slow")


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(700_000)
    local = tmp_path / "run.mid.gz"
    local.write_bytes(data)
    return local, data


def status(url: str) -> str:
    return ctx().getxattr(url, "user.status")


def test_gfal2_tape_calls_follow_disk_tape_staged_released(tape_factory, payload, tmp_path: Path) -> None:
    local, data = payload
    path = f"{LNGS}/run100001.mid.gz"
    # first life: nothing migrates, so DISK is observed for sure; the state carries over to the second life
    tape = tape_factory("--migrate-after", "3600", "--server", "werkzeug", name="life")
    url = tape.url(path)
    upload(tape, local, path)
    c = ctx()
    assert c.getxattr(url, "user.status") == "ONLINE"  # DISK: written, not yet migrated
    assert c.archive_poll(url) == 0
    assert archiveinfo(tape, path)["locality"] == "DISK"

    rc, pin = c.bring_online(url, 0, 60, True)
    assert pin
    assert wait_until(lambda: ctx().bring_online_poll(url, pin) == 1)
    tape.kill(signal.SIGTERM)
    tape.args = ["--migrate-after", "0", "--evict-after", "0", "--stage-latency", "0.3", "--server", "werkzeug"]
    tape.start()  # second life: migration and eviction are immediate, recalls take 0.3 s
    url = tape.url(path)
    c = ctx()
    assert wait_until(lambda: ctx().archive_poll(url) == 1)
    assert status(url) == "ONLINE_AND_NEARLINE"
    assert archiveinfo(tape, path)["locality"] == "DISK_AND_TAPE"

    assert c.release(url, pin) == 0
    wait_until(lambda: status(url) == "NEARLINE")
    assert archiveinfo(tape, path)["locality"] == "TAPE"
    with pytest.raises(gfal2.GError):
        download(tape, path, tmp_path / "evicted")  # nearline: reading fails until staged
    assert ctx().stat(url).st_size == len(data)  # the namespace still answers

    rc, token = ctx().bring_online(url, 0, 60, True)
    assert rc in (0, 1) and token
    wait_until(lambda: ctx().bring_online_poll(url, token) == 1)
    assert status(url) == "ONLINE_AND_NEARLINE"
    doc = web.get(f"{tape.base}/api/v1/stage/{token}", timeout=10).json()
    assert doc["files"][0]["state"] == "COMPLETED" and doc["files"][0]["onDisk"] is True
    back = tmp_path / "back"
    download(tape, path, back)
    assert back.read_bytes() == data

    assert ctx().release(url, token) == 0
    wait_until(lambda: status(url) == "NEARLINE")


def test_gfal2_bring_online_sync_and_release_without_token(tape: TapeServer, payload) -> None:
    local, _ = payload
    path = f"{LNGS}/run100002.mid.gz"
    url = tape.url(path)
    upload(tape, local, path)
    wait_until(lambda: status(url) == "NEARLINE")
    rc, token = ctx().bring_online(url, 0, 60, False)  # gfal2's http plugin returns at once even when "sync"
    assert rc in (0, 1) and token
    wait_until(lambda: ctx().bring_online_poll(url, token) == 1)
    assert status(url) == "ONLINE_AND_NEARLINE"
    assert ctx().release(url, "") == 0  # gfal2 sends its placeholder request id
    wait_until(lambda: status(url) == "NEARLINE")


def test_gfal2_abort_bring_online_is_seen_as_cancelled(slow_stage: TapeServer, payload) -> None:
    local, _ = payload
    path = f"{LNGS}/run100003.mid.gz"
    url = slow_stage.url(path)
    upload(slow_stage, local, path)
    wait_until(lambda: status(url) == "NEARLINE")
    _, token = ctx().bring_online(url, 0, 60, True)
    assert ctx().bring_online_poll(url, token) == 0
    assert ctx().abort_bring_online(url, token) == 0
    with pytest.raises(gfal2.GError) as exc:
        ctx().bring_online_poll(url, token)
    assert exc.value.code == errno.ECANCELED
    assert web.get(f"{slow_stage.base}/api/v1/stage/{token}", timeout=10).json()["files"][0]["state"] \
        == "CANCELLED"
    assert status(url) == "NEARLINE"


def test_gfal2_stage_of_missing_file_reports_an_error(slow_stage: TapeServer) -> None:
    url = slow_stage.url(f"{LNGS}/run099999.mid.gz")
    before = sorted(p.relative_to(slow_stage.root) for p in slow_stage.root.rglob("*") if "sqlite" not in p.name)
    _, token = ctx().bring_online(url, 0, 60, True)
    with pytest.raises(gfal2.GError) as exc:
        ctx().bring_online_poll(url, token)
    assert "No such file" in str(exc.value)
    with pytest.raises(gfal2.GError):
        ctx().getxattr(url, "user.status")
    after = sorted(p.relative_to(slow_stage.root) for p in slow_stage.root.rglob("*") if "sqlite" not in p.name)
    assert after == before


@pytest.mark.parametrize("checksum", ["ADLER32", "MD5"])
def test_gfal2_copy_both_ways_with_checksums(disk: TapeServer, payload, tmp_path: Path, checksum: str) -> None:
    local, data = payload
    path = f"{LNGS}/sub/copy-{checksum}.mid.gz"
    upload(disk, local, path, checksum)
    c = ctx()
    assert c.checksum(disk.url(path), "ADLER32") == f"{zlib.adler32(data):08x}"
    assert c.checksum(disk.url(path), "MD5") == hashlib.md5(data).hexdigest()
    back = tmp_path / "back"
    download(disk, path, back, checksum)
    assert back.read_bytes() == data
    st = c.stat(disk.url(path))
    assert st.st_size == len(data)
    assert f"copy-{checksum}.mid.gz" in c.listdir(disk.url(f"{LNGS}/sub/"))


def test_gfal2_namespace_operations_rucio_uses(disk: TapeServer, payload) -> None:
    local, _ = payload
    c = ctx()
    base = disk.url("/cygno/cygno-analysis/RECO/c1", scheme="davs")
    c.mkdir_rec(base, 0o775)
    c.mkdir_rec(base, 0o775)  # exists already: fine
    upload(disk, local, "/cygno/cygno-analysis/RECO/c1/f.h5.rucio.upload")
    c.rename(f"{base}/f.h5.rucio.upload", f"{base}/f.h5")  # Rucio's gfal protocol uploads then renames
    assert c.listdir(base) == ["f.h5"]
    with pytest.raises(gfal2.GError) as exc:
        c.stat(f"{base}/f.h5.rucio.upload")
    assert exc.value.code == errno.ENOENT
    c.unlink(f"{base}/f.h5")
    c.rmdir(base)
    with pytest.raises(gfal2.GError):
        c.stat(base)


def test_gfal_cli_ls_stat_copy(disk: TapeServer, payload, tmp_path: Path) -> None:
    python = _gfal_cli_python()
    if python is None:
        pytest.skip("no interpreter with gfal2 and gfal2_util for the gfal-* CLIs")
    env = {**os.environ, "GFAL_PYTHONBIN": python}
    local, data = payload
    dest = disk.url(f"{LNGS}/cli/run100010.mid.gz")

    def run(*cmd: str) -> str:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("gfal-copy", "-p", "-K", "ADLER32", local.as_uri(), dest)
    listing = run("gfal-ls", "-l", disk.url(f"{LNGS}/cli/", scheme="davs"))
    assert "run100010.mid.gz" in listing and str(len(data)) in listing
    assert str(len(data)) in run("gfal-stat", dest)
    run("gfal-copy", "-f", "-K", "MD5", dest, (tmp_path / "cli-back").as_uri())
    assert (tmp_path / "cli-back").read_bytes() == data
