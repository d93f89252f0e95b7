"""Serving the endpoint: gunicorn with gthread workers, or werkzeug's threaded server."""

from __future__ import annotations

import logging
import signal
import ssl
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from werkzeug.serving import make_server

from testbed.auth import TokenVerifier, ssl_server_context
from testbed.tape.app import create_app
from testbed.tape.config import TapeConfig
from testbed.tape.store import Store

log = logging.getLogger(__name__)


def _write_port(port_file: Path | None, host: str, port: int, scheme: str = "http") -> None:
    log.info("tape endpoint listening on %s://%s:%d", scheme, host, port)
    if port_file is not None:
        tmp = port_file.with_suffix(port_file.suffix + ".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(port_file)


class _Gunicorn(BaseApplication):
    """gunicorn driven from Python: each worker builds its own app; one of them runs the worker thread."""

    def __init__(self, config: TapeConfig, options: dict[str, Any], verify_token: TokenVerifier | None,
                 token_base: str) -> None:
        self.config = config
        self.options = options
        self.verify_token = verify_token
        self.token_base = token_base
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.config, verify_token=self.verify_token, token_base=self.token_base)


def serve_gunicorn(config: TapeConfig, host: str, port: int, workers: int = 2, threads: int = 8,
                   port_file: Path | None = None, tls: tuple[str, str, str] | None = None,
                   verify_token: TokenVerifier | None = None, token_base: str = "/") -> None:
    """Serve in the foreground with gunicorn (gthread workers) until stopped; https when `tls` (cert, key, CA file),
    asking clients for a certificate of that CA."""

    def when_ready(server: Any) -> None:
        bound = server.LISTENERS[0].sock.getsockname()[1]
        _write_port(port_file, host, bound, "https" if tls else "http")

    options = {"bind": f"{host}:{port}", "workers": workers, "threads": threads, "worker_class": "gthread",
               "timeout": 300, "graceful_timeout": 10, "keepalive": 5, "when_ready": when_ready,
               "accesslog": None, "errorlog": "-", "loglevel": "info", "proc_name": "cygno-tape",
               "control_socket_disable": True}
    if tls:
        options.update(certfile=tls[0], keyfile=tls[1], ca_certs=tls[2], cert_reqs=ssl.CERT_OPTIONAL)
    Store(config.db_path)  # create the schema once, before the workers fork
    _Gunicorn(config, options, verify_token, token_base).run()


def serve_werkzeug(config: TapeConfig, host: str, port: int, port_file: Path | None = None,
                   tls: tuple[str, str, str] | None = None, verify_token: TokenVerifier | None = None,
                   token_base: str = "/") -> None:
    """Serve in the foreground with werkzeug's threaded server until SIGTERM/SIGINT (https when `tls`)."""
    app = create_app(config, verify_token=verify_token, token_base=token_base)
    context = ssl_server_context(*tls) if tls else None
    server = make_server(host, port, app, threaded=True, ssl_context=context)
    server.timeout = 1

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    _write_port(port_file, host, server.server_port, "https" if tls else "http")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.lifecycle.stop()
