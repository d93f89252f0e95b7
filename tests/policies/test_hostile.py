"""What a hostile or careless user tries through the REST API of the real server: each attempt is refused with a
4xx naming the policy rule and changes nothing; next to it, the legitimate actor still succeeds."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
from rucio.common.exception import AccessDenied, ScopeNotFound

from tests.policies.world import TAPE_RSE, World

pytestmark = pytest.mark.rucio


def _refused(resp: requests.Response, rule: str) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    message = resp.json()["ExceptionMessage"]
    assert f"policy rule {rule}" in message, message


def _ok(resp: requests.Response) -> None:
    assert 200 <= resp.status_code < 300, (resp.status_code, resp.text[:300])


def _kind(w: World, kind: str) -> list[str]:
    return [name for name, rse in w.tb.profile.rses.items() if rse.kind == kind]


def _disks(w: World) -> list[str]:
    return [name for name, rse in w.tb.profile.rses.items() if rse.kind != "tape"]


def _put_state(w: World, role: str, scope: str, name: str, state: str, rse: str | None = None) -> requests.Response:
    return w.rest(role, "PUT", "/replicas", json={"rse": rse or w.disk,
                                                  "files": [{"scope": scope, "name": name, "state": state}]})


def _add_replica(w: World, role: str, rse: str, scope: str, name: str, size: int = 1,
                 adler32: str = "00000001", **extra: Any) -> requests.Response:
    return w.rest(role, "POST", "/replicas", json={"rse": rse, "files": [
        {"scope": scope, "name": name, "bytes": size, "adler32": adler32, **extra}]})


# 1. replica states -------------------------------------------------------------------------------------------
def test_only_data_managers_change_replica_states(world: World) -> None:
    f = world.raw_file()
    world.rule(f, world.disk, account=world.accounts["daq"], locked=True)
    for role, state in [("user", "B"), ("user", "T"), ("user", "U"), ("daq", "B"), ("production", "T")]:
        _refused(_put_state(world, role, world.raw, f, state), "replica-state")
        assert world.replicas(world.raw, f) == {world.disk: "AVAILABLE"}
    _ok(_put_state(world, "data-manager", world.raw, f, "T"))
    assert world.replicas(world.raw, f) == {world.disk: "TEMPORARY_UNAVAILABLE"}
    _refused(_put_state(world, "user", world.raw, f, "A"), "replica-state")  # not an upload of theirs
    _ok(_put_state(world, "data-manager", world.raw, f, "A"))
    assert world.replicas(world.raw, f) == {world.disk: "AVAILABLE"}


def test_a_user_finishes_an_own_upload_and_nothing_more(world: World) -> None:
    name = f"up/{uuid.uuid4().hex}.h5"
    _ok(_add_replica(world, "user", world.disk, world.user_scope, name, state="C"))
    assert world.replicas(world.user_scope, name) == {world.disk: "COPYING"}
    _ok(_put_state(world, "user", world.user_scope, name, "A"))  # the last step of every `rucio upload`
    assert world.replicas(world.user_scope, name) == {world.disk: "AVAILABLE"}
    _refused(_put_state(world, "user", world.user_scope, name, "U"), "replica-state")
    assert world.replicas(world.user_scope, name) == {world.disk: "AVAILABLE"}


# 2. forged tape replicas, 5. replicas that disagree with their file ------------------------------------------
def test_tape_replicas_come_only_from_transfers(world: World) -> None:
    tape = _kind(world, "tape")[0]
    f = world.raw_file()
    for role in ("user", "daq", "data-manager", "production"):
        resp = _add_replica(world, role, tape, world.raw, f)
        assert resp.status_code == 403, resp.text
        assert world.replicas(world.raw, f) == {world.disk: "AVAILABLE"}
    _refused(_add_replica(world, "daq", tape, world.raw, f), "tape-replicas-from-transfers")
    _refused(_add_replica(world, "data-manager", tape, world.raw, f), "tape-replicas-from-transfers")
    _ok(_add_replica(world, "root", tape, world.raw, f))  # root may, for a recovery by hand
    assert world.replicas(world.raw, f)[tape] == "AVAILABLE"
    mine = f"tape/{uuid.uuid4().hex}.h5"
    _refused(_add_replica(world, "user", tape, world.user_scope, mine), "tape-replicas-from-transfers")
    new = world.raw_name()
    _ok(_add_replica(world, "daq", tape, world.raw, new, state="C"))  # a new run uploaded straight to tape
    assert world.replicas(world.raw, new) == {tape: "COPYING"}


def test_a_replica_must_carry_its_files_size_and_checksum(world: World) -> None:
    other = next(d for d in _disks(world) if d != world.disk)
    f = world.raw_name()
    world.root.add_replica(world.disk, world.raw, f, 1, "00000001", md5="1" * 32)
    for size, adler32, extra in [(11, "0000000b", {}), (1, "0000000b", {}), (2, "00000001", {}),
                                 (1, "00000001", {"md5": "0" * 32})]:
        _refused(_add_replica(world, "daq", other, world.raw, f, size, adler32, **extra), "replica-matches-did")
        assert world.replicas(world.raw, f) == {world.disk: "AVAILABLE"}
    _ok(_add_replica(world, "daq", other, world.raw, f, 1, "00000001", md5="1" * 32))
    assert world.replicas(world.raw, f) == {world.disk: "AVAILABLE", other: "AVAILABLE"}


def test_raw_replicas_are_registered_by_the_daq_only(world: World) -> None:
    name = world.raw_name()
    _refused(_add_replica(world, "user", world.disk, world.raw, name), "user-writes-own-scope")
    _refused(_add_replica(world, "production", world.disk, world.raw, name), "production-derived-only")
    assert not world.exists(world.raw, name)
    _ok(_add_replica(world, "daq", world.disk, world.raw, name))  # the DAQ's first upload
    assert world.replicas(world.raw, name) == {world.disk: "AVAILABLE"}


# 3. metadata deletion (Rucio asks no permission on this route) -----------------------------------------------
def test_only_writers_of_the_scope_delete_metadata(world: World) -> None:
    f = world.raw_file()
    world.root.set_metadata_bulk(world.raw, f, {"run_number": 17, "run_type": "physics"})
    path = f"/dids/{world.raw}/{quote(f)}/meta"
    _refused(world.rest("user", "DELETE", path, params={"key": "run_number"}), "user-writes-own-scope")
    _refused(world.rest("daq", "DELETE", path, params={"key": "run_type"}), "daq-no-overwrite")
    assert world.meta(world.raw, f) == {"run_number": 17, "run_type": "physics"}
    _ok(world.rest("data-manager", "DELETE", path, params={"key": "run_type"}))
    assert world.meta(world.raw, f) == {"run_number": 17}


# 4. signed write URLs never overwrite ------------------------------------------------------------------------
def test_signed_write_urls_are_for_new_objects_only(world: World) -> None:
    s3 = _kind(world, "s3")[0]

    def sign(role: str, scope: str, name: str) -> requests.Response:
        url = world.root.lfns2pfns(s3, [f"{scope}:{name}"], operation="write")[f"{scope}:{name}"]
        return world.rest(role, "GET", "/credentials/signurl", params={"rse": s3, "svc": "s3", "op": "write",
                                                                      "url": url})
    stored = world.raw_name()
    world.root.add_replica(s3, world.raw, stored, 1, "00000001")
    _refused(sign("daq", world.raw, stored), "no-overwrite")
    fresh = sign("daq", world.raw, world.raw_name())
    _ok(fresh)
    assert "X-Amz-Signature=" in fresh.text
    mine = f"sign/{uuid.uuid4().hex}.h5"
    _ok(sign("user", world.user_scope, mine))
    world.clients["user"].add_replica(s3, world.user_scope, mine, 1, "00000001")
    _refused(sign("user", world.user_scope, mine), "no-overwrite")


# 6. rules on tape --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lifetime", [None, 3600])
def test_users_create_no_rules_on_tape(world: World, lifetime: int | None) -> None:
    f = world.raw_file()
    for expression in (TAPE_RSE, f"{world.disk}|{TAPE_RSE}"):
        with pytest.raises(AccessDenied, match="policy rule user-no-tape-rules"):
            world.clients["user"].add_replication_rule([{"scope": world.raw, "name": f}], 1, expression,
                                                       lifetime=lifetime)
        assert 400 <= world.statuses[-1] < 500
    assert world.rules_on(world.raw, f) == []
    rule = world.clients["user"].add_replication_rule([{"scope": world.raw, "name": f}], 1, world.disk,
                                                      lifetime=lifetime)[0]
    assert world.rule_state(rule)[0] is False  # disk rules stay the user's own
    daq = world.clients["daq"].add_replication_rule([{"scope": world.raw, "name": f}], 1, TAPE_RSE)[0]
    assert world.rule_state(daq)[0] is True  # Rucio locks tape rules: the DAQ's, never a user's


# 7. samples follow the naming rules ---------------------------------------------------------------------------
def test_sample_datasets_follow_the_naming_rules(world: World) -> None:
    ds = world.dataset(files=[world.raw_file(), world.raw_file()])

    def sample(role: str, scope: str, name: str) -> requests.Response:
        return world.rest(role, "POST", "/dids/sample", json={
            "input_scope": world.raw, "input_name": ds, "output_scope": scope, "output_name": name, "nbfiles": 1})
    _refused(sample("user", world.raw, "anything"), "raw-collection-name")
    _refused(sample("user", world.user_scope, "x/../sample"), "no-dot-component")
    _refused(sample("daq", world.raw, f"{world.tag}/../x"), "no-dot-component")
    assert not world.exists(world.raw, "anything") and not world.exists(world.user_scope, "x/../sample")
    name = f"samples/s{uuid.uuid4().hex[:8]}"
    _ok(sample("user", world.user_scope, name))
    assert len(world.content(world.user_scope, name)) == 1


# 8. scope ownership -------------------------------------------------------------------------------------------
def test_only_root_and_admins_give_a_scope_away(world: World) -> None:
    def owner(scope: str) -> str | None:
        for account in world.accounts.values():
            try:
                if scope in world.root.list_scopes_for_account(account):
                    return account
            except ScopeNotFound:
                continue
        return None

    before = owner(world.raw)
    _refused(world.rest("daq", "PUT", f"/scopes/{world.accounts['user']}/{world.raw}"), "scope-owner")
    _refused(world.rest("data-manager", "PUT", f"/scopes/{world.accounts['user']}/{world.raw}"), "scope-owner")
    assert owner(world.raw) == before
    spare = f"psge-x{uuid.uuid4().hex[:8]}"
    world.root.add_scope("root", spare)
    _ok(world.rest("root", "PUT", f"/scopes/{world.accounts['user']}/{spare}"))
    assert owner(spare) == world.accounts["user"]


# 9. suspicious replicas ----------------------------------------------------------------------------------------
def test_only_data_managers_declare_suspicious_replicas(world: World) -> None:
    f = world.raw_file()
    pfn = world.root.lfns2pfns(world.disk, [f"{world.raw}:{f}"], operation="read")[f"{world.raw}:{f}"]
    for role in ("user", "daq", "production"):
        _refused(world.rest(role, "POST", "/replicas/suspicious", json={"pfns": [pfn], "reason": "test"}),
                 "declare-suspicious")
    _ok(world.rest("data-manager", "POST", "/replicas/suspicious", json={"pfns": [pfn], "reason": "test"}))


# Error answers: our refusals and bad input are 4xx with one line, never a 500 or a crashed worker ---------------
def test_bad_names_are_refused_with_a_4xx_naming_the_rule(world: World) -> None:
    _refused(_add_replica(world, "daq", world.disk, world.raw, f"{world.tag}/run2071152_retry.mid.gz"),
             "raw-file-name")
    _refused(world.rest("daq", "POST", "/dids", json=[{"scope": world.raw, "name": f"{world.tag}/x.txt",
                                                       "type": "FILE"}]), "raw-file-name")
    ds = world.dataset()
    _refused(world.rest("daq", "POST", f"/dids/{world.raw}/{quote(ds)}/dids", json={
        "rse": world.disk, "dids": [{"scope": world.raw, "name": f"{world.tag}/run1.mid.gz", "bytes": 1,
                                     "adler32": "00000001"}]}), "raw-file-name")
    assert world.content(world.raw, ds) == []
    for name in ("caf\u00e9", "run\u2192x", "\U0001f4a5"):
        _refused(_add_replica(world, "user", world.disk, world.user_scope, name), "allowed-characters")
        _refused(world.rest("user", "POST", f"/dids/{world.user_scope}/{quote(name)}", json={"type": "DATASET"}),
                 "allowed-characters")
        missing = world.rest("user", "GET", f"/dids/{world.raw}/{quote(name)}")
        assert missing.status_code == 404 and missing.headers["ExceptionClass"] == "DataIdentifierNotFound"
        assert missing.headers["ExceptionMessage"].isascii()
    assert requests.get(f"{world.tb.rucio_url}/ping", timeout=30).status_code == 200  # no worker crashed


@pytest.mark.parametrize(("params", "says"), [
    ({"run_number.gte": "abc"}, "run_number"),
    ({"run_number.gt": "nan"}, "run_number"),
    ({"start_time.lt": "yesterday"}, "start_time"),
    ({"no_such_key": "1"}, "no_such_key"),
    ({"run_number.like": "5"}, "operator"),
])
def test_bad_filters_are_a_400_naming_the_key(world: World, params: dict[str, str], says: str) -> None:
    resp = world.rest("user", "GET", f"/dids/{world.raw}/dids/search", params={**params, "type": "all"})
    assert resp.status_code == 400, resp.text
    assert resp.headers["ExceptionClass"] == "DIDFilterSyntaxError" and says in resp.json()["ExceptionMessage"]


def test_upstream_500_on_filters_mixing_plugins(world: World) -> None:
    """Upstream Rucio 41: keys of two metadata plugins in one filter are a 500 raised before any plugin runs."""
    resp = world.rest("user", "GET", f"/dids/{world.raw}/dids/search", params={"length.gt": "1", "run_number": "5"})
    assert resp.status_code == 500 and "same metadata plugin" in resp.headers["ExceptionMessage"]


def test_upstream_500_on_malformed_checksums(world: World) -> None:
    """Upstream Rucio 41: POST /replicas validates its schema before the policy runs and answers a malformed
    adler32 with a 500 InvalidObject (which names the field); nothing is registered."""
    name = world.raw_name()
    resp = _add_replica(world, "daq", world.disk, world.raw, name, 1, "not-hex")
    assert resp.status_code == 500 and resp.headers["ExceptionClass"] == "InvalidObject"
    assert "adler32" in resp.json()["ExceptionMessage"] and not world.exists(world.raw, name)


def test_upstream_identity_created_before_the_permission_check(world: World) -> None:
    """Upstream Rucio 41: PUT /identities/<account>/userpass creates the identity, then asks the policy whether
    the caller may map it, and answers the refusal with a 500; the unmapped identity stays in the catalogue."""
    key = f"dangling{uuid.uuid4().hex[:8]}"
    resp = world.rest("user", "PUT", f"/identities/{world.accounts['user']}/userpass", headers={
        "X-Rucio-Username": key, "X-Rucio-Password": "pw-12345678", "X-Rucio-Email": "x@example.org"})
    assert resp.status_code == 500 and resp.headers["ExceptionClass"] == "AccessDenied"
    engine = sa.create_engine(world.tb.settings.database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT identity FROM identities WHERE identity = :k"), {"k": key}).all()
            mapped = conn.execute(sa.text("SELECT account FROM account_map WHERE identity = :k"), {"k": key}).all()
    finally:
        engine.dispose()
    assert rows and not mapped
