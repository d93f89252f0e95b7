"""A person's device-flow grant at a real testbed identity provider, as the tests of its users need it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from testbed.private import write_private

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def device_flow(idp_url: str, ca: str, auth: tuple[str, str], username: str, password: str,
                scope: str) -> dict[str, Any]:
    """The token response of a device flow of client `auth` that `username` approves with `password`."""
    codes = requests.post(idp_url + "/devicecode", auth=auth, verify=ca, timeout=10, data={"scope": scope}).json()
    approved = requests.post(idp_url + "/device", verify=ca, timeout=10, data={
        "user_code": codes["user_code"], "username": username, "password": password})
    assert approved.ok, approved.text
    time.sleep(1.1)  # a device polls at most once a second
    got = requests.post(idp_url + "/token", auth=auth, verify=ca, timeout=10,
                        data={"grant_type": DEVICE, "device_code": codes["device_code"]})
    assert got.status_code == 200, got.text
    return got.json()


def token_file(idp_url: str, ca: str, auth: tuple[str, str], username: str, password: str, scope: str,
               path: Path) -> Path:
    """That grant kept as the 0600 token file `--storage-token file:PATH` reads."""
    grant = device_flow(idp_url, ca, auth, username, password, scope)
    return write_private(path, json.dumps({"issuer": idp_url, "client_id": auth[0], "client_secret": auth[1],
                                           "refresh_token": grant["refresh_token"], "ca": ca}))
