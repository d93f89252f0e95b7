"""People at the testbed identity provider (a real process): the device flow approved with a password on the
verification page, scopes narrowed to what the person may have, refresh tokens that rotate and survive a restart,
refusals for every wrong step; and Debian's oidc-agent getting and refreshing tokens from it unchanged."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.security import generate_password_hash

from testbed.people_login import DEVICE, device_flow
from testbed.tokens import WlcgTokenVerifier

from .conftest import TAPE_HOST, FtsTls, _stop, wait_for
from .test_fts_tokens import Idp

READ, WRITE = "storage.read:/cygno-data", "storage.create:/cygno-data"
CLI = {"client_id": "cli", "client_secret": "cli-secret", "scopes": ["openid", "offline_access", READ, WRITE],
       "audiences": [TAPE_HOST], "grant_types": [DEVICE, "refresh_token"], "lifetime": 3}
PEOPLE = [{"username": "alice", "password_hash": generate_password_hash("alice-pw"), "groups": ["/cygno/users"],
           "scopes": [READ]}]


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, fts_tls: FtsTls) -> Iterator[Idp]:
    provider = Idp(tmp_path_factory.mktemp("idp-people"), fts_tls, clients=[CLI], people=PEOPLE)
    yield provider
    _stop(provider.proc)


def claims(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


class Device:
    """A device (or oidc-agent) of client `cli` going through the flow over plain HTTP."""

    def __init__(self, idp: Idp, client: tuple[str, str] = ("cli", "cli-secret")):
        self.idp, self.auth = idp, client

    def post(self, path: str, **data: str) -> requests.Response:
        return requests.post(self.idp.url + path, data=data, auth=self.auth, verify=self.idp.tls.ca, timeout=10)

    def start(self, scope: str) -> dict[str, Any]:
        r = self.post("/devicecode", scope=scope)
        assert r.status_code == 200, r.text
        return r.json()

    def poll(self, device_code: str) -> requests.Response:
        return self.post("/token", grant_type=DEVICE, device_code=device_code)

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.post("/token", grant_type="refresh_token", refresh_token=refresh_token)


def approve(idp: Idp, user_code: str, password: str = "alice-pw", decision: str = "approve") -> requests.Response:
    """What the person does on the verification page."""
    return requests.post(idp.url + "/device", data={"user_code": user_code, "username": "alice",
                                                    "password": password, "decision": decision},
                         verify=idp.tls.ca, timeout=10)


def test_device_flow_refresh_rotation_and_refusals(idp: Idp) -> None:
    device = Device(idp)
    doc = requests.get(idp.url + "/.well-known/openid-configuration", verify=idp.tls.ca, timeout=5).json()
    assert doc["device_authorization_endpoint"] == idp.url + "/devicecode"
    assert {DEVICE, "refresh_token"} <= set(doc["grant_types_supported"])
    codes = device.start(f"openid offline_access {READ} {WRITE}")
    assert codes["verification_uri"] == idp.url + "/device"
    page = requests.get(codes["verification_uri_complete"], verify=idp.tls.ca, timeout=5)
    assert page.ok and codes["user_code"] in page.text

    # Pending until the person approves; a wrong password or an unknown code changes nothing.
    assert device.poll(codes["device_code"]).json()["error"] == "authorization_pending"
    assert approve(idp, codes["user_code"], password="guess").status_code == 401
    assert approve(idp, "NOPE-NOPE").status_code == 400
    time.sleep(1.1)  # polling faster than once a second is told to slow down
    assert device.poll(codes["device_code"]).json()["error"] == "authorization_pending"
    assert approve(idp, codes["user_code"]).ok
    time.sleep(1.1)
    got = device.poll(codes["device_code"])
    assert got.status_code == 200, got.text
    token = got.json()
    c = claims(token["access_token"])
    # The person's token: their name, their groups, only the storage scopes they may have (not `create`).
    assert (c["sub"], c["wlcg.groups"], c["aud"], c["client_id"]) == ("alice", ["/cygno/users"], TAPE_HOST, "cli")
    assert c["scope"].split() == ["openid", "offline_access", READ]
    verifier = WlcgTokenVerifier(idp.url, TAPE_HOST, required_scope=None, ca=idp.tls.ca)
    assert verifier(token["access_token"]).subject == "alice"
    # The device code is spent.
    assert device.poll(codes["device_code"]).json()["error"] == "invalid_request"

    # Refresh: a new access token and a new refresh token; the one used is revoked; another client cannot use it.
    assert Device(idp, ("rucio", "rucio-secret")).refresh(token["refresh_token"]).status_code in (400, 401)
    fresh = device.refresh(token["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    assert claims(fresh.json()["access_token"])["sub"] == "alice"
    assert fresh.json()["refresh_token"] != token["refresh_token"]
    assert device.refresh(token["refresh_token"]).json()["error"] == "invalid_grant"
    assert device.post("/token", grant_type="refresh_token", refresh_token=fresh.json()["refresh_token"],
                       scope=WRITE).json()["error"] == "invalid_scope"  # no scope beyond the original grant

    # Refresh tokens are kept hashed in a 0600 file and survive a restart of the provider.
    stored = idp.workdir / "refresh-tokens.json"
    assert stored.stat().st_mode & 0o777 == 0o600 and fresh.json()["refresh_token"] not in stored.read_text()
    _stop(idp.proc)
    idp.start()
    again = device.refresh(fresh.json()["refresh_token"])
    assert again.status_code == 200, again.text
    log = (idp.workdir / "idp.log").read_text()
    assert all(t not in log for t in (token["access_token"], token["refresh_token"], "alice-pw"))


def test_refusals_of_the_device_flow(idp: Idp) -> None:
    device = Device(idp)
    # A robot client may not start the device flow; nor may a client with a wrong secret.
    robot = Device(idp, ("rucio", "rucio-secret")).post("/devicecode", scope="fts")
    assert robot.status_code in (400, 401) and robot.json()["error"] == "unauthorized_client"
    assert Device(idp, ("cli", "guess")).post("/devicecode", scope=READ).status_code == 401
    # A person who denies: the device is refused.
    codes = device.start(READ)
    assert approve(idp, codes["user_code"], decision="deny").ok
    assert device.poll(codes["device_code"]).json()["error"] == "access_denied"
    # Scopes the client may not ask for are not granted; a made-up device code is refused.
    codes = device.start(f"{READ} storage.modify:/")
    assert approve(idp, codes["user_code"]).ok
    time.sleep(1.1)
    assert claims(device.poll(codes["device_code"]).json()["access_token"])["scope"] == READ
    assert device.poll("made-up").json()["error"] == "invalid_request"


def test_oidc_agent_gets_and_refreshes_tokens_unchanged(idp: Idp, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """What a physicist or the DAQ does: `oidc-gen --flow=device`, approve in a browser, then `oidc-token`."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OIDC")} | {"HOME": str(home)}
    started = subprocess.run([shutil.which("oidc-agent") or "oidc-agent"], env=env, capture_output=True, text=True,
                             timeout=30, check=True)
    env |= dict(re.findall(r"(OIDC_SOCK|OIDCD_PID)=([^;\s]+)", started.stdout))
    password = tmp_path / "encryption-password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    client = tmp_path / "client.json"  # the client's secret in a 0600 file, not on the command line
    client.write_text(json.dumps({"client_id": "cli", "client_secret": "cli-secret", "issuer_url": idp.url,
                                  "scope": f"openid offline_access {READ}"}))
    client.chmod(0o600)
    gen = subprocess.Popen(["oidc-gen", "alice", "-f", str(client), "--flow=device", f"--cp={idp.tls.ca}",
                            f"--pw-file={password}", "--confirm-default", "--prompt=none", "--no-url-call"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = ""
        while not (m := re.search(r"enter the code: ([A-Z]{4}-[A-Z]{4})", out)):
            line = gen.stdout.readline()
            assert line, out
            out += line
        assert approve(idp, m[1]).ok  # the person, in a browser
        rest, _ = gen.communicate(timeout=60)
        assert gen.returncode == 0, out + rest
        verifier = WlcgTokenVerifier(idp.url, TAPE_HOST, required_scope="storage.read:/cygno-data", ca=idp.tls.ca)
        first = subprocess.run(["oidc-token", "alice"], env=env, capture_output=True, text=True, timeout=30)
        assert first.returncode == 0, first.stderr
        assert verifier(first.stdout.strip()).subject == "alice"
        # The access token lives 3 s: after it expired, oidc-agent refreshes it on its own.
        wait_for(lambda: claims(first.stdout)["exp"] < time.time(), 10, what="the first token to expire")
        second = subprocess.run(["oidc-token", "alice"], env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 0 and second.stdout.strip() != first.stdout.strip(), second.stderr
        assert verifier(second.stdout.strip()).subject == "alice"
        # The uploader's token source over oidc-agent: a token for the storage host, valid for its margin.
        from cygno_dm.tokens import OidcAgent

        monkeypatch.setenv("OIDC_SOCK", env["OIDC_SOCK"])
        asked = time.time()
        token = OidcAgent("alice", margin=1.0).token(TAPE_HOST)
        # valid for at least the margin from when it was asked for (not from now: a loaded machine is slow)
        assert verifier(token).subject == "alice" and claims(token)["exp"] - asked >= 1.0
    finally:
        if gen.poll() is None:
            gen.kill()
        if "OIDCD_PID" in env:
            os.kill(int(env["OIDCD_PID"]), signal.SIGTERM)


def refresh_token_of_alice(idp: Idp) -> str:
    """A refresh token of alice's device-flow grant (what oidc-agent or a notebook keeps)."""
    return device_flow(idp.url, idp.tls.ca, ("cli", "cli-secret"), "alice", "alice-pw",
                       f"openid offline_access {READ}")["refresh_token"]


def test_a_refresh_token_file_gives_fresh_tokens_and_follows_rotation(idp: Idp, tmp_path: Path) -> None:
    from cygno_dm.tokens import TokenError, TokenFile, token_source

    first_rt = refresh_token_of_alice(idp)
    path = tmp_path / "alice.token"
    config = {"issuer": idp.url, "client_id": "cli", "client_secret": "cli-secret", "refresh_token": first_rt,
              "ca": idp.tls.ca}
    path.write_text(json.dumps(config))
    path.chmod(0o644)
    with pytest.raises(TokenError, match=r"mode 0644; a token file must be 0600"):
        token_source(f"file:{path}")
    path.chmod(0o600)
    source = token_source(f"file:{path}", margin=1.0)
    verifier = WlcgTokenVerifier(idp.url, TAPE_HOST, required_scope=READ, ca=idp.tls.ca)
    one = source.token(TAPE_HOST)
    assert verifier(one).subject == "alice" and source.token(TAPE_HOST) == one  # cached while fresh
    rotated = json.loads(path.read_text())["refresh_token"]
    assert rotated != first_rt and path.stat().st_mode & 0o777 == 0o600  # the rotated one is kept, 0600
    wait_for(lambda: claims(one)["exp"] - time.time() < 1.0, 10, what="the token to be within its margin")
    two = source.token(TAPE_HOST)
    assert two != one and verifier(two).subject == "alice"
    # A refresh token the issuer no longer honours (the first one, rotated away): one line, no token in it.
    path.write_text(json.dumps(config))
    with pytest.raises(TokenError) as refused:
        TokenFile(path).token(TAPE_HOST)
    assert "the issuer refused the refresh token: invalid_grant" in str(refused.value)
    assert first_rt not in str(refused.value) and "\n" not in str(refused.value)
    path.write_text(json.dumps({**config, "client_secret": ""}))
    with pytest.raises(TokenError, match="client_secret: required"):
        TokenFile(path)
    # Without a refresh token the file is a robot client's: the client-credentials grant, refused for a bad secret.
    robot = {k: v for k, v in config.items() if k != "refresh_token"}
    path.write_text(json.dumps({**robot, "client_id": "rucio", "client_secret": "rucio-secret"}))
    any_scope = WlcgTokenVerifier(idp.url, TAPE_HOST, ca=idp.tls.ca)
    assert any_scope(TokenFile(path).token(TAPE_HOST)).subject == "rucio"
    path.write_text(json.dumps({**robot, "client_id": "rucio", "client_secret": "guess"}))
    with pytest.raises(TokenError, match="the issuer refused the client rucio: The client cannot authenticate"):
        TokenFile(path).token(TAPE_HOST)
    with pytest.raises(TokenError, match="expected oidc-agent:ACCOUNT or file:PATH"):
        token_source("vault:alice")
