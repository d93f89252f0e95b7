"""The `rucio-uploader` compatible entry point: same flags, same exit codes, for the DAQ scripts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

from rucio.common.exception import DuplicateRule, RucioException

from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.config import IngestConfig
from cygno_dm.ingest.discovery import WatchDir
from cygno_dm.ingest.journal import Entry, Journal, JournalError
from cygno_dm.ingest.naming import RunNameError, dataset_name, parse_did_name
from cygno_dm.ingest.pipeline import Pipeline
from cygno_dm.ingest.states import State, index
from cygno_dm.profile import Profile

log = logging.getLogger(__name__)


class Exit(IntEnum):
    """Exit codes of rucio-uploader (DESIGN.md section 2)."""

    UPLOADED = 0  # uploaded and rule created
    ALREADY = 1  # already uploaded, rule created now
    UPLOAD_FAILED = 2
    RULE_FAILED = 3
    CLIENT_FAILED = 4


def upload(profile: Profile, file: Path, bucket: str, did_name: str, upload_rse: str, transfer_rse: str | None,
           account: str, client_factory: Callable[[], Any], journal_path: Path) -> tuple[Exit, str]:
    """Upload one file as bucket:did_name to upload_rse, register it, and put a rule on transfer_rse."""
    try:
        run = parse_did_name(profile, did_name)
    except RunNameError as err:
        return Exit.UPLOAD_FAILED, str(err)
    if bucket not in profile.scopes.all:
        return Exit.UPLOAD_FAILED, f"--bucket {bucket!r} is not a scope of {profile.experiment.name}"
    if not file.is_file():
        return Exit.UPLOAD_FAILED, f"{file}: no such file"
    try:
        client = client_factory()
        client.whoami()  # a cached token makes construction succeed offline: prove the server answers
    except Exception as err:
        return Exit.CLIENT_FAILED, f"cannot create the Rucio client: {type(err).__name__}: {err}"
    catalog = Catalog(lambda: client, account)
    cfg = IngestConfig(watch=[WatchDir(file.parent, run.tag)], rse=upload_rse, scope=bucket, account=account,
                       journal=journal_path, settle=0, retry_max=0, delete_local=False)
    journal = Journal(journal_path)
    pipeline = Pipeline(profile, cfg, journal, catalog)
    path = str(file.resolve())
    entry = journal.get(path)
    if entry is None or entry.state == State.QUARANTINED:
        fresh = Entry(path=path, scope=bucket, name=did_name, dataset=dataset_name(profile, run), run=run.run,
                      state=State.SEEN, meta={})
        if entry is not None:
            return Exit.UPLOAD_FAILED, f"{did_name}: quarantined earlier: {entry.reason}"
        try:
            entry = journal.add(fresh)
        except JournalError as err:
            return Exit.UPLOAD_FAILED, str(err)
    already = False
    if entry.state == State.SEEN:
        entry = pipeline.run_entry(entry, until=State.SCANNED)
        if entry.state == State.SCANNED:
            try:
                did = catalog.get_file(bucket, did_name)
                reps = {r.rse: r.state for r in catalog.replicas(bucket, did_name)} if did else {}
            except Exception as err:
                return Exit.UPLOAD_FAILED, f"Rucio: {err}"
            already = did is not None and reps.get(upload_rse) == "AVAILABLE"
    elif index(entry.state) >= index(State.UPLOADED):
        already = True
    if entry.state != State.QUARANTINED:
        entry = pipeline.run_entry(entry, until=State.ATTACHED)
    if entry.state == State.QUARANTINED or index(entry.state) < index(State.ATTACHED):
        return Exit.UPLOAD_FAILED, f"upload failed: {entry.did}: {entry.state}: {entry.reason}"
    if transfer_rse:
        try:
            client.add_replication_rule([{"scope": bucket, "name": did_name}], 1, transfer_rse, account=account,
                                        comment="cygno-dm upload: transfer rule")
        except DuplicateRule:
            pass
        except RucioException as err:
            return Exit.RULE_FAILED, f"rule to {transfer_rse} failed: {err}"
        except Exception as err:
            return Exit.RULE_FAILED, f"rule to {transfer_rse} failed: {type(err).__name__}: {err}"
    if already:
        return Exit.ALREADY, f"{bucket}:{did_name} was already uploaded; rule to {transfer_rse} in place"
    return Exit.UPLOADED, f"{bucket}:{did_name} uploaded to {upload_rse}; rule to {transfer_rse} created"
