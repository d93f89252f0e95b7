"""Checking WLCG bearer tokens at a service: signature by the issuer's JWKS, issuer, audience, expiry, scopes.

The issuer's keys are found through its OpenID discovery document and cached. Every refusal raises AuthError
with a one-line reason (never the token itself).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from testbed.auth import AuthError, TokenIdentity

log = logging.getLogger(__name__)


class WlcgTokenVerifier:
    """Accepts tokens of one issuer for one audience; `required_scope` (if set) must be among the scopes."""

    def __init__(self, issuer: str, audience: str, required_scope: str | None = None, ca: str | bool = True,
                 leeway: int = 0):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.required_scope = required_scope
        self.ca = ca
        self.leeway = leeway
        self._keys: KeySet | None = None
        self._lock = threading.Lock()

    def keys(self, refresh: bool = False) -> KeySet:
        """The issuer's public keys (discovery → jwks_uri), cached."""
        with self._lock:
            if self._keys is None or refresh:
                try:
                    doc = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10,
                                       verify=self.ca).json()
                    self._keys = KeySet.import_key_set(requests.get(doc["jwks_uri"], timeout=10,
                                                                    verify=self.ca).json())
                except (requests.RequestException, ValueError, KeyError) as exc:
                    raise AuthError(f"bearer token not checked: issuer {self.issuer} keys unavailable "
                                    f"({type(exc).__name__})") from None
            return self._keys

    def __call__(self, token: str) -> TokenIdentity:
        """The subject and scopes of a valid token, or AuthError saying why it is refused."""
        claims = self._decode(token)
        registry = jwt.JWTClaimsRegistry(
            leeway=self.leeway, iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience}, exp={"essential": True}, sub={"essential": True})
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise AuthError("bearer token refused: expired") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            raise AuthError(f"bearer token refused: {exc.description}") from None
        except JoseError as exc:
            raise AuthError(f"bearer token refused: {exc.error}") from None
        if "wlcg.ver" not in claims:
            raise AuthError("bearer token refused: not a WLCG token (no wlcg.ver claim)")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if self.required_scope and self.required_scope not in scopes:
            raise AuthError(f"bearer token refused: scope {self.required_scope!r} is missing")
        return TokenIdentity(str(claims["sub"]), scopes, tuple(claims.get("wlcg.groups") or ()))

    def _decode(self, token: str) -> dict[str, Any]:
        for refresh in (False, True):  # a key rotated at the issuer is fetched once more
            try:
                return jwt.decode(token, self.keys(refresh), algorithms=["RS256", "ES256"]).claims
            except BadSignatureError:
                raise AuthError("bearer token refused: signature does not verify with the issuer's keys") from None
            except ValueError:  # unknown key id
                if refresh:
                    raise AuthError("bearer token refused: signed by a key the issuer does not publish") from None
            except JoseError as exc:
                raise AuthError(f"bearer token refused: malformed ({exc.error})") from None
        raise AssertionError("not reached")


def has_storage_scope(scopes: frozenset[str], operation: str, path: str, base: str = "/") -> bool:
    """WLCG storage authorisation: `storage.<operation>:<prefix>` covers `path` (`storage.modify` covers create).

    Scope paths are relative to the storage's `base` path (XRootD's SciTokens `base_path`): with base `/cygno`,
    `storage.create:/cygno-data` covers `/cygno/cygno-data/...`; paths outside the base are never covered.
    """
    base = "/" + base.strip("/")
    if base != "/":
        if path != base and not path.startswith(base + "/"):
            return False
        path = path[len(base):] or "/"
    wanted = {operation, "modify"} if operation == "create" else {operation}
    for scope in scopes:
        name, _, prefix = scope.partition(":")
        if not name.startswith("storage.") or name[len("storage."):] not in wanted:
            continue
        prefix = "/" + prefix.strip("/")
        if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
            return True
    return False
