"""Rucio's transfers on WLCG tokens, on the real testbed: the conveyor asks the identity provider for per-file
tokens for RSEs with `oidc_support` (the XRootD disk and the tape, both davs) and hands them to the transfer
service, which copies with them; the tape endpoint refuses a token of the wrong audience or scope, or an expired
one, and the file fails saying so."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from testbed.rses import host_port
from testbed.stack import Testbed
from tests.rucio_helpers import new_run_name, upload, wait_rules

pytestmark = pytest.mark.rucio
DISK, TAPE = "BACKBONE_USERDISK", "T1_USERTAPE"


def put_run(tb: Testbed, tmp_path: Path) -> str:
    """A fresh raw run file on the disk RSE, uploaded by the DAQ."""
    name = new_run_name()
    path = tmp_path / name.replace("/", "_")
    path.write_bytes(os.urandom(150_000))
    upload(tb, "rucio-daq", path, DISK, "cygno-data", name)
    return name


def logs(tb: Testbed) -> str:
    """Every log of the testbed, concatenated."""
    return "".join(p.read_text(errors="replace") for p in sorted((tb.state / "logs").glob("*.log")))


def test_rule_to_tape_is_copied_on_rucio_tokens(testbed: Testbed, tmp_path: Path) -> None:
    tb = testbed
    name = put_run(tb, tmp_path)
    rule = tb.client("cygno-dm").add_replication_rule([{"scope": "cygno-data", "name": name}], 1, TAPE,
                                                      source_replica_expression=DISK)[0]
    assert wait_rules(tb, [rule])[rule]["state"] == "OK"
    tape_log = (tb.state / "logs" / f"tape-{TAPE}.log").read_text()
    path = f"{tb.profile.rses[TAPE].prefix}/cygno-data/{name}"
    # the tape endpoint saw the `rucio` client's token, not the transfer service's certificate
    assert f"PUT {path} by rucio (token)" in tape_log
    fts_log = (tb.state / "logs" / "fts.log").read_text()
    assert f"{name} started (bearer tokens for: source, destination)" in fts_log
    assert "Using a token to authenticate with FTS" in (tb.state / "logs" / "rucio-daemons.log").read_text()
    assert "eyJ" not in logs(tb)  # no JWT (header.claims.signature) in any log


class Idp:
    """Tokens of the testbed identity provider for its `rucio` client (the credentials Rucio uses)."""

    def __init__(self, tb: Testbed):
        self.tb = tb
        self.ca = str(tb.ca_dir / "ca.pem")
        entry = json.loads((tb.state / "etc" / "idpsecrets.json").read_text())["testbed"]
        self.auth = (entry["client_id"], entry["client_secret"])

    def token(self, scope: str, audience: str) -> str:
        r = requests.post(f"{self.tb.idp_url}/token", auth=self.auth, verify=self.ca, timeout=10,
                          data={"grant_type": "client_credentials", "scope": scope, "audience": audience})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def expired(self, scope: str, audience: str) -> str:
        """A token the issuer's own key signed, whose lifetime is over."""
        real = self.token(scope, audience)
        header, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in real.split(".")[:2])
        claims.update(iat=int(time.time()) - 1300, nbf=int(time.time()) - 1300, exp=int(time.time()) - 100)
        keys = KeySet.import_key_set(json.loads((self.tb.state / "etc" / "idp" / "keys.json").read_text()))
        return jwt.encode(header, claims, keys)


def test_tape_endpoint_refuses_bad_per_file_tokens(testbed: Testbed, tmp_path: Path) -> None:
    tb = testbed
    idp = Idp(tb)
    disk, tape = tb.profile.rses[DISK], tb.profile.rses[TAPE]
    disk_host, tape_host = host_port(disk)[0], host_port(tape)[0]
    source = f"{disk.endpoint}{disk.prefix}/cygno-data/{put_run(tb, tmp_path)}"
    fts = {"Authorization": f"Bearer {idp.token('fts', tb.settings.host)}"}
    cases = {  # what is wrong: (token, status the tape endpoint answers, its reason in its log)
        "audience": (idp.token("storage.modify:/ storage.read:/", disk_host), "401", "aud"),
        "scope": (idp.token("storage.read:/", tape_host), "403", "no storage.create scope"),
        "expired": (idp.expired("storage.modify:/ storage.read:/", tape_host), "401", "expired"),
    }
    jobs = {}
    for what, (token, _, _) in cases.items():
        body = {"files": [{"sources": [source], "destinations": [f"{tape.endpoint}{tape.prefix}/refused/{what}"],
                           "source_tokens": [None], "destination_tokens": [token]}], "params": {}}
        r = requests.post(f"{tb.fts_url}/jobs", json=body, headers=fts, verify=idp.ca, timeout=10)
        assert r.status_code == 200, r.text
        jobs[what] = r.json()["job_id"]
    deadline = time.monotonic() + 60
    for what, job_id in jobs.items():
        while True:
            job = requests.get(f"{tb.fts_url}/jobs/{job_id}?files=", headers=fts, verify=idp.ca, timeout=10).json()
            if job["job_state"] in ("FAILED", "FINISHED") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        reason = job["files"][0]["reason"]
        assert job["job_state"] == "FAILED" and reason.startswith("DESTINATION"), (what, reason)
        assert f"HTTP {cases[what][1]}" in reason and "refused the per-file bearer token" in reason, (what, reason)
    tape_log = (tb.state / "logs" / f"tape-{TAPE}.log").read_text()
    for what, (_, _, said) in cases.items():  # the parent directory is refused first
        assert any("/refused" in line and said in line for line in tape_log.splitlines()), what
    assert not list((tb.state / "storage" / TAPE).rglob("refused"))
    assert "eyJ" not in logs(tb)


def test_reaper_deletes_on_rucio_tokens(testbed: Testbed, tmp_path: Path) -> None:
    """Rucio's reaper asks for a `storage.modify` token to delete on an oidc_support RSE."""
    tb, client = testbed, testbed.client("root")
    name = new_run_name()
    path = tmp_path / "f"
    path.write_bytes(os.urandom(1000))
    upload(tb, "rucio-daq", path, TAPE, "cygno-data", name)
    for rule in client.list_did_rules("cygno-data", name):  # expire the upload's rule: the judge-cleaner and
        client.update_replication_rule(rule["id"], {"locked": False, "lifetime": 1})  # the reaper do the rest
    deadline = time.monotonic() + 120
    while list(client.list_replicas([{"scope": "cygno-data", "name": name}])) and time.monotonic() < deadline:
        time.sleep(1)
    assert not list(client.list_replicas([{"scope": "cygno-data", "name": name}]))
    tape_log = (tb.state / "logs" / f"tape-{TAPE}.log").read_text()
    assert f"DELETE {tb.profile.rses[TAPE].prefix}/cygno-data/{name} by rucio (token)" in tape_log
