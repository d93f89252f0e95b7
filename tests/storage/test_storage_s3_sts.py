"""STS AssumeRoleWithWebIdentity at a real S3 site (gate + moto) with tokens of the real testbed identity provider:
boto3 turns a WLCG token into temporary keys, whose permissions follow the token's storage scopes (bucket = scope
path); bad tokens get no keys; temporary keys expire; the site's own static keys keep working."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from conftest import REPO, Server, free_port, python_module
from joserfc import jwt
from joserfc.jwk import RSAKey

from testbed.private import write_private
from testbed.storage import s3_ready
from testbed.storage.gfal import S3Site
from testbed.storage.tls import ensure_host_cert

HOST, IDP_HOST = "127.0.0.71", "127.0.0.72"
ACCESS, SECRET = "STSSITEKEY0000000001", "sts-site-secret-ssssssssssssssssssssssss"
ROLE = "arn:aws:iam::123456789012:role/cygno-storage"  # boto3 requires one; the site ignores it, as MinIO does
CLIENTS = {  # id: (scopes, audiences, lifetime)
    "reader": (["storage.read:/cygno-data"], [HOST], None),
    "daq": (["storage.read:/cygno-data", "storage.create:/cygno-data"], [HOST], None),
    "rucio": ([f"storage.{op}:/" for op in ("read", "create", "modify")], [HOST], None),
    "short": (["storage.read:/cygno-data"], [HOST], 3),
    "shortdaq": (["storage.read:/cygno-data", "storage.create:/cygno-data"], [HOST], 3),
    "elsewhere": (["storage.read:/cygno-data"], ["127.0.0.99"], None),
    "noscope": (["fts"], [HOST], None),
    "member": (["openid"], [HOST], None),  # no storage scope; wlcg.groups below
    "daqgroup": (["openid"], [HOST], None),
}
# wlcg.groups of those clients; the packaged profile's [[tokens.group_grants]]: /cygno reads every bucket,
# /cygno/daq creates in cygno-data (and, WLCG: a subgroup does not imply its parent, so it reads nothing)
GROUPS = {"member": ["/cygno"], "daqgroup": ["/cygno/daq"], "noscope": ["/elsewhere"]}


class Site(NamedTuple):
    url: str
    ca: str
    idp: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The identity provider and an https S3 site that offers STS for its tokens."""
    base = tmp_path_factory.mktemp("s3sts")
    tls = base / "tls"
    ensure_host_cert(tls, IDP_HOST)
    ca = str(tls / "ca" / "ca.pem")
    config = {"lifetime": 600, "clients": [
        {"client_id": cid, "client_secret": f"{cid}-secret", "scopes": scopes, "audiences": auds,
         "groups": GROUPS.get(cid, []), **({"lifetime": life} if life else {})}
        for cid, (scopes, auds, life) in CLIENTS.items()]}
    write_private(base / "idp.json", json.dumps(config))
    idp_url = f"https://{IDP_HOST}:{free_port(IDP_HOST)}"
    servers = [Server(python_module("testbed.idp", "--host", IDP_HOST, "--port", idp_url.rsplit(":", 1)[1],
                                    "--config", str(base / "idp.json"), "--key", str(base / "keys.json"),
                                    "--tls-dir", str(tls)),
                      base / "idp.log", lambda: _ok(idp_url + "/health", ca))]
    try:
        url = f"https://{HOST}:{free_port(HOST)}"
        secret = write_private(base / "site.key", SECRET)
        profile, os.environ["CYGNO_DM_PROFILE"] = os.environ.get("CYGNO_DM_PROFILE"), "cygno-testbed"  # group grants
        servers.append(Server(python_module(
            "testbed.storage.s3", "--host", HOST, "--port", url.rsplit(":", 1)[1], "--access-key", ACCESS,
            "--secret-key-file", str(secret), "--bucket", "cygno-data", "--bucket", "cygno-sim", "--tls-dir",
            str(tls), "--token-issuer", idp_url, "--token-ca", ca), base / "s3.log", lambda: s3_ready(url)))
        if profile is None:
            del os.environ["CYGNO_DM_PROFILE"]
        else:
            os.environ["CYGNO_DM_PROFILE"] = profile
        yield Site(url, ca, idp_url)
        log = (base / "s3.log").read_text()
        assert SECRET not in log and "-secret" not in log  # neither site secrets nor temporary ones are logged
    finally:
        for server in reversed(servers):
            server.stop()


def _ok(url: str, ca: str) -> bool:
    try:
        return requests.get(url, verify=ca, timeout=2).ok
    except requests.RequestException:
        return False


def token(site: Site, client: str, audience: str = HOST) -> str:
    r = requests.post(site.idp + "/token", data={"grant_type": "client_credentials", "audience": audience},
                      auth=(client, f"{client}-secret"), verify=site.ca, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def sts(site: Site, web_token: str, **kw: Any) -> dict[str, Any]:
    """What a DAQ or a user does: boto3's STS client pointed at the site."""
    client = boto3.client("sts", endpoint_url=site.url, region_name="us-east-1", verify=site.ca,
                          config=Config(signature_version=UNSIGNED))
    return client.assume_role_with_web_identity(RoleArn=ROLE, RoleSessionName="cygno", WebIdentityToken=web_token,
                                                **kw)


def s3(site: Site, creds: dict[str, Any] | None = None, **override: str) -> Any:
    """An S3 client with temporary credentials (or the site's static keys)."""
    keys = ({"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
             "aws_session_token": creds["SessionToken"]} if creds else
            {"aws_access_key_id": ACCESS, "aws_secret_access_key": SECRET})
    keys.update(override)
    return boto3.client("s3", endpoint_url=site.url, region_name="us-east-1", verify=site.ca,
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                       retries={"max_attempts": 1}), **keys)


def refused(call: Any, code: str = "AccessDenied") -> str:
    with pytest.raises(ClientError) as err:
        call()
    assert err.value.response["Error"]["Code"] == code, err.value.response
    return str(err.value.response["Error"].get("Message", ""))


def exists(site: Site, bucket: str, key: str) -> bool:
    try:
        s3(site).head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


def test_sts_answers_credentials_as_minio_does(site: Site) -> None:
    web_token = token(site, "daq")
    answer = sts(site, web_token)
    creds = answer["Credentials"]
    assert creds["AccessKeyId"] != ACCESS and creds["SecretAccessKey"] and creds["SessionToken"]
    assert answer["SubjectFromWebIdentityToken"] == "daq"
    payload = web_token.split(".")[1]
    exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    assert creds["Expiration"].timestamp() <= exp  # never beyond the token: min(DurationSeconds=3600, exp=600)
    again = sts(site, web_token, DurationSeconds=900)["Credentials"]
    assert again["AccessKeyId"] != creds["AccessKeyId"] and again["Expiration"].timestamp() <= time.time() + 901
    form = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15"}  # raw forms: what boto3 would not send
    r = requests.post(site.url + "/", data={**form, "WebIdentityToken": web_token, "DurationSeconds": "60"},
                      verify=site.ca, timeout=10)
    assert r.status_code == 400 and "<Code>InvalidParameterValue</Code>" in r.text and "DurationSeconds" in r.text
    assert "<AccessKeyId>" not in r.text
    r = requests.post(site.url + "/", data={**form, "WebIdentityToken": web_token, "Policy": "{}"}, verify=site.ca,
                      timeout=10)  # a session policy would narrow the keys: refused rather than ignored
    assert r.status_code == 400 and "Policy" in r.text and "<AccessKeyId>" not in r.text
    r = requests.post(site.url + "/", data=form, verify=site.ca, timeout=10)
    assert r.status_code == 400 and "<ErrorResponse" in r.text and "<Code>MissingParameter</Code>" in r.text
    r = requests.post(site.url + "/", params={**form, "Action": "AssumeRole"}, verify=site.ca, timeout=10)
    assert r.status_code == 400 and "<Code>InvalidAction</Code>" in r.text


def test_read_token_reads_its_bucket_only_and_cannot_write(site: Site) -> None:
    s3(site).put_object(Bucket="cygno-data", Key="run1/a.bin", Body=b"data")
    s3(site).put_object(Bucket="cygno-sim", Key="run1/s.bin", Body=b"sim")
    creds = sts(site, token(site, "reader"))["Credentials"]
    client = s3(site, creds)
    assert client.get_object(Bucket="cygno-data", Key="run1/a.bin")["Body"].read() == b"data"
    assert "run1/a.bin" in [o["Key"] for o in client.list_objects_v2(Bucket="cygno-data")["Contents"]]
    url = client.generate_presigned_url("get_object", Params={"Bucket": "cygno-data", "Key": "run1/a.bin"})
    assert "X-Amz-Security-Token" in url and requests.get(url, verify=site.ca, timeout=10).content == b"data"
    assert "storage.read" in refused(lambda: client.get_object(Bucket="cygno-sim", Key="run1/s.bin"))
    refused(lambda: client.list_objects_v2(Bucket="cygno-sim"))
    assert "storage.create" in refused(lambda: client.put_object(Bucket="cygno-data", Key="run1/b.bin", Body=b"x"))
    refused(lambda: client.delete_object(Bucket="cygno-data", Key="run1/a.bin"))
    refused(lambda: client.create_bucket(Bucket="cygno-new"))
    put = client.generate_presigned_url("put_object", Params={"Bucket": "cygno-data", "Key": "run1/c.bin"})
    assert requests.put(put, data=b"x", verify=site.ca, timeout=10).status_code == 403
    assert not exists(site, "cygno-data", "run1/b.bin") and not exists(site, "cygno-data", "run1/c.bin")
    assert exists(site, "cygno-data", "run1/a.bin")


def test_create_token_writes_new_objects_but_cannot_overwrite_or_delete(site: Site) -> None:
    client = s3(site, sts(site, token(site, "daq"))["Credentials"])
    key = f"run2/{uuid.uuid4().hex}.bin"
    client.put_object(Bucket="cygno-data", Key=key, Body=b"fresh")
    assert s3(site).get_object(Bucket="cygno-data", Key=key)["Body"].read() == b"fresh"
    assert "storage.modify" in refused(lambda: client.put_object(Bucket="cygno-data", Key=key, Body=b"over"))
    # a conditional create of an existing key says it exists, as with static keys (a resumed uploader relies on it)
    refused(lambda: client.put_object(Bucket="cygno-data", Key=key, Body=b"over", IfNoneMatch="*"),
            "PreconditionFailed")
    refused(lambda: client.delete_object(Bucket="cygno-data", Key=key))
    refused(lambda: client.delete_objects(Bucket="cygno-data", Delete={"Objects": [{"Key": key}]}))
    assert s3(site).get_object(Bucket="cygno-data", Key=key)["Body"].read() == b"fresh"
    refused(lambda: client.put_object(Bucket="cygno-sim", Key="run2/x.bin", Body=b"x"))
    assert not exists(site, "cygno-sim", "run2/x.bin")
    big = f"run2/{uuid.uuid4().hex}-multi.bin"  # multipart upload of a new object
    upload = client.create_multipart_upload(Bucket="cygno-data", Key=big)["UploadId"]
    part = client.upload_part(Bucket="cygno-data", Key=big, UploadId=upload, PartNumber=1, Body=b"m" * 1000)
    client.complete_multipart_upload(Bucket="cygno-data", Key=big, UploadId=upload,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3(site).get_object(Bucket="cygno-data", Key=big)["Body"].read() == b"m" * 1000
    again = client.create_multipart_upload(Bucket="cygno-data", Key=big)["UploadId"]  # over an existing object
    part = client.upload_part(Bucket="cygno-data", Key=big, UploadId=again, PartNumber=1, Body=b"o" * 10)
    refused(lambda: client.complete_multipart_upload(
        Bucket="cygno-data", Key=big, UploadId=again,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}))
    client.abort_multipart_upload(Bucket="cygno-data", Key=big, UploadId=again)
    assert s3(site).get_object(Bucket="cygno-data", Key=big)["Body"].read() == b"m" * 1000
    fresh = f"run2/{uuid.uuid4().hex}-presigned.bin"
    put = client.generate_presigned_url("put_object", Params={"Bucket": "cygno-data", "Key": fresh})
    done = requests.put(put, data=b"signed", verify=site.ca, timeout=10)
    assert done.status_code == 200, done.text
    assert requests.put(put, data=b"twice", verify=site.ca, timeout=10).status_code == 403
    assert s3(site).get_object(Bucket="cygno-data", Key=fresh)["Body"].read() == b"signed"


def test_modify_token_overwrites_and_deletes(site: Site) -> None:
    s3(site).put_object(Bucket="cygno-sim", Key="run3/old.bin", Body=b"old")
    client = s3(site, sts(site, token(site, "rucio"))["Credentials"])
    client.put_object(Bucket="cygno-sim", Key="run3/old.bin", Body=b"new")
    assert s3(site).get_object(Bucket="cygno-sim", Key="run3/old.bin")["Body"].read() == b"new"
    client.delete_object(Bucket="cygno-sim", Key="run3/old.bin")
    assert not exists(site, "cygno-sim", "run3/old.bin")
    refused(lambda: client.delete_bucket(Bucket="cygno-sim"))  # bucket administration: never by token


def _forged(site: Site) -> str:
    """The claims of a real token signed by another key under the issuer's key id."""
    header, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in token(site, "daq").split(".")[:2])
    return jwt.encode(header, claims, RSAKey.generate_key(2048))


@pytest.mark.parametrize("case", ["wrong audience", "forged", "no storage scope", "garbage"])
def test_bad_tokens_get_no_credentials(site: Site, case: str) -> None:
    web_token = {"wrong audience": lambda: token(site, "elsewhere", "127.0.0.99"), "forged": lambda: _forged(site),
                 "no storage scope": lambda: token(site, "noscope"), "garbage": lambda: "not.a.token"}[case]()
    code = "AccessDenied" if case == "no storage scope" else "InvalidIdentityToken"
    message = refused(lambda: sts(site, web_token), code)
    assert "\n" not in message and web_token not in message
    assert {"wrong audience": "aud", "forged": "signature", "no storage scope": "no group with a grant",
            "garbage": "malformed"}[case] in message


def test_groups_grant_what_the_profile_says_to_tokens_without_storage_scopes(site: Site) -> None:
    """MinIO's claim-based policy on wlcg.groups: /cygno may read but not write; /cygno/daq may create in
    cygno-data but not read (only the groups the token lists count)."""
    s3(site).put_object(Bucket="cygno-data", Key="groups/a.bin", Body=b"group")
    member = s3(site, sts(site, token(site, "member"))["Credentials"])
    assert member.get_object(Bucket="cygno-data", Key="groups/a.bin")["Body"].read() == b"group"
    with pytest.raises(ClientError) as err:
        member.put_object(Bucket="cygno-data", Key="groups/b.bin", Body=b"x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert "storage.create" in err.value.response["Error"]["Message"] and not exists(site, "cygno-data", "groups/b.bin")
    daq = s3(site, sts(site, token(site, "daqgroup"))["Credentials"])
    daq.put_object(Bucket="cygno-data", Key="groups/c.bin", Body=b"daq")
    assert "storage.read" in refused(lambda: daq.get_object(Bucket="cygno-data", Key="groups/a.bin"))
    assert "storage.create" in refused(lambda: daq.put_object(Bucket="cygno-sim", Key="groups/c.bin", Body=b"x"))


def test_temporary_credentials_expire_with_the_token(site: Site) -> None:
    web_token = token(site, "short")  # lives 3 s
    client = s3(site, sts(site, web_token)["Credentials"])
    s3(site).put_object(Bucket="cygno-data", Key="run4/e.bin", Body=b"e")
    assert client.get_object(Bucket="cygno-data", Key="run4/e.bin")["Body"].read() == b"e"
    time.sleep(3.5)
    refused(lambda: client.get_object(Bucket="cygno-data", Key="run4/e.bin"), "ExpiredToken")
    assert "expired" in refused(lambda: sts(site, web_token), "InvalidIdentityToken")


def test_tampered_session_token_or_secret_is_refused(site: Site) -> None:
    creds = sts(site, token(site, "rucio"))["Credentials"]
    s3(site).put_object(Bucket="cygno-data", Key="run5/t.bin", Body=b"t")
    session = creds["SessionToken"]
    tampered = session[:-1] + ("A" if session[-1] != "A" else "B")
    refused(lambda: s3(site, creds, aws_session_token=tampered).get_object(Bucket="cygno-data", Key="run5/t.bin"),
            "InvalidToken")
    refused(lambda: s3(site, creds, aws_secret_access_key="x" * 40).delete_object(Bucket="cygno-data",
                                                                                    Key="run5/t.bin"),
            "SignatureDoesNotMatch")
    no_token = s3(site, {**creds, "SessionToken": None})  # the temporary key without its session token
    refused(lambda: no_token.delete_object(Bucket="cygno-data", Key="run5/t.bin"), "InvalidToken")
    assert exists(site, "cygno-data", "run5/t.bin")


def test_a_signed_request_replayed_with_another_body_is_refused(site: Site) -> None:
    """The body hash is part of the signature (x-amz-content-sha256); the gate checks it, as S3 does."""
    creds = sts(site, token(site, "rucio"))["Credentials"]
    key = f"run7/{uuid.uuid4().hex}.bin"
    url = f"{site.url}/cygno-data/{key}"
    request = AWSRequest(method="PUT", url=url, data=b"signed body")
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"signed body").hexdigest()
    S3SigV4Auth(Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]), "s3",
                "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    other = requests.put(url, data=b"other body!", headers=headers, verify=site.ca, timeout=10)
    assert other.status_code == 403 and "XAmzContentSHA256Mismatch" in other.text
    assert not exists(site, "cygno-data", key)
    assert requests.put(url, data=b"signed body", headers=headers, verify=site.ca, timeout=10).status_code == 200


def test_static_keys_still_work_and_anonymous_is_refused(site: Site) -> None:
    static = s3(site)
    static.put_object(Bucket="cygno-sim", Key="run6/s.bin", Body=b"s")
    static.put_object(Bucket="cygno-sim", Key="run6/s.bin", Body=b"s2")
    assert static.get_object(Bucket="cygno-sim", Key="run6/s.bin")["Body"].read() == b"s2"
    static.delete_object(Bucket="cygno-sim", Key="run6/s.bin")
    refused(lambda: s3(site, aws_secret_access_key="y" * 40).put_object(Bucket="cygno-sim", Key="run6/x", Body=b""),
            "SignatureDoesNotMatch")
    assert requests.get(site.url + "/cygno-sim", verify=site.ca, timeout=10).status_code == 403


def test_token_issuer_needs_https_and_tls(tmp_path: Path) -> None:
    secret = write_private(tmp_path / "k", SECRET)
    base = ["--host", HOST, "--port", "1", "--access-key", ACCESS, "--secret-key-file", str(secret), "--bucket", "b"]
    for extra, message in ((["--token-issuer", "https://127.0.0.72:1"], "bearer tokens need TLS"),
                           (["--token-issuer", "http://127.0.0.72:1", "--tls-dir", str(tmp_path)],
                            "must be an https URL")):
        done = subprocess.run([sys.executable, "-m", "testbed.storage.s3", *base, *extra], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and f"--token-issuer: {message}" in done.stderr


def test_a_site_without_token_issuer_offers_no_sts(launch_s3: Any, port_on: Any, site: Site) -> None:
    plain = S3Site("127.0.0.73", port_on("127.0.0.73"), ACCESS, SECRET)
    launch_s3(plain, None)
    answer = requests.post(f"http://{plain.host}:{plain.port}/", timeout=10, data={
        "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "WebIdentityToken": token(site, "daq")})
    assert answer.status_code == 400 and "<Code>InvalidAction</Code>" in answer.text
    assert "no --token-issuer" in answer.text and "<AccessKeyId>" not in answer.text
