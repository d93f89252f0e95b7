"""Write the Rucio configuration of a testbed: the server/daemon rucio.cfg, alembic.ini and per-account client configs."""

from __future__ import annotations

import configparser
import importlib
import io
import json
from pathlib import Path

import rucio_policies
from cygno_dm.profile import Account, Profile
from testbed.private import write_private

Sections = dict[str, dict[str, str]]
ISSUER_KEY = "testbed"  # the identity provider's entry in idpsecrets.json


def server_sections(profile: Profile, state: Path, database_url: str, rucio_url: str, fts_url: str) -> Sections:
    """The rucio.cfg read by the server and the daemons (the policy package adds its own sections)."""
    root = profile.account("root")
    sections: Sections = {
        "common": {"logdir": str(state / "logs"), "loglevel": "INFO", "mailtemplatedir": str(state / "etc")},
        "client": {
            "rucio_host": rucio_url, "auth_host": rucio_url, "auth_type": "userpass",
            "username": root.name, "password": root.password or "", "account": root.name,
            "ca_cert": "/etc/ssl/certs/ca-certificates.crt", "request_retries": "3",
        },
        "database": {"default": database_url, "pool_recycle": "3600", "echo": "0", "pool_reset_on_return": "rollback"},
        # The bootstrap creates root with a userpass identity only: blank the x509/gss/ssh defaults.
        "bootstrap": {
            "userpass_identity": root.name, "userpass_pwd": root.password or "", "userpass_email": root.email,
            "x509_identity": "", "x509_email": "", "gss_identity": "", "gss_email": "",
            "ssh_identity": "", "ssh_email": "",
        },
        "alembic": {"cfg": str(state / "etc" / "alembic.ini")},
        # The Flask app does not import without a [trace] section; nothing listens on that port.
        "trace": {"tracedir": str(state / "trace"), "brokers": "127.0.0.1", "port": "61999",
                  "topic": "/topic/rucio.tracer", "username": "", "password": ""},
        "monitor": {"enable_metrics": "False"},
        "conveyor": {
            "scheme": "file,https,http,davs,s3", "transfertool": "fts3", "ftshosts": fts_url,
            "poller_oldest_first": "True", "use_preparer": "False",
            "poller_oidc_support": "True",  # the poller asks FTS about token-submitted jobs with a token too
        },
        "upload": {}, "download": {},
        "credentials": {"signature_lifetime": "3600"},
        "api": {},
    }
    if profile.tokens is not None:
        # Tokens for transfers and deletions on oidc_support RSEs: Rucio's request_token reads the client
        # credentials of `admin_issuer` from the idpsecrets file (0600, written by write_idp_secrets).
        # People and the DAQ log in to Rucio with the issuer's tokens too (WLCG bearer token discovery,
        # `auth_type = oidc`): the profile's Rucio audience, scope `openid`, mapped to accounts by OIDC identities.
        sections["oidc"] = {"idpsecrets": str(state / "etc" / "idpsecrets.json"), "admin_issuer": ISSUER_KEY,
                            "expected_audience": profile.tokens.rucio_audience, "expected_scope": "openid"}
    if profile.messaging is not None:  # Hermes delivers the server's messages to the broker (STOMP)
        m = profile.messaging
        sections["messaging-hermes"] = {
            "brokers": m.host, "port": str(m.port), "nonssl_port": str(m.port), "use_ssl": "False",
            "username": m.username, "password": m.password, "destination": m.destination,
            "broker_virtual_host": m.virtual_host}
        sections["hermes"] = {"services_list": "activemq"}
    for section, values in rucio_policies.server_config().items():
        sections.setdefault(section, {}).update(values)
    return sections


def client_sections(server: Sections, account: Account, state: Path) -> Sections:
    """A client config for one account: the plain `rucio` CLI authenticates with it."""
    sections = {k: dict(v) for k, v in server.items()
                if k in ("common", "policy", "metadata", "transfers", "upload", "download")}
    sections["client"] = {
        **server["client"], "username": account.name, "password": account.password or "", "account": account.name,
        "auth_token_file_path": str(state / "tokens" / account.name / "token"),
    }
    return sections


def write_cfg(path: Path, sections: Sections) -> None:
    """Write sections as an INI file (interpolation off: values are written verbatim)."""
    cp = configparser.RawConfigParser()
    for name, values in sections.items():
        cp[name] = {k: str(v) for k, v in values.items()}
    text = io.StringIO()
    cp.write(text)
    write_private(path, text.getvalue())  # passwords, database URL


def write_idp_secrets(path: Path, issuer: str, client_id: str, client_secret: str) -> None:
    """Rucio's idpsecrets.json: the identity provider's issuer and the client Rucio asks tokens with (0600)."""
    client = {"issuer": issuer, "client_id": client_id, "client_secret": client_secret}
    # "SCIM": the admin client Rucio's JWT validation also loads (same client here); without it no issuer loads.
    write_private(path, json.dumps({ISSUER_KEY: {**client, "SCIM": dict(client)}}, indent=1))


def write_alembic_ini(path: Path, database_url: str) -> None:
    """alembic.ini for Rucio's migrations; the logging sections must exist or alembic fails."""
    script_location = Path(importlib.import_module("rucio.db.sqla.migrate_repo").__file__).parent
    write_cfg(path, {
        "alembic": {"script_location": str(script_location), "sqlalchemy.url": database_url},
        "loggers": {"keys": "root,sqlalchemy,alembic"},
        "handlers": {"keys": "console"},
        "formatters": {"keys": "generic"},
        "logger_root": {"level": "WARN", "handlers": "console", "qualname": ""},
        "logger_sqlalchemy": {"level": "WARN", "handlers": "", "qualname": "sqlalchemy.engine"},
        "logger_alembic": {"level": "INFO", "handlers": "", "qualname": "alembic"},
        "handler_console": {"class": "StreamHandler", "args": "(sys.stderr,)", "level": "NOTSET",
                            "formatter": "generic"},
        "formatter_generic": {"format": "%(levelname)-5.5s [%(name)s] %(message)s", "datefmt": "%H:%M:%S"},
    })


def read_cfg(path: Path) -> Sections:
    """The sections of an INI file written by write_cfg."""
    cp = configparser.RawConfigParser()
    cp.read(path)
    return {name: dict(cp[name]) for name in cp.sections()}
