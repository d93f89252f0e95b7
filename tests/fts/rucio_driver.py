"""Drive the service with Rucio 41's own FTS3Transfertool (run as a subprocess with its own RUCIO_CONFIG).

Usage: python rucio_driver.py SPEC.json  → prints a JSON report of what Rucio saw.
The transfers are built from real Rucio classes (RseData, RequestWithSources, DirectTransferImplementation) with
the RSE settings the testbed uses for S3 (gfal NoRename protocol, sign_url=s3) so that Rucio computes the URLs.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import rucio.rse.rsemanager as rsemanager
from rucio.common.exception import DuplicateFileTransferSubmission
from rucio.common.types import InternalAccount, InternalScope
from rucio.core.request import RequestSource, RequestWithSources, TransferDestination
from rucio.core.rse import RseData
from rucio.core.transfer import DirectTransferImplementation, ProtocolFactory
from rucio.db.sqla.constants import RequestType
from rucio.transfertool.fts3 import FTS3Transfertool

# PFNs are computed as a client does (identity lfn2pfn), so no Rucio database is needed for the RSE's VO.
rsemanager.SERVER_MODE = False
rsemanager.CLIENT_MODE = True

DOMAINS = {"lan": {"read": 1, "write": 1, "delete": 1},
           "wan": {"read": 1, "write": 1, "delete": 1, "third_party_copy_read": 1, "third_party_copy_write": 1}}


def rse(name: str, scheme: str, host: str, port: int, prefix: str, attributes: dict[str, Any],
        rse_type: str = "DISK", impl: str = "rucio.rse.protocols.gfal.NoRename") -> RseData:
    """An RseData with its settings (what Rucio would load from its database)."""
    rse_id = uuid.uuid5(uuid.NAMESPACE_DNS, name).hex
    info = {"id": rse_id, "rse": name, "rse_type": rse_type, "deterministic": True, "volatile": False,
            "staging_area": False, "domain": ["lan", "wan"], "lfn2pfn_algorithm": "identity",
            "verify_checksum": attributes.get("verify_checksum", True), "sign_url": attributes.get("sign_url"),
            "credentials": None, "qos_class": None, "availability_read": True, "availability_write": True,
            "availability_delete": True,
            "protocols": [{"scheme": scheme, "hostname": host, "port": port, "prefix": prefix, "impl": impl,
                           "domains": DOMAINS, "extended_attributes": None}]}
    return RseData(rse_id, name=name, attributes=attributes, info=info)


def transfer(src_rses: list[RseData], dst: RseData, name: str, size: int, adler32: str | None,
             scheme: str) -> DirectTransferImplementation:
    """A DirectTransfer of cygno-data:<name> from the given sources to dst."""
    rws = RequestWithSources(id_=uuid.uuid4().hex, request_type=RequestType.TRANSFER, rule_id=uuid.uuid4().hex,
                             scope=InternalScope("cygno-data"), name=name, md5=None, adler32=adler32,
                             byte_count=size, activity="User Subscriptions", attributes={},
                             previous_attempt_id=None, dest_rse=dst, account=InternalAccount("root"),
                             retry_count=0, priority=3, transfertool="fts3")
    sources = [RequestSource(rse=s, scheme=scheme, ranking=0, distance=1) for s in src_rses]
    rws.sources = sources
    t = DirectTransferImplementation(source=sources[0], destination=TransferDestination(dst, scheme), rws=rws,
                                     protocol_factory=ProtocolFactory(), operation_src="third_party_copy_read",
                                     operation_dest="third_party_copy_write")
    t.sources = sources
    return t


def submit(tt: FTS3Transfertool, t: DirectTransferImplementation) -> str:
    """Group and submit one transfer path as the conveyor-submitter does."""
    (job,) = tt.group_into_submit_jobs([[t]])
    return tt.submit(job["transfers"], job["job_params"])


def poll(tt: FTS3Transfertool, eid: str, t: DirectTransferImplementation, timeout: float = 90) -> dict[str, Any]:
    """bulk_query until Rucio derives a new request state; returns what the report says."""
    request = {"id": t.rws.request_id, "external_id": eid, "state": "SUBMITTED", "bytes": t.rws.byte_count,
               "adler32": t.rws.adler32, "md5": None, "attributes": {}, "external_host": tt.external_host}
    deadline = time.monotonic() + timeout
    while True:
        resp = tt.bulk_query({eid: {t.rws.request_id: request}})[eid]
        if isinstance(resp, Exception):
            raise resp
        report = (resp or {}).get(t.rws.request_id)
        if report is not None:
            report.initialize(session=None)
            if report.state is not None:
                return {"state": str(report.state.name), "err_msg": report.err_msg,
                        "started_at": str(report.started_at), "transferred_at": str(report.transferred_at),
                        "file_state": report.file_response["file_state"],
                        "job_state": report.job_response["job_state"], "dst_url": report._dst_url,
                        "src_url": report._src_url, "file_metadata": report.file_response["file_metadata"]}
        if time.monotonic() > deadline:
            raise TimeoutError(f"no final state for {eid}")
        time.sleep(0.2)


def main(spec_path: str) -> None:
    """Run the scenarios of SPEC and print the report."""
    spec = json.loads(Path(spec_path).read_text())
    out: dict[str, Any] = {}
    tt = FTS3Transfertool(spec["fts"], group_bulk=200)
    out["version"] = tt.version()
    out["whoami"] = tt.whoami()
    s3 = {"sign_url": "s3", "skip_upload_stat": True, "verify_checksum": False, "strict_copy": True,
          "s3_url_style": "path", "fts": spec["fts"]}
    a = rse("S3_A", "http", spec["a"]["host"], spec["a"]["port"], f"/{spec['a']['bucket']}/", s3)
    b = rse("S3_B", "http", spec["b"]["host"], spec["b"]["port"], f"/{spec['b']['bucket']}/", s3)
    b_checked = rse("S3_B_CHECKED", "http", spec["b"]["host"], spec["b"]["port"], f"/{spec['b']['bucket']}/",
                    {**s3, "verify_checksum": True})

    t1 = transfer([a], b, spec["name"], spec["size"], spec["adler32"], "http")
    eid = submit(tt, t1)
    out["deterministic_expected"] = tt._FTS3Transfertool__get_deterministic_id(t1.rws.request_id)
    out["eid"] = eid
    out["s3_to_s3"] = poll(tt, eid, t1)
    out["query"] = tt.query([eid])[0]["job_state"]
    out["query_details"] = [f["file_state"] for f in tt.query([eid], details=True)]
    try:  # same request again: the service answers 409; Rucio falls back to the expected deterministic id
        out["duplicate"] = submit(tt, t1)
    except DuplicateFileTransferSubmission:
        out["duplicate"] = "DuplicateFileTransferSubmission"

    t2 = transfer([a], b_checked, spec["name"], spec["size"], spec["adler32"], "http")
    t2.rws.name = spec["name"]
    eid2 = submit(tt, t2)
    out["checked_params"] = tt.query([eid2])[0]["verify_checksum"]
    out["checked"] = poll(tt, eid2, t2)

    bad = transfer([a], rse("S3_B_BAD", "http", spec["b"]["host"], spec["b"]["port"],
                            f"/{spec['b']['bucket']}/bad/", {**s3, "verify_checksum": True}),
                   spec["name"], spec["size"], "0badbad0", "http")
    out["bad_checksum"] = poll(tt, submit(tt, bad), bad)

    missing_a = rse("S3_A_EMPTY", "http", spec["a"]["host"], spec["a"]["port"], f"/{spec['a']['bucket']}/nothing/", s3)
    multi = transfer([missing_a, a], rse("S3_B_MULTI", "http", spec["b"]["host"], spec["b"]["port"],
                                         f"/{spec['b']['bucket']}/multi/", s3),
                     spec["name"], spec["size"], spec["adler32"], "http")
    eid3 = submit(tt, multi)
    out["multi_params"] = tt.query([eid3])[0]["job_metadata"]
    out["multi"] = poll(tt, eid3, multi)
    out["multi_files"] = [f["file_state"] for f in tt.query([eid3], details=True)]

    tape = rse("TAPE", "http", spec["tape"]["host"], spec["tape"]["port"], "/tape/",
               {"fts": spec["fts"]}, rse_type="TAPE")
    staged = transfer([tape], b, spec["name"], spec["size"], spec["adler32"], "http")
    eid4 = submit(tt, staged)
    job4 = tt.query([eid4])[0]
    out["staging"] = {"job_state": job4["job_state"], "bring_online": job4["bring_online"]}
    out["priority"] = tt.update_priority(eid4, 5)["priority"]
    out["cancel"] = tt.cancel([eid4])["job_state"]
    out["canceled"] = poll(tt, eid4, staged)
    lost_id = str(uuid.uuid4())
    resp = tt.bulk_query({lost_id: {}, eid: {}})  # 207: one lost job (None for Rucio), one found
    out["lost"] = {"lost_is_none": resp[lost_id] is None, "found": type(resp[eid]).__name__}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
