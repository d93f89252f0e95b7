"""The one-machine testbed: a real Rucio server, its daemons and the storage, from one experiment profile."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from secrets import token_urlsafe
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from werkzeug.security import generate_password_hash

from cygno_dm.profile import Profile, Tokens, load_profile
from testbed import daemons, rucio_config
from testbed.private import private_dir, write_private
from testbed.rses import host_port, rse_settings, s3_credentials, storage_dir
from testbed.storage.health import http_ok, s3_ready, webdav_ready
from testbed.storage.tls import client_cert_path, client_dn, ensure_client_cert
from testbed.supervisor import Component, Supervisor, healthy

log = logging.getLogger(__name__)

DEFAULT_STATE = Path(os.environ.get("CYGNO_DM_STATE", ".state/testbed"))
RUCIO_SERVER = "rucio-server"
RUCIO_CERT, FTS_CERT = "service-rucio", "service-fts"  # client certificates of Rucio's daemons and the FTS
DAEMONS = "rucio-daemons"


class TestbedError(RuntimeError):
    """The testbed cannot do what was asked; the message says why."""


@dataclass
class Settings:
    """What `up` was asked for, kept in the state directory so later commands act on the same testbed."""

    profile: str
    database: str
    rucio_port: int
    fts_port: int
    host: str = "127.0.0.1"


def database_url(database: str | None, state: Path) -> str:
    """`sqlite` (default) or a PostgreSQL URL (Rucio 41 needs the psycopg 3 driver); anything else is refused."""
    if not database or database == "sqlite":
        return f"sqlite:///{(state / 'db' / 'rucio.db').resolve()}"  # db/ is 0700: the database holds live tokens
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database.startswith(prefix):
            return "postgresql+psycopg://" + database.removeprefix(prefix)
    raise TestbedError(f"--database: {database!r} must be 'sqlite' or a postgresql:// URL")


def ensure_postgres_database(url: str) -> None:
    """Create the PostgreSQL database named in the URL if it does not exist yet."""
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": target.database}).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    except sa.exc.OperationalError as err:
        raise TestbedError(f"--database: cannot reach PostgreSQL at {target.host}:{target.port}: {err.orig}") from None
    finally:
        admin.dispose()


def drop_postgres_database(url: str) -> None:
    """Drop the PostgreSQL database named in the URL (used to start from nothing)."""
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    admin.dispose()


def _saved_secrets(path: Path) -> dict[str, str]:
    """Client secrets already issued (kept across `up`s so that holders of a secret keep working)."""
    try:
        return {c["client_id"]: c["client_secret"] for c in json.loads(path.read_text())["clients"]}
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def idp_clients(profile: Profile, fts_host: str, secrets: dict[str, str]) -> dict[str, Any]:
    """The identity provider's clients, as the profile's [tokens] registers them: Rucio's (transfers and storage),
    each DAQ account's (uploads) and the people's (device flow)."""
    tokens = token_settings(profile)
    storage = [profile.token_audience(name) for name, rse in profile.rses.items() if rse.kind != "posix"]
    ops = [f"storage.{op}:/" for op in ("read", "create", "modify", "stage")]
    clients = [{"client_id": tokens.clients.rucio, "scopes": ["fts", *ops], "audiences": [fts_host, *storage],
                "groups": profile.token_groups("rucio")}]
    # DAQ accounts and people may also ask for tokens of Rucio's login audience with scope `openid`.
    for acc in profile.accounts_with("daq"):
        scopes = [f"storage.{op}:/{scope}" for scope in profile.scopes.raw for op in ("read", "create")]
        clients.append({"client_id": profile.token_client(acc.name), "scopes": ["openid", *scopes],
                        "audiences": [*storage, tokens.rucio_audience], "groups": profile.token_groups("daq")})
    # People (oidc-agent, a physicist's notebook): the device flow and refresh tokens; each token carries only what
    # its person may have (idp_people).
    people = idp_people(profile)  # password hashes are slow on purpose: made once
    person_scopes = sorted({s for p in people for s in p["scopes"]})
    clients.append({"client_id": tokens.clients.people, "scopes": ["openid", "offline_access", *person_scopes],
                    "audiences": [*storage, tokens.rucio_audience], "groups": [],
                    "grant_types": [DEVICE_CODE_GRANT_TYPE, "refresh_token"]})
    for client in clients:
        client["client_secret"] = secrets.get(client["client_id"]) or token_urlsafe(24)
    return {"lifetime": 1200, "clients": clients, "people": people}


def token_settings(profile: Profile) -> Tokens:
    """The profile's [tokens]: the testbed runs every service on tokens and needs them; its identity provider
    serves the issuer at the root of the issuer's host and port."""
    if profile.tokens is None:
        raise TestbedError(f"profile {profile.experiment.name}: tokens: required by the testbed ([tokens] issuer)")
    if urlsplit(profile.tokens.issuer).path:
        raise TestbedError(f"profile {profile.experiment.name}: tokens.issuer: the testbed's identity provider "
                           f"serves https://<host>:<port> with no path, got {profile.tokens.issuer!r}")
    return profile.tokens


def idp_people(profile: Profile) -> list[dict[str, Any]]:
    """The people of the identity provider: the profile's user and data-manager accounts, who log in with their
    testbed account password; users read every scope, data managers also create and modify."""
    people = []
    for acc in profile.accounts_with("user") + profile.accounts_with("data-manager"):
        if not acc.password:
            continue
        ops = ("read",) if acc.role == "user" else ("read", "create", "modify")
        people.append({"username": acc.name, "password_hash": generate_password_hash(acc.password),
                       "groups": profile.token_groups(acc.role),
                       "scopes": [f"storage.{op}:/{scope}" for scope in profile.scopes.all for op in ops]})
    return people


def _port_busy(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Testbed:
    """A testbed living in one state directory."""

    __test__ = False  # not a pytest test class

    def __init__(self, state_dir: Path | str = DEFAULT_STATE, profile: str | None = None,
                 database: str | None = None, rucio_port: int | None = None, fts_port: int | None = None):
        self.state = Path(state_dir).resolve()
        saved = self._load_settings()
        ref = profile or (saved.profile if saved else None) or os.environ.get("CYGNO_DM_PROFILE") or "cygno-testbed"
        self.profile: Profile = load_profile(ref)
        profile_path = str(Path(ref).resolve()) if Path(ref).exists() else ref
        self.settings = Settings(
            profile=profile_path,
            database=database_url(database, self.state) if database or not saved else saved.database,
            rucio_port=rucio_port or (saved.rucio_port if saved else self.profile.testbed.rucio_port),
            fts_port=fts_port or (saved.fts_port if saved else self.profile.testbed.fts_port),
            host=self.profile.testbed.host,
        )
        self.sup = Supervisor(self.state)

    # -- paths and URLs -------------------------------------------------------------------------
    @property
    def rucio_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.rucio_port}"

    @property
    def fts_url(self) -> str:
        return f"https://{self.settings.host}:{self.settings.fts_port}"

    def client_cert(self, name: str) -> Path:
        """Certificate + key (one 0600 PEM) of a testbed actor: `service-rucio`, `service-fts`, `account-<name>`."""
        return client_cert_path(self.state / "tls", name)

    def writer_dns(self) -> list[str]:
        """DNs that may write to the WebDAV storage: Rucio's daemons, the transfer service and every account."""
        return [client_dn(n) for n in (RUCIO_CERT, FTS_CERT, *(f"account-{a.name}" for a in self.profile.accounts))]

    def storage_endpoints(self) -> list[str]:
        """What the transfer service may copy between: each RSE's endpoint, or its directory for posix RSEs."""
        return [f"file://{storage_dir(name, rse, self.state)}" if rse.kind == "posix" else str(rse.endpoint)
                for name, rse in self.profile.rses.items()]

    @property
    def idp_url(self) -> str:
        """Issuer URL of the testbed identity provider: the profile's (it serves on that URL's host and port)."""
        return token_settings(self.profile).issuer

    @property
    def idp_clients(self) -> Path:
        """The identity provider's clients and their secrets (0600)."""
        return self.state / "etc" / "idp" / "clients.json"

    def robot_token_file(self, account: str) -> Path:
        """The 0600 token file of a DAQ account's robot client (client credentials), as `cygno_dm.tokens` reads it."""
        return self.state / "etc" / "idp" / f"robot-{account}.json"

    def token_args(self, audience: str) -> list[str]:
        """Options of a service that accepts the identity provider's tokens naming `audience`."""
        return ["--token-issuer", self.idp_url, "--token-audience", audience, "--token-ca", str(self.ca_dir / "ca.pem")]

    @property
    def rucio_cfg(self) -> Path:
        return self.state / "etc" / "rucio.cfg"

    def client_cfg(self, account: str) -> Path:
        return self.state / "etc" / f"client-{account}.cfg"

    @property
    def rses(self) -> list[str]:
        return list(self.profile.rses)

    @property
    def ca_dir(self) -> Path:
        """The testbed CA (X509_CERT_DIR layout) that the TLS endpoints' certificates chain to."""
        return self.state / "tls" / "ca"

    def _settings_file(self) -> Path:
        return self.state / "testbed.json"

    def _load_settings(self) -> Settings | None:
        try:
            return Settings(**json.loads(self._settings_file().read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def base_env(self) -> dict[str, str]:
        """Environment of every process of the testbed."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "RUCIO_CONFIG": str(self.rucio_cfg),
            "RUCIO_HOME": str(self.state),  # the server finds etc/rse-accounts.cfg (S3 keys) here
            "X509_CERT_DIR": str(self.ca_dir),
            "REQUESTS_CA_BUNDLE": str(self.ca_dir / "ca.pem"),  # Tape REST over https from the FTS service
            "X509_USER_PROXY": str(self.client_cert(RUCIO_CERT)),  # gfal2 of the daemons (reaper) writes and deletes
            "CYGNO_DM_PROFILE": self.settings.profile,
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }

    # -- components -----------------------------------------------------------------------------
    def storage_components(self) -> list[Component]:
        """One process per storage endpoint of the profile: S3 sites, WebDAV, tape."""
        py, tls = sys.executable, str(self.state / "tls")
        buckets = [*self.profile.scopes.all,
                   *(f"{self.profile.scopes.user_prefix}{a.name}" for a in self.profile.accounts_with("user"))]
        tape = self.profile.testbed.tape
        comps = []
        for name, rse in self.profile.rses.items():
            if rse.kind == "posix":
                continue
            host, port = host_port(rse)
            root = str(storage_dir(name, rse, self.state))
            if rse.kind == "s3":
                url = f"https://{host}:{port}"
                argv = [py, "-m", "testbed.storage.s3", "--host", host, "--port", str(port),
                        "--access-key", rse.credentials["access_key"],
                        "--secret-key-file", str(self.state / "etc" / "s3" / f"{name}.key"),
                        "--state-dir", root, "--tls-dir", tls, *(x for b in buckets for x in ("--bucket", b)),
                        *self.token_args(self.profile.token_audience(name))]
                health = (lambda u: lambda: s3_ready(u))(url)
            elif rse.kind == "webdav":
                scheme = "https" if rse.endpoint.startswith(("https", "davs")) else "http"
                url = f"{scheme}://{host}:{port}/"
                argv = [py, "-m", "testbed.storage.webdav", "--host", host, "--port", str(port), "--root", root,
                        "--state-dir", str(self.state / "xrootd" / name), "--tls-dir", tls,
                        *(x for dn in self.writer_dns() for x in ("--writer-dn", dn)),
                        *self.token_args(self.profile.token_audience(name)), "--token-base-path", rse.prefix]
                health = (lambda u: lambda: webdav_ready(u))(url)
            else:
                secure = rse.endpoint.startswith(("https", "davs"))
                url = f"{'https' if secure else 'http'}://{host}:{port}"
                argv = [py, "-m", "testbed.tape", "--host", host, "--port", str(port), "--root", root,
                        "--migrate-after", str(tape.migrate_after), "--evict-after", str(tape.evict_after),
                        "--stage-latency", str(tape.stage_latency), *(["--tls-dir", tls] if secure else []),
                        *self.token_args(self.profile.token_audience(name)), "--token-base-path", rse.prefix]
                health = (lambda u: lambda: http_ok(f"{u}/.well-known/wlcg-tape-rest-api"))(url)
            comps.append(Component(f"{rse.kind}-{name}", argv, url=url, health=health, start_timeout=60))
        return comps

    def components(self) -> list[Component]:
        """Everything `up` starts, in start order."""
        py = sys.executable
        gunicorn = str(Path(py).parent / "gunicorn")
        issuer = urlsplit(self.idp_url)
        return [
            Component("idp", [py, "-m", "testbed.idp", "--host", str(issuer.hostname), "--issuer", self.idp_url,
                              "--port", str(issuer.port or 443), "--config", str(self.idp_clients),
                              "--key", str(self.state / "etc" / "idp" / "keys.json"),
                              "--tls-dir", str(self.state / "tls")],
                      url=self.idp_url, health=lambda: http_ok(f"{self.idp_url}/health")),
            *self.storage_components(),
            Component(
                "fts",
                [py, "-m", "testbed.fts", "--host", self.settings.host, "--port", str(self.settings.fts_port),
                 "--db", str(self.state / "fts" / "fts.db"),
                 "--s3-credentials", str(self.state / "etc" / "s3-credentials.json"),
                 "--tls-dir", str(self.state / "tls"), "--client-cert", str(self.client_cert(FTS_CERT)),
                 "--s3-user-dn", client_dn(RUCIO_CERT), *self.token_args(self.settings.host),
                 "--token-subject", f"{token_settings(self.profile).clients.rucio}={client_dn(RUCIO_CERT)}",
                 *(x for e in self.storage_endpoints() for x in ("--storage-endpoint", e))],
                url=self.fts_url, health=lambda: http_ok(f"{self.fts_url}/health"),
            ),
            Component(
                RUCIO_SERVER,
                [gunicorn, "-c", "python:testbed.gunicorn_conf",
                 "-b", f"{self.settings.host}:{self.settings.rucio_port}", "-w", "1", "--threads", "8",
                 "--timeout", "300", "--access-logfile", "-", "rucio.web.rest.flaskapi.v1.main:application"],
                url=self.rucio_url, health=lambda: http_ok(f"{self.rucio_url}/ping"), start_timeout=120,
            ),
            Component(
                DAEMONS,
                [py, "-m", "testbed.daemons", "--status-file", str(self.state / "daemons.json"), "--interval", "1"],
                health=lambda: (self.state / "daemons.json").exists(),
            ),
        ]

    # -- life cycle -----------------------------------------------------------------------------
    def up(self) -> None:
        """Start everything (idempotent): config, database, server, catalogue content, daemons."""
        self.state.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        self._write_config()
        if self.settings.database.startswith("postgresql"):
            ensure_postgres_database(self.settings.database)
        self._run([sys.executable, "-m", "testbed.bootstrap"], "bootstrap")
        if self.settings.database.startswith("sqlite:///"):  # the database holds live Rucio tokens
            Path(self.settings.database.removeprefix("sqlite:///")).chmod(0o600)
        comps = self.components()
        server = next(i for i, c in enumerate(comps) if c.name == RUCIO_SERVER)
        for comp in comps[:server + 1]:
            self._start(comp)
        self._run([sys.executable, "-m", "testbed.populate", self.settings.profile,
                   str(self.state / "etc" / "rses.json"), self.idp_url], "populate")
        for comp in comps[server + 1:]:
            self._start(comp)

    def _start(self, comp: Component) -> None:
        try:
            self.sup.start(comp, self.base_env())
        except RuntimeError as err:  # did not become healthy: say which, with the end of its log
            raise TestbedError(str(err)) from None

    def down(self) -> list[str]:
        """Stop every process this testbed started (and nothing else); return their names."""
        order = [c.name for c in reversed(self.components())]
        names = order + [n for n in self.sup.names() if n not in order]
        return [n for n in names if self.sup.stop(n)]

    def _check_ports(self) -> None:
        for comp in self.components():
            if not comp.url or self.sup.pid(comp.name) is not None:
                continue
            parts = requests.utils.urlparse(comp.url)
            deadline = time.monotonic() + 5  # a process that was just killed may still hold its port
            while _port_busy(parts.hostname, parts.port) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _port_busy(parts.hostname, parts.port):
                raise TestbedError(f"port {parts.hostname}:{parts.port} for {comp.name} is taken by another process")

    def _write_config(self) -> None:
        self.state.chmod(0o711)  # xrootd (another user) traverses to its root; nobody else lists the state
        for private in ("etc", "db", "fts", "tokens", "logs"):
            private_dir(self.state / private)
        self._settings_file().write_text(json.dumps(asdict(self.settings), indent=1))
        server = rucio_config.server_sections(self.profile, self.state, self.settings.database,
                                              self.rucio_url, self.fts_url)
        for name in (RUCIO_CERT, FTS_CERT, *(f"account-{a.name}" for a in self.profile.accounts)):
            ensure_client_cert(self.state / "tls", name)
        server["conveyor"]["usercert"] = str(self.client_cert(RUCIO_CERT))  # to the transfer service
        rucio_config.write_cfg(self.rucio_cfg, server)
        rucio_config.write_alembic_ini(self.state / "etc" / "alembic.ini", self.settings.database)
        for acc in self.profile.accounts:
            rucio_config.write_cfg(self.client_cfg(acc.name), rucio_config.client_sections(server, acc, self.state))
        # For in-process clients of any account (Testbed.client): no per-account token file.
        root_client = rucio_config.client_sections(server, self.profile.account("root"), self.state)
        root_client["client"].pop("auth_token_file_path")
        rucio_config.write_cfg(self.state / "etc" / "client.cfg", root_client)
        rses = {}
        for name, rse in self.profile.rses.items():
            storage_dir(name, rse, self.state).mkdir(parents=True, exist_ok=True)
            rses[name] = rse_settings(name, rse, self.state, self.fts_url)
        (self.state / "etc" / "rses.json").write_text(json.dumps(rses, indent=1))
        write_private(self.state / "etc" / "s3-credentials.json", json.dumps(s3_credentials(self.profile), indent=1))
        clients = idp_clients(self.profile, self.settings.host, _saved_secrets(self.idp_clients))
        write_private(self.idp_clients, json.dumps(clients, indent=1))
        for acc in self.profile.accounts_with("daq"):  # the DAQ's robot credentials: `--storage-token file:PATH`
            client_id = self.profile.token_client(acc.name)
            robot = next(c for c in clients["clients"] if c["client_id"] == client_id)
            write_private(self.robot_token_file(acc.name), json.dumps({
                "issuer": self.idp_url, "client_id": client_id, "client_secret": robot["client_secret"],
                "ca": str(self.ca_dir / "ca.pem")}))
        rucio_id = token_settings(self.profile).clients.rucio
        rucio = next(c for c in clients["clients"] if c["client_id"] == rucio_id)
        rucio_config.write_idp_secrets(self.state / "etc" / "idpsecrets.json", self.idp_url, rucio_id,
                                       rucio["client_secret"])
        for name, rse in self.profile.rses.items():
            if rse.kind == "s3":
                write_private(self.state / "etc" / "s3" / f"{name}.key", rse.credentials["secret_key"])

    def _run(self, argv: list[str], what: str) -> None:
        self.sup.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.sup.log_file(what), "ab") as out:
            rc = subprocess.run(argv, env=self.base_env(), cwd=self.state, stdout=out, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise TestbedError(f"{what} failed (exit {rc}); see {self.sup.log_file(what)}\n" + self.sup.tail(what, 20))

    # -- inspection -----------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """Each component's pid, URL and state: healthy, unhealthy or stopped."""
        rows = []
        for comp in self.components():
            pid = self.sup.pid(comp.name)
            ok = pid is not None and (comp.health is None or healthy(comp.health))
            rows.append({"name": comp.name, "pid": pid, "url": comp.url,
                         "state": "healthy" if ok else ("unhealthy" if pid else "stopped")})
        runner = daemons.read_status(self.state / "daemons.json")
        runner_pid = self.sup.pid(DAEMONS)
        for name in daemons.NAMES:
            entry = runner["daemons"].get(name)
            if runner_pid is None:
                state = "stopped"
            elif entry is None:
                state = "starting"
            elif entry.get("last_error"):
                state = "unhealthy"
            else:
                state = "healthy"
            rows.append({"name": f"rucio-{name}", "pid": runner_pid, "url": "", "state": state,
                         "passes": entry["passes"] if entry else 0,
                         "error": entry.get("last_error") if entry else None})
        return rows

    def wait_daemon_passes(self, passes: int = 1, timeout: float = 120) -> None:
        """Block until every daemon has completed `passes` more passes."""
        path = self.state / "daemons.json"
        start = {n: e["passes"] for n, e in daemons.read_status(path)["daemons"].items()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = daemons.read_status(path)["daemons"]
            if all(now.get(n, {}).get("passes", 0) >= start.get(n, 0) + passes for n in daemons.NAMES):
                return
            time.sleep(0.3)
        raise TestbedError(f"daemons did not complete {passes} pass(es) in {timeout:.0f}s")

    def env(self, account: str, profile: str | None = None) -> dict[str, str]:
        """Environment variables that let the plain `rucio` CLI act as `account` on this testbed; with `profile`,
        an account of another (onboarded) experiment, whose client config is written on first use."""
        if profile is None:
            self.profile.account(account)
        else:
            acc = load_profile(profile).account(account)
            server = {s: dict(v) for s, v in rucio_config.read_cfg(self.rucio_cfg).items()}
            rucio_config.write_cfg(self.client_cfg(acc.name), rucio_config.client_sections(server, acc, self.state))
        env = {"RUCIO_CONFIG": str(self.client_cfg(account)), "RUCIO_ACCOUNT": account,
               "X509_CERT_DIR": str(self.ca_dir), "CYGNO_DM_PROFILE": profile or self.settings.profile}
        cert = self.client_cert(f"account-{account}")
        if cert.is_file():  # gfal2 writes to WebDAV/tape with it; onboarded experiments' accounts have none yet
            env["X509_USER_PROXY"] = str(cert)
        return env

    def client(self, account: str, profile: Profile | None = None):
        """A rucio Client authenticated by userpass as `account` (of `profile`, default the testbed's), with tokens
        kept in this testbed.

        Rucio reads one configuration per process: unless RUCIO_CONFIG names an existing file, this testbed's
        client configuration becomes it.
        """
        if not Path(os.environ.get("RUCIO_CONFIG", "")).is_file():
            os.environ["RUCIO_CONFIG"] = str(self.state / "etc" / "client.cfg")
        os.environ.setdefault("X509_CERT_DIR", str(self.ca_dir))
        from rucio.client import Client

        acc = (profile or self.profile).account(account)
        tokens = self.state / "tokens" / "in-process" / acc.name

        class TestbedClient(Client):
            def _get_auth_tokens(self) -> tuple[None, str, str, str]:
                # Per account, whatever the process's rucio.cfg says: Rucio would share its auth_token_file_path
                # between all accounts, and a client logging in again would read another account's token.
                return (None, str(tokens / f"{self.TOKEN_EXP_PREFIX}{acc.name}"),
                        str(tokens / f"{self.TOKEN_PREFIX}{acc.name}"), str(tokens))

        return TestbedClient(rucio_host=self.rucio_url, auth_host=self.rucio_url, account=acc.name,
                             auth_type="userpass", creds={"username": acc.name, "password": acc.password},
                             ca_cert=False)

