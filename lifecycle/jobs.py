"""One lifecycle job: reconstruct a raw run DID (or make the pedestal map of a pedestal run) and register its output.

A job is a plain JSON-able spec, so any executor can carry it: a process pool, a Dask worker, an HTCondor job
(`python -m lifecycle.jobs SPEC.json RESULT.json`). It gets one credential: the path of a Rucio client
configuration for the production account (`rucio_config`), and nothing else of the daemon's.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RECO, PEDESTAL = "reco", "pedestal"


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to process one run."""

    did: str
    kind: str  # RECO or PEDESTAL
    campaign: str
    profile: str  # profile file or packaged name
    rucio_config: str  # a client rucio.cfg of the production account
    cache: str
    output_dir: str
    config: str = "{}"  # reconstruction parameters, RecoConfig.to_json()
    reco_path: str | None = None  # a campaign's outputs: RECO/<campaign>/... (default RECO/<version>/...)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-able dict."""
        return asdict(self)


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Process one run; {"did", "output_did", "registered"}. ProcessingError (Unavailable for outages) on failure."""
    job = JobSpec(**spec)
    os.environ["RUCIO_CONFIG"] = job.rucio_config  # rucio reads its configuration once per process, from here
    from rucio.client import Client

    from cygno_dm.processing.errors import ProcessingError, Unavailable
    from cygno_dm.processing.pipeline import Processor, Settings
    from cygno_dm.profile import load_profile
    from reco.config import config_from_mapping

    profile = load_profile(job.profile)
    try:
        client = Client()
    except Exception as err:
        raise Unavailable(f"{job.did}: cannot create a Rucio client: {type(err).__name__}: {err}") from None
    settings = Settings(cache=Path(job.cache), output_dir=Path(job.output_dir),
                        cfg=config_from_mapping(json.loads(job.config), "job config"), register=True,
                        campaign=job.campaign, reco_path=job.reco_path, poll=2.0)
    proc = Processor(profile, client, settings)
    scope, name = job.did.split(":", 1)
    if job.kind == PEDESTAL:
        return {"did": job.did, "output_did": proc.pedestal_map(scope, name), "registered": True}
    if job.kind != RECO:
        raise ProcessingError(f"{job.did}: unknown job kind {job.kind!r}")
    res = proc.process(scope, name)
    res.output.unlink(missing_ok=True)  # registered in Rucio: the local copy is not kept
    return {"did": job.did, "output_did": res.output_did, "registered": res.registered}


def main(argv: list[str] | None = None) -> int:
    """`python -m lifecycle.jobs SPEC.json RESULT.json`: run a job, write {"ok": ..., ...} to RESULT.json."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m lifecycle.jobs SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec, result = Path(args[0]), Path(args[1])
    try:
        out = {"ok": True, **run_job(json.loads(spec.read_text()))}
    except Exception as err:  # the result file carries the failure to the daemon
        from cygno_dm.processing.errors import Unavailable

        out = {"ok": False, "error": str(err), "unavailable": isinstance(err, Unavailable)}
    tmp = result.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(result)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
