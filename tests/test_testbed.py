"""The running testbed, on SQLite and PostgreSQL: every component healthy, the plain `rucio` CLI works for
every account, uploads land at the identity layout on every kind of storage and download bit-identical."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from testbed.rses import storage_dir
from testbed.stack import Testbed
from tests.rucio_helpers import download, md5, new_run_name, rucio, s3_client, upload

pytestmark = pytest.mark.rucio
DISK_RSES = ["CNAF_USERDISK", "BARI_USERDISK", "BACKBONE_USERDISK"]


def test_every_component_healthy(testbed: Testbed) -> None:
    testbed.wait_daemon_passes(1)
    rows = testbed.status()
    assert rows and all(r["state"] == "healthy" for r in rows), [r for r in rows if r["state"] != "healthy"]
    assert {r["name"] for r in rows} >= {"rucio-server", "fts", "s3-CNAF_USERDISK", "s3-BARI_USERDISK",
                                         "webdav-BACKBONE_USERDISK", "tape-T1_USERTAPE", "rucio-judge-evaluator"}


@pytest.mark.parametrize("account", ["root", "rucio-daq", "cygno-dm", "alice"])
def test_plain_rucio_cli_authenticates_as_each_account(testbed: Testbed, account: str) -> None:
    res = rucio(testbed, account, "whoami")
    assert res.returncode == 0, res.stderr
    assert f"account    : {account}" in res.stdout


def test_catalogue_matches_profile(testbed: Testbed) -> None:
    client = testbed.client("root")
    assert set(testbed.profile.scopes.all) <= set(client.list_scopes())
    assert set(testbed.profile.rses) <= {r["rse"] for r in client.list_rses()}
    assert client.get_rse("T1_USERTAPE")["rse_type"] == "TAPE"
    assert client.list_rse_attributes("T1_USERTAPE")["archive_timeout"]
    assert client.get_local_account_limits("rucio-daq")


@pytest.mark.parametrize("rse", DISK_RSES)
def test_user_upload_download_roundtrip_on_each_disk_rse(testbed: Testbed, tmp_path: Path, rse: str) -> None:
    src = tmp_path / "notes.dat"
    src.write_bytes(os.urandom(150_000))
    name = f"{rse}/{uuid.uuid4().hex}.dat"
    upload(testbed, "alice", src, rse, "user.alice", name)
    got = download(testbed, "alice", "user.alice", name, tmp_path / "dl")
    assert md5(got) == md5(src)


def stored_object(tb: Testbed, rse_name: str, scope: str, name: str) -> bytes:
    """The bytes an RSE holds for a DID at the identity layout, read directly from the storage."""
    rse = tb.profile.rses[rse_name]
    if rse.kind == "s3":
        return s3_client(tb, rse_name).get_object(Bucket=scope, Key=name)["Body"].read()
    root = storage_dir(rse_name, rse, tb.state) / rse.prefix.strip("/")
    if rse.kind == "tape":
        root = storage_dir(rse_name, rse, tb.state) / "buffer" / rse.prefix.strip("/")
    return (root / scope / name).read_bytes()


@pytest.mark.parametrize("rse", [*DISK_RSES, "T1_USERTAPE"])
def test_daq_raw_upload_lands_at_identity_layout(testbed: Testbed, tmp_path: Path, rse: str) -> None:
    run = tmp_path / "run.mid.gz"
    run.write_bytes(os.urandom(120_000))
    name = new_run_name()
    upload(testbed, "rucio-daq", run, rse, "cygno-data", name)
    assert stored_object(testbed, rse, "cygno-data", name) == run.read_bytes()


def test_download_from_tape_needs_allow_tape(testbed: Testbed, tmp_path: Path) -> None:
    run = tmp_path / "run.mid.gz"
    run.write_bytes(os.urandom(10_000))
    name = new_run_name()
    upload(testbed, "rucio-daq", run, "T1_USERTAPE", "cygno-data", name)
    res = rucio(testbed, "alice", "download", "--dir", str(tmp_path / "dl"), f"cygno-data:{name}")
    assert not (tmp_path / "dl" / "cygno-data" / name).exists()
    assert "only has replicas on tape" in res.stderr


def test_secrets_are_private_and_never_on_a_command_line(testbed: Testbed) -> None:
    etc = testbed.state / "etc"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o700
    assert stat.S_IMODE((testbed.state / "tls" / "clients").stat().st_mode) == 0o700
    secret_files = [testbed.rucio_cfg, etc / "client.cfg", etc / "rse-accounts.cfg", etc / "s3-credentials.json",
                    *etc.glob("client-*.cfg"), *(etc / "s3").glob("*.key"),
                    *(testbed.state / "tls" / "clients").glob("*.pem")]
    if testbed.settings.database.startswith("sqlite"):
        secret_files.append(testbed.state / "rucio.db")
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    secrets = [r.credentials["secret_key"] for r in testbed.profile.rses.values() if r.kind == "s3"]
    secrets += [a.password for a in testbed.profile.accounts if a.password]
    for name in testbed.sup.names():
        pid = testbed.sup.pid(name)
        if pid is None:
            continue
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert not [s for s in secrets if s in cmdline], f"{name} has a secret on its command line"
