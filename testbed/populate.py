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


def populate(client: Client, profile: Profile, endpoints: dict[str, dict[str, Any]]) -> None:
    """Make the catalogue match the profile (cygno_dm.onboard, creating the RSEs with the testbed's protocols),
    then give the server the S3 keys it signs URLs with."""
    onboard.apply(onboard.plan(client, profile, rse_settings=endpoints, buckets=False).changes)
    if any(rse.kind == "s3" for rse in profile.rses.values()):
        ids = {name: client.get_rse(name)["id"] for name in profile.rses}
        path = Path(os.environ["RUCIO_HOME"]) / "etc" / "rse-accounts.cfg"
        write_private(path, json.dumps(rse_accounts(profile, ids), indent=1))


def main() -> int:
    """Entry point: `python -m testbed.populate PROFILE ENDPOINTS_JSON`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    profile = load_profile(sys.argv[1])
    endpoints = json.loads(open(sys.argv[2]).read())
    populate(Client(), profile, endpoints)
    return 0


if __name__ == "__main__":
    sys.exit(main())
