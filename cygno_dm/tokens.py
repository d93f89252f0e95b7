"""Storage access tokens for the DAQ uploader and people: from oidc-agent or from a 0600 token file.

`token_source("oidc-agent:ACCOUNT")` asks Debian's `oidc-token` (the agent refreshes on its own);
`token_source("file:PATH")` reads a JSON file {"issuer", "client_id", "client_secret", "refresh_token"?, "ca"?}
that only its owner may read: with a refresh token (a person's grant) it uses the refresh-token grant and writes a
rotated refresh token back (0600, atomically); without one (a robot client such as the DAQ account) the
client-credentials grant. Access tokens are cached per audience and renewed `margin` seconds before they expire, so a long
upload never presents an expired one at its next request. A failure raises TokenError with one line that never
holds a token.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import requests

MARGIN = 60.0  # seconds of validity a token must have left to be handed out


class TokenError(RuntimeError):
    """A token could not be obtained; the message says from where and why (never the token)."""


class TokenSource(Protocol):
    def token(self, audience: str) -> str:
        """A bearer token for `audience` valid for at least the source's margin."""


def unverified_claims(token: str) -> dict:
    """The claims of a JWT, not verified: only to choose what to do with a token that its audience verifies."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, TypeError):
        raise TokenError("the access token is not a JWT") from None
    if not isinstance(claims, dict):
        raise TokenError("the access token is not a JWT")
    return claims


def expiry(token: str) -> float:
    """The `exp` claim of a JWT (not verified: the client only schedules its renewal with it)."""
    try:
        return float(unverified_claims(token)["exp"])
    except (TokenError, KeyError, ValueError, TypeError):
        raise TokenError("the access token is not a JWT with an `exp` claim") from None


class _Cache:
    """Tokens per audience until `margin` seconds before their expiry; one fetch at a time."""

    def __init__(self, margin: float) -> None:
        self.margin = margin
        self.lock = threading.Lock()
        self.tokens: dict[str, tuple[str, float]] = {}

    def get(self, audience: str, fetch: Callable[[str], str]) -> str:
        with self.lock:
            cached = self.tokens.get(audience)
            if cached and cached[1] - time.time() > self.margin:
                return cached[0]
            token = fetch(audience)
            self.tokens[audience] = (token, expiry(token))
            return token


class OidcAgent:
    """Tokens of an oidc-agent account (`oidc-token ACCOUNT --aud AUDIENCE --time MARGIN`)."""

    def __init__(self, account: str, margin: float = MARGIN) -> None:
        self.account = account
        self.cache = _Cache(margin)

    def token(self, audience: str) -> str:
        return self.cache.get(audience, self._fetch)

    def _fetch(self, audience: str) -> str:
        exe = shutil.which("oidc-token")
        if exe is None:
            raise TokenError(f"oidc-agent:{self.account}: `oidc-token` is not installed (Debian: oidc-agent-cli)")
        res = subprocess.run([exe, self.account, f"--aud={audience}", f"--time={int(self.cache.margin) + 1}"],
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0 or not res.stdout.strip():
            why = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
            raise TokenError(f"oidc-agent:{self.account}: {why}")
        return res.stdout.strip()


class TokenFile:
    """Tokens from a client (and a person's refresh token) kept in a JSON file that only its owner may read."""

    FIELDS = ("issuer", "client_id", "client_secret")

    def __init__(self, path: Path, margin: float = MARGIN) -> None:
        self.path = Path(path)
        self.cache = _Cache(margin)
        self.config = self._read()

    def _read(self) -> dict[str, str]:
        try:
            mode = self.path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise TokenError(f"file:{self.path}: mode {stat.S_IMODE(mode):04o}; a token file must be 0600 "
                                 "(readable by its owner only)")
            config = json.loads(self.path.read_text())
        except OSError as err:
            raise TokenError(f"file:{self.path}: {err.strerror}") from None
        except ValueError:
            raise TokenError(f"file:{self.path}: not JSON") from None
        missing = [k for k in self.FIELDS if not isinstance(config.get(k), str) or not config[k]]
        if "refresh_token" in config and not (isinstance(config["refresh_token"], str) and config["refresh_token"]):
            missing.append("refresh_token")
        if missing:
            raise TokenError(f"file:{self.path}: {', '.join(missing)}: required (a non-empty string)")
        return config

    def token(self, audience: str) -> str:
        return self.cache.get(audience, self._fetch)

    def _fetch(self, audience: str) -> str:
        cfg = self.config
        verify = cfg.get("ca") or True
        try:
            doc = requests.get(f"{cfg['issuer'].rstrip('/')}/.well-known/openid-configuration", timeout=30,
                               verify=verify).json()
            grant = ({"grant_type": "refresh_token", "refresh_token": cfg["refresh_token"]}
                     if cfg.get("refresh_token") else {"grant_type": "client_credentials"})
            r = requests.post(doc["token_endpoint"], timeout=30, verify=verify,
                              auth=(cfg["client_id"], cfg["client_secret"]), data={**grant, "audience": audience})
        except (requests.RequestException, ValueError, KeyError) as err:
            raise TokenError(f"file:{self.path}: issuer {cfg['issuer']} unreachable ({type(err).__name__})") from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code != 200 or "access_token" not in body:
            why = body.get("error_description") or body.get("error") or f"HTTP {r.status_code}"
            what = "refresh token" if cfg.get("refresh_token") else f"client {cfg['client_id']}"
            raise TokenError(f"file:{self.path}: the issuer refused the {what}: {why}")
        if cfg.get("refresh_token") and body.get("refresh_token") not in (None, cfg["refresh_token"]):
            self.config = {**cfg, "refresh_token": body["refresh_token"]}  # rotated: the old one is dead now
            self._write(self.config)
        return body["access_token"]

    def _write(self, config: dict[str, str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(config))
        tmp.replace(self.path)


def token_source(spec: str, margin: float = MARGIN) -> TokenSource:
    """The token source named by `oidc-agent:ACCOUNT` or `file:PATH`; TokenError for anything else."""
    kind, _, arg = spec.partition(":")
    if kind == "oidc-agent" and arg:
        return OidcAgent(arg, margin)
    if kind == "file" and arg:
        return TokenFile(Path(arg), margin)
    raise TokenError(f"--storage-token {spec!r}: expected oidc-agent:ACCOUNT or file:PATH")
