"""Create the profile's accounts, identities, scopes, RSEs, distances and quotas through the Rucio REST API.

Run as `python -m testbed.populate PROFILE` with RUCIO_CONFIG pointing at the testbed's rucio.cfg (root's
client credentials). Every step tolerates "already exists", so re-running it is harmless.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rucio.client import Client
from rucio.common.exception import Duplicate, RSEProtocolPriorityError

from cygno_dm.profile import Profile, load_profile
from testbed.private import write_private
from testbed.rses import rse_accounts

log = logging.getLogger(__name__)

QUOTA_BYTES = 10**15  # 1 PB per account and RSE: the testbed does not exercise quotas
ACCOUNT_TYPE = {"root": "SERVICE", "admin": "SERVICE", "daq": "SERVICE", "data-manager": "USER", "production": "SERVICE",
                "user": "USER"}


def _once(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
        log.info("created %s", what)
    except (Duplicate, RSEProtocolPriorityError):
        pass


def populate(client: Client, profile: Profile, endpoints: dict[str, dict[str, Any]]) -> None:
    """Make the catalogue match the profile: accounts, scopes, RSEs with protocols/attributes, distances, quotas."""
    for acc in profile.accounts:
        if acc.name != "root":
            _once(f"account {acc.name}", client.add_account, acc.name, ACCOUNT_TYPE[acc.role], acc.email)
        if acc.password and acc.name != "root":
            _once(f"identity {acc.name}", client.add_identity, account=acc.name, identity=acc.name,
                  authtype="USERPASS", email=acc.email, default=True, password=acc.password)
        if acc.role == "admin":
            _once(f"admin attribute of {acc.name}", client.add_account_attribute, acc.name, "admin", "True")
        if acc.role == "user":
            _once(f"scope {profile.scopes.user_prefix}{acc.name}", client.add_scope, acc.name,
                  f"{profile.scopes.user_prefix}{acc.name}")
    # Raw data scopes belong to the DAQ account that writes them; the others to root.
    daq = next((a.name for a in profile.accounts_with("daq")), "root")
    for scope in profile.scopes.all:
        _once(f"scope {scope}", client.add_scope, daq if scope in profile.scopes.raw else "root", scope)

    for name, rse in profile.rses.items():
        settings = endpoints[name]
        _once(f"RSE {name}", client.add_rse, name, deterministic=True, rse_type=settings["rse_type"])
        for proto in settings["protocols"]:
            _once(f"protocol {proto['scheme']} on {name}", client.add_protocol, name, proto)
        for key, value in {**settings["attributes"], **rse.attributes}.items():
            client.add_rse_attribute(name, key, value)
        for acc in profile.accounts:
            client.set_local_account_limit(acc.name, name, QUOTA_BYTES)
    if any(rse.kind == "s3" for rse in profile.rses.values()):
        # Accounts need `sign-url` to get signed S3 URLs from the server; the server signs with these keys.
        for acc in profile.accounts:
            if acc.name != "root":
                _once(f"sign-url attribute of {acc.name}", client.add_account_attribute, acc.name, "sign-url", "True")
        ids = {name: client.get_rse(name)["id"] for name in profile.rses}
        path = Path(os.environ["RUCIO_HOME"]) / "etc" / "rse-accounts.cfg"
        write_private(path, json.dumps(rse_accounts(profile, ids), indent=1))
    for src, dsts in profile.distances.items():
        for dst, distance in dsts.items():
            try:
                client.add_distance(src, dst, {"distance": distance})
            except Duplicate:
                client.update_distance(src, dst, {"distance": distance})


def main() -> int:
    """Entry point: `python -m testbed.populate PROFILE ENDPOINTS_JSON`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    profile = load_profile(sys.argv[1])
    endpoints = json.loads(open(sys.argv[2]).read())
    populate(Client(), profile, endpoints)
    return 0


if __name__ == "__main__":
    sys.exit(main())
