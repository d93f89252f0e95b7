"""People and the DAQ log in to Rucio with the identity provider's tokens, next to userpass: the plain `rucio` CLI
with `RUCIO_AUTH_TYPE=oidc` and a WLCG-discovered bearer token (`BEARER_TOKEN`), the token mapped to its account by
the account's OIDC identity; wrong-audience, wrong-scope, expired and forged tokens are refused."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from cygno_dm.tokens import TokenFile
from testbed.rses import host_port
from testbed.stack import Testbed
from tests.ingest.test_ingest_tokens import refresh_token_file
from tests.test_token_transfers import Idp

pytestmark = pytest.mark.rucio


def rucio_with_token(tb: Testbed, account: str, token: str, *args: str) -> subprocess.CompletedProcess:
    """The plain `rucio` CLI of `account`'s configuration, authenticating with a bearer token only."""
    exe = Path(sys.executable).with_name("rucio")
    env = {**os.environ, **tb.env(account), "RUCIO_AUTH_TYPE": "oidc", "BEARER_TOKEN": token}
    env.pop("X509_USER_PROXY", None)
    shutil.rmtree(tb.state / "tokens" / account, ignore_errors=True)  # no Rucio token left from a userpass login
    return subprocess.run([str(exe if exe.exists() else "rucio"), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def logged_in_as(res: subprocess.CompletedProcess) -> str | None:
    m = re.search(r"^account\s*:\s*(\S+)", res.stdout, re.MULTILINE)
    return m[1] if m else None


def test_the_daq_and_people_log_in_to_rucio_with_tokens(testbed: Testbed, tmp_path: Path) -> None:
    tb = testbed
    secrets = {c["client_id"]: c["client_secret"] for c in json.loads(tb.idp_clients.read_text())["clients"]}
    daq_name = tb.profile.accounts_with("daq")[0].name
    daq = Idp(tb)
    daq_client = tb.profile.token_client(daq_name)  # the DAQ's robot client (client credentials)
    daq.auth = (daq_client, secrets[daq_client])
    rucio_audience = tb.profile.tokens.rucio_audience
    good = daq.token("openid", rucio_audience)
    assert logged_in_as(rucio_with_token(tb, daq_name, good, "whoami")) == daq_name

    # A person: her token file (device flow, then refresh tokens) gives her a Rucio login too.
    user = tb.profile.accounts_with("user")[0].name
    scope = tb.profile.scopes.raw[0]
    path = refresh_token_file(tb, user, f"openid storage.read:/{scope}", tmp_path / user / "token.json")
    token = TokenFile(path).token(rucio_audience)
    assert logged_in_as(rucio_with_token(tb, user, token, "whoami")) == user
    listed = rucio_with_token(tb, user, token, "did", "list", f"{scope}:*", "--short", "--filter", "run_number>=0")
    assert listed.returncode == 0, listed.stderr[-2000:]

    # Refused: a token for another audience (a storage host), one without `openid`, an expired and a forged one.
    storage_host = next(host_port(r)[0] for r in tb.profile.rses.values() if r.kind != "posix")
    header, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in good.split(".")[:2])
    refused = {
        "audience": daq.token("openid", storage_host),
        "scope": daq.token(f"storage.read:/{scope}", rucio_audience),
        "expired": daq.expired("openid", rucio_audience),
        "forged": jwt.encode(header, claims, RSAKey.generate_key(2048)),
    }
    for why, bad in refused.items():
        res = rucio_with_token(tb, daq_name, bad, "whoami")
        assert logged_in_as(res) is None and "Cannot authenticate" in res.stdout + res.stderr, (why, res.stdout)
    # The server never writes a token into its log.
    log = tb.sup.log_file("rucio-server").read_text()
    assert all(t.rsplit(".", 1)[-1] not in log for t in (good, token, *refused.values()))
