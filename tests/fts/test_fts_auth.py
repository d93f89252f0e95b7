"""Who may use the transfer service (the real process over https): refused and allowed actors, endpoints."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from testbed.fts.endpoints import EndpointError, Endpoints

from .conftest import ADMIN, OTHER, USER, FtsProcess, FtsTls, MotoServer


def test_health_is_open_everything_else_needs_a_credential(fts: FtsProcess) -> None:
    assert fts.request("GET", "/health", as_=None).json() == {"status": "ok"}
    for method, path in (("GET", "/"), ("GET", "/whoami"), ("GET", "/jobs"), ("POST", "/jobs"),
                         ("DELETE", "/jobs/x"), ("POST", "/jobs/x"), ("GET", "/metrics")):
        r = fts.request(method, path, as_=None, json={})
        assert r.status_code == 401, (method, path, r.text)
        assert "client certificate" in r.json()["message"] and "\n" not in r.json()["message"]
    r = fts.request("GET", "/jobs", as_=None, headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and "no token issuer" in r.json()["message"]
    r = fts.request("GET", "/jobs", as_=None, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401 and "Bearer" in r.json()["message"]


def test_plain_http_is_not_served(fts: FtsProcess) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(fts.url.replace("https://", "http://") + "/jobs", timeout=5)


def test_certificate_of_another_ca_is_refused_at_the_handshake(fts: FtsProcess, tmp_path: Path) -> None:
    key, cert = tmp_path / "forged.key", tmp_path / "forged.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", f"/O=cygno-dm testbed/CN={ADMIN}"], check=True, capture_output=True)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(fts.url + "/jobs", cert=(str(cert), str(key)), verify=fts.tls.ca, timeout=5)


def test_whoami_reports_the_certificate_dn(fts: FtsProcess) -> None:
    who = fts.request("GET", "/whoami").json()
    assert who["user_dn"] == FtsTls.dn(USER) and who["method"] == "certificate" and who["is_root"] is False
    assert fts.request("GET", "/whoami", as_=ADMIN).json()["is_root"] is True


REFUSED_URLS = [
    "file:///etc/passwd",  # a local file outside the service's storage areas
    "file://{workdir}/../../../etc/passwd",  # escaping a storage area
    "http://127.0.0.1:{fts_port}/jobs",  # a loopback service that is not storage
    "https://{fts_host}:{fts_port}/jobs",  # the service itself
    "s3://10.1.2.3/bucket/key",  # an arbitrary host
    "root://127.0.0.41:1094//data/x",  # a scheme the service does not copy with
    "https://user:pw@127.0.0.41/b/k",  # credentials in the URL
]


def test_copies_outside_the_storage_endpoints_are_refused(fts: FtsProcess) -> None:
    for source in REFUSED_URLS:
        src = source.format(workdir=fts.workdir, fts_port=fts.port, fts_host=fts.host)
        r = fts.request("POST", "/jobs",
                        json={"files": [{"sources": [src], "destinations": [f"file://{fts.workdir}/o"]}]})
        assert r.status_code == 403 and r.json()["message"].startswith("files[0].sources:"), (src, r.text)
        r = fts.request("POST", "/jobs",
                        json={"files": [{"sources": [f"file://{fts.workdir}/i"], "destinations": [src]}]})
        assert r.status_code == 403 and r.json()["message"].startswith("files[0].destinations:"), (src, r.text)
    assert fts.request("GET", "/jobs").json() == []
    assert not (fts.workdir / "o").exists()


def test_only_the_owner_and_admins_see_and_change_a_job(fts_factory: Callable[..., FtsProcess]) -> None:
    fts = fts_factory("--max-active", "0")  # nothing is dispatched: the job waits, it can still be changed
    (fts.workdir / "in").write_bytes(b"owned")
    job_id = fts.submit([{"sources": [f"file://{fts.workdir}/in"], "destinations": [f"file://{fts.workdir}/out"]}])
    assert fts.job(job_id)["user_dn"] == FtsTls.dn(USER)
    for method, path, body in (("GET", f"/jobs/{job_id}", None), ("GET", f"/jobs/{job_id}/files", None),
                               ("POST", f"/jobs/{job_id}", {"params": {"priority": 5}}),
                               ("DELETE", f"/jobs/{job_id}", None), ("DELETE", f"/jobs/{job_id}/files/1", None)):
        r = fts.request(method, path, as_=OTHER, json=body)
        assert r.status_code == 403 and "another user" in r.json()["message"], (method, path, r.text)
    assert fts.request("GET", "/jobs", as_=OTHER).json() == []
    assert fts.request("GET", f"/jobs/{job_id},nope", as_=OTHER).status_code == 207
    assert fts.job(job_id)["priority"] == 3 and fts.job(job_id)["job_state"] == "SUBMITTED"

    assert [j["job_id"] for j in fts.request("GET", "/jobs").json()] == [job_id]
    assert fts.request("POST", f"/jobs/{job_id}", json={"params": {"priority": 4}}).json()["priority"] == 4
    assert [j["job_id"] for j in fts.request("GET", "/jobs", as_=ADMIN).json()] == [job_id]
    assert fts.request("DELETE", f"/jobs/{job_id}", as_=ADMIN).status_code == 200
    assert fts.job(job_id)["job_state"] == "CANCELED"


def test_endpoint_rules() -> None:
    eps = Endpoints.parse(["https://127.0.0.11:19011", "davs://storage.example", "file:///srv/data"])
    for ok in ("s3s://127.0.0.11:19011/b/k", "https://127.0.0.11:19011/b/k?X-Amz-Signature=1",
               "davs://storage.example:8443/x", "http://STORAGE.example/x", "file:///srv/data/a/b"):
        eps.check(ok, "src")
    for bad in ("https://127.0.0.11:19012/b/k", "https://127.0.0.1:19011/b/k", "file:///srv/database",
                "file:///srv/data/../etc", "file://host/srv/data/x", "gopher://127.0.0.11:19011/"):
        with pytest.raises(EndpointError, match="^src: "):
            eps.check(bad, "src")
    with pytest.raises(ValueError, match="storage endpoint 'ftp://x'"):
        Endpoints.parse(["ftp://x"])


def _rfc3820_proxy(user_pem: str, out: Path) -> Path:
    """An RFC 3820 proxy of a user certificate (what voms-proxy-init makes): proxy, its key, then the user cert."""
    user = x509.load_pem_x509_certificate(user_pem.encode())
    user_key = serialization.load_pem_private_key(user_pem.encode(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serial = x509.random_serial_number()
    subject = x509.Name([*user.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(serial % 10**9))])
    inherit_all = bytes.fromhex("300c300a06082b06010505071501")  # ProxyCertInfo: policy id-ppl-inheritAll
    now = datetime.datetime.now(datetime.UTC)
    proxy = (x509.CertificateBuilder().subject_name(subject).issuer_name(user.subject).public_key(key.public_key())
             .serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(hours=1))
             .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14"), inherit_all),
                            critical=True)
             .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
             .sign(user_key, hashes.SHA256()))
    out.write_bytes(proxy.public_bytes(serialization.Encoding.PEM)
                    + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
                    + user.public_bytes(serialization.Encoding.PEM))
    out.chmod(0o600)
    return out


def test_a_proxy_of_a_user_certificate_acts_as_that_user(fts: FtsProcess, tmp_path: Path) -> None:
    proxy = _rfc3820_proxy(Path(fts.tls.certs[OTHER]).read_text(), tmp_path / "x509up")
    who = requests.get(fts.url + "/whoami", cert=str(proxy), verify=fts.tls.ca, timeout=10).json()
    assert who["user_dn"] == FtsTls.dn(OTHER) and who["method"] == "certificate"


def test_only_s3_users_have_the_service_sign_unsigned_s3_urls(fts: FtsProcess,
                                                              s3_servers: tuple[MotoServer, MotoServer]) -> None:
    a, b = s3_servers
    unsigned = [{"sources": [a.url("bucket", "raw")], "destinations": [b.url("bucket", "copy")]}]
    r = fts.request("POST", "/jobs", as_=OTHER, json={"files": unsigned})
    assert r.status_code == 403, r.text
    assert r.json()["message"].startswith("files[0].sources: an unsigned URL of S3 host") and "presigned" in r.json()[
        "message"]
    presigned = a.client().generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": "raw"})
    put_url = b.client().generate_presigned_url("put_object", Params={"Bucket": "bucket", "Key": "copy"})
    r = fts.request("POST", "/jobs", as_=OTHER, json={"files": [{"sources": [presigned], "destinations": [put_url]}]})
    assert r.status_code == 200, r.text
    assert fts.request("POST", "/jobs", json={"files": unsigned}).status_code == 200  # the S3 user (Rucio's role)
