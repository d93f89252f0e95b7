"""Reconstruct one raw run DID: check it, find its pedestal, read it (recalling it from tape if needed), reconstruct,
and register the output with provenance."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reco
from cygno_dm.ingest.catalog import CatalogUnavailable
from cygno_dm.processing import register
from cygno_dm.processing.catalog import ProcessingCatalog
from cygno_dm.processing.dids import RawFile, raw_file, resolve
from cygno_dm.processing.errors import ProcessingError, Unavailable
from cygno_dm.processing.events import Events
from cygno_dm.processing.fetch import CorruptReplica, cached, fetch
from cygno_dm.processing.pedestals import made_from, make_pedestal, pedestal_run
from cygno_dm.processing.replicas import Placement, placement
from cygno_dm.processing.stage import staging_rule, wait_rule
from cygno_dm.profile import Profile
from reco.config import RecoConfig
from reco.errors import RecoInputError
from reco.runner import reconstruct_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """How to process: where files go, the reconstruction parameters, whether to register."""

    cache: Path  # raw inputs (while used) and pedestal maps, as <cache>/<scope>/<name>
    output_dir: Path = Path(".")  # outputs as <output_dir>/<output DID name>
    output: Path | None = None  # this exact output file (one run only)
    cfg: RecoConfig = field(default_factory=RecoConfig)
    workers: int = 1
    max_frames: int | None = None
    register: bool = False
    campaign: str | None = None  # default: the profile's processing.campaign
    reco_path: str | None = None  # outputs as RECO/<reco_path>/..., dataset RECO/<reco_path> (default: the version)
    keep_raw: bool = False  # keep the raw files read into the cache
    stage_timeout: float = 86400.0
    poll: float = 5.0


@dataclass(frozen=True)
class Result:
    """What processing one run produced."""

    did: str
    output: Path
    output_did: str
    registered: bool  # uploaded and registered now (False: not asked, or Rucio already held these bytes)
    pedestal_did: str
    n_events: int
    n_clusters: int


class Processor:
    """Reconstructs raw run DIDs of one experiment with one Rucio client."""

    def __init__(self, profile: Profile, client: Any, settings: Settings, events: Events | None = None) -> None:
        self.profile = profile
        self.proc = register.settings(profile)
        self.settings = settings
        self.catalog = ProcessingCatalog(lambda: client, client.account)
        self.events = events or Events()
        self.version = register.reco_version(profile, settings.cfg)
        self.path = settings.reco_path or self.version
        self._pedestals: dict[str, tuple[str, Path]] = {}

    # -- what to do ------------------------------------------------------------------------------
    def resolve(self, target: str | None = None, scope: str | None = None,
                filter_: str | None = None) -> list[tuple[str, str]]:
        """(scope, name) of every raw file a DID or a metadata filter designates."""
        with self._outages():
            return resolve(self.catalog, self.profile, target, scope, filter_)

    def output_did(self, scope: str, name: str) -> str:
        """The DID the output of raw file scope:name is registered as with these settings."""
        m = self.profile.naming.raw_name_re.match(name)
        if not m:
            raise ProcessingError(f"{scope}:{name}: not a raw run file name <TAG>/run<N>{self.profile.naming.raw_suffix}")
        return f"{register.output_scope(self.profile)}:{register.reco_name(self.path, m['tag'], m['run'])}"

    def is_registered(self, scope: str, name: str) -> bool:
        """Whether the output of scope:name for these settings is registered with an AVAILABLE replica."""
        out_scope, out_name = self.output_did(scope, name).split(":", 1)
        with self._outages():
            return any(r.state == "AVAILABLE" for r in self.catalog.replicas(out_scope, out_name))

    def process(self, scope: str, name: str) -> Result:
        """Reconstruct scope:name; ProcessingError (bad input) or Unavailable (outage), nothing registered then."""
        with self._outages():
            try:
                return self._process(scope, name)
            except RecoInputError as err:
                raise ProcessingError(f"{scope}:{name}: {err}") from None

    def pedestal_map(self, scope: str, name: str) -> str:
        """Make (or find) the registered pedestal map of pedestal run scope:name; its DID."""
        with self._outages():
            return self.pedestal(raw_file(self.catalog, self.profile, scope, name))[0]

    # -- steps ----------------------------------------------------------------------------------
    @contextmanager
    def _outages(self) -> Iterator[None]:
        try:
            yield
        except CatalogUnavailable as err:
            raise Unavailable(str(err)) from None

    def _process(self, scope: str, name: str) -> Result:
        s = self.settings
        raw = raw_file(self.catalog, self.profile, scope, name)
        if s.register and s.max_frames is not None:
            raise ProcessingError(f"{raw.did}: --max-frames makes a partial output, which is never registered")
        self._readable(raw.scope, raw.name)
        ped_raw = raw_file(self.catalog, self.profile, raw.scope, pedestal_run(self.catalog, self.profile, raw))
        out_scope, out_name = register.output_scope(self.profile), register.reco_name(self.path, raw.tag, raw.digits)
        out = s.output or s.output_dir / out_name
        out.parent.mkdir(parents=True, exist_ok=True)
        raw_path = self.acquire(raw.scope, raw.name, raw.bytes, raw.adler32)
        try:
            ped_did, ped_path = self.pedestal(ped_raw)
            self.events.step(raw.did, f"reconstructing -> {out}")
            summary = reconstruct_run(raw_path, ped_path, out, s.cfg, s.workers, s.max_frames,
                                      progress=self.events.advance, on_start=self._start("reco"))
        finally:
            self._drop(raw_path)
        registered = False
        if s.register:
            self.events.step(raw.did, f"registering {out_scope}:{out_name}")
            meta = {"run_number": raw.run, "number_of_events": summary.n_events, "parent_did": raw.did,
                    "parent_adler32": raw.adler32, "pedestal_did": ped_did, "software_version": reco.__version__,
                    "config_hash": register.config_hash(s.cfg), "reco_version": self.version,
                    "reco_campaign": s.campaign or self.proc.campaign}
            registered = register.publish(self.catalog, self.profile, out, out_scope, out_name,
                                          register.reco_dataset(self.path), meta)
        return Result(raw.did, out, f"{out_scope}:{out_name}", registered, ped_did, summary.n_events,
                      summary.n_clusters)

    def _start(self, label: str) -> Callable[[int], None]:
        return lambda total: self.events.start(label, total)

    def _drop(self, path: Path) -> None:
        if not self.settings.keep_raw:
            path.unlink(missing_ok=True)

    def _placement(self, scope: str, name: str) -> Placement:
        return placement(self.catalog, self.profile, self.proc.site_rse, scope, name)

    def _readable(self, scope: str, name: str) -> Placement:
        where = self._placement(scope, name)
        if not where.disk and not where.tape:
            raise ProcessingError(f"{scope}:{name}: no AVAILABLE replica to read ({where.describe()})")
        return where

    def pedestal(self, ped_raw: RawFile) -> tuple[str, Path]:
        """The map DID of a pedestal run and a verified local copy: the registered map if there is one, else
        one computed from the pedestal run (and registered when the settings say so)."""
        scope, name = register.output_scope(self.profile), register.pedestal_name(ped_raw.tag, ped_raw.digits)
        did = f"{scope}:{name}"
        if did in self._pedestals:
            return self._pedestals[did]
        local = self.settings.cache / scope / name
        info = self.catalog.get_file(scope, name)
        if info is not None:
            self.events.step(did, "using the registered pedestal map")
            self.acquire(scope, name, int(info["bytes"]), str(info["adler32"]).lower())
        else:
            if not (local.is_file() and made_from(local, ped_raw.adler32)):
                self._readable(ped_raw.scope, ped_raw.name)
                path = self.acquire(ped_raw.scope, ped_raw.name, ped_raw.bytes, ped_raw.adler32)
                self.events.step(did, f"computing the pedestal map of {ped_raw.did}")
                try:
                    make_pedestal(path, local, self.proc.pedestal_frames, self.events.advance, self._start("pedestal"))
                finally:
                    self._drop(path)
            if self.settings.register:
                self.events.step(did, "registering the pedestal map")
                meta = {"run_number": ped_raw.run, "parent_did": ped_raw.did, "parent_adler32": ped_raw.adler32,
                        "software_version": reco.__version__}
                register.publish(self.catalog, self.profile, local, scope, name,
                                 register.pedestal_dataset(ped_raw.tag), meta)
        self._pedestals[did] = (did, local)
        return did, local

    def acquire(self, scope: str, name: str, size: int, adler32: str) -> Path:
        """A verified local copy of scope:name in the cache: the closest disk replica, recalled from tape first
        when it is only there."""
        did = f"{scope}:{name}"
        dest = self.settings.cache / scope / name
        if cached(dest, size, adler32):
            log.info("%s: using the verified copy in %s", did, dest)
            return dest
        where = self._readable(scope, name)
        if not where.disk:
            self.stage(scope, name)
            where = self._placement(scope, name)
            if not where.disk:
                raise Unavailable(f"{did}: the staging rule is OK but no disk replica is AVAILABLE ({where.describe()})")
        problems: list[ProcessingError] = []
        for rse in where.disk:
            self.events.step(did, f"reading {size:,} bytes from {rse}")
            try:
                return fetch(self.catalog, scope, name, rse, size, adler32, dest)
            except CorruptReplica as err:
                self.catalog.declare_suspicious(scope, name, rse, str(err))
                problems.append(err)
            except Unavailable as err:
                problems.append(err)
        if len(problems) == 1:
            raise problems[0]
        kind = ProcessingError if all(isinstance(p, CorruptReplica) for p in problems) else Unavailable
        raise kind(f"{did}: no disk replica could be read: "
                   + "; ".join(str(p).removeprefix(f"{did}: ") for p in problems))

    def stage(self, scope: str, name: str) -> None:
        """Recall scope:name from tape to the staging RSE and wait until it is there."""
        did, rse = f"{scope}:{name}", self.proc.staging_rse
        rule_id, created = staging_rule(self.catalog, scope, name, rse, self.proc.staging_lifetime_days * 86400)
        self.events.step(did, f"{'asked Rucio to recall it' if created else 'waiting for its recall'} from tape to "
                              f"{rse} (rule {rule_id})")
        wait_rule(self.catalog, did, rule_id, self.settings.stage_timeout, self.settings.poll,
                  lambda rule: self.events.rule(did, rule))
