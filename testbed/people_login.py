"""A person's device-flow login at the testbed identity provider, approved the way the person would on the approval
page (username and password), for the demo and the tests; kept, if asked, as the 0600 token file that
`cygno_dm.tokens.TokenFile` and `--storage-token file:PATH` read."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from testbed.private import write_private

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


class LoginError(RuntimeError):
    """The identity provider refused a step of the device flow; the message says which (never a token)."""


def device_flow(idp_url: str, ca: str, auth: tuple[str, str], username: str, password: str,
                scope: str) -> dict[str, Any]:
    """The token response of a device flow of client `auth` that `username` approves with `password`."""
    codes = requests.post(idp_url + "/devicecode", auth=auth, verify=ca, timeout=10, data={"scope": scope})
    if not codes.ok:
        raise LoginError(f"{idp_url}/devicecode: HTTP {codes.status_code}")
    codes = codes.json()
    approved = requests.post(idp_url + "/device", verify=ca, timeout=10, data={
        "user_code": codes["user_code"], "username": username, "password": password})
    if not approved.ok:
        raise LoginError(f"{idp_url}/device: {username} could not approve the code (HTTP {approved.status_code})")
    time.sleep(1.1)  # a device polls at most once a second
    got = requests.post(idp_url + "/token", auth=auth, verify=ca, timeout=10,
                        data={"grant_type": DEVICE, "device_code": codes["device_code"]})
    if got.status_code != 200:
        raise LoginError(f"{idp_url}/token: device code refused (HTTP {got.status_code}: "
                         f"{got.json().get('error', '?')})")
    return got.json()


def token_file(idp_url: str, ca: str, auth: tuple[str, str], username: str, password: str, scope: str,
               path: Path) -> Path:
    """That grant kept as the 0600 token file `--storage-token file:PATH` reads."""
    grant = device_flow(idp_url, ca, auth, username, password, scope)
    return write_private(path, json.dumps({"issuer": idp_url, "client_id": auth[0], "client_secret": auth[1],
                                           "refresh_token": grant["refresh_token"], "ca": ca}))
