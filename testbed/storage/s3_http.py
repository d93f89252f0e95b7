"""HTTP/1.1 server of the S3 sites: a thread per connection, keep-alive, TLS, big socket buffers, WSGI-style apps.

werkzeug's development server closes every connection after one answer, so each small PUT paid a new TCP and TLS
handshake; this one keeps connections open, as S3 clients expect, and bounds each request's body by its
Content-Length (a body the application did not read is drained, or the connection closed).
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import unquote

log = logging.getLogger(__name__)

SOCKET_BUFFER = 4 << 20  # big bodies arrive in fewer, larger reads
DRAIN_LIMIT = 1 << 20  # an unread body up to this size is read and dropped to keep the connection
App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Body:
    """The request body as a stream that ends at Content-Length."""

    def __init__(self, rfile: BinaryIO, length: int) -> None:
        self.rfile, self.left = rfile, length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.rfile.read(size) if size else b""
        self.left -= len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        size = self.left if limit < 0 else min(limit, self.left)
        data = self.rfile.readline(size) if size else b""
        self.left -= len(data)
        return data


class ChunkedBody:
    """A `Transfer-Encoding: chunked` request body as a plain stream (boto3 sends aws-chunked bodies this way)."""

    def __init__(self, rfile: BinaryIO) -> None:
        self.rfile, self.chunk, self.done = rfile, 0, False

    def _next(self) -> bool:
        """Move to the next chunk if the current one is used up; False at the end of the body."""
        if self.chunk == 0 and not self.done:
            line = self.rfile.readline(4096).split(b";", 1)[0].strip()
            try:
                self.chunk = int(line, 16)
            except ValueError:
                raise ConnectionError("malformed chunked body") from None
            if self.chunk == 0:
                while self.rfile.readline(4096).strip():  # trailers
                    pass
                self.done = True
        return not self.done

    def _end_chunk(self) -> None:
        if self.chunk == 0:
            self.rfile.readline(16)  # CRLF after the chunk's data

    def read(self, size: int = -1) -> bytes:
        out = []
        while (size < 0 or size > 0) and self._next():
            data = self.rfile.read(self.chunk if size < 0 else min(size, self.chunk))
            if not data:
                raise ConnectionError("chunked body cut off")
            self.chunk -= len(data)
            size -= len(data) if size > 0 else 0
            out.append(data)
            self._end_chunk()
        return b"".join(out)

    def readline(self, limit: int = -1) -> bytes:
        out = b""
        while (limit < 0 or len(out) < limit) and not out.endswith(b"\n") and self._next():
            want = self.chunk if limit < 0 else min(limit - len(out), self.chunk)
            data = self.rfile.readline(want)
            if not data:
                raise ConnectionError("chunked body cut off")
            self.chunk -= len(data)
            out += data
            self._end_chunk()
        return out


class Handler(BaseHTTPRequestHandler):
    """One connection: requests in turn, each handed to the server's app as a WSGI environ."""

    protocol_version = "HTTP/1.1"
    server_version = "cygno-dm-s3"
    rbufsize = 256 << 10
    server: Server

    def setup(self) -> None:
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            self.request.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.ssl_context is not None:  # the handshake runs in this connection's thread
            self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError) as err:
            log.debug("connection from %s ended: %s", self.client_address[0], err)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.client_address[0], format % args)

    def serve(self) -> None:
        """Answer one request."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "Bad Request", "Content-Length: not a non-negative integer")
            return
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        body: Body | ChunkedBody = ChunkedBody(self.rfile) if chunked else Body(self.rfile, length)
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command, "RAW_URI": self.path, "PATH_INFO": unquote(path),
            "QUERY_STRING": query, "SERVER_PROTOCOL": self.request_version, "wsgi.input": body,
            "REMOTE_ADDR": self.client_address[0], "wsgi.url_scheme": "https" if self.server.ssl_context else "http",
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        answer: list[Any] = []
        result = self.server.app(environ, lambda status, headers, exc_info=None: answer.extend((status, headers)))
        try:
            status, headers = answer
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            names = set()
            for name, value in headers:
                names.add(name.lower())
                if name.lower() == "connection" and value.lower() == "close":
                    self.close_connection = True
                self.send_header(name, value)
            if "content-length" not in names and self.command != "HEAD" and int(code) not in (204, 304):
                self.close_connection = True  # the end of the body is the end of the connection
            self.end_headers()
            if self.command != "HEAD":
                for chunk in result:
                    self.wfile.write(chunk)
        finally:
            getattr(result, "close", lambda: None)()
        if chunked and not body.done:
            self.close_connection = True
        elif body.left:
            if body.left > DRAIN_LIMIT:
                self.close_connection = True
            else:
                while body.read(65536):
                    pass

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = serve


class Server(ThreadingHTTPServer):
    """Threaded server of one app on one address, over TLS when given an SSL context."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, app: App, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app, self.ssl_context = app, ssl_context
        super().__init__((host, port), Handler)

    def server_bind(self) -> None:
        import socketserver

        socketserver.TCPServer.server_bind(self)  # HTTPServer's would look the host name up
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("error serving %s", client_address[0], exc_info=True)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for this certificate and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
