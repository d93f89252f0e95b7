"""Wiring of the transfer service: store, copier, scheduler and the HTTP server."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from . import credentials
from .api import create_app
from .copier import Copier
from .metrics import Metrics
from .scheduler import Limits, Scheduler
from .store import Store
from .submission import Defaults, Identity
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
    user_dn: str = "/DC=org/DC=cygno/CN=testbed-fts-user"
    default_retries: int = 0
    streamed: bool = True


class FtsService:
    """One running FTS-compatible service."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.identity = Identity(user_dn=config.user_dn, vo=config.vo)
        self.defaults = Defaults(retries=config.default_retries)
        self.metrics = Metrics()
        self.store = Store(config.db)
        self.copier = Copier(credentials.load(config.s3_credentials), streamed=config.streamed)
        self.scheduler = Scheduler(self.store, self.copier, config.limits, TapeClient(), self.metrics)
        self.app = create_app(self)
        self._server: BaseWSGIServer | None = None

    def start(self) -> None:
        """Recover interrupted transfers and start scheduling."""
        self.scheduler.start()

    def serve_forever(self) -> None:
        """Serve HTTP in the foreground until shutdown() is called."""
        self._server = make_server(self.config.host, self.config.port, self.app, threaded=True)
        log.info("FTS-compatible service listening on http://%s:%d (db %s)", self.config.host,
                 self._server.server_port, self.config.db)
        self._server.serve_forever()

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop serving and scheduling; interrupted copies stay ACTIVE and are recovered at the next start."""
        if self._server is not None:
            threading.Thread(target=self._server.shutdown, daemon=True).start()
        self.scheduler.stop(grace)
