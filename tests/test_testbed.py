"""The running testbed, on SQLite and PostgreSQL: every component healthy, the plain `rucio` CLI works for
every account, uploads land at the identity layout on every kind of storage and download bit-identical."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from testbed import stack
from testbed.rses import storage_dir
from testbed.stack import RUCIO_CERT, Testbed
from testbed.storage.tls import client_dn
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
                    *etc.glob("client-*.cfg"), *(etc / "s3").glob("*.key"), *(etc / "idp").glob("robot-*.json"),
                    *(testbed.state / "tls" / "clients").glob("*.pem")]
    if testbed.settings.database.startswith("sqlite"):
        db = Path(testbed.settings.database.removeprefix("sqlite:///"))
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
        secret_files.append(db)
    assert testbed.robot_token_file("rucio-daq") in secret_files
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


def test_the_security_probe_is_refused_everywhere(testbed: Testbed) -> None:
    """The anonymous actions of issue 14's probe, against the running testbed: each refused with a reason."""
    ca = str(testbed.ca_dir / "ca.pem")
    job = {"files": [{"sources": ["file:///etc/passwd"], "destinations": ["file:///tmp/x"]}]}
    r = requests.post(testbed.fts_url + "/jobs", json=job, verify=ca, timeout=10)
    assert r.status_code == 401 and "client certificate" in r.json()["message"]
    for method in ("GET", "DELETE"):
        assert requests.request(method, testbed.fts_url + "/jobs", verify=ca, timeout=10).status_code == 401
    alice = str(testbed.client_cert("account-alice"))  # authenticated, but neither storage nor an S3 user
    r = requests.post(testbed.fts_url + "/jobs", json=job, cert=alice, verify=ca, timeout=10)
    assert r.status_code == 403 and r.json()["message"].startswith("files[0].sources:")
    rucio_url = {"files": [{"sources": [testbed.rucio_url + "/ping"], "destinations": ["file:///tmp/x"]}]}
    assert requests.post(testbed.fts_url + "/jobs", json=rucio_url, cert=alice, verify=ca, timeout=10).status_code \
        == 403
    for name, rse in testbed.profile.rses.items():
        base = rse.endpoint.replace("davs://", "https://")
        if rse.kind == "s3":
            for path in ("/moto-api/reset", "/%6doto-api/reset"):
                assert requests.post(base + path, verify=ca, timeout=10).status_code == 404, (name, path)
        elif rse.kind in ("webdav", "tape"):
            target = f"{base}{rse.prefix}/probe.txt"
            assert requests.put(target, data=b"x", verify=ca, timeout=10).status_code in (401, 403), name
            assert requests.put(target, data=b"kept", cert=alice, verify=ca, timeout=10).status_code in (200, 201)
            assert requests.delete(target, verify=ca, timeout=10).status_code in (401, 403), name
            assert requests.get(target, verify=ca, timeout=10).content == b"kept"
            assert requests.delete(target, cert=alice, verify=ca, timeout=10).status_code in (200, 204), name
    tape = next(r for r in testbed.profile.rses.values() if r.kind == "tape")
    stage = requests.post(tape.endpoint.replace("davs://", "https://") + "/api/v1/stage", verify=ca, timeout=10,
                          json={"files": [{"path": f"{tape.prefix}/x"}]})
    assert stage.status_code == 401 and "needs a credential" in stage.json()["detail"]


def test_tokens_of_the_identity_provider_work_at_the_transfer_service_and_the_tape(testbed: Testbed) -> None:
    ca = str(testbed.ca_dir / "ca.pem")
    clients = {c["client_id"]: c for c in json.loads(testbed.idp_clients.read_text())["clients"]}
    tape = next(r for r in testbed.profile.rses.values() if r.kind == "tape")
    tape_base = tape.endpoint.replace("davs://", "https://")

    def token(client: str, scope: str, audience: str) -> str:
        r = requests.post(testbed.idp_url + "/token", verify=ca, timeout=10,
                          data={"grant_type": "client_credentials", "scope": scope, "audience": audience},
                          auth=(client, clients[client]["client_secret"]))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    fts = token("rucio", "fts", testbed.settings.host)  # what Rucio's FTS3 transfertool asks for
    who = requests.get(testbed.fts_url + "/whoami", headers={"Authorization": f"Bearer {fts}"}, verify=ca, timeout=10)
    # the `rucio` client's tokens and the service-rucio certificate are one owner of jobs (--token-subject)
    assert who.json()["method"] == "token" and who.json()["user_dn"] == client_dn(RUCIO_CERT)
    daq = token("rucio-daq", "storage.create:/cygno-data", urlsplit(tape_base).hostname)
    path = f"{tape.prefix}/cygno-data/token-probe.bin"
    put = requests.put(tape_base + path, data=b"t", headers={"Authorization": f"Bearer {daq}"}, verify=ca, timeout=10)
    assert put.status_code == 201, put.text
    elsewhere = requests.put(f"{tape_base}{tape.prefix}/cygno-sim/x.bin", data=b"t", verify=ca, timeout=10,
                             headers={"Authorization": f"Bearer {daq}"})
    assert elsewhere.status_code == 403 and "storage.create" in elsewhere.json()["detail"]
    assert stat.S_IMODE(testbed.idp_clients.stat().st_mode) == 0o600


def test_tokens_of_the_identity_provider_work_at_the_webdav_endpoint(testbed: Testbed) -> None:
    """XRootD's SciTokens plugin: the DAQ account's token writes its raw scope only; certificates still write."""
    ca = str(testbed.ca_dir / "ca.pem")
    secrets = {c["client_id"]: c["client_secret"] for c in json.loads(testbed.idp_clients.read_text())["clients"]}
    dav = next(r for r in testbed.profile.rses.values() if r.kind == "webdav")
    base = dav.endpoint.replace("davs://", "https://")
    r = requests.post(testbed.idp_url + "/token", verify=ca, timeout=10, auth=("rucio-daq", secrets["rucio-daq"]),
                      data={"grant_type": "client_credentials", "audience": urlsplit(base).hostname})
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    target = f"{base}{dav.prefix}/cygno-data/token-probe-{uuid.uuid4().hex}.bin"
    assert requests.put(target, data=b"t", headers=bearer, verify=ca, timeout=10).status_code in (200, 201)
    assert requests.get(target, headers=bearer, verify=ca, timeout=10).content == b"t"
    assert requests.delete(target, headers=bearer, verify=ca, timeout=10).status_code == 403  # no storage.modify
    elsewhere = f"{base}{dav.prefix}/cygno-sim/token-probe.bin"
    assert requests.put(elsewhere, data=b"t", headers=bearer, verify=ca, timeout=10).status_code == 403
    rucio_cert = str(testbed.client_cert("service-rucio"))
    assert requests.delete(target, cert=rucio_cert, verify=ca, timeout=10).status_code in (200, 204)


def test_a_token_of_the_identity_provider_gets_sts_credentials_at_an_s3_site(testbed: Testbed) -> None:
    """MinIO's STS, as CYGNO's DAQ uses it: the DAQ account's token becomes temporary S3 keys that write new objects
    in its raw scope only."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import ClientError

    ca = str(testbed.ca_dir / "ca.pem")
    secrets = {c["client_id"]: c["client_secret"] for c in json.loads(testbed.idp_clients.read_text())["clients"]}
    name = next(n for n, r in testbed.profile.rses.items() if r.kind == "s3")
    site = s3_client(testbed, name).meta.endpoint_url
    r = requests.post(testbed.idp_url + "/token", verify=ca, timeout=10, auth=("rucio-daq", secrets["rucio-daq"]),
                      data={"grant_type": "client_credentials", "audience": urlsplit(site).hostname})
    assert r.status_code == 200, r.text
    sts = boto3.client("sts", endpoint_url=site, region_name="us-east-1", verify=ca,
                       config=Config(signature_version=UNSIGNED))
    creds = sts.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/daq", RoleSessionName="daq",
                                              WebIdentityToken=r.json()["access_token"])["Credentials"]
    s3 = boto3.client("s3", endpoint_url=site, region_name="us-east-1", verify=ca,
                      aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                      aws_session_token=creds["SessionToken"], config=Config(s3={"addressing_style": "path"}))
    key = f"token-probe-{uuid.uuid4().hex}.bin"
    s3.put_object(Bucket="cygno-data", Key=key, Body=b"t")
    assert s3.get_object(Bucket="cygno-data", Key=key)["Body"].read() == b"t"
    for refused in (lambda: s3.delete_object(Bucket="cygno-data", Key=key),  # no storage.modify
                    lambda: s3.put_object(Bucket="cygno-sim", Key=key, Body=b"t")):
        with pytest.raises(ClientError) as err:
            refused()
        assert err.value.response["Error"]["Code"] == "AccessDenied"
    s3_client(testbed, name).delete_object(Bucket="cygno-data", Key=key)  # the site's own keys still work


def test_a_person_gets_a_token_by_the_device_flow_and_reads_but_cannot_write(testbed: Testbed) -> None:
    """The testbed's people: alice approves a device with her account password; her token reads the raw scope at
    the WebDAV endpoint and writes nothing (users read; data managers also create and modify)."""
    ca = str(testbed.ca_dir / "ca.pem")
    config = json.loads(testbed.idp_clients.read_text())
    client = next(c for c in config["clients"] if c["client_id"] == testbed.profile.tokens.clients.people)
    auth = (client["client_id"], client["client_secret"])
    dav = next(r for r in testbed.profile.rses.values() if r.kind == "webdav")
    base = dav.endpoint.replace("davs://", "https://")
    codes = requests.post(testbed.idp_url + "/devicecode", auth=auth, verify=ca, timeout=10,
                          data={"scope": "openid offline_access storage.read:/cygno-data storage.create:/cygno-data"})
    assert codes.status_code == 200, codes.text
    alice = testbed.profile.account("alice")
    approved = requests.post(testbed.idp_url + "/device", verify=ca, timeout=10, data={
        "user_code": codes.json()["user_code"], "username": alice.name, "password": alice.password})
    assert approved.ok, approved.text
    time.sleep(1.1)  # a device polls at most once a second
    r = requests.post(testbed.idp_url + "/token", auth=auth, verify=ca, timeout=10, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": codes.json()["device_code"],
        "audience": urlsplit(base).hostname})
    assert r.status_code == 200, r.text
    assert r.json()["scope"].split() == ["openid", "offline_access", "storage.read:/cygno-data"]
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    rucio_cert = str(testbed.client_cert("service-rucio"))
    target = f"{base}{dav.prefix}/cygno-data/people-probe-{uuid.uuid4().hex}.bin"
    assert requests.put(target, data=b"p", cert=rucio_cert, verify=ca, timeout=10).status_code in (200, 201)
    try:
        assert requests.get(target, headers=bearer, verify=ca, timeout=10).content == b"p"
        refused = requests.put(target + ".new", data=b"x", headers=bearer, verify=ca, timeout=10)
        assert refused.status_code == 403, refused.status_code
    finally:
        requests.delete(target, cert=rucio_cert, verify=ca, timeout=10)


def test_the_testbed_takes_issuer_clients_and_audiences_from_the_profile(tmp_path: Path) -> None:
    """[tokens] of the profile, not the testbed's defaults: the identity provider serves the profile's issuer with
    its client registrations, and Rucio, the transfer service and every storage endpoint expect that issuer and
    the profile's audiences (written config and command lines; nothing started)."""
    from testbed.rucio_config import read_cfg
    from tests.conftest import profile_on_free_ports

    def edit(data: dict) -> None:
        data["tokens"].update(issuer="https://127.0.0.1:28443", rucio_audience="cygno-rucio", clients={
            "rucio": "rucio-robot", "people": "cygno-people", "daq": {"rucio-daq": "daq-robot"}})

    tb = Testbed(tmp_path / "state", profile=str(profile_on_free_ports(tmp_path / "profile.toml", edit)))
    tb.state.mkdir()
    tb._write_config()
    argv = {c.name: c.argv for c in tb.components()}

    def option(name: str, flag: str) -> str:
        return argv[name][argv[name].index(flag) + 1]

    assert (option("idp", "--issuer"), option("idp", "--host"), option("idp", "--port")) == (
        "https://127.0.0.1:28443", "127.0.0.1", "28443")
    for name, rse in tb.profile.rses.items():
        comp = f"{rse.kind}-{name}"
        assert option(comp, "--token-issuer") == "https://127.0.0.1:28443"
        assert option(comp, "--token-audience") == urlsplit(rse.endpoint).hostname
    assert option("fts", "--token-issuer") == "https://127.0.0.1:28443"
    assert option("fts", "--token-subject") == f"rucio-robot={client_dn(RUCIO_CERT)}"
    clients = {c["client_id"]: c for c in json.loads(tb.idp_clients.read_text())["clients"]}
    assert set(clients) == {"rucio-robot", "daq-robot", "cygno-people"}
    assert "cygno-rucio" in clients["daq-robot"]["audiences"] and "rucio" not in clients["daq-robot"]["audiences"]
    assert clients["daq-robot"]["groups"] == ["/cygno", "/cygno/daq"]
    assert {p["username"]: p["groups"] for p in json.loads(tb.idp_clients.read_text())["people"]}["alice"] == ["/cygno"]
    secrets = json.loads((tb.state / "etc" / "idpsecrets.json").read_text())["testbed"]
    assert (secrets["issuer"], secrets["client_id"]) == ("https://127.0.0.1:28443", "rucio-robot")
    assert read_cfg(tb.rucio_cfg)["oidc"]["expected_audience"] == "cygno-rucio"
    edit_issuer = profile_on_free_ports(tmp_path / "path.toml", lambda d: d["tokens"].update(
        issuer="https://127.0.0.1:28443/iam"))
    with pytest.raises(stack.TestbedError, match=r"^profile cygno: tokens.issuer: .* no path, got 'https://127.0.0.1:28443/iam'$"):
        Testbed(tmp_path / "other", profile=str(edit_issuer)).components()
