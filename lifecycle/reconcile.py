"""The ground truth: what Rucio says about the raw runs. New run DIDs in the profile's raw scopes become `seen`;
a pending run is ready when its pedestal map is known (pedestal runs go first) and a disk replica is AVAILABLE; a
run only on tape takes a slot of the campaign's staging window and is recalled by a staging rule, and its slot and
rule are released when it is done or failed; a run whose output is already registered is done without a job."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rucio.common.exception import RucioException

from cygno_dm.processing import register
from cygno_dm.processing.catalog import last_line
from cygno_dm.processing.dids import parse_filter, raw_file
from cygno_dm.processing.errors import ProcessingError
from cygno_dm.processing.pedestals import pedestal_run
from cygno_dm.processing.pipeline import Processor
from cygno_dm.processing.replicas import Placement, placement
from cygno_dm.processing.stage import LIVE, release_rule, staging_rule
from lifecycle.jobs import PEDESTAL, RECO
from lifecycle.store import CANCELLED, DONE, FAILED, IN_FLIGHT, PENDING, Run, Store

TAPE = "tape: "  # what a run waiting for its recall waits for starts with this

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ready:
    """A run that can be submitted now."""

    did: str
    kind: str  # RECO or PEDESTAL
    output_did: str


class Reconciler:
    """Compares the store with Rucio for one campaign, through a Processor's catalogue (same naming rules)."""

    def __init__(self, proc: Processor, store: Store, campaign: str, filter_: str | None = None) -> None:
        self.proc, self.store, self.campaign = proc, store, campaign
        # which raw runs are ours; by default every run whose run metadata are set (the uploader sets them in one
        # call after registering the file: a run is not classified, pedestal or not, before they are there)
        self.filters = parse_filter(filter_ or "run_number>=0")
        self.profile, self.catalog = proc.profile, proc.catalog

    # -- discovery ------------------------------------------------------------------------------
    def discover(self, scope: str, names: list[str] | None = None) -> list[str]:
        """Record the raw run files of `scope` (all, or these names) in the store; the DIDs that are new."""
        rx = self.profile.naming.raw_name_re
        if names is None:
            names = self.catalog.list_dids(scope, self.filters, f"listing {scope}")
        runs = {n: int(m["run"]) for n in names if (m := rx.match(n))}
        if not runs:
            return []
        pedestals = self._pedestal_names(scope, list(runs) if len(runs) == 1 else None)
        new = self.store.see(self.campaign, [(f"{scope}:{n}", r, n in pedestals) for n, r in runs.items()])
        for did in new:
            log.info("%s: seen (campaign %s)", did, self.campaign)
        return new

    def _pedestal_names(self, scope: str, only: list[str] | None) -> set[str]:
        filters = parse_filter(self.proc.proc.pedestal_filter, name=only[0] if only else "*")
        return set(self.catalog.list_dids(scope, filters, f"pedestal runs of {scope}"))

    def discover_all(self) -> list[str]:
        """discover() on every raw scope of the profile."""
        return [did for scope in self.profile.scopes.raw for did in self.discover(scope)]

    def hinted(self, scope: str, name: str) -> list[str]:
        """The raw run DIDs a hint about scope:name concerns (the file, or the files of a dataset), recorded."""
        if scope not in self.profile.scopes.raw:
            return []
        if self.profile.naming.raw_name_re.match(name):
            names = [name]
        else:
            try:
                names = [n for s, n in self.catalog.files_of(scope, name) if s == scope]
            except Exception as err:  # not a collection, or gone: a hint is only a hint
                log.debug("hint %s:%s: %s", scope, name, err)
                return []
        names = [n for n in names if self.catalog.list_dids(scope, [{**g, "name": n} for g in self.filters],
                                                            f"hint {scope}:{n}")]
        for n in names:
            self.discover(scope, [n])
        return [f"{scope}:{n}" for n in names]

    # -- readiness ------------------------------------------------------------------------------
    def output_of(self, run: Run) -> str:
        """The output DID of a run: its reconstruction, or the pedestal map of a pedestal run."""
        scope, name = run.did.split(":", 1)
        if run.pedestal:
            m = self.profile.naming.raw_name_re.match(name)
            return f"{register.output_scope(self.profile)}:{register.pedestal_name(m['tag'], m['run'])}"
        return self.proc.output_did(scope, name)

    def check(self, run: Run) -> Ready | None:
        """Ready, or None after recording what the run waits for (or that its output already exists)."""
        scope, name = run.did.split(":", 1)
        output = self.output_of(run)
        if self._available(*output.split(":", 1)):
            if self.store.done(run.did, self.campaign, output):
                log.info("%s: done (its output %s is registered)", run.did, output)
                self.release(run.did)
            return None
        if not run.pedestal:  # before any recall: a run waiting for its pedestal must not hold a staging slot
            try:
                ped_name = pedestal_run(self.catalog, self.profile, raw_file(self.catalog, self.profile, scope, name))
            except ProcessingError as err:
                return self._wait(run, f"pedestal: {err}")
            ped_did = f"{scope}:{ped_name}"
            m = self.profile.naming.raw_name_re.match(ped_name)
            ped_map = register.pedestal_name(m["tag"], m["run"])
            ped_row = self.store.get(ped_did, self.campaign)
            busy = ped_row is not None and ped_row.state in IN_FLIGHT  # its job is making the map: it ends first
            if busy or (not self._available(register.output_scope(self.profile), ped_map)
                        and (ped_row is None or ped_row.state != DONE)):
                state = ped_row.state if ped_row else "not seen yet"
                return self._wait(run, f"pedestal: the map of {ped_did} ({state})")
        where = placement(self.catalog, self.profile, self.proc.proc.site_rse, scope, name)
        if not where.disk:
            return self._recall(run, where)
        return Ready(run.did, PEDESTAL if run.pedestal else RECO, output)

    # -- tape ------------------------------------------------------------------------------------
    def _recall(self, run: Run, where: Placement) -> None:
        """A run with no disk replica: with a slot of the staging window, make sure its recall is asked for."""
        scope, name = run.did.split(":", 1)
        window = self.store.window(self.campaign)
        if not where.tape or window is None or window.runs == 0:
            off = "" if not where.tape else "; staging is off (--staging-window 0)"
            return self._wait(run, f"an AVAILABLE disk replica ({where.describe()}){off}")
        slot = self.store.slot(run.did, self.campaign)
        if slot is None and window.used_runs < window.runs:  # worth the lock: there may be room
            slot, window = self.store.take_slot(run.did, self.campaign,
                                                raw_file(self.catalog, self.profile, scope, name).bytes)
        if slot is None:
            return self._wait(run, f"{TAPE}a slot of the staging window ({window.describe()} in use)")
        rse = self.proc.proc.staging_rse
        rule = self.catalog.rule_or_none(slot.rule_id) if slot.rule_id else None
        if rule is None or rule["state"] not in LIVE:
            rule_id, _ = staging_rule(self.catalog, scope, name, rse, self.proc.proc.staging_lifetime_days * 86400)
            self.store.set_slot_rule(run.did, self.campaign, rule_id)
            rule = self.catalog.rule(rule_id)
        return self._wait(run, f"{TAPE}staging to {rse} by rule {rule['id']} ({rule['state']})")

    def release(self, did: str) -> None:
        """Give back a run's staging slot, removing its staging rule first (so the slot never outlives the rule)."""
        slot = self.store.slot(did, self.campaign)
        if slot is None:
            return
        if slot.rule_id:
            try:
                release_rule(self.catalog, slot.rule_id)
            except RucioException as err:  # kept: the slot stays taken until the rule is gone (retried each pass)
                log.error("%s: cannot remove staging rule %s: %s", did, slot.rule_id, last_line(err))
                return
        self.store.free_slot(did, self.campaign)
        log.info("%s: staging slot released", did)

    def release_finished(self, cancelled: bool = False) -> None:
        """Release the slots of runs that are done, failed or cancelled (after a crash, a cancel, an outage);
        `cancelled`: every slot of a run not in flight."""
        for slot in self.store.slots(self.campaign):
            run = self.store.get(slot.did, self.campaign)
            if run is None or run.state in (DONE, FAILED, CANCELLED) or (cancelled and run.state in PENDING):
                self.release(slot.did)

    def _available(self, scope: str, name: str) -> bool:
        return any(r.state == "AVAILABLE" for r in self.catalog.replicas(scope, name))

    def _wait(self, run: Run, what: str) -> None:
        if run.waiting_for != what:
            log.info("%s: waiting for %s", run.did, what)
        self.store.wait(run.did, self.campaign, what)
        return None
