"""Experiment profiles: one validated TOML file describes an experiment's scopes, names, RSEs and accounts."""

from __future__ import annotations

import os
import re
import string
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROFILE_ENV = "CYGNO_DM_PROFILE"
PACKAGED = Path(__file__).parent / "profiles"

SCOPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,24}$")
ACCOUNT_RE = re.compile(r"^[a-z0-9_.-]{1,25}$")
RSE_RE = re.compile(r"^[A-Z0-9_-]{1,64}$")
TAG_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
CLIENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
GROUP_RE = re.compile(r"^(/[A-Za-z0-9][A-Za-z0-9._-]*)+$")
STORAGE_OPS = ("read", "create", "modify")
METADATA_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

RseKind = Literal["posix", "s3", "webdav", "tape"]
Role = Literal["root", "admin", "daq", "data-manager", "production", "user"]


class ProfileError(ValueError):
    """A profile broke a rule; the message names the field and the rule."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check(pattern: re.Pattern[str], what: str, value: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} must match {pattern.pattern}")
    return value


class Experiment(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
    description: str = ""
    vo: str = "def"


class Scopes(_Strict):
    raw: list[str]
    sim: list[str] = []
    analysis: list[str] = []
    user_prefix: str = "user."

    @field_validator("raw", "sim", "analysis")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return [_check(SCOPE_RE, "scope name", s) for s in v]

    @property
    def all(self) -> list[str]:
        return [*self.raw, *self.sim, *self.analysis]


class Naming(_Strict):
    tags: list[str]
    run_digits_min: Annotated[int, Field(ge=1, le=12)] = 5
    raw_suffix: str = ".mid.gz"
    max_name_length: Annotated[int, Field(ge=16, le=250)] = 250
    runs_per_dataset: Annotated[int, Field(ge=1)] = 100
    # Other experiments' raw names: a regex on the whole DID name with the groups `tag` (the DAQ directory) and
    # `run` (the file's sequence number), e.g. `(?P<tag>LNF)/(?P=tag)_(?P<date>[0-9]{8})_(?P<run>[0-9]{6})\.h5`.
    pattern: str | None = None
    dataset: str | None = None  # dataset of a raw file from the pattern's groups, e.g. "{tag}/{date}"

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one TAG is required")
        return [_check(TAG_RE, "TAG", t) for t in v]

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            groups = re.compile(v).groupindex
        except re.error as err:
            raise ValueError(f"pattern {v!r} is not a valid regular expression: {err}") from None
        missing = {"tag", "run"} - groups.keys()
        if missing:
            raise ValueError(f"pattern needs the named groups (?P<tag>...) and (?P<run>...); missing {sorted(missing)}")
        return v

    @model_validator(mode="after")
    def _dataset(self) -> Naming:
        if self.dataset is None:
            return self
        fields = {f for _, f, _, _ in string.Formatter().parse(self.dataset) if f is not None}
        known = set(self.raw_name_re.groupindex)
        if not fields or not fields <= known:
            raise ValueError(f"dataset {self.dataset!r} may use only the pattern's groups {sorted(known)} "
                             f"(in braces), got {sorted(fields) or 'none'}")
        return self

    @cached_property
    def raw_name_re(self) -> re.Pattern[str]:
        """Regex for raw DID names: `pattern`, else `<TAG>/run<N><suffix>` with N of at least run_digits_min digits."""
        if self.pattern is not None:
            return re.compile(rf"^(?:{self.pattern})$")
        tags = "|".join(re.escape(t) for t in self.tags)
        return re.compile(rf"^(?P<tag>{tags})/run(?P<run>[0-9]{{{self.run_digits_min},}}){re.escape(self.raw_suffix)}$")

    def describe(self) -> str:
        """The raw file-name rule in words."""
        if self.pattern is not None:
            return f"match {self.pattern} (suffix {self.raw_suffix})"
        return (f"are <TAG>/run<N>{self.raw_suffix} with TAG in {'|'.join(self.tags)} and N of at least "
                f"{self.run_digits_min} digits")


class Account(_Strict):
    name: str
    role: Role
    email: str = ""
    password: str | None = None  # testbed profiles only; production identities come from IAM/x509

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check(ACCOUNT_RE, "account name", v)


class Rse(_Strict):
    kind: RseKind
    site: str = ""
    endpoint: str | None = None  # URL of the storage (s3, webdav, tape)
    path: str | None = None  # local directory (posix)
    prefix: str = "/"  # bucket for s3, base path for webdav/tape
    attributes: dict[str, str | int | float | bool] = {}
    credentials: dict[str, str] = {}  # s3: access_key, secret_key, region (testbed only)
    # The endpoint checks WLCG bearer tokens, so Rucio hands FTS per-file tokens for it (RSE attribute
    # oidc_support). Rucio does so only for davs endpoints; default: davs tape endpoints (ours check tokens).
    tokens: bool | None = None

    @property
    def accepts_tokens(self) -> bool:
        """Whether Rucio should ask for tokens for this RSE's transfers."""
        if self.tokens is None:
            return self.kind == "tape" and (self.endpoint or "").startswith("davs://")
        return self.tokens

    @model_validator(mode="after")
    def _where(self) -> Rse:
        if self.kind == "posix":
            if not self.path:
                raise ValueError("posix RSEs need 'path'")
        elif not self.endpoint:
            raise ValueError(f"{self.kind} RSEs need 'endpoint'")
        elif not re.match(r"^(https?|davs?|s3)://[^/\s]+", self.endpoint):
            raise ValueError(f"endpoint {self.endpoint!r} must be an http(s)/dav(s)/s3 URL with a host")
        elif self.kind == "s3" and not {"access_key", "secret_key"} <= self.credentials.keys():
            raise ValueError("s3 RSEs need credentials.access_key and credentials.secret_key")
        if self.accepts_tokens and not (self.endpoint or "").startswith("davs://"):
            raise ValueError("tokens: Rucio hands tokens only to davs:// endpoints (s3 sites take signed URLs)")
        return self


class Rule(_Strict):
    rse_expression: str
    copies: Annotated[int, Field(ge=1)] = 1
    lifetime_days: Annotated[int, Field(ge=1)] | None = None
    notify: Literal["N", "Y", "C", "P"] = "C"


class MetadataKey(_Strict):
    """A typed run-metadata key (the Rucio policy package validates every value against it)."""

    type: Literal["int", "float", "str", "datetime"]
    min: float | None = None
    max: float | None = None


class Processing(_Strict):
    """Where reconstruction of DIDs runs, reads and writes (`cygno-dm reco run SCOPE:NAME`)."""

    site_rse: str  # processing runs next to this RSE: replicas are read from the closest disk by `distances`
    staging_rse: str  # disk RSE that tape recalls go to (a rule with staging_lifetime_days)
    output_rse: str  # RSE that derived files (RECO/, PED/) are uploaded to
    output_scope: str | None = None  # default: the first analysis scope
    staging_lifetime_days: Annotated[int, Field(ge=1)] = 7
    campaign: str = "default"  # reco_campaign of registered outputs (--campaign overrides)
    version: str = "{software}-{config}"  # RECO/<version>/...: {software} version, {config} config hash
    pedestal_filter: str = "run_type=pedestal"  # which runs are pedestal runs, as a `rucio did list --filter`
    pedestal_min_events: Annotated[int, Field(ge=1)] = 100  # pedestal runs need number_of_events >= this
    pedestal_frames: Annotated[int, Field(ge=2)] = 200  # frames averaged into a pedestal map

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        try:
            v.format(software="s", config="c")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"version {v!r} may use only the fields {{software}} and {{config}}: {err}") from None
        return v


class Ingest(_Strict):
    """How the DAQ uploader (`cygno-dm ingest`) decides a file is complete and what metadata it attaches."""

    ready: Literal["gzip", "hdf5", "settled"] = "gzip"  # settled size plus a complete gzip stream / HDF5 file
    metadata_from_name: dict[str, str] = {}  # metadata key -> group of naming.pattern
    metadata_from_hdf5: dict[str, str] = {}  # metadata key -> attribute of the HDF5 file's root group


class Messaging(_Strict):
    """The STOMP broker Rucio's Hermes publishes to and the lifecycle daemon listens on."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 61613
    destination: str = "/topic/rucio.events"
    virtual_host: str = "/"  # RabbitMQ takes STOMP 1.2's host header as the vhost: name it
    username: str = "guest"  # testbed broker; production brokers take their credentials from the environment
    password: str = "guest"


class TokenClients(_Strict):
    """Client registrations at the issuer: which robot client each service and DAQ account asks tokens with.

    The transfer service has no client of its own: it copies with the per-file tokens Rucio's client asks for."""

    rucio: str = "rucio"  # Rucio's conveyor/reaper: tokens for the transfer service and the storage
    people: str = "people"  # people's device flow and refresh tokens (oidc-agent)
    daq: dict[str, str] = {}  # DAQ account -> its robot client (default: the account's name)

    @field_validator("rucio", "people")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check(CLIENT_RE, "client id", v)

    @field_validator("daq")
    @classmethod
    def _ids(cls, v: dict[str, str]) -> dict[str, str]:
        for client in v.values():
            _check(CLIENT_RE, "client id", client)
        return v


class GroupGrant(_Strict):
    """What a `wlcg.groups` group may do on the S3 sites without storage scopes (MinIO's claim-based policy)."""

    group: str
    permissions: list[Literal["read", "create", "modify"]]
    path: str = "/"  # /<bucket>[/<key prefix>]

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        return _check(GROUP_RE, "group", v)

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one of read, create, modify is required")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or "//" in v or any(c.isspace() for c in v):
            raise ValueError(f"path {v!r} must be /<bucket>[/<prefix>] (absolute, no blanks)")
        return v

    def scopes(self) -> list[str]:
        """The grant as WLCG storage scopes (`storage.read:/cygno-data`)."""
        return [f"storage.{op}:{self.path}" for op in self.permissions]


class Tokens(_Strict):
    """The WLCG token issuer (INDIGO IAM in production, the testbed's identity provider on the testbed) and what
    the services expect of its tokens. Production differs from the testbed only in `issuer` and `clients`."""

    issuer: str
    clients: TokenClients = TokenClients()
    rucio_audience: str = "rucio"  # Rucio's own login (storage and transfer-service audiences are their hosts)
    groups: dict[str, list[str]] = {}  # role or "rucio" -> wlcg.groups; default: /<experiment>/<role>
    group_grants: list[GroupGrant] = []  # S3 sites: permissions of tokens without storage scopes, by group

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        if not re.fullmatch(r"https://[^/\s?#]+(/[^\s?#]*)?", v):
            raise ValueError(f"issuer {v!r} must be an https:// URL with a host (no query or fragment)")
        return v

    @field_validator("rucio_audience")
    @classmethod
    def _audience(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v):
            raise ValueError(f"audience {v!r} must be one word")
        return v

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for who, groups in v.items():
            if who not in ("rucio", *get_args(Role)):
                raise ValueError(f"{who!r} must be 'rucio' or a role {list(get_args(Role))}")
            for group in groups:
                _check(GROUP_RE, "group", group)
        return v


class TapeTiming(_Strict):
    """How the testbed's tape endpoint behaves: seconds to migrate, to evict from the buffer, to recall."""

    migrate_after: Annotated[float, Field(ge=0)] = 2.0
    evict_after: Annotated[float, Field(ge=0)] = 3600.0
    stage_latency: Annotated[float, Field(ge=0)] = 2.0


class TestbedSettings(_Strict):
    host: str = "127.0.0.1"
    rucio_port: int = 18080
    fts_port: int = 18446
    tape: TapeTiming = TapeTiming()


class Profile(_Strict):
    experiment: Experiment
    scopes: Scopes
    naming: Naming
    accounts: list[Account]
    rses: dict[str, Rse]
    distances: dict[str, dict[str, int]] = {}
    replication: dict[str, list[Rule]] = {}
    metadata: dict[str, MetadataKey] = {}  # empty: the policy package's defaults (CYGNO's run-log columns)
    processing: Processing | None = None
    ingest: Ingest = Ingest()
    quotas: dict[str, Annotated[int, Field(ge=0)]] = {}  # RSE -> bytes per account; default 1 PB on every RSE
    messaging: Messaging | None = None  # Hermes hints for the lifecycle daemon (none: reconciliation only)
    tokens: Tokens | None = None  # WLCG tokens (none: services take certificates, passwords and keys only)
    testbed: TestbedSettings = TestbedSettings()

    @field_validator("rses")
    @classmethod
    def _rse_names(cls, v: dict[str, Rse]) -> dict[str, Rse]:
        for name in v:
            _check(RSE_RE, "RSE name", name)
        if not v:
            raise ValueError("at least one RSE is required")
        return v

    @model_validator(mode="after")
    def _cross(self) -> Profile:
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("accounts: names must be unique")
        for src, dsts in self.distances.items():
            for rse in (src, *dsts):
                if rse not in self.rses:
                    raise ValueError(f"distances: unknown RSE {rse!r}")
        for key in self.metadata:
            _check(METADATA_KEY_RE, "metadata key", key)
        for dtype in self.replication:
            if dtype not in ("raw", "sim", "analysis"):
                raise ValueError(f"replication: data type {dtype!r} must be raw, sim or analysis")
        if self.processing is not None:
            self._check_processing(self.processing)
        for rse in self.quotas:
            if rse not in self.rses:
                raise ValueError(f"quotas: unknown RSE {rse!r}")
        self._check_ingest()
        if self.tokens is not None:
            self._check_tokens(self.tokens)
        return self

    def _check_tokens(self, tokens: Tokens) -> None:
        for account in tokens.clients.daq:
            if account not in {a.name for a in self.accounts_with("daq")}:
                raise ValueError(f"tokens.clients.daq.{account}: not a DAQ account of [[accounts]]")
        ids = [tokens.clients.rucio, tokens.clients.people, *(self.token_client(a.name) for a in self.accounts_with("daq"))]
        if len(set(ids)) != len(ids):
            raise ValueError(f"tokens.clients: client ids must be distinct, got {ids}")
        buckets = set(self.scopes.all)
        for n, grant in enumerate(tokens.group_grants):
            bucket = grant.path.strip("/").split("/")[0]
            if bucket and bucket not in buckets and not bucket.startswith(self.scopes.user_prefix):
                raise ValueError(f"tokens.group_grants.{n}.path: bucket {bucket!r} is not a scope of the profile")

    def _check_ingest(self) -> None:
        groups = set(self.naming.raw_name_re.groupindex)
        for key, group in self.ingest.metadata_from_name.items():
            if group not in groups:
                raise ValueError(f"ingest.metadata_from_name.{key}: {group!r} is not a group of the naming pattern "
                                 f"{sorted(groups)}")
        for where in ("metadata_from_name", "metadata_from_hdf5"):
            for key in getattr(self.ingest, where):
                _check(METADATA_KEY_RE, "metadata key", key)
                if self.metadata and key not in self.metadata:
                    raise ValueError(f"ingest.{where}.{key}: not a declared metadata key ([metadata])")
        if self.ingest.ready == "gzip" and not self.naming.raw_suffix.endswith(".gz"):
            raise ValueError(f"ingest.ready: 'gzip' needs gzip files; naming.raw_suffix is {self.naming.raw_suffix!r}")

    def _check_processing(self, proc: Processing) -> None:
        for field_name in ("site_rse", "staging_rse", "output_rse"):
            rse = getattr(proc, field_name)
            if rse not in self.rses:
                raise ValueError(f"processing.{field_name}: unknown RSE {rse!r}")
            if field_name != "site_rse" and self.rses[rse].kind == "tape":
                raise ValueError(f"processing.{field_name}: {rse} is tape; a disk RSE is needed")
        if proc.output_scope is not None and proc.output_scope not in self.scopes.analysis:
            raise ValueError(f"processing.output_scope: {proc.output_scope!r} is not an analysis scope")
        if proc.output_scope is None and not self.scopes.analysis:
            raise ValueError("processing: the profile has no analysis scope for outputs")

    def token_client(self, account: str) -> str:
        """The robot client a DAQ account asks tokens with."""
        assert self.tokens is not None
        return self.tokens.clients.daq.get(account, account)

    def token_groups(self, who: str) -> list[str]:
        """The `wlcg.groups` of a role's tokens (or of Rucio's, `who` = "rucio")."""
        assert self.tokens is not None
        return list(self.tokens.groups.get(who, [f"/{self.experiment.name}/{who}"]))

    def token_audience(self, service: str) -> str:
        """The audience a service's tokens must name: `rucio` (login), or the host of an RSE's endpoint, as Rucio 41
        asks for it (`determine_audience_for_rse`) and the DAQ uploader does."""
        assert self.tokens is not None
        if service == "rucio":
            return self.tokens.rucio_audience
        return urlsplit(self.rses[service].endpoint or "").hostname or ""

    def accounts_with(self, role: str) -> list[Account]:
        """Accounts holding a role."""
        return [a for a in self.accounts if a.role == role]

    def account(self, name: str) -> Account:
        """The account called `name`."""
        for a in self.accounts:
            if a.name == name:
                return a
        raise KeyError(f"profile {self.experiment.name} has no account {name!r}")


def _format(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        msg = "is required"
    elif first["type"] == "extra_forbidden":
        msg = "is not a known field"
    elif first["type"] == "literal_error":
        msg = f"must be one of {first['ctx']['expected']}"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {where}: {msg}{more}"


def parse_profile(data: dict, source: str = "<profile>") -> Profile:
    """Validate a profile mapping; raise ProfileError naming the field and the rule it broke."""
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        raise ProfileError(_format(err, source)) from None


def load_profile(path: str | os.PathLike[str] | None = None) -> Profile:
    """Load a profile from a path, a packaged profile name, or $CYGNO_DM_PROFILE (default: cygno-testbed)."""
    ref = str(path or os.environ.get(PROFILE_ENV) or "cygno-testbed")
    file = Path(ref)
    if not file.exists() and (PACKAGED / f"{ref}.toml").exists():
        file = PACKAGED / f"{ref}.toml"
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ProfileError(f"{ref}: profile not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"{file}: not valid TOML: {err}") from None
    return parse_profile(data, str(file))
