"""The testbed identity provider, in the role INDIGO IAM has in production (built on authlib).

OpenID discovery, JWKS and WLCG-profile JWT access tokens (`wlcg.ver`, `aud`, `scope`, `wlcg.groups`) for robot
clients through the client-credentials grant, and for people through the device flow with refresh tokens
(testbed/idp_people.py; what oidc-agent uses). Clients (secrets, grant types, allowed scopes, audiences, groups)
and people (password hashes, groups, scopes) come from a 0600 JSON file; the signing key is made at the first
start and kept 0600 next to it, and so are the (hashed) refresh tokens.

`python -m testbed.idp --host H --port P --config FILE --key FILE [--tls-dir DIR] [--issuer URL]`
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey

from testbed.idp_people import (
    REFRESH_LIFETIME,
    PeopleStore,
    Person,
    device_endpoint,
    device_grant,
    load_people,
    refresh_grant,
    save_token,
    verification_page,
)
from testbed.private import write_private

log = logging.getLogger(__name__)

WLCG_VERSION = "1.0"
GRANT_TYPES = ("client_credentials", DEVICE_CODE_GRANT_TYPE, "refresh_token")


@dataclass
class Client(ClientMixin):
    """A robot client: secret, the scopes and audiences it may ask for, its groups."""

    client_id: str
    client_secret: str
    scopes: list[str]
    audiences: list[str]
    groups: list[str] = field(default_factory=list)
    lifetime: int | None = None  # seconds; default: the provider's
    grant_types: list[str] = field(default_factory=lambda: ["client_credentials"])

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        """The requested scopes this client may have (all of its scopes when none are asked for)."""
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope.split() if any(covers(mine, s) for mine in self.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def covers(registered: str, requested: str) -> bool:
    """A registered scope allows the same scope, and a WLCG storage scope allows it on any sub-path (as IAM's
    parametric scopes do): `storage.read:/` allows `storage.read:/cygno-data`; `storage.read:` means `/`."""
    if requested == registered:
        return True
    name, sep, path = registered.partition(":")
    want_name, want_sep, want_path = requested.partition(":")
    if not (sep and want_sep and name == want_name and name.startswith("storage.")):
        return False
    base, path = "/" + path.strip("/"), "/" + want_path.strip("/")
    return base == "/" or path == base or path.startswith(base + "/")


class ClientCredentials(grants.ClientCredentialsGrant):
    """Client credentials with secrets in the Authorization header or the form (what oidc-agent and Rucio send)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class WlcgTokens(JWTBearerTokenGenerator):
    """RFC 9068 JWT access tokens with the WLCG token profile claims."""

    def __init__(self, issuer: str, keys: KeySet, lifetime: int):
        super().__init__(issuer, alg="RS256", refresh_token_generator=lambda **_: token_urlsafe(48),
                         expires_generator=lambda client, grant_type: client.lifetime or lifetime)
        self.keys = keys

    def generate(self, grant_type: str, client: Client, user: Person | None = None, scope: str | None = None,
                 expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        """A token whose scopes a person's grant narrows to what that person may have."""
        if user is not None:
            scope = user.allowed(self.get_allowed_scope(client, scope) or "")
        return super().generate(grant_type, client, user, scope, expires_in, include_refresh_token)

    def get_jwks(self) -> KeySet:
        return self.keys

    def get_audiences(self, client: Client, user: Any, scope: str) -> str | list[str]:
        """The `audience` the request asks for (WLCG), each registered for the client; several, space-separated
        as IAM takes them, make a list `aud` (one token for Rucio and the storage it downloads from)."""
        wanted = (request.form.get("audience") or client.audiences[0]).split()
        for aud in wanted:
            if aud not in client.audiences:
                raise InvalidRequestError(f"audience {aud!r} is not registered for client {client.client_id}")
        return wanted[0] if len(wanted) == 1 else wanted

    def get_extra_claims(self, client: Client, grant_type: str, user: Any, scope: str) -> dict[str, Any]:
        return {"wlcg.ver": WLCG_VERSION, "wlcg.groups": list(user.groups if user else client.groups)}


def load_clients(config: dict[str, Any]) -> dict[str, Client]:
    """Clients of the configuration, by id; a malformed entry names its field."""
    clients = {}
    for n, entry in enumerate(config.get("clients", [])):
        for key in ("client_id", "client_secret", "scopes", "audiences"):
            if not entry.get(key):
                raise ValueError(f"clients[{n}].{key}: required")
        unknown = set(entry.get("grant_types", [])) - set(GRANT_TYPES)
        if unknown:
            raise ValueError(f"clients[{n}].grant_types: {sorted(unknown)} not among {GRANT_TYPES}")
        clients[entry["client_id"]] = Client(entry["client_id"], entry["client_secret"], list(entry["scopes"]),
                                             list(entry["audiences"]), list(entry.get("groups", [])),
                                             entry.get("lifetime"),
                                             list(entry.get("grant_types", ["client_credentials"])))
    return clients


def load_or_create_key(path: Path) -> KeySet:
    """The signing key set: read from `path`, or made once and written 0600."""
    if path.exists():
        return KeySet.import_key_set(json.loads(path.read_text()))
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
    keys = KeySet([key])
    write_private(path, json.dumps(keys.as_dict(private=True)))
    return keys


def create_app(issuer: str, config: dict[str, Any], keys: KeySet, refresh_file: Path) -> Flask:
    """The Flask app of the identity provider."""
    app = Flask("testbed.idp")
    clients = load_clients(config)
    people = PeopleStore(load_people(config), refresh_file, int(config.get("refresh_lifetime", REFRESH_LIFETIME)))
    server = AuthorizationServer(app, query_client=clients.get,
                                 save_token=lambda token, req: save_token(people, token, req))
    server.register_grant(ClientCredentials)
    server.register_grant(device_grant(people))
    server.register_grant(refresh_grant(people))
    server.register_endpoint(device_endpoint(people, f"{issuer}/device"))
    server.register_token_generator("default", WlcgTokens(issuer, keys, int(config.get("lifetime", 1200))))
    public = {"keys": [k.as_dict(private=False) for k in keys.keys]}

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify({"issuer": issuer, "jwks_uri": f"{issuer}/jwks", "token_endpoint": f"{issuer}/token",
                        "device_authorization_endpoint": f"{issuer}/devicecode",
                        "grant_types_supported": list(GRANT_TYPES),
                        "token_endpoint_auth_methods_supported": ClientCredentials.TOKEN_ENDPOINT_AUTH_METHODS,
                        "scopes_supported": sorted({s for c in clients.values() for s in c.scopes}),
                        "id_token_signing_alg_values_supported": ["RS256"]})

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(public)

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.post("/devicecode")
    def device_authorization() -> Any:
        return server.create_endpoint_response("device_authorization")

    @app.route("/device", methods=["GET", "POST"])
    def device() -> Any:
        """The verification page: a person approves (or denies) a device's user code with their password."""
        if request.method == "GET":
            return verification_page(request.args.get("user_code", ""))
        form = request.form
        try:
            client_id = people.approve(form.get("user_code", ""), form.get("username", ""), form.get("password", ""),
                                       form.get("decision") != "deny")
        except PermissionError as err:
            return verification_page(form.get("user_code", ""), str(err)), 401
        except ValueError as err:
            return verification_page("", str(err)), 400
        log.info("device code of client %s %s by %s", client_id,
                 "denied" if form.get("decision") == "deny" else "approved", form.get("username"))
        return verification_page(message="Done: you may close this page and return to your device.")

    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the identity provider in the foreground."""
    p = argparse.ArgumentParser(prog="python -m testbed.idp", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--config", type=Path, required=True, help="0600 JSON: lifetime, clients")
    p.add_argument("--key", type=Path, required=True, help="signing key set (made at the first start, 0600)")
    p.add_argument("--tls-dir", type=Path, help="serve https with a host certificate of the testbed CA")
    p.add_argument("--issuer", help="issuer URL (the profile's [tokens] issuer; default: this host and port)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = json.loads(args.config.read_text())
    context = None
    if args.tls_dir:
        from testbed.storage.tls import ensure_host_cert

        cert, key, _ = ensure_host_cert(args.tls_dir, args.host)
        context = (str(cert), str(key))
    issuer = args.issuer or f"{'https' if context else 'http'}://{args.host}:{args.port}"
    app = create_app(issuer, config, load_or_create_key(args.key), args.key.with_name("refresh-tokens.json"))
    app.run(host=args.host, port=args.port, ssl_context=context, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
