"""WLCG bearer tokens at the real XRootD WebDAV endpoint (Debian's SciTokens plugin), issued by the real testbed
identity provider: scopes authorise paths under the RSE prefix; expired, wrong-audience, wrong-issuer and forged
tokens are refused; client certificates keep working next to tokens."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from conftest import REPO, Server, free_port, python_module
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.security import generate_password_hash

from testbed.people_login import token_file
from testbed.private import write_private
from testbed.storage import webdav_ready
from testbed.storage.tls import ensure_client_cert, ensure_host_cert
from testbed.storage.xrd_tokens import CACHE_FILE, KEY_CACHE_LIFETIME, TokenConfig, fetch_jwks, seed_key_cache

HOST, IDP_HOST = "127.0.0.55", "127.0.0.56"
PREFIX = "/cygno"
WRITER = "webdav-token-writer"
CLIENTS = {  # id: (scopes, audiences, lifetime)
    "reader": (["storage.read:/cygno-data"], [HOST], None),
    "daq": (["storage.read:/cygno-data", "storage.create:/cygno-data"], [HOST], None),
    "rucio": ([f"storage.{op}:/" for op in ("read", "create", "modify")], [HOST], None),
    "short": (["storage.read:/cygno-data"], [HOST], 1),
    "elsewhere": (["storage.read:/cygno-data", "storage.create:/cygno-data"], ["127.0.0.99"], None),
}


# A person (a DAQ expert's oidc-agent or refresh-token file) whose tokens live 2 s: the uploader must renew them.
PEOPLE = {"client_id": "people", "client_secret": "people-secret", "lifetime": 2, "audiences": [HOST],
          "scopes": ["openid", "offline_access", "storage.read:/cygno-data", "storage.create:/cygno-data"],
          "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]}
PERSON = {"username": "dana", "password_hash": generate_password_hash("dana-pw"), "groups": ["/cygno/daq"],
          "scopes": ["storage.read:/cygno-data", "storage.create:/cygno-data"]}


class Idp:
    """`python -m testbed.idp` over https with the endpoint's CA; a second one with the same key is another issuer."""

    def __init__(self, workdir: Path, tls: Path, keys: Path) -> None:
        self.tls, self.port = tls, free_port(IDP_HOST)
        config = {"lifetime": 600, "clients": [
            {"client_id": cid, "client_secret": f"{cid}-secret", "scopes": scopes, "audiences": auds,
             **({"lifetime": life} if life else {})} for cid, (scopes, auds, life) in CLIENTS.items()] + [PEOPLE],
            "people": [PERSON]}
        write_private(workdir / "idp.json", json.dumps(config))
        argv = python_module("testbed.idp", "--host", IDP_HOST, "--port", str(self.port), "--config",
                             str(workdir / "idp.json"), "--key", str(keys), "--tls-dir", str(tls))
        self.server = Server(argv, workdir / f"idp-{self.port}.log", self._up)

    @property
    def url(self) -> str:
        return f"https://{IDP_HOST}:{self.port}"

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/health", verify=str(self.tls / "ca" / "ca.pem"), timeout=2).ok
        except requests.RequestException:
            return False

    def token(self, client: str, scope: str = "", audience: str = HOST) -> str:
        r = requests.post(self.url + "/token", data={"grant_type": "client_credentials", "scope": scope,
                                                     "audience": audience},
                          auth=(client, f"{client}-secret"), verify=str(self.tls / "ca" / "ca.pem"), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


class Site(NamedTuple):
    url: str
    root: Path
    tls: Path
    idp: Idp
    other_issuer: Idp
    writer_cert: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Identity provider + XRootD accepting its tokens (audience HOST, scopes under /cygno) and writer certs."""
    if not shutil.which("xrootd") or not Path("/usr/lib/x86_64-linux-gnu/libXrdAccSciTokens-5.so").exists():
        pytest.skip("xrootd or xrootd-scitokens-plugins is not installed (scripts/setup.sh)")
    base = Path(tempfile.mkdtemp(prefix="cygno-davtok-"))  # xrootd (user 'xrootd') must reach it
    base.chmod(0o755)
    tls, logs = base / "tls", tmp_path_factory.mktemp("davtok")
    ensure_host_cert(tls, IDP_HOST)
    writer = str(ensure_client_cert(tls, WRITER))
    servers: list[Any] = []
    try:
        idp = Idp(logs, tls, logs / "keys.json")
        servers.append(idp.server)
        other = Idp(logs, tls, logs / "keys.json")  # same signing key, another issuer URL
        servers.append(other.server)
        port = free_port()
        url = f"https://{HOST}:{port}"
        argv = python_module("testbed.storage.webdav", "--host", HOST, "--port", str(port), "--root",
                             str(base / "root"), "--state-dir", str(base / "state"), "--tls-dir", str(tls),
                             "--writer-dn", f"/O=cygno-dm testbed/CN={WRITER}", "--token-issuer", idp.url,
                             "--token-ca", str(tls / "ca" / "ca.pem"), "--token-base-path", PREFIX)
        servers.append(Server(argv, logs / "xrootd.log", lambda: webdav_ready(url + "/")))
        yield Site(url, base / "root", tls, idp, other, writer)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def call(site: Site, method: str, path: str, token: str | None = None, cert: str | None = None,
         **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, site.url + path, headers=headers, cert=cert,
                            verify=str(site.tls / "ca" / "ca.pem"), timeout=15, **kw)


def put_file(site: Site, rel: str, data: bytes) -> None:
    """A file on disk, put there with the writer's certificate (the existing way)."""
    assert call(site, "PUT", f"{PREFIX}/{rel}", cert=site.writer_cert, data=data).status_code in (200, 201)


def test_read_scope_reads_its_path_only_and_cannot_write(site: Site) -> None:
    put_file(site, "cygno-data/run1/a.bin", b"data")
    put_file(site, "cygno-sim/run1/s.bin", b"sim")
    token = site.idp.token("reader")
    got = call(site, "GET", f"{PREFIX}/cygno-data/run1/a.bin", token)
    assert got.status_code == 200 and got.content == b"data"
    assert call(site, "GET", f"{PREFIX}/cygno-sim/run1/s.bin", token).status_code == 403  # another scope's path
    assert call(site, "GET", f"{PREFIX}/cygno-sim/run1/s.bin").status_code == 200  # anyone reads without a token
    assert call(site, "PUT", f"{PREFIX}/cygno-data/run1/b.bin", token, data=b"x").status_code == 403
    assert call(site, "DELETE", f"{PREFIX}/cygno-data/run1/a.bin", token).status_code == 403
    assert not (site.root / "cygno/cygno-data/run1/b.bin").exists()
    assert (site.root / "cygno/cygno-data/run1/a.bin").exists()


def test_create_scope_writes_its_path_only(site: Site) -> None:
    token = site.idp.token("daq")
    made = call(site, "PUT", f"{PREFIX}/cygno-data/run2/new.bin", token, data=b"fresh")
    assert made.status_code in (200, 201), made.text
    assert (site.root / "cygno/cygno-data/run2/new.bin").read_bytes() == b"fresh"
    assert call(site, "PUT", f"{PREFIX}/cygno-sim/run2/new.bin", token, data=b"x").status_code == 403
    assert call(site, "PUT", "/elsewhere.bin", token, data=b"x").status_code == 403
    assert not (site.root / "cygno/cygno-sim/run2/new.bin").exists() and not (site.root / "elsewhere.bin").exists()
    assert call(site, "DELETE", f"{PREFIX}/cygno-data/run2/new.bin", token).status_code == 403  # create != modify
    assert call(site, "PUT", f"{PREFIX}/cygno-data/run2/new.bin", token, data=b"over").status_code == 403
    assert (site.root / "cygno/cygno-data/run2/new.bin").read_bytes() == b"fresh"


def test_modify_scope_overwrites_and_deletes(site: Site) -> None:
    put_file(site, "cygno-sim/run3/old.bin", b"old")
    token = site.idp.token("rucio")
    assert call(site, "PUT", f"{PREFIX}/cygno-sim/run3/old.bin", token, data=b"new").status_code in (200, 201)
    assert (site.root / "cygno/cygno-sim/run3/old.bin").read_bytes() == b"new"
    assert call(site, "DELETE", f"{PREFIX}/cygno-sim/run3/old.bin", token).status_code in (200, 204)
    assert not (site.root / "cygno/cygno-sim/run3/old.bin").exists()


def _claims(token: str) -> tuple[dict, dict]:
    header, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in token.split(".")[:2])
    return header, claims


@pytest.mark.parametrize("case", ["expired", "wrong audience", "other issuer", "forged", "garbage"])
def test_bad_tokens_are_refused(site: Site, case: str) -> None:
    if case == "expired":
        token = site.idp.token("short", "storage.read:/cygno-data storage.create:/cygno-data")
        time.sleep(2.5)
    elif case == "wrong audience":
        token = site.idp.token("elsewhere", audience="127.0.0.99")
    elif case == "other issuer":  # signed by the same key, but the endpoint trusts only the first issuer
        token = site.other_issuer.token("daq")
    elif case == "forged":  # the claims of a real token, signed by another key under the issuer's key id
        header, claims = _claims(site.idp.token("daq"))
        token = jwt.encode(header, claims, RSAKey.generate_key(2048))
    else:
        token = "not.a.token"
    target = f"{PREFIX}/cygno-data/bad/{case.replace(' ', '-')}.bin"
    assert call(site, "PUT", target, token, data=b"x").status_code in (401, 403)
    assert not (site.root / target.lstrip("/")).exists()


def test_anonymous_refused_and_client_certificates_still_work(site: Site) -> None:
    target = f"{PREFIX}/cygno-data/cert/c.bin"
    assert call(site, "PUT", target, data=b"anon").status_code == 403
    reader = str(ensure_client_cert(site.tls, "webdav-token-reader"))  # same CA, not a writer
    assert call(site, "PUT", target, cert=reader, data=b"x").status_code == 403
    assert call(site, "PUT", target, cert=site.writer_cert, data=b"cert").status_code in (200, 201)
    assert call(site, "GET", target, cert=site.writer_cert).content == b"cert"
    assert call(site, "DELETE", target, cert=site.writer_cert).status_code in (200, 204)


def _webdav_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.storage.webdav", "--host", HOST, "--port", "1", "--root",
                           str(tmp_path / "r"), "--state-dir", str(tmp_path / "s"), *args, "--print-config"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_key_cache_seed_and_bad_issuer_settings(tmp_path: Path, site: Site) -> None:
    tokens = TokenConfig(site.idp.url, HOST, PREFIX, site.tls / "ca" / "ca.pem")
    jwks = fetch_jwks(tokens)
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])
    db = seed_key_cache(tmp_path / "cache", tokens.issuer, jwks, now=1000)
    assert db == tmp_path / "cache" / CACHE_FILE
    with sqlite3.connect(db) as conn:
        (entry,), = conn.execute("SELECT keys FROM keycache WHERE issuer = ?", (tokens.issuer,)).fetchall()
    conn.close()
    assert json.loads(entry) == {"jwks": jwks, "expires": 1000 + KEY_CACHE_LIFETIME,
                                 "next_update": 1000 + KEY_CACHE_LIFETIME}
    ca = str(tokens.ca)
    unreachable = _webdav_cli(tmp_path, "--token-issuer", "https://127.0.0.56:1", "--token-ca", ca)
    assert unreachable.returncode == 2 and "webdav: token issuer: cannot read the keys of https://127.0.0.56:1" \
        in unreachable.stderr
    assert not (tmp_path / "s").exists()  # nothing written
    other = _webdav_cli(tmp_path, "--token-issuer", site.idp.url + "/", "--token-ca", ca)  # discovery: no slash
    assert other.returncode == 2 and "the discovery document names" in other.stderr
    plain = _webdav_cli(tmp_path, "--token-issuer", "http://127.0.0.56:1")
    assert plain.returncode == 2 and "--token-issuer: must be an https URL" in plain.stderr
    no_tls = _webdav_cli(tmp_path, "--token-issuer", site.idp.url, "--token-ca", ca, "--no-tls")
    assert no_tls.returncode == 2 and "--token-issuer: bearer tokens need TLS" in no_tls.stderr
    state = site.root.parent / "state"  # the running endpoint's
    assert "ofs.authlib ++ libXrdAccSciTokens.so config=" in (state / "xrootd.cfg").read_text()
    assert f"issuer = {site.idp.url}\nbase_path = {PREFIX}" in (state / "scitokens.cfg").read_text()


def test_gfal2_copies_with_bearer_tokens(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Rucio and the transfer service do with tokens: gfal2 upload, then an XRootD third-party pull."""
    gfal2 = pytest.importorskip("gfal2")
    monkeypatch.delenv("X509_USER_PROXY", raising=False)  # the token alone must do it
    monkeypatch.setenv("X509_CERT_DIR", str(site.tls / "ca"))
    src = tmp_path / "raw.bin"
    src.write_bytes(b"raw data " * 1000)
    dav = site.url.replace("https://", "davs://")
    ctx = gfal2.creat_context()
    ctx.cred_set(dav, gfal2.cred_new("BEARER", site.idp.token("daq")))
    params = ctx.transfer_parameters()
    params.create_parent = True
    ctx.filecopy(params, f"file://{src}", f"{dav}{PREFIX}/cygno-data/gfal/raw.bin")
    assert (site.root / "cygno/cygno-data/gfal/raw.bin").read_bytes() == src.read_bytes()
    ctx.cred_set(dav, gfal2.cred_new("BEARER", site.idp.token("rucio")))
    ctx.set_opt_string("HTTP PLUGIN", "DEFAULT_COPY_MODE", "3rd pull")
    ctx.set_opt_boolean("HTTP PLUGIN", "ENABLE_FALLBACK_TPC_COPY", False)
    ctx.filecopy(params, f"{dav}{PREFIX}/cygno-data/gfal/raw.bin", f"{dav}{PREFIX}/cygno-sim/gfal/copy.bin")
    assert (site.root / "cygno/cygno-sim/gfal/copy.bin").read_bytes() == src.read_bytes()
    ctx.cred_set(dav, gfal2.cred_new("BEARER", site.idp.token("reader")))
    with pytest.raises(gfal2.GError):
        ctx.filecopy(params, f"file://{src}", f"{dav}{PREFIX}/cygno-data/gfal/refused.bin")
    assert not (site.root / "cygno/cygno-data/gfal/refused.bin").exists()


def refresh_token_file(site: Site, path: Path) -> Path:
    """dana's device-flow grant, kept as the uploader's 0600 token file."""
    return token_file(site.idp.url, str(site.tls / "ca" / "ca.pem"), ("people", "people-secret"), "dana", "dana-pw",
                      "offline_access storage.read:/cygno-data storage.create:/cygno-data", path)


def test_the_uploader_storage_renews_its_tokens_across_expiry(site: Site, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAQ uploader's gfal2 storage with a refresh-token file and no certificate: tokens live 2 s, uploads and
    checks spread over longer than that all pass, each request with a token that is still valid."""
    from cygno_dm.ingest.checksums import scan
    from cygno_dm.ingest.davs import GfalStorage
    from cygno_dm.ingest.storage import StorageError
    from cygno_dm.tokens import TokenFile

    monkeypatch.delenv("X509_USER_PROXY", raising=False)  # the token alone must do it
    monkeypatch.setenv("X509_CERT_DIR", str(site.tls / "ca"))
    tokens = TokenFile(refresh_token_file(site, tmp_path / "dana" / "token.json"), margin=0.5)
    store = GfalStorage(tokens=tokens)
    dav = site.url.replace("https://", "davs://")
    seen = set()
    for i in range(3):
        src = tmp_path / f"run{i}.mid.gz"
        src.write_bytes(bytes([i]) * 300_000)
        sums = scan(src, gzip=False)
        pfn = f"{dav}{PREFIX}/cygno-data/LNF/run{i}-{uuid.uuid4().hex}.mid.gz"
        store.put(src, pfn, sums)
        seen.add(tokens.token(HOST))
        time.sleep(2.1)  # the token used for the upload expires before the verification
        assert store.verify(pfn, sums)[0] is None
        assert store.stat(pfn).size == sums.size
    assert len(seen) >= 3, "a new token after each expiry"
    with pytest.raises(StorageError):  # dana may not write outside the raw scope
        store.put(src, f"{dav}{PREFIX}/cygno-sim/refused.bin", sums)
