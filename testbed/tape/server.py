"""Serving the endpoint: gunicorn with gthread workers, or werkzeug's threaded server."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from werkzeug.serving import make_server

from testbed.tape.app import create_app
from testbed.tape.config import TapeConfig
from testbed.tape.store import Store

log = logging.getLogger(__name__)


def _write_port(port_file: Path | None, host: str, port: int) -> None:
    log.info("tape endpoint listening on http://%s:%d", host, port)
    if port_file is not None:
        tmp = port_file.with_suffix(port_file.suffix + ".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(port_file)


class _Gunicorn(BaseApplication):
    """gunicorn driven from Python: each worker builds its own app; one of them runs the worker thread."""

    def __init__(self, config: TapeConfig, options: dict[str, Any]) -> None:
        self.config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.config)


def serve_gunicorn(config: TapeConfig, host: str, port: int, workers: int = 2, threads: int = 8,
                   port_file: Path | None = None, tls: tuple[str, str] | None = None) -> None:
    """Serve in the foreground with gunicorn (gthread workers) until stopped; https when `tls` (cert, key)."""

    def when_ready(server: Any) -> None:
        bound = server.LISTENERS[0].sock.getsockname()[1]
        _write_port(port_file, host, bound)

    options = {"bind": f"{host}:{port}", "workers": workers, "threads": threads, "worker_class": "gthread",
               "timeout": 300, "graceful_timeout": 10, "keepalive": 5, "when_ready": when_ready,
               "accesslog": None, "errorlog": "-", "loglevel": "info", "proc_name": "cygno-tape",
               "control_socket_disable": True}
    if tls:
        options.update(certfile=tls[0], keyfile=tls[1])
    Store(config.db_path)  # create the schema once, before the workers fork
    _Gunicorn(config, options).run()


def serve_werkzeug(config: TapeConfig, host: str, port: int, port_file: Path | None = None) -> None:
    """Serve in the foreground with werkzeug's threaded server until SIGTERM/SIGINT."""
    app = create_app(config)
    server = make_server(host, port, app, threaded=True)
    server.timeout = 1

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    _write_port(port_file, host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.lifecycle.stop()
