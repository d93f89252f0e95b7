"""The policy package in a REAL Rucio server (the lead's `testbed`: SQLite and PostgreSQL), through REST and CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rucio.common.exception import (
    AccessDenied,
    DataIdentifierAlreadyExists,
    Duplicate,
    InvalidMetadata,
    InvalidValueForKey,
    RucioException,
)

from rucio_policies.metadata_keys import MetadataValueError, keys_for
from rucio_policies.naming import NameRuleError, check_did_name
from tests.policies.world import FOREIGN_SCOPE, TAPE_RSE, World

pytestmark = pytest.mark.rucio

@dataclass(frozen=True)
class Case:
    """One row of the permission table: who does what, and whether the policy lets it happen."""

    id: str
    role: str
    allowed: bool
    arrange: Callable[[World], tuple[Callable[[Any], object], Callable[[], object]]]
    changes: bool = True
    generic: bool = False  # decided by Rucio's generic policy: its refusals name no policy rule of ours


def _add_file(w: World) -> tuple[Callable[[Any], object], Callable[[], object]]:
    name = w.raw_name()
    return (lambda c: c.add_replica(w.disk, w.raw, name, 1, "00000001")), (lambda: w.exists(w.raw, name))


def _add_dataset(scope_of: Callable[[World], str], name: str = "") -> Callable[[World], Any]:
    def arrange(w: World) -> tuple[Callable[[Any], object], Callable[[], object]]:
        scope = scope_of(w)
        ds = name or (f"{w.tag}/ds{uuid.uuid4().hex[:12]}" if scope == w.raw else f"t/ds{uuid.uuid4().hex[:12]}")
        return (lambda c: c.add_dataset(scope, ds)), (lambda: w.exists(scope, ds))
    return arrange


def _attach(w: World):
    ds, f = w.dataset(), w.raw_file()
    return (lambda c: c.attach_dids(w.raw, ds, [{"scope": w.raw, "name": f}])), (lambda: w.content(w.raw, ds))


def _detach(w: World):
    f = w.raw_file()
    ds = w.dataset(files=[f])
    return (lambda c: c.detach_dids(w.raw, ds, [{"scope": w.raw, "name": f}])), (lambda: w.content(w.raw, ds))


def _set_meta(meta: dict[str, Any], preset: dict[str, Any] | None = None):
    def arrange(w: World):
        f = w.raw_file()
        if preset:
            w.root.set_metadata_bulk(w.raw, f, preset)
        return (lambda c: c.set_metadata_bulk(w.raw, f, meta)), (lambda: w.meta(w.raw, f))
    return arrange


def _lifetime(w: World):
    f = w.raw_file()
    return (lambda c: c.set_metadata(w.raw, f, "lifetime", 3600)), (lambda: w.expiry(w.raw, f))


def _add_rule(locked: bool = False, scope_of: Callable[[World], str] | None = None):
    def arrange(w: World):
        if scope_of is None:
            scope, name = w.raw, w.raw_file()
        else:
            scope = scope_of(w)
            name = w.dataset(scope)
        return (lambda c: c.add_replication_rule([{"scope": scope, "name": name}], 1, w.disk, locked=locked)), \
            (lambda: w.rules_on(scope, name))
    return arrange


def _rule_change(rse_of: Callable[[World], str], locked: bool, owner: str, change: Callable[[Any, str], object]):
    def arrange(w: World):
        rule_id = w.rule(w.raw_file(), rse_of(w), account=w.accounts[owner], locked=locked)
        return (lambda c: change(c, rule_id)), (lambda: w.rule_state(rule_id))
    return arrange


def _declare_bad(w: World):
    f = w.raw_file()
    return (lambda c: c.declare_bad_file_replicas([{"scope": w.raw, "name": f, "rse": w.disk}], "policy test")), \
        (lambda: w.replicas(w.raw, f))


def _delete_replica(w: World):
    f = w.raw_file()
    return (lambda c: c.delete_replicas(w.disk, [{"scope": w.raw, "name": f}])), (lambda: w.replicas(w.raw, f))


def _sign_delete(w: World):
    f = w.raw_file()
    url = w.root.lfns2pfns(w.disk, [f"{w.raw}:{f}"], operation="delete")[f"{w.raw}:{f}"]
    return (lambda c: c.get_signed_url(w.disk, "s3", "delete", url)), (lambda: w.replicas(w.raw, f))


def _read(w: World):
    f = w.raw_file()
    w.root.set_metadata(w.raw, f, "run_type", "physics")

    def act(c: Any) -> object:
        assert [d["name"] for d in c.list_dids(w.raw, [{"name": f}], did_type="all", long=True)] == [f]
        assert c.get_metadata(w.raw, f, plugin="RUN_META")["run_type"] == "physics"
        return None
    return act, (lambda: w.meta(w.raw, f))


DISK, TAPE = (lambda w: w.disk), (lambda w: TAPE_RSE)
DELETE = lambda c, rid: c.delete_replication_rule(rid)  # noqa: E731
UNLOCK = lambda c, rid: c.update_replication_rule(rid, {"locked": False})  # noqa: E731
EXPIRE = lambda c, rid: c.update_replication_rule(rid, {"lifetime": 86400})  # noqa: E731
LOCK = lambda c, rid: c.update_replication_rule(rid, {"locked": True})  # noqa: E731


def UNLOCK_DELETE(c: Any, rule_id: str) -> None:  # noqa: N802
    """Rucio removes a locked rule in two steps: unlock, then delete."""
    c.update_replication_rule(rule_id, {"locked": False})
    c.delete_replication_rule(rule_id)


def _close(w: World):
    ds = w.dataset()
    return (lambda c: c.close(w.raw, ds)), (lambda: w.root.get_did(w.raw, ds)["open"])


def _generic(act: Callable[[Any, str], object], probe: Callable[[World, str], object]):
    """An action Rucio's generic policy decides (root and admins), on fresh names."""
    def arrange(w: World):
        tag = uuid.uuid4().hex[:8]
        return (lambda c: act(c, tag)), (lambda: probe(w, tag))
    return arrange


ADD_RSE = _generic(lambda c, t: c.add_rse(f"PROBE_{t.upper()}"),
                   lambda w, t: f"PROBE_{t.upper()}" in {r["rse"] for r in w.root.list_rses()})
ADD_SCOPE = _generic(lambda c, t: c.add_scope("root", f"probe-{t}"),
                     lambda w, t: f"probe-{t}" in w.root.list_scopes())
SET_QUOTA = _generic(lambda c, t: c.set_local_account_limit("root", TAPE_RSE, int(t, 16)),
                     lambda w, t: w.root.get_local_account_limit("root", TAPE_RSE).get(TAPE_RSE) == int(t, 16))
ADD_RSE_ATTRIBUTE = _generic(lambda c, t: c.add_rse_attribute(TAPE_RSE, f"probe{t}", "1"),
                             lambda w, t: f"probe{t}" in w.root.list_rse_attributes(TAPE_RSE))
SET_CONFIG = _generic(lambda c, t: c.set_config_option("probe", f"k{t}", "v"),
                      lambda w, t: f"k{t}" in w.root.get_config().get("probe", {}))

CASES = [
    Case("daq adds a raw file", "daq", True, _add_file),
    Case("daq adds a raw dataset", "daq", True, _add_dataset(lambda w: w.raw)),
    Case("daq attaches a raw file", "daq", True, _attach),
    Case("daq sets run metadata", "daq", True, _set_meta({"run_number": 7, "run_type": "physics"})),
    Case("daq overwrites run metadata", "daq", False, _set_meta({"run_type": "cosmics"}, {"run_type": "physics"})),
    Case("daq detaches a raw file", "daq", False, _detach),
    Case("daq deletes a rule", "daq", False, _rule_change(DISK, False, "root", DELETE)),
    Case("daq adds a rule on raw data", "daq", True, _add_rule()),
    Case("daq gives raw data a lifetime", "daq", False, _lifetime),
    Case("daq adds a sim dataset", "daq", False, _add_dataset(lambda w: w.sim)),
    Case("daq writes to a foreign scope", "daq", False, _add_dataset(lambda w: FOREIGN_SCOPE)),
    Case("daq deletes a raw replica", "daq", False, _delete_replica),
    Case("daq signs a raw deletion URL", "daq", False, _sign_delete),
    Case("dm adds a rule on raw data", "data-manager", True, _add_rule()),
    Case("dm adds a locked rule", "data-manager", True, _add_rule(locked=True)),
    Case("dm changes a disk rule", "data-manager", True, _rule_change(DISK, False, "root", EXPIRE)),
    Case("dm removes a disk rule", "data-manager", True, _rule_change(DISK, False, "root", DELETE)),
    Case("dm removes a locked tape rule", "data-manager", False, _rule_change(TAPE, True, "root", DELETE)),
    Case("dm unlocks a locked tape rule", "data-manager", False, _rule_change(TAPE, True, "root", UNLOCK)),
    Case("dm expires a locked tape rule", "data-manager", False, _rule_change(TAPE, True, "root", EXPIRE)),
    Case("dm declares a bad replica", "data-manager", True, _declare_bad),
    Case("dm adds an analysis dataset", "data-manager", True, _add_dataset(lambda w: w.analysis)),
    Case("dm adds a rule in a foreign scope", "data-manager", False, _add_rule(scope_of=lambda w: FOREIGN_SCOPE)),
    Case("dm deletes a raw replica", "data-manager", False, _delete_replica),
    Case("dm gives raw data a lifetime", "data-manager", False, _lifetime),
    Case("user adds to own scope", "user", True, _add_dataset(lambda w: w.user_scope)),
    Case("user adds to the raw scope", "user", False, _add_dataset(lambda w: w.raw)),
    Case("user adds to an analysis scope", "user", False, _add_dataset(lambda w: w.analysis)),
    Case("user sets metadata on raw data", "user", False, _set_meta({"run_type": "x"})),
    Case("user adds a rule on raw data", "user", True, _add_rule()),
    Case("user adds a locked rule", "user", False, _add_rule(locked=True)),
    Case("user removes own rule", "user", True, _rule_change(DISK, False, "user", DELETE)),
    Case("user expires own rule", "user", True, _rule_change(DISK, False, "user", EXPIRE)),
    Case("production expires own rule", "production", True, _rule_change(DISK, False, "production", EXPIRE)),
    Case("user locks own rule", "user", False, _rule_change(DISK, False, "user", LOCK)),
    Case("user expires the dm's rule", "user", False, _rule_change(DISK, False, "data-manager", EXPIRE)),
    Case("user removes the dm's rule", "user", False, _rule_change(DISK, False, "data-manager", DELETE)),
    Case("user declares a bad replica", "user", False, _declare_bad),
    Case("user signs a raw deletion URL", "user", False, _sign_delete),
    Case("user writes to a foreign scope", "user", False, _add_dataset(lambda w: FOREIGN_SCOPE)),
    Case("user reads raw data and metadata", "user", True, _read, changes=False),
    Case("root removes a locked tape rule", "root", True, _rule_change(TAPE, True, "root", UNLOCK_DELETE)),
    Case("daq closes a raw dataset", "daq", True, _close),
    Case("user closes a raw dataset", "user", False, _close),
    Case("production closes a raw dataset", "production", False, _close),
    *(Case(f"{role} {what} (generic policy)", role, role == "root", arrange, generic=True)
      for what, arrange in [("adds an RSE", ADD_RSE), ("adds a scope", ADD_SCOPE), ("sets a quota", SET_QUOTA),
                            ("adds an RSE attribute", ADD_RSE_ATTRIBUTE), ("sets a config option", SET_CONFIG)]
      for role in ("user", "daq", "data-manager", "production", "root")),
    Case("root deletes a raw replica", "root", True, _delete_replica),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_permission_table(world: World, case: Case) -> None:
    act, probe = case.arrange(world)
    client = world.clients[case.role]
    before = probe()
    if case.allowed:
        act(client)
        if case.changes:
            assert probe() != before, "allowed action changed nothing"
    else:
        with pytest.raises(AccessDenied) as err:
            act(client)
        assert case.generic or "policy rule" in str(err.value)
        assert 400 <= world.statuses[-1] < 500, f"refused with HTTP {world.statuses[-1]}, not a 4xx"
        assert probe() == before, "denied action changed the catalogue"


# --- run metadata through the plain rucio CLI -------------------------------------------------------------------
def _rucio(w: World, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    local = Path(sys.executable).with_name("rucio")
    exe = str(local) if local.exists() else (shutil.which("rucio") or "rucio")
    env = {**os.environ, **w.tb.env(w.accounts[role])}
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_filters_run_metadata(world: World) -> None:
    base = world.run()
    files = {}
    for i, run_type in enumerate(["physics", "pedestal", "physics", "physics", "cosmics", "physics"]):
        name = world.raw_file(base + i)
        world.root.set_metadata_bulk(world.raw, name, {"run_number": base + i, "run_type": run_type})
        files[name] = (base + i, run_type)
    expected = {f"{world.raw}:{n}" for n, (run, kind) in files.items() if run >= base + 2 and kind == "physics"}

    out = _rucio(world, "user", "did", "list", f"{world.raw}:*", "--short",
                 "--filter", f"run_number>={base + 2},run_number<={base + 5},run_type=physics")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == expected

    out = _rucio(world, "user", "did", "list", f"{world.raw}:*", "--short", "--filter", "run_number>=100,run_type=physics")
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert expected <= listed
    for did in listed:
        scope, _, name = did.partition(":")
        meta = world.meta(scope, name)
        assert meta["run_number"] >= 100 and meta["run_type"] == "physics"


def test_cli_sets_and_shows_typed_metadata(world: World) -> None:
    name = world.raw_file()
    did = f"{world.raw}:{name}"
    ok = _rucio(world, "data-manager", "did", "metadata", "set", did, "--key", "number_of_events", "--value", "400")
    assert ok.returncode == 0, ok.stderr
    ok = _rucio(world, "data-manager", "did", "metadata", "set", did, "--key", "start_time",
                "--value", "2024-05-01T10:00:00")
    assert ok.returncode == 0, ok.stderr
    shown = _rucio(world, "user", "did", "metadata", "list", did, "--plugin", "RUN_META")
    assert shown.returncode == 0, shown.stderr
    assert "number_of_events" in shown.stdout and "400" in shown.stdout
    as_path = _rucio(world, "user", "did", "metadata", "list", f"{world.raw}/{name}", "--plugin", "RUN_META")
    assert as_path.returncode == 0 and as_path.stdout == shown.stdout  # scope extraction from a path
    assert world.meta(world.raw, name) == {"number_of_events": 400, "start_time": datetime(2024, 5, 1, 10, 0)}

    for key, value in [("number_of_events", "many"), ("start_time", "yesterday"), ("no_such_key", "1")]:
        bad = _rucio(world, "data-manager", "did", "metadata", "set", did, "--key", key, "--value", value)
        assert bad.returncode != 0
        assert key in bad.stderr
    assert world.meta(world.raw, name) == {"number_of_events": 400, "start_time": datetime(2024, 5, 1, 10, 0)}

    bad_filter = _rucio(world, "user", "did", "list", f"{world.raw}:*", "--filter", "run_number>=lots")
    assert bad_filter.returncode != 0 and "run_number" in bad_filter.stderr


def test_metadata_search_filters_and_operators(world: World) -> None:
    base = world.run()
    names = [world.raw_file(base + i) for i in range(4)]
    for i, n in enumerate(names):
        world.root.set_metadata_bulk(world.raw, n, {"run_number": base + i, "detector": f"LIME-{i % 2}",
                                                    "start_time": f"2024-05-0{i + 1}T00:00:00"})
    alice = world.clients["user"]

    def search(*groups: dict[str, Any], did_type: str = "all") -> set[str]:
        return {d["name"] for d in alice.list_dids(world.raw, list(groups), did_type=did_type, long=True)}

    rng = {"run_number.gte": base, "run_number.lte": base + 3}
    assert search({**rng, "detector": "LIME-1"}) == {names[1], names[3]}
    assert search({**rng, "detector.ne": "LIME-1"}) == {names[0], names[2]}
    assert search({**rng, "detector": "LIME*"}) == set(names)
    assert search({**rng, "start_time.gt": "2024-05-02T12:00:00"}) == {names[2], names[3]}
    assert search({"run_number": base}, {"run_number": base + 3}) == {names[0], names[3]}
    assert search({**rng, "name": f"{world.tag}/run*"}) == set(names)
    assert search(rng, did_type="dataset") == set()
    assert search(rng, did_type="file") == set(names)


CLIENT_PFN = """
import json, sys
from rucio.rse import rsemanager
assert rsemanager.CLIENT_MODE
rse, scope, name = sys.argv[1:4]
info = rsemanager.get_rse_info(rse)
print(json.dumps(rsemanager.lfns2pfns(info, [{"scope": scope, "name": name}], operation="read")))
"""


@pytest.mark.parametrize("index", range(4))
def test_client_and_server_compute_the_same_path(world: World, index: int) -> None:
    if index >= len(world.tb.rses):
        pytest.skip("the profile has fewer RSEs")
    rse, name = world.tb.rses[index], world.raw_name()
    did = f"{world.raw}:{name}"
    server = world.root.lfns2pfns(rse, [did], operation="read")[did]
    env = {**os.environ, **world.tb.env(world.accounts["user"])}
    out = subprocess.run([sys.executable, "-c", CLIENT_PFN, rse, world.raw, name], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    client = json.loads(out.stdout)[did]
    assert client == server
    assert server.endswith(f"/{world.raw}/{name}")  # the identity layout under the RSE prefix


# --- random names and metadata: nothing invalid is stored, nothing valid is refused --------------------------------
NAME_PARTS = st.sampled_from(["LNGS", "LNF", "MAN", "XX", "/", "run", "0", "12345", "678901", ".mid.gz", ".", "..",
                              "-", "_", " ", "\t", "%", "a", "B"])
RANDOM_NAMES = st.one_of(
    st.builds(lambda t, n, d: f"{t}/run{n:0{d}d}.mid.gz", st.sampled_from(["LNGS", "LNF", "XX"]),
              st.integers(0, 10**9), st.integers(3, 9)),
    st.lists(NAME_PARTS, min_size=1, max_size=8).map("".join),
    st.text(alphabet="abcLNGS0123456789./-_", min_size=1, max_size=24))
WHO_WHERE = st.sampled_from([("daq", "raw", "FILE"), ("data-manager", "raw", "DATASET"),
                             ("data-manager", "analysis", "DATASET"), ("user", "user_scope", "DATASET")])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=RANDOM_NAMES, who_where=WHO_WHERE)
def test_random_names(world: World, name: str, who_where: tuple[str, str, str]) -> None:
    role, scope_attr, did_type = who_where
    scope = getattr(world, scope_attr)
    try:
        check_did_name(world.reg, scope, name, did_type)
        valid = True
    except NameRuleError:
        valid = False
    client = world.clients[role]
    try:
        if did_type == "FILE":
            client.add_replica(world.disk, scope, name, 1, "00000001")
        else:
            client.add_dataset(scope, name)
        accepted = True
    except (DataIdentifierAlreadyExists, Duplicate):
        accepted = True
    except RucioException:
        accepted = False
    assert accepted == valid, (scope, name, did_type)
    url_safe = not set(name) & set("%?#* \t") and not {".", ".."} & set(name.split("/"))
    if not valid and url_safe:  # the others are covered by test_catalogue_holds_only_valid_names
        assert not world.exists(scope, name)


def test_catalogue_holds_only_valid_names(world: World) -> None:
    for scope in (world.raw, world.analysis, world.user_scope):
        for did in world.root.list_dids(scope, [{"name": "*"}], did_type="all", long=True):
            check_did_name(world.reg, scope, did["name"], did["did_type"])


KEYS = keys_for(None)
RANDOM_KEYS = st.sampled_from([*KEYS, "x_unknown", "RunNumber", "run number"])
RANDOM_VALUES = st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12), st.booleans(), st.none(),
                          st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
                              datetime.isoformat),
                          st.from_regex(r"\A[+-]?[0-9]{1,12}\Z"), st.sampled_from(["2024-05-01T10:00:00", "physics"]),
                          st.lists(st.integers(), max_size=2))


@pytest.fixture(scope="session")
def meta_target(world: World) -> str:
    """A raw file whose run metadata the random test rewrites."""
    return world.raw_file()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=st.dictionaries(RANDOM_KEYS, RANDOM_VALUES, min_size=1, max_size=4))
def test_random_metadata(world: World, meta_target: str, meta: dict[str, Any]) -> None:
    expected: dict[str, Any] = {}
    try:
        for key, value in meta.items():
            if key not in KEYS:
                raise MetadataValueError(key)
            expected[key] = KEYS[key].coerce(value)
        valid = True
    except MetadataValueError:
        valid = False
    before = world.meta(world.raw, meta_target)
    try:
        world.clients["data-manager"].set_metadata_bulk(world.raw, meta_target, meta)
        accepted = True
    except (InvalidMetadata, InvalidValueForKey):
        accepted = False
    assert accepted == valid, meta
    after = world.meta(world.raw, meta_target)
    if accepted:
        assert after == {**before, **expected}
    else:
        assert after == before
