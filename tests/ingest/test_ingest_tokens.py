"""The DAQ uploader on tokens, on the real testbed: `cygno-dm ingest run --storage-token file:PATH` lands runs with
a person's refresh token and no client certificate nor S3 key: on the WebDAV RSE (XRootD with SciTokens, a bearer
token per request) and on an S3 site (temporary keys from its STS); a bad token file is refused before anything is
written."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.people_login import token_file
from testbed.stack import Testbed
from tests.ingest.conftest import DAQ
from tests.ingest.helpers import run_file

pytestmark = pytest.mark.rucio
CYGNO_DM = str(Path(sys.executable).with_name("cygno-dm"))


def refresh_token_file(tb: Testbed, person: str, scope: str, path: Path) -> Path:
    """`person`'s device-flow grant at the testbed identity provider, kept as a 0600 token file."""
    client = next(c for c in json.loads(tb.idp_clients.read_text())["clients"] if c["client_id"] == tb.profile.tokens.clients.people)
    return token_file(tb.idp_url, str(tb.ca_dir / "ca.pem"), (client["client_id"], client["client_secret"]), person,
                      tb.profile.account(person).password, f"offline_access {scope}", path)


def ingest(tb: Testbed, daq: Path, journal: Path, rse: str, token: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in {**os.environ, **tb.env(DAQ)}.items() if k != "X509_USER_PROXY"}  # no certificate
    return subprocess.run([CYGNO_DM, "ingest", "run", "--once", "--watch", f"LNF={daq}", "--settle", "0",
                           "--keep-local", "--rse", rse, "--journal", str(journal), "--storage-token", token],
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("kind", ["webdav", "s3"])
def test_the_daq_lands_runs_with_a_refresh_token_and_no_certificate_nor_key(testbed: Testbed, tmp_path: Path,
                                                                           kind: str) -> None:
    tb = testbed
    scope = tb.profile.scopes.raw[0]
    landing = next(name for name, rse in tb.profile.rses.items() if rse.kind == kind)
    person = tb.profile.accounts_with("data-manager")[0].name
    token = refresh_token_file(tb, person, f"storage.read:/{scope} storage.create:/{scope}",
                               tmp_path / "dm" / "token.json")
    first = random.Random().randrange(10**6, 10**8)
    files = [run_file(tmp_path / "daq", run, size=50_000, tag="LNF") for run in range(first, first + 6)]

    # A refresh-token file others may read is refused before anything is written.
    token.chmod(0o644)
    res = ingest(tb, tmp_path / "daq" / "LNF", tmp_path / "journal.sqlite", landing, f"file:{token}")
    assert res.returncode == 2 and "a token file must be 0600" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "journal.sqlite").exists()
    token.chmod(0o600)

    res = ingest(tb, tmp_path / "daq" / "LNF", tmp_path / "journal.sqlite", landing, f"file:{token}")
    assert res.returncode in (0, 3), res.stderr[-3000:]  # 3: registered, the tape archive still pending
    client = tb.client("root")
    for path in files:
        name = f"LNF/{path.name}"
        states = next(iter(client.list_replicas([{"scope": scope, "name": name}], all_states=True)))["states"]
        assert states.get(landing) == "AVAILABLE", (name, states)
        assert client.get_did(scope, name)["bytes"] == path.stat().st_size
    assert json.loads(token.read_text())["refresh_token"]  # the rotated refresh token was kept
    if kind == "s3":  # the site's STS issued the keys, for the person's token
        assert f"for sub={person} " in tb.sup.log_file(f"s3-{landing}").read_text()
