"""The lifecycle state of each (raw run DID, campaign): seen, waiting (for what), submitted, running, done, failed.

One row per (did, campaign), enforced by a unique constraint; every transition is a compare-and-set UPDATE in its
own transaction, so two daemons, a restart or a duplicate hint can never submit a run twice: only the UPDATE that
moves a row out of `seen`/`waiting` claims it. Rows a dead daemon held (its lease expired) go back to `seen`.
Runs recalled from tape hold a slot of their campaign's staging window (`lifecycle_staging`) from the moment their
staging rule is asked for until they are done or failed; a slot is taken under a lock on the campaign's window row
(`lifecycle_windows`), so whatever the number of daemons the slots never exceed the window.
SQLite by default, PostgreSQL with a postgresql:// URL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

SEEN, WAITING, SUBMITTED, RUNNING, DONE, FAILED = "seen", "waiting", "submitted", "running", "done", "failed"
CANCELLED = "cancelled"
STATES = (SEEN, WAITING, SUBMITTED, RUNNING, DONE, FAILED, CANCELLED)
CAMPAIGN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PENDING = (SEEN, WAITING)
IN_FLIGHT = (SUBMITTED, RUNNING)

metadata = sa.MetaData()
runs = sa.Table(
    "lifecycle_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("did", sa.String(512), nullable=False),
    sa.Column("campaign", sa.String(128), nullable=False),
    sa.Column("run_number", sa.BigInteger, nullable=False),
    sa.Column("pedestal", sa.Boolean, nullable=False, default=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("waiting_for", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("output_did", sa.String(512)),
    sa.Column("owner", sa.String(128)),
    sa.Column("lease_until", sa.Float),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Column("submitted_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("did", "campaign", name="uq_lifecycle_run_campaign"),
    sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in STATES)})", name="ck_lifecycle_state"),
    sa.Index("ix_lifecycle_campaign_state", "campaign", "state"),
)

campaigns = sa.Table(
    "lifecycle_campaigns", metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("filter", sa.Text, nullable=False),  # which raw runs, as `rucio did list --filter`
    sa.Column("config", sa.Text, nullable=False),  # reconstruction parameters, RecoConfig.to_json()
    sa.Column("software_version", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # active or cancelled
    sa.Column("created_at", sa.Float, nullable=False),
)

windows = sa.Table(  # one row per campaign: the staging window, and the lock that serialises taking its slots
    "lifecycle_windows", metadata,
    sa.Column("campaign", sa.String(128), primary_key=True),
    sa.Column("runs", sa.Integer, nullable=False),  # at most this many runs staged at once (0: no staging)
    sa.Column("bytes", sa.BigInteger),  # and at most this many bytes (None: no byte bound)
    sa.Column("updated_at", sa.Float, nullable=False),
)

staging = sa.Table(  # one row per run holding a slot of its campaign's window: its recall is asked for or done
    "lifecycle_staging", metadata,
    sa.Column("did", sa.String(512), primary_key=True),
    sa.Column("campaign", sa.String(128), primary_key=True),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("rule_id", sa.String(64)),  # None until the rule is made (a crash in between: the next check makes it)
    sa.Column("since", sa.Float, nullable=False),
)


class StoreError(RuntimeError):
    """The state database cannot be used as given (bad URL, unreachable)."""


@dataclass(frozen=True)
class Campaign:
    """A reprocessing: which runs, with which parameters and software."""

    name: str
    filter: str
    config: str
    software_version: str
    state: str
    created_at: float


@dataclass(frozen=True)
class Run:
    """One row: a raw run DID in one campaign."""

    did: str
    campaign: str
    run_number: int
    pedestal: bool
    state: str
    waiting_for: str | None
    reason: str | None
    attempts: int
    output_did: str | None
    owner: str | None
    lease_until: float | None
    seen_at: float
    submitted_at: float | None
    finished_at: float | None
    updated_at: float


@dataclass(frozen=True)
class Slot:
    """A run's place in its campaign's staging window."""

    did: str
    campaign: str
    bytes: int
    rule_id: str | None
    since: float


@dataclass(frozen=True)
class Window:
    """A campaign's staging window and its use."""

    runs: int  # bound on runs (0: staging off)
    bytes: int | None  # bound on bytes (None: none)
    used_runs: int
    used_bytes: int

    def fits(self, size: int) -> bool:
        """Whether a run of `size` bytes may be staged now (a run alone may exceed the byte bound, or nothing
        would ever move)."""
        return self.used_runs < self.runs and (self.bytes is None or self.used_runs == 0
                                               or self.used_bytes + size <= self.bytes)

    def describe(self) -> str:
        """`2/5 runs, 3,000 bytes` (with the byte bound when there is one)."""
        size = f"{self.used_bytes:,}" + (f"/{self.bytes:,}" if self.bytes is not None else "")
        return f"{self.used_runs}/{self.runs} runs, {size} bytes"


def database_url(database: str | None, default_dir: Path) -> str:
    """SQLite in `default_dir` unless a postgresql:// (psycopg 3) or sqlite:/// URL is given."""
    if not database:
        default_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(default_dir / 'lifecycle.sqlite').resolve()}"
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database.startswith(prefix):
            return "postgresql+psycopg://" + database.removeprefix(prefix)
    if database.startswith("sqlite:///"):
        return database
    raise StoreError(f"--database: {database!r} must be a sqlite:/// or postgresql:// URL")


class Store:
    """Lifecycle rows in one database; each method is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        sqlite = url.startswith("sqlite")
        self.engine = sa.create_engine(url, connect_args={"timeout": 30} if sqlite else {},
                                       pool_pre_ping=not sqlite)
        if sqlite:
            @sa.event.listens_for(self.engine, "connect")
            def _wal(conn: Any, _record: Any) -> None:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA busy_timeout=30000")
        try:
            metadata.create_all(self.engine)
        except sa.exc.OperationalError as err:
            raise StoreError(f"--database: cannot use {self.engine.url.render_as_string()}: {err.orig}") from None

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    # -- new rows ---------------------------------------------------------------------------------
    def see(self, campaign: str, found: Iterable[tuple[str, int, bool]]) -> list[str]:
        """Record (did, run number, is pedestal) as seen in `campaign`; return the DIDs that were new."""
        rows = [{"did": did, "campaign": campaign, "run_number": run, "pedestal": ped, "state": SEEN,
                 "attempts": 0} for did, run, ped in found]
        if not rows:
            return []
        now = time.time()
        with self.engine.begin() as conn:
            known = {r for (r,) in conn.execute(sa.select(runs.c.did).where(
                runs.c.campaign == campaign, runs.c.did.in_([r["did"] for r in rows])))}
            fresh = [{**r, "seen_at": now, "updated_at": now} for r in rows if r["did"] not in known]
            if fresh:
                conn.execute(self._insert_ignore(runs, ["did", "campaign"]), fresh)
        return [r["did"] for r in fresh]

    def _insert_ignore(self, table: sa.Table, keys: list[str]) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing(index_elements=keys)

    # -- transitions (compare-and-set) -----------------------------------------------------------
    def _move(self, did: str, campaign: str, from_states: tuple[str, ...], holder: str | None = None,
              **values: Any) -> bool:
        cond = [runs.c.did == did, runs.c.campaign == campaign, runs.c.state.in_(from_states)]
        if holder is not None:
            cond.append(runs.c.owner == holder)
        with self.engine.begin() as conn:
            res = conn.execute(sa.update(runs).where(*cond).values(updated_at=time.time(), **values))
        return res.rowcount == 1

    def wait(self, did: str, campaign: str, what: str) -> bool:
        """A pending run waits for `what` (a replica, its pedestal, Rucio)."""
        return self._move(did, campaign, PENDING, state=WAITING, waiting_for=what)

    def claim(self, did: str, campaign: str, owner: str, lease: float) -> bool:
        """Take a pending run for submission: True for exactly one caller, whatever the races."""
        now = time.time()
        return self._move(did, campaign, PENDING, state=SUBMITTED, owner=owner, lease_until=now + lease,
                          attempts=runs.c.attempts + 1, submitted_at=now, waiting_for=None)

    def running(self, did: str, campaign: str, owner: str) -> bool:
        """The executor started the job."""
        return self._move(did, campaign, (SUBMITTED,), owner, state=RUNNING)

    def done(self, did: str, campaign: str, output_did: str, owner: str | None = None) -> bool:
        """The output is registered (by our job, or found registered while pending)."""
        states = IN_FLIGHT if owner is not None else PENDING
        return self._move(did, campaign, states, owner, state=DONE, output_did=output_did, owner=None,
                          lease_until=None, waiting_for=None, reason=None, finished_at=time.time())

    def attempt_failed(self, did: str, campaign: str, owner: str, reason: str, max_attempts: int) -> str | None:
        """A job failed: back to `seen` for a retry, or `failed` with the reason once attempts reach the bound;
        the new state (None if the row was not ours)."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(runs.c.attempts).where(
                runs.c.did == did, runs.c.campaign == campaign, runs.c.owner == owner,
                runs.c.state.in_(IN_FLIGHT))).first()
            if row is None:
                return None
            state = FAILED if row.attempts >= max_attempts else SEEN
            conn.execute(sa.update(runs).where(runs.c.did == did, runs.c.campaign == campaign).values(
                state=state, reason=reason, owner=None, lease_until=None, updated_at=time.time(),
                finished_at=time.time() if state == FAILED else None))
        return state

    def release(self, did: str, campaign: str, owner: str, what: str) -> bool:
        """A job could not run for an outage (Rucio, storage): wait again, the attempt not counted."""
        return self._move(did, campaign, IN_FLIGHT, owner, state=WAITING, waiting_for=what, owner=None,
                          lease_until=None, attempts=runs.c.attempts - 1)

    def renew(self, owner: str, lease: float) -> None:
        """Extend the leases of the rows `owner` holds (the daemon is alive)."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(runs).where(runs.c.owner == owner, runs.c.state.in_(IN_FLIGHT))
                         .values(lease_until=time.time() + lease))

    def reclaim_expired(self, campaign: str) -> list[str]:
        """Rows whose holder died (lease expired) go back to `seen`; return their DIDs."""
        now = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(sa.update(runs).where(
                runs.c.campaign == campaign, runs.c.state.in_(IN_FLIGHT), runs.c.lease_until < now)
                .values(state=SEEN, owner=None, lease_until=None, updated_at=now,
                        reason="its daemon stopped while it was in flight").returning(runs.c.did))
            return [did for (did,) in res]

    # -- queries ----------------------------------------------------------------------------------
    def get(self, did: str, campaign: str) -> Run | None:
        """One row, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.did == did, runs.c.campaign == campaign)).first()
        return _run(row) if row else None

    def runs(self, campaign: str | None = None, states: tuple[str, ...] = STATES) -> list[Run]:
        """Rows in these states, pedestal runs first, then by run number."""
        query = sa.select(runs).where(runs.c.state.in_(states))
        if campaign is not None:
            query = query.where(runs.c.campaign == campaign)
        query = query.order_by(runs.c.pedestal.desc(), runs.c.run_number, runs.c.did)
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(query)]

    def counts(self, campaign: str | None = None) -> dict[str, int]:
        """Number of rows per state (every state listed)."""
        query = sa.select(runs.c.state, sa.func.count()).group_by(runs.c.state)
        if campaign is not None:
            query = query.where(runs.c.campaign == campaign)
        with self.engine.connect() as conn:
            found = dict(conn.execute(query).all())
        return {s: int(found.get(s, 0)) for s in STATES}

    # -- campaigns --------------------------------------------------------------------------------
    def create_campaign(self, name: str, filter_: str, config: str, software_version: str) -> Campaign:
        """A new active campaign; StoreError if the name breaks the rule or exists."""
        if not CAMPAIGN_RE.fullmatch(name):
            raise StoreError(f"campaign name {name!r} must match {CAMPAIGN_RE.pattern}")
        row = {"name": name, "filter": filter_, "config": config, "software_version": software_version,
               "state": "active", "created_at": time.time()}
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(campaigns), [row])
        except sa.exc.IntegrityError:
            raise StoreError(f"campaign {name!r} exists already (cancel it or choose another name)") from None
        return Campaign(**row)

    def campaign(self, name: str) -> Campaign | None:
        """A stored campaign, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(campaigns).where(campaigns.c.name == name)).first()
        return Campaign(**row._mapping) if row else None

    def cancel_campaign(self, name: str) -> int:
        """Cancel a campaign: its pending runs become `cancelled` (running jobs finish); how many."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(sa.update(campaigns).where(campaigns.c.name == name).values(state=CANCELLED))
            res = conn.execute(sa.update(runs).where(runs.c.campaign == name, runs.c.state.in_(PENDING))
                               .values(state=CANCELLED, reason="campaign cancelled", updated_at=now,
                                       finished_at=now))
        return res.rowcount

    # -- staging window ---------------------------------------------------------------------------
    def set_window(self, campaign: str, runs_: int, bytes_: int | None) -> None:
        """Set a campaign's staging window (the latest daemon started on it decides)."""
        with self.engine.begin() as conn:
            if conn.execute(sa.update(windows).where(windows.c.campaign == campaign).values(
                    runs=runs_, bytes=bytes_, updated_at=time.time())).rowcount == 0:
                conn.execute(self._insert_ignore(windows, ["campaign"]),
                             [{"campaign": campaign, "runs": runs_, "bytes": bytes_, "updated_at": time.time()}])

    def window(self, campaign: str) -> Window | None:
        """A campaign's staging window and its use; None if no daemon set one."""
        with self.engine.connect() as conn:
            return self._window(conn, campaign)

    def _window(self, conn: Any, campaign: str) -> Window | None:
        row = conn.execute(sa.select(windows).where(windows.c.campaign == campaign)).first()
        if row is None:
            return None
        n, total = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(staging.c.bytes), 0))
                                .where(staging.c.campaign == campaign)).one()
        return Window(row.runs, row.bytes, int(n), int(total))

    def take_slot(self, did: str, campaign: str, size: int) -> tuple[Slot | None, Window | None]:
        """The run's slot in the staging window: the one it holds, or a new one if there is room (None if not),
        with the window's use. The window row is locked first (an UPDATE: SQLite's write lock, a PostgreSQL row
        lock), so concurrent takers count one after the other and never overfill it."""
        with self.engine.begin() as conn:
            if conn.execute(sa.update(windows).where(windows.c.campaign == campaign)
                            .values(updated_at=time.time())).rowcount == 0:
                return None, None
            row = conn.execute(sa.select(staging).where(staging.c.did == did, staging.c.campaign == campaign)).first()
            win = self._window(conn, campaign)
            if row is not None:
                return Slot(**row._mapping), win
            if not win.fits(size):
                return None, win
            slot = Slot(did, campaign, size, None, time.time())
            conn.execute(sa.insert(staging), [slot.__dict__])
        return slot, Window(win.runs, win.bytes, win.used_runs + 1, win.used_bytes + size)

    def slot(self, did: str, campaign: str) -> Slot | None:
        """The slot a run holds, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(staging).where(staging.c.did == did, staging.c.campaign == campaign)).first()
        return Slot(**row._mapping) if row else None

    def set_slot_rule(self, did: str, campaign: str, rule_id: str) -> bool:
        """Record the staging rule of a slot."""
        with self.engine.begin() as conn:
            return conn.execute(sa.update(staging).where(staging.c.did == did, staging.c.campaign == campaign)
                                .values(rule_id=rule_id)).rowcount == 1

    def free_slot(self, did: str, campaign: str) -> bool:
        """Give a run's slot back (its staging rule is removed)."""
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(staging).where(staging.c.did == did,
                                                         staging.c.campaign == campaign)).rowcount == 1

    def slots(self, campaign: str) -> list[Slot]:
        """The slots held in a campaign's window."""
        with self.engine.connect() as conn:
            return [Slot(**r._mapping) for r in conn.execute(sa.select(staging).where(staging.c.campaign == campaign)
                                                             .order_by(staging.c.since))]

    def campaigns(self) -> list[str]:
        """Campaigns with rows."""
        with self.engine.connect() as conn:
            return [c for (c,) in conn.execute(sa.select(runs.c.campaign).distinct().order_by(runs.c.campaign))]


def _run(row: Any) -> Run:
    return Run(**{k: v for k, v in row._mapping.items() if k != "id"})
