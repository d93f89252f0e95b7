"""Rucio's own conveyor moves data through our FTS3-compatible service: disk to disk, disk to tape, tape
staging, and recovery when the service is killed or a transfer fails."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from testbed.stack import Testbed
from tests.conftest import running_testbed
from tests.rucio_helpers import download, md5, new_run_name, rucio, s3_client, upload, wait_rules

pytestmark = pytest.mark.rucio
DISKS = ["CNAF_USERDISK", "BARI_USERDISK", "BACKBONE_USERDISK"]
TAPE = "T1_USERTAPE"


def put_run(tb: Testbed, tmp_path: Path, rse: str, size: int = 200_000) -> tuple[str, Path]:
    """Upload a fresh raw run file to one RSE as the DAQ; return its name and local copy."""
    name = new_run_name()
    path = tmp_path / name.replace("/", "_")
    path.write_bytes(os.urandom(size))
    upload(tb, "rucio-daq", path, rse, "cygno-data", name)
    return name, path


def add_rule(tb: Testbed, name: str, dst: str, src: str | None = None) -> str:
    """A one-copy rule by the data manager, optionally forcing the source RSE."""
    client = tb.client("cygno-dm")
    return client.add_replication_rule([{"scope": "cygno-data", "name": name}], 1, dst,
                                       source_replica_expression=src)[0]


def tape_copy(tb: Testbed, name: str) -> Path:
    """Where the tape endpoint keeps the archived copy of a raw file."""
    rse = tb.profile.rses[TAPE]
    return tb.state / "storage" / TAPE / "tape" / rse.prefix.strip("/") / "cygno-data" / name


def test_rules_between_every_disk_pair_and_to_tape_reach_ok(testbed: Testbed, tmp_path: Path) -> None:
    rules, originals = {}, {}
    for src in DISKS:
        name, path = put_run(testbed, tmp_path, src)
        originals[name] = path
        for dst in [d for d in DISKS if d != src] + [TAPE]:
            rules[add_rule(testbed, name, dst, src)] = (name, src, dst)
    done = wait_rules(testbed, list(rules))
    bad = {rules[rid]: (r["state"], r["error"]) for rid, r in done.items() if r["state"] != "OK"}
    assert not bad, bad
    for name, src, dst in rules.values():
        if dst == TAPE:
            continue
        got = download(testbed, "alice", "cygno-data", name, tmp_path / f"{dst}-{src}", "--rses", dst)
        assert md5(got) == md5(originals[name]), (src, dst)
    client = testbed.client("root")
    for name, path in originals.items():
        (rep,) = client.list_replicas([{"scope": "cygno-data", "name": name}])
        assert set(rep["rses"]) == set(DISKS) | {TAPE}
        # the tape copy is archived only after migration; its bytes are the original's once there
        deadline = time.monotonic() + 60
        while not tape_copy(testbed, name).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert md5(tape_copy(testbed, name)) == md5(path)


def test_killed_fts_is_restarted_and_every_rule_still_reaches_ok(testbed: Testbed, tmp_path: Path) -> None:
    names = [put_run(testbed, tmp_path, "CNAF_USERDISK", size=3_000_000) for _ in range(4)]
    rule_ids = [add_rule(testbed, name, "BARI_USERDISK") for name, _ in names]
    # Kill the service as soon as the conveyor has handed it work.
    client = testbed.client("root")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(r["locks_replicating_cnt"] for r in map(client.get_replication_rule, rule_ids)):
            break
        time.sleep(0.2)
    pid = testbed.sup.pid("fts")
    os.killpg(pid, signal.SIGKILL)
    testbed.up()  # up brings back what is missing, and only that
    assert testbed.sup.pid("fts") not in (None, pid)
    done = wait_rules(testbed, rule_ids)
    assert all(r["state"] == "OK" for r in done.values()), {k: (r["state"], r["error"]) for k, r in done.items()}
    for name, path in names:
        got = download(testbed, "alice", "cygno-data", name, tmp_path / "dl", "--rses", "BARI_USERDISK")
        assert md5(got) == md5(path)


@pytest.fixture(scope="module")
def fast_tape() -> Testbed:
    """A testbed (SQLite) whose tape migrates at once and evicts from its buffer after a few seconds."""
    def edit(profile: dict) -> None:
        profile["testbed"]["tape"] = {"migrate_after": 0.5, "evict_after": 3.0, "stage_latency": 1.0}

    with running_testbed("sqlite", edit) as tb:
        yield tb


def test_disk_copy_of_an_evicted_tape_file_goes_through_staging(fast_tape: Testbed, tmp_path: Path) -> None:
    tb = fast_tape
    name, path = put_run(tb, tmp_path, TAPE)
    buffered = tb.state / "storage" / TAPE / "buffer" / "cygno" / "cygno-data" / name
    deadline = time.monotonic() + 60
    while buffered.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not buffered.exists(), "the tape endpoint should have evicted the file from its buffer"
    (rule,) = [add_rule(tb, name, "CNAF_USERDISK")]
    done = wait_rules(tb, [rule])
    assert done[rule]["state"] == "OK", done[rule]["error"]
    got = download(tb, "alice", "cygno-data", name, tmp_path / "dl", "--rses", "CNAF_USERDISK")
    assert md5(got) == md5(path)


def failed_attempts(tb: Testbed, name: str, dst: str) -> list[dict]:
    """Rucio's archived transfer requests of a file to an RSE that ended FAILED."""
    client = tb.client("root")
    return [r for r in client.list_requests_history("CNAF_USERDISK", dst, "F")  # F: RequestState.FAILED
            if r["name"] == name]


def test_destination_down_fails_with_reason_and_conveyor_retry_succeeds(fast_tape: Testbed,
                                                                        tmp_path: Path) -> None:
    tb = fast_tape
    name, path = put_run(tb, tmp_path, "CNAF_USERDISK")
    tb.sup.stop("s3-BARI_USERDISK")  # the destination is down
    rule = add_rule(tb, name, "BARI_USERDISK")
    deadline = time.monotonic() + 120
    while not failed_attempts(tb, name, "BARI_USERDISK") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert failed_attempts(tb, name, "BARI_USERDISK"), "the first transfer attempt should have failed"
    tb.up()  # the destination comes back before Rucio gives up: its next attempt succeeds
    done = wait_rules(tb, [rule])
    assert done[rule]["state"] == "OK", (done[rule]["state"], done[rule]["error"])
    got = download(tb, "alice", "cygno-data", name, tmp_path / "dl", "--rses", "BARI_USERDISK")
    assert md5(got) == md5(path)


@pytest.mark.parametrize("cause", ["destination down", "source missing"])
def test_exhausted_retries_leave_the_rule_stuck_with_the_reason(fast_tape: Testbed, tmp_path: Path,
                                                                cause: str) -> None:
    tb = fast_tape
    name, _ = put_run(tb, tmp_path, "CNAF_USERDISK")
    if cause == "destination down":
        tb.sup.stop("webdav-BACKBONE_USERDISK")
        expect = "DESTINATION"
    else:
        s3_client(tb, "CNAF_USERDISK").delete_object(Bucket="cygno-data", Key=name)  # the bytes vanished behind Rucio's back
        expect = "SOURCE"
    try:
        rule = add_rule(tb, name, "BACKBONE_USERDISK")
        deadline = time.monotonic() + 240
        shown: dict[str, str] = {}
        while time.monotonic() < deadline and shown.get("State") != "STUCK":
            info = rucio(tb, "cygno-dm", "rule", "show", rule).stdout
            shown = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
            shown = {k.strip(): v.strip() for k, v in shown.items()}
            time.sleep(1)
        assert shown.get("State") == "STUCK", shown
        assert expect in shown["Error"], shown["Error"]
    finally:
        tb.up()
    if cause == "destination down":
        # Rucio retries stuck locks after hours; the data manager asks for it now, once the cause is gone.
        tb.client("cygno-dm").update_replication_rule(rule, {"boost_rule": True})
        done = wait_rules(tb, [rule])
        assert done[rule]["state"] == "OK", (done[rule]["state"], done[rule]["error"])
