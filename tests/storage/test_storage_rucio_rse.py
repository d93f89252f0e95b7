"""The recommended Rucio RSE settings for the storage endpoints (pure data)."""

from __future__ import annotations

from testbed.storage.rucio_rse import (
    S3_RSE_ATTRIBUTES,
    rse_accounts_entry,
    s3_protocol,
    webdav_protocol,
)


def test_s3_protocol_is_signed_https_without_renaming() -> None:
    proto = s3_protocol("127.0.0.11", 9443)
    assert proto["scheme"] == "https" and proto["prefix"] == "/"
    assert proto["impl"] == "rucio_policies.protocols.S3"
    assert proto["domains"]["wan"]["third_party_copy_write"] == 1
    assert S3_RSE_ATTRIBUTES["sign_url"] == "s3" and S3_RSE_ATTRIBUTES["s3_url_style"] == "path"
    assert S3_RSE_ATTRIBUTES["skip_upload_stat"] is True and S3_RSE_ATTRIBUTES["verify_checksum"] is False


def test_webdav_protocol_and_accounts_entry() -> None:
    proto = webdav_protocol("127.0.0.13", 9444)
    assert (proto["scheme"], proto["prefix"], proto["impl"]) == ("davs", "/cygno", "rucio.rse.protocols.gfal.Default")
    assert rse_accounts_entry("AK", "SK") == {
        "access_key": "AK", "secret_key": "SK", "signature_version": "s3v4", "region": "us-east-1"}
