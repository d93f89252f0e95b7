"""Unit tests of the SigV4 query verification and of the listing re-ordering (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from testbed.storage import sigv4
from testbed.storage.s3_listing import list_objects
from testbed.storage.s3_state import Obj

AK, SK = "AKTEST", "secret-test"


def _split(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, parts.query, {"host": parts.netloc}


def test_boto3_presigned_url_verifies() -> None:
    client = boto3.client("s3", endpoint_url="http://127.0.0.51:9000", aws_access_key_id=AK,
                          aws_secret_access_key=SK, region_name="us-east-1",
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    url = client.generate_presigned_url("get_object", Params={"Bucket": "cygno-data", "Key": "LNGS/run 01.mid.gz"})
    path, query, headers = _split(url)
    auth = sigv4.verify_query_signature(AK, SK, "GET", path, query, headers)
    assert auth.region == "us-east-1"
    with pytest.raises(sigv4.SignatureError) as err:
        sigv4.verify_query_signature(AK, SK, "PUT", path, query, headers)
    assert err.value.code == "SignatureDoesNotMatch"


def test_presign_roundtrip_and_expiry() -> None:
    signed_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    url = sigv4.presign("PUT", "http://127.0.0.51:9000/cygno-data/LNGS/run00001.mid.gz", AK, SK,
                        expires=60, now=signed_at)
    path, query, headers = _split(url)
    sigv4.verify_query_signature(AK, SK, "PUT", path, query, headers, now=signed_at + timedelta(seconds=59))
    with pytest.raises(sigv4.SignatureError, match="expired"):
        sigv4.verify_query_signature(AK, SK, "PUT", path, query, headers, now=signed_at + timedelta(seconds=61))
    with pytest.raises(sigv4.SignatureError) as err:
        sigv4.verify_query_signature(AK, "other-secret", "PUT", path, query, headers, now=signed_at)
    assert err.value.code == "SignatureDoesNotMatch"
    with pytest.raises(sigv4.SignatureError) as err:
        sigv4.verify_query_signature("OTHERKEY", SK, "PUT", path, query, headers, now=signed_at)
    assert err.value.code == "InvalidAccessKeyId"


@pytest.mark.parametrize("query, code", [
    ("AWSAccessKeyId=A&Signature=x&Expires=1", "AccessDenied"),
    ("X-Amz-Algorithm=AWS4-HMAC-SHA1&X-Amz-Signature=x", "AuthorizationQueryParametersError"),
    ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=x", "AuthorizationQueryParametersError"),
])
def test_malformed_query_signatures_refused(query: str, code: str) -> None:
    with pytest.raises(sigv4.SignatureError) as err:
        sigv4.parse_query_auth(query)
    assert err.value.code == code


def test_listing_in_aws_order_for_davix() -> None:
    objects = {k: Obj(k, 1, "e", 0.0, [["d", 1]]) for k in ("LNGS/b", "LNGS/a", "LNGS/sub/c", "other")}
    out = list_objects("cygno-data", objects, {"prefix": "LNGS/", "delimiter": "/"}).decode()
    assert out.index("<Name>") < out.index("<Prefix>") < out.index("<IsTruncated>") < out.index("<Contents>")
    assert out.index("LNGS/a") < out.index("LNGS/b") and "<Prefix>LNGS/sub/</Prefix>" in out and "other" not in out
    page = list_objects("cygno-data", objects, {"list-type": "2", "max-keys": "2"}).decode()
    assert "<IsTruncated>true</IsTruncated>" in page and "<NextContinuationToken>LNGS/b<" in page
    rest = list_objects("cygno-data", objects, {"list-type": "2", "continuation-token": "LNGS/b"}).decode()
    assert "LNGS/a" not in rest and "LNGS/sub/c" in rest and "other" in rest
