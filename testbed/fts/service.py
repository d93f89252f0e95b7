"""Wiring of the transfer service: store, copier, scheduler and the HTTP server."""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from testbed.auth import TokenVerifier, ssl_server_context

from . import credentials
from .api import create_app
from .copier import Copier
from .endpoints import Endpoints
from .metrics import Metrics
from .scheduler import Limits, Scheduler
from .store import Store
from .submission import Defaults
from .tape import TapeClient

log = logging.getLogger(__name__)


@dataclass
class ServiceConfig:
    """Everything the service needs to start."""

    db: Path
    host: str = "127.0.0.1"
    port: int = 8446
    s3_credentials: Path | None = None
    limits: Limits = field(default_factory=Limits)
    vo: str = "cygno"
    default_retries: int = 0
    streamed: bool = True
    tls_dir: Path | None = None  # testbed CA dir: serve https with <tls_dir>/hosts/<host>.pem, verify clients
    admins: frozenset[str] = frozenset()  # DNs (or token subjects) that may see and change every job
    s3_users: frozenset[str] = frozenset()  # who may have unsigned S3 URLs signed with the service's keys
    storage_endpoints: tuple[str, ...] = ()  # scheme://host:port or file:///dir this service copies between
    verify_token: TokenVerifier | None = None  # bearer tokens are refused without one
    # token subject -> certificate DN of the same client (Rucio polls token and certificate jobs with either)
    token_subjects: dict[str, str] = field(default_factory=dict)
    client_cert: Path | None = None  # certificate + key (one PEM) the service presents to storage


class FtsService:
    """One running FTS-compatible service."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.vo = config.vo
        self.defaults = Defaults(retries=config.default_retries)
        self.admins = frozenset(config.admins)
        self.s3_users = frozenset(config.s3_users)
        self.endpoints = Endpoints.parse(list(config.storage_endpoints))
        self.verify_token = config.verify_token
        self.token_subjects = dict(config.token_subjects)
        self.metrics = Metrics()
        self.store = Store(config.db)
        s3_keys = credentials.load(config.s3_credentials)
        self.s3_hosts = credentials.hosts(s3_keys)
        self.copier = Copier(s3_keys, streamed=config.streamed)
        tape = TapeClient(cert=str(config.client_cert) if config.client_cert else None)
        self.scheduler = Scheduler(self.store, self.copier, config.limits, tape, self.metrics)
        self.app = create_app(self)
        self._server: BaseWSGIServer | None = None

    def start(self) -> None:
        """Recover interrupted transfers and start scheduling."""
        self.scheduler.start()

    def serve_forever(self) -> None:
        """Serve HTTP in the foreground until shutdown() is called."""
        context = self.ssl_context()
        self._server = make_server(self.config.host, self.config.port, self.app, threaded=True, ssl_context=context)
        log.info("FTS-compatible service listening on %s://%s:%d (db %s)", "https" if context else "http",
                 self.config.host, self._server.server_port, self.config.db)
        self._server.serve_forever()

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS with the host certificate; client certificates (and RFC 3820 proxies) verified by the CA."""
        if self.config.tls_dir is None:
            return None
        from testbed.storage.tls import ensure_host_cert

        cert, key, ca_dir = ensure_host_cert(self.config.tls_dir, self.config.host)
        return ssl_server_context(str(cert), str(key), str(ca_dir / "ca.pem"))

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop serving and scheduling; interrupted copies stay ACTIVE and are recovered at the next start."""
        if self._server is not None:
            threading.Thread(target=self._server.shutdown, daemon=True).start()
        self.scheduler.stop(grace)
