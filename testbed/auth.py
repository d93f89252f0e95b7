"""Who is calling a testbed service: the X.509 client certificate (or proxy) of the TLS connection, or a bearer token.

The TLS layer has already verified the certificate chain against the testbed CA (proxies allowed); this module
turns the verified certificate into the DN FTS reports, and asks the token verifier about bearer tokens.
Servers: werkzeug puts the certificate in `SSL_CLIENT_CERT`; under gunicorn it is read from the connection.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

_SHORT = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O", NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
          NameOID.DOMAIN_COMPONENT: "DC", NameOID.COUNTRY_NAME: "C", NameOID.LOCALITY_NAME: "L",
          NameOID.STATE_OR_PROVINCE_NAME: "ST", NameOID.EMAIL_ADDRESS: "emailAddress"}
_PROXY_CN = re.compile(r"/CN=(\d+|proxy|limited proxy)$")


class AuthError(Exception):
    """The request carries no acceptable credential; the message says why (one line)."""


@dataclass(frozen=True)
class Caller:
    """An authenticated client: its DN (or token subject), how it authenticated, admin or not, token scopes."""

    dn: str
    method: str
    admin: bool = False
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TokenIdentity:
    """What a valid bearer token says: subject, scopes, groups."""

    subject: str
    scopes: frozenset[str]
    groups: tuple[str, ...] = ()


TokenVerifier = Callable[[str], TokenIdentity]  # raises AuthError (one-line reason) when the token is refused


def slash_dn(name: x509.Name) -> str:
    """`/O=.../CN=...` (the form FTS and Rucio use) of an X.509 name."""
    return "".join(f"/{_SHORT.get(a.oid, a.oid.dotted_string)}={a.value}" for a in name)


def end_entity_dn(pem: str) -> str:
    """The DN of the certificate's owner: a proxy's trailing `/CN=<number>|proxy` components are dropped."""
    dn = slash_dn(x509.load_pem_x509_certificate(pem.encode()).subject)
    while _PROXY_CN.search(dn):
        dn = _PROXY_CN.sub("", dn)
    return dn


def peer_certificate(environ: dict[str, Any]) -> str | None:
    """The verified client certificate of the request (PEM), if the client presented one."""
    pem = environ.get("SSL_CLIENT_CERT")
    if pem:
        return pem
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, ssl.SSLSocket):
        der = sock.getpeercert(binary_form=True)
        if der:
            return ssl.DER_cert_to_PEM_cert(der)
    return None


def ssl_server_context(cert: str, key: str, ca_file: str) -> ssl.SSLContext:
    """TLS server context: host certificate; client certificates (and RFC 3820 proxies) verified if presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL  # bearer-token clients present no certificate
    context.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
    return context


def authenticate(environ: dict[str, Any], admins: frozenset[str], verify_token: TokenVerifier | None) -> Caller:
    """The caller of a WSGI request, or AuthError."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization: only 'Bearer <token>' is accepted")
        if verify_token is None:
            raise AuthError("bearer token refused: this service has no token issuer configured")
        who = verify_token(token.strip())
        return Caller(who.subject, "token", who.subject in admins, who.scopes)
    pem = peer_certificate(environ)
    if pem:
        dn = end_entity_dn(pem)
        return Caller(dn, "certificate", dn in admins)
    if environ.get("wsgi.url_scheme") != "https":
        raise AuthError("plain http carries no credential: use https with a client certificate or a bearer token")
    raise AuthError("no credential: present a client certificate (or proxy) of the testbed CA or a bearer token")
