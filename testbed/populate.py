"""Create the profile's accounts, identities, scopes, RSEs, distances and quotas through the Rucio REST API.

Run as `python -m testbed.populate PROFILE` with RUCIO_CONFIG pointing at the testbed's rucio.cfg (root's
client credentials). It applies `cygno_dm.onboard`'s plan, so re-running it is harmless.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rucio.client import Client

from cygno_dm import onboard
from cygno_dm.profile import Profile, load_profile
from testbed.private import write_private
from testbed.rses import rse_accounts

log = logging.getLogger(__name__)


def populate(client: Client, profile: Profile, endpoints: dict[str, dict[str, Any]], issuer: str | None = None) -> None:
    """Make the catalogue match the profile (cygno_dm.onboard, creating the RSEs with the testbed's protocols),
    give the accounts the OIDC identities of the testbed identity provider, then give the server the S3 keys it
    signs URLs with."""
    onboard.apply(onboard.plan(client, profile, rse_settings=endpoints, buckets=False).changes)
    if issuer:
        add_token_identities(client, profile, issuer)
    if any(rse.kind == "s3" for rse in profile.rses.values()):
        ids = {name: client.get_rse(name)["id"] for name in profile.rses}
        path = Path(os.environ["RUCIO_HOME"]) / "etc" / "rse-accounts.cfg"
        write_private(path, json.dumps(rse_accounts(profile, ids), indent=1))


def add_token_identities(client: Client, profile: Profile, issuer: str) -> None:
    """`SUB=<subject>, ISS=<issuer>` (OIDC) for every account the identity provider knows: people by their account
    name, DAQ accounts by their robot client ([tokens.clients] daq), so their tokens log in to Rucio."""
    for acc in profile.accounts:
        if acc.name == "root" or not acc.password:
            continue
        subject = profile.token_client(acc.name) if acc.role == "daq" and profile.tokens else acc.name
        identity = f"SUB={subject}, ISS={issuer}"
        if not any(i["type"] == "OIDC" and i["identity"] == identity for i in client.list_identities(acc.name)):
            client.add_identity(account=acc.name, identity=identity, authtype="OIDC", email=acc.email or "")
            log.info("%s: OIDC identity %s", acc.name, identity)


def main() -> int:
    """Entry point: `python -m testbed.populate PROFILE ENDPOINTS_JSON [ISSUER]`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    profile = load_profile(sys.argv[1])
    endpoints = json.loads(open(sys.argv[2]).read())
    populate(Client(), profile, endpoints, sys.argv[3] if len(sys.argv) > 3 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
