"""WLCG bearer tokens from the testbed identity provider (a real process) at the transfer service and the tape
endpoint: issued tokens pass; expired, wrong-audience, wrong-scope and forged tokens are refused, one line why."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from testbed.idp import covers
from testbed.private import write_private
from testbed.tokens import has_storage_scope

from .conftest import FTS_HOST, OTHER, REPO, TAPE_HOST, USER, FtsProcess, FtsTls, _stop, free_port, wait_for
from .test_fts_tape import TapeEndpoint

IDP_HOST = "127.0.0.44"
ALL = ["fts", "storage.create:/cygno", "storage.modify:/cygno", "storage.stage:/cygno", "storage.read:/cygno"]
CLIENTS = {  # id: (scopes, audiences, lifetime)
    "rucio": (ALL, [FTS_HOST, TAPE_HOST], None),
    "short": (ALL, [FTS_HOST, TAPE_HOST], 1),
    "reader": (["storage.read:/cygno"], [FTS_HOST, TAPE_HOST], None),
    "elsewhere": (ALL, ["storage.example.org"], None),
}


class Idp:
    """`python -m testbed.idp` over https with the tests' CA."""

    def __init__(self, workdir: Path, tls: FtsTls, clients: list[dict] = (), people: list[dict] = ()):
        """The robot clients of CLIENTS, then `clients` and `people` entries of the configuration."""
        self.tls, self.port, self.workdir = tls, free_port(IDP_HOST), workdir
        config = {"lifetime": 600, "people": list(people), "clients": [
            {"client_id": cid, "client_secret": f"{cid}-secret", "scopes": scopes, "audiences": auds,
             "groups": ["/cygno"], **({"lifetime": life} if life else {})}
            for cid, (scopes, auds, life) in CLIENTS.items()] + list(clients)}
        write_private(workdir / "idp.json", json.dumps(config))
        self.start()

    def start(self) -> None:
        """Start the provider process (again, after `stop`: same port, keys and refresh tokens)."""
        with open(self.workdir / "idp.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.idp", "--host", IDP_HOST, "--port", str(self.port), "--config",
                 str(self.workdir / "idp.json"), "--key", str(self.workdir / "keys.json"), "--tls-dir",
                 str(self.tls.dir)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, 30, what="identity provider")

    @property
    def url(self) -> str:
        return f"https://{IDP_HOST}:{self.port}"

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/health", verify=self.tls.ca, timeout=2).ok
        except requests.RequestException:
            return False

    def token(self, client: str, scope: str, audience: str) -> str:
        """An access token by the client-credentials grant (secret in the Authorization header)."""
        r = requests.post(self.url + "/token", data={"grant_type": "client_credentials", "scope": scope,
                                                     "audience": audience},
                          auth=(client, f"{client}-secret"), verify=self.tls.ca, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def forged(self, scope: str, audience: str) -> str:
        """A token with the claims of a real one, signed by another key under the issuer's key id."""
        real = self.token("rucio", scope, audience)
        header, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in real.split(".")[:2])
        return jwt.encode(header, claims, RSAKey.generate_key(2048))


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, fts_tls: FtsTls) -> Iterator[Idp]:
    provider = Idp(tmp_path_factory.mktemp("idp"), fts_tls)
    yield provider
    _stop(provider.proc)


def test_discovery_jwks_and_wlcg_claims(idp: Idp) -> None:
    doc = requests.get(idp.url + "/.well-known/openid-configuration", verify=idp.tls.ca, timeout=5).json()
    assert doc["issuer"] == idp.url and "client_credentials" in doc["grant_types_supported"]
    keys = requests.get(doc["jwks_uri"], verify=idp.tls.ca, timeout=5).json()["keys"]
    assert keys and all("d" not in k for k in keys)  # public halves only
    claims = json.loads(base64.urlsafe_b64decode(idp.token("rucio", "fts", FTS_HOST).split(".")[1] + "=="))
    assert claims["wlcg.ver"] == "1.0" and claims["aud"] == FTS_HOST and claims["scope"] == "fts"
    assert claims["sub"] == "rucio" and claims["wlcg.groups"] == ["/cygno"] and claims["iss"] == idp.url
    both = json.loads(base64.urlsafe_b64decode(idp.token("rucio", "fts", f"{FTS_HOST} {TAPE_HOST}").split(".")[1]
                                               + "=="))
    assert both["aud"] == [FTS_HOST, TAPE_HOST]  # several audiences, space-separated as IAM takes them
    for evil in ("evil", f"{FTS_HOST} evil"):
        refused = requests.post(idp.url + "/token", data={"grant_type": "client_credentials", "audience": evil},
                                auth=("rucio", "rucio-secret"), verify=idp.tls.ca, timeout=10)
        assert refused.status_code == 400 and "audience 'evil'" in refused.json()["error_description"]
    wrong_secret = requests.post(idp.url + "/token", data={"grant_type": "client_credentials"},
                                 auth=("rucio", "guess"), verify=idp.tls.ca, timeout=10)
    assert wrong_secret.status_code == 401


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_transfer_service_tokens(idp: Idp, fts_factory: Callable[..., FtsProcess]) -> None:
    fts = fts_factory("--token-issuer", idp.url, "--token-ca", idp.tls.ca, "--max-active", "0")
    good = idp.token("rucio", "fts", FTS_HOST)
    who = fts.request("GET", "/whoami", as_=None, headers=_bearer(good)).json()
    assert who["user_dn"] == "rucio" and who["method"] == "token"
    (fts.workdir / "in").write_bytes(b"x")
    body = {"files": [{"sources": [f"file://{fts.workdir}/in"], "destinations": [f"file://{fts.workdir}/out"]}]}
    job_id = fts.request("POST", "/jobs", as_=None, headers=_bearer(good), json=body).json()["job_id"]
    assert fts.request("GET", f"/jobs/{job_id}", as_=None, headers=_bearer(good)).json()["user_dn"] == "rucio"
    assert fts.request("GET", f"/jobs/{job_id}").status_code == 403  # a certificate user is another owner

    short = idp.token("short", "fts", FTS_HOST)
    time.sleep(2.1)
    refusals = {
        "expired": short,
        "aud": idp.token("elsewhere", "fts", "storage.example.org"),
        "scope 'fts' is missing": idp.token("reader", "storage.read:/cygno", FTS_HOST),
        "signature does not verify": idp.forged("fts", FTS_HOST),
        "malformed": "not.a.token",
    }
    for reason, token in refusals.items():
        r = fts.request("GET", "/jobs", as_=None, headers=_bearer(token))
        assert r.status_code == 401 and reason in r.json()["message"], (reason, r.text)
        assert token not in r.text and "\n" not in r.json()["message"]
    assert token_free(fts.log.read_text(), [good, short])


def token_free(log: str, tokens: list[str]) -> bool:
    """No token (nor its signature) is in a log."""
    return not any(t in log or t.rsplit(".", 1)[-1] in log for t in tokens)


def test_tape_endpoint_tokens(idp: Idp, fts_tls: FtsTls, tmp_path: Path) -> None:
    tape = TapeEndpoint(tmp_path / "tape", 3600, 3600, 0.5, fts_tls,
                        ("--token-issuer", idp.url, "--token-ca", idp.tls.ca))
    try:
        def call(method: str, path: str, token: str, **kw: Any) -> requests.Response:
            return requests.request(method, tape.base + path, headers=_bearer(token), verify=fts_tls.ca, timeout=10,
                                    **kw)

        writer = idp.token("rucio", "storage.create:/cygno storage.modify:/cygno storage.stage:/cygno", TAPE_HOST)
        assert call("PUT", "/cygno/data/ok.bin", writer, data=b"ok").status_code == 201
        stage = call("POST", "/api/v1/stage", writer, json={"files": [{"path": "/cygno/data/ok.bin"}]})
        assert stage.status_code == 201, stage.text

        short = idp.token("short", "storage.create:/cygno", TAPE_HOST)
        time.sleep(2.1)
        for status, reason, method, path, token, kw in (
            (401, "expired", "PUT", "/cygno/data/a.bin", short, {"data": b"x"}),
            (401, "aud", "PUT", "/cygno/data/a.bin", idp.token("elsewhere", "storage.create:/cygno",
                                                               "storage.example.org"), {"data": b"x"}),
            (403, "no storage.create scope", "PUT", "/cygno/data/a.bin",
             idp.token("reader", "storage.read:/cygno", TAPE_HOST), {"data": b"x"}),
            (403, "no storage.create scope covering /other/a.bin", "PUT", "/other/a.bin", writer, {"data": b"x"}),
            (403, "no storage.modify scope", "DELETE", "/cygno/data/ok.bin",
             idp.token("rucio", "storage.create:/cygno", TAPE_HOST), {}),
            (403, "no storage.stage scope", "POST", "/api/v1/stage",
             idp.token("rucio", "storage.create:/cygno", TAPE_HOST), {"json": {"files": [{"path": "/cygno/x"}]}}),
            (401, "signature does not verify", "PUT", "/cygno/data/a.bin",
             idp.forged("storage.create:/cygno", TAPE_HOST), {"data": b"x"}),
        ):
            r = call(method, path, token, **kw)
            assert r.status_code == status and reason in r.json()["detail"], (reason, r.text)
        assert tape.request("HEAD", "/cygno/data/a.bin").status_code == 404
        assert tape.request("HEAD", "/cygno/data/ok.bin").status_code == 200
        assert token_free((tmp_path / "tape" / "tape.log").read_text(), [writer, short])
    finally:
        _stop(tape.proc)


def test_wlcg_storage_scopes_are_path_prefixes_under_the_base_path() -> None:
    scopes = frozenset({"storage.create:/cygno-data", "storage.stage:/", "storage.read:/cygno-sim"})
    assert has_storage_scope(scopes, "create", "/cygno/cygno-data/LNGS/run1.mid.gz", "/cygno")
    assert has_storage_scope(scopes, "create", "/cygno-data/x")  # base "/"
    assert not has_storage_scope(scopes, "create", "/cygno/cygno-datax/y", "/cygno")  # prefix, not string prefix
    assert not has_storage_scope(scopes, "create", "/other/cygno-data/x", "/cygno")  # outside the base
    assert not has_storage_scope(scopes, "modify", "/cygno/cygno-data/x", "/cygno")  # create does not give modify
    assert has_storage_scope(frozenset({"storage.modify:/"}), "create", "/cygno/x", "/cygno")  # modify gives create
    assert has_storage_scope(scopes, "stage", "/cygno/anything", "/cygno")
    assert not has_storage_scope(scopes, "create", "/cygno/cygno-sim/x", "/cygno")  # read only there


def test_copies_use_the_per_file_tokens_rucio_sends(idp: Idp, fts_factory: Callable[..., FtsProcess],
                                                    fts_tls: FtsTls, tmp_path: Path) -> None:
    """What Rucio's FTS3 transfertool sends with oidc_support: `destination_tokens` per file. The copy presents the
    token to the tape endpoint (not the service certificate); a token the endpoint refuses fails the file with the
    endpoint's status; tokens appear in no job view and no log."""
    tape = TapeEndpoint(tmp_path / "tape", 3600, 3600, 0.5, fts_tls,
                        ("--token-issuer", idp.url, "--token-ca", idp.tls.ca))
    fts = fts_factory("--token-issuer", idp.url, "--token-ca", idp.tls.ca, "--retry-delay", "0.2")
    try:
        (fts.workdir / "run.bin").write_bytes(os.urandom(300_000))
        writer = idp.token("rucio", "storage.modify:/cygno storage.read:/cygno offline_access", TAPE_HOST)

        def copy(name: str, token: str) -> dict[str, Any]:
            files = [{"sources": [f"file://{fts.workdir}/run.bin"], "destinations": [tape.url(f"/cygno/d/{name}")],
                      "source_tokens": [None], "destination_tokens": [token]}]
            return fts.wait_job(fts.submit(files))

        ok = copy("ok.bin", writer)
        assert ok["job_state"] == "FINISHED", ok["files"][0]["reason"]
        assert tape.request("HEAD", "/cygno/d/ok.bin").headers["Content-Length"] == "300000"
        tape_log = (tmp_path / "tape" / "tape.log").read_text()
        assert "PUT /cygno/d/ok.bin by rucio (token)" in tape_log
        assert "PUT /cygno/d/ok.bin by /" not in tape_log  # not the service certificate
        assert "bearer tokens for: destination" in fts.log.read_text()
        view = json.dumps(fts.job(ok["job_id"]))
        assert "destination_tokens" not in view and "dest_token" not in view
        assert token_free(view, [writer])
        assert stat.S_IMODE(fts.db.stat().st_mode) == 0o600  # it keeps the tokens of pending copies

        short = idp.token("short", "storage.modify:/cygno storage.read:/cygno", TAPE_HOST)
        time.sleep(2.1)
        refused = {
            "expired": short,
            "audience": idp.token("elsewhere", "storage.modify:/cygno", "storage.example.org"),
            "scope": idp.token("reader", "storage.read:/cygno", TAPE_HOST),
        }
        reasons = {}
        for what, token in refused.items():
            job = copy(f"{what}.bin", token)
            reasons[what] = job["files"][0]["reason"]
            assert job["job_state"] == "FAILED" and reasons[what].startswith("DESTINATION"), (what, reasons[what])
            assert reasons[what].endswith("(the endpoint refused the per-file bearer token)"), reasons[what]
            assert tape.request("HEAD", f"/cygno/d/{what}.bin").status_code == 404
        assert "401" in reasons["expired"] and "401" in reasons["audience"] and "403" in reasons["scope"], reasons
        tape_log = (tmp_path / "tape" / "tape.log").read_text()
        assert "expired" in tape_log and "aud" in tape_log and "no storage.create scope" in tape_log
        assert token_free(fts.log.read_text() + tape_log, [writer, short, *refused.values()])
    finally:
        _stop(tape.proc)


def test_staging_presents_the_per_file_source_token_to_the_tape(idp: Idp, fts_factory: Callable[..., FtsProcess],
                                                                fts_tls: FtsTls, tmp_path: Path) -> None:
    """Tape REST stage and status calls of a file with a source token that carries storage.stage go with that token,
    not the service certificate; a token the tape refuses fails the file at once, saying why; a source token with
    storage.read only (what Rucio 41 asks for sources) stages with the certificate, as jobs without tokens do."""
    tape = TapeEndpoint(tmp_path / "tape", 0.3, 0.3, 0.5, fts_tls, ("--token-issuer", idp.url, "--token-ca",
                                                                    idp.tls.ca))
    fts = fts_factory("--token-issuer", idp.url, "--token-ca", idp.tls.ca)
    try:
        for name in ("a", "b", "c", "d"):
            assert tape.request("PUT", f"/cygno/t/{name}.bin", data=name.encode() * 1000).status_code == 201
        for name in ("a", "b", "c", "d"):
            wait_for(lambda n=name: tape.locality(f"/cygno/t/{n}.bin") == "TAPE", 60, 0.2, what="tape-only file")

        def stage(name: str, token: str | None) -> dict[str, Any]:
            files = [{"sources": [tape.url(f"/cygno/t/{name}.bin")], "destinations": [f"file://{tmp_path}/{name}"],
                      "source_tokens": [token], "destination_tokens": [None]}]
            return fts.wait_job(fts.submit(files, bring_online=60, copy_pin_lifetime=60))

        stager = idp.token("rucio", "storage.stage:/cygno storage.read:/cygno", TAPE_HOST)
        ok = stage("a", stager)
        assert ok["job_state"] == "FINISHED", ok["files"][0]["reason"]
        assert (tmp_path / "a").read_bytes() == b"a" * 1000
        log = (tmp_path / "tape" / "tape.log").read_text()
        assert "POST /api/v1/stage by rucio (token)" in log and "POST /api/v1/stage by /" not in log

        for name, token, status, why in (
            ("b", idp.token("elsewhere", "storage.stage:/cygno", "storage.example.org"), 401, "aud"),
            ("c", idp.token("rucio", "storage.stage:/cygno/other", TAPE_HOST), 403, "no storage.stage scope"),
        ):
            job = stage(name, token)
            reason = job["files"][0]["reason"]
            assert job["job_state"] == "FAILED" and reason.startswith("STAGING [13]"), reason
            assert f"HTTP {status}: " in reason and reason.endswith("(the file's bearer token)"), reason
            assert why in reason and "\n" not in reason, reason
            assert tape.locality(f"/cygno/t/{name}.bin") == "TAPE" and not (tmp_path / name).exists()

        reader = idp.token("reader", "storage.read:/cygno", TAPE_HOST)
        assert stage("d", reader)["job_state"] == "FINISHED"
        log = (tmp_path / "tape" / "tape.log").read_text()
        assert log.count("POST /api/v1/stage by rucio (token)") == 1 and "POST /api/v1/stage by /" in log
        assert token_free(fts.log.read_text() + log, [stager, reader])
    finally:
        _stop(tape.proc)


def test_registered_storage_scopes_grant_sub_paths_only() -> None:
    assert covers("storage.read:/", "storage.read:/cygno-data") and covers("storage.read:/", "storage.read:")
    assert covers("storage.create:/cygno", "storage.create:/cygno/x") and covers("fts", "fts")
    assert not covers("storage.create:/cygno", "storage.create:/cygnox")  # a path prefix, not a string prefix
    assert not covers("storage.read:/", "storage.modify:/x") and not covers("fts", "fts:/")
    assert not covers("storage.read:/cygno", "storage.read:/")


def test_a_token_subject_can_be_the_same_owner_as_a_certificate(idp: Idp, fts_factory: Callable[..., FtsProcess],
                                                                fts_tls: FtsTls) -> None:
    """Rucio submits some jobs with its certificate and some with a token, and polls all with one of them."""
    fts = fts_factory("--token-issuer", idp.url, "--token-ca", idp.tls.ca, "--max-active", "0",
                      "--token-subject", f"rucio={fts_tls.dn(USER)}")
    token = _bearer(idp.token("rucio", "fts", FTS_HOST))
    (fts.workdir / "in").write_bytes(b"x")
    body = {"files": [{"sources": [f"file://{fts.workdir}/in"], "destinations": [f"file://{fts.workdir}/out"]}]}
    by_token = fts.request("POST", "/jobs", as_=None, headers=token, json=body).json()["job_id"]
    by_cert = fts.submit(body["files"])
    for job_id in (by_token, by_cert):
        assert fts.request("GET", f"/jobs/{job_id}").json()["user_dn"] == fts_tls.dn(USER)
        assert fts.request("GET", f"/jobs/{job_id}", as_=None, headers=token).status_code == 200
    assert fts.request("GET", f"/jobs/{by_cert}", as_=OTHER).status_code == 403
