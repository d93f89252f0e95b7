"""People at the testbed identity provider: accounts with passwords, the device flow (RFC 8628) and refresh tokens.

What INDIGO IAM gives CYGNO's physicists and oidc-agent: a device asks for a code, the person approves it on the
verification page with their password, the device polls for an access token and a refresh token, and refreshes
the access token without the person. Refresh tokens rotate (each use revokes the one used) and are kept hashed
in a 0600 file, so a restart of the provider keeps them; device codes live in memory for 30 minutes.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from werkzeug.security import check_password_hash

from testbed.private import write_private

DEVICE_CODE_LIFETIME = 1800
REFRESH_LIFETIME = 30 * 86400
OIDC_SCOPES = ("openid", "offline_access", "profile", "email")  # asked by oidc-agent; no storage rights


@dataclass
class Person:
    """A person: password hash (werkzeug), groups, and the storage scopes their tokens may carry."""

    username: str
    password_hash: str
    groups: list[str]
    scopes: list[str]

    def get_user_id(self) -> str:
        return self.username

    def allowed(self, scope: str) -> str:
        """The requested scopes this person may have."""
        return " ".join(s for s in scope.split() if s in self.scopes or s in OIDC_SCOPES)


def load_people(config: dict[str, Any]) -> dict[str, Person]:
    """People of the configuration, by username; a malformed entry names its field."""
    people = {}
    for n, entry in enumerate(config.get("people", [])):
        for key in ("username", "password_hash"):
            if not entry.get(key):
                raise ValueError(f"people[{n}].{key}: required")
        people[entry["username"]] = Person(entry["username"], entry["password_hash"], list(entry.get("groups", [])),
                                           list(entry.get("scopes", [])))
    return people


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class DeviceCredential:
    """A pending device authorization: the client, the scopes asked, the codes, who approved it."""

    client_id: str
    scope: str
    device_code: str
    user_code: str
    expires_at: float
    approved_by: str | None = None
    denied: bool = False
    last_poll: float = 0.0

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass
class RefreshToken:
    """A refresh token's grant (the token itself is only kept as its SHA-256)."""

    client_id: str
    username: str
    scope: str
    expires_at: float
    revoked: bool = field(default=False)

    def check_client(self, client: Any) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked


class PeopleStore:
    """Device credentials (memory) and refresh tokens (hashed, in a 0600 JSON file), thread-safe."""

    def __init__(self, people: dict[str, Person], refresh_file: Path, refresh_lifetime: int = REFRESH_LIFETIME):
        self.people, self.file, self.refresh_lifetime = people, refresh_file, refresh_lifetime
        self.lock = threading.Lock()
        self.devices: dict[str, DeviceCredential] = {}
        self.refresh: dict[str, RefreshToken] = {}
        if refresh_file.exists():
            self.refresh = {k: RefreshToken(**v) for k, v in json.loads(refresh_file.read_text()).items()}

    def add_device(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        with self.lock:
            now = time.time()
            self.devices = {k: d for k, d in self.devices.items() if not d.is_expired()}
            self.devices[data["device_code"]] = DeviceCredential(client_id, scope or "", data["device_code"],
                                                                 data["user_code"], now + data["expires_in"])

    def device(self, device_code: str) -> DeviceCredential | None:
        return self.devices.get(device_code)

    def by_user_code(self, user_code: str) -> DeviceCredential | None:
        code = user_code.strip().upper()
        return next((d for d in self.devices.values() if d.user_code == code and not d.is_expired()), None)

    def approve(self, user_code: str, username: str, password: str, allow: bool) -> str:
        """Record a person's decision on a user code; raises ValueError with what is wrong."""
        cred = self.by_user_code(user_code)
        if cred is None:
            raise ValueError("unknown or expired code")
        person = self.people.get(username)
        if person is None or not check_password_hash(person.password_hash, password):
            raise PermissionError("wrong username or password")
        with self.lock:
            cred.approved_by, cred.denied = person.username, not allow
        return cred.client_id

    def save_refresh(self, token: str, client_id: str, username: str, scope: str) -> None:
        with self.lock:
            now = time.time()
            self.refresh = {k: r for k, r in self.refresh.items() if not (r.is_expired() or r.revoked)}
            self.refresh[_digest(token)] = RefreshToken(client_id, username, scope, now + self.refresh_lifetime)
            self._write()

    def find_refresh(self, token: str) -> RefreshToken | None:
        found = self.refresh.get(_digest(token))
        return None if found is None or found.is_expired() or found.revoked else found

    def revoke(self, credential: RefreshToken) -> None:
        with self.lock:
            credential.revoked = True
            self._write()

    def consume_device(self, device_code: str) -> None:
        """A device code gives one token response; polling again afterwards is an invalid code."""
        with self.lock:
            self.devices.pop(device_code, None)

    def _write(self) -> None:
        write_private(self.file, json.dumps({k: asdict(r) for k, r in self.refresh.items()}))


def save_token(store: PeopleStore, token: dict[str, Any], request: Any) -> None:
    """authlib's save_token hook: keep the refresh token of a person's grant."""
    if token.get("refresh_token") and getattr(request, "user", None) is not None:
        store.save_refresh(token["refresh_token"], request.client.get_client_id(), request.user.get_user_id(),
                           token.get("scope", ""))


def device_endpoint(store: PeopleStore, verification_uri: str) -> type[DeviceAuthorizationEndpoint]:
    """The device authorization endpoint class, bound to the store and the verification page's URL."""

    class Endpoint(DeviceAuthorizationEndpoint):
        CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
        EXPIRES_IN = DEVICE_CODE_LIFETIME

        def authenticate_client(self, request: Any) -> Any:
            client = super().authenticate_client(request)
            if not client.check_grant_type(DeviceCodeGrant.GRANT_TYPE):
                raise UnauthorizedClientError(f"client {client.get_client_id()} may not use the device flow")
            return client

        def get_verification_uri(self) -> str:
            return verification_uri

        def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
            store.add_device(client_id, scope, data)

    return Endpoint


def device_grant(store: PeopleStore) -> type[DeviceCodeGrant]:
    """The device-code grant at the token endpoint: pending until a person approved the user code."""

    class Grant(DeviceCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def create_token_response(self) -> Any:
            response = super().create_token_response()
            store.consume_device(self.request.credential.device_code)
            return response

        def query_device_credential(self, device_code: str) -> DeviceCredential | None:
            return store.device(device_code)

        def query_user_grant(self, user_code: str) -> tuple[Person, bool] | None:
            cred = store.by_user_code(user_code)
            if cred is None or cred.approved_by is None:
                return None
            return store.people[cred.approved_by], not cred.denied

        def should_slow_down(self, credential: DeviceCredential) -> bool:
            now, last = time.time(), credential.last_poll
            credential.last_poll = now
            return now - last < 1.0  # clients poll every `interval` (5 s); a hammering one is told to slow down

    return Grant


def refresh_grant(store: PeopleStore) -> type[grants.RefreshTokenGrant]:
    """The refresh-token grant: a new access token and a new refresh token; the one used is revoked."""

    class Grant(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
            return store.find_refresh(refresh_token)

        def authenticate_user(self, credential: RefreshToken) -> Person | None:
            return store.people.get(credential.username)

        def revoke_old_credential(self, credential: RefreshToken) -> None:
            store.revoke(credential)

    return Grant


def verification_page(user_code: str = "", message: str = "") -> str:
    """The HTML form on which a person approves a device's user code."""
    note = f"<p><strong>{html.escape(message)}</strong></p>" if message else ""
    return ("<!doctype html><title>Device login</title><h1>Approve a device</h1>" + note +
            '<form method="post"><label>Code <input name="user_code" value="' + html.escape(user_code) + '"></label>'
            '<label>Username <input name="username"></label>'
            '<label>Password <input name="password" type="password"></label>'
            '<button name="decision" value="approve">Approve</button>'
            '<button name="decision" value="deny">Deny</button></form>')

