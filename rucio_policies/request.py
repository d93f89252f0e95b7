"""The REST request the server is answering: Rucio hands the policy only part of it (e.g. not the files of
PUT /replicas), so the policy reads the rest here. Outside a request (daemons, unit tests) every helper says so."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn

from rucio_policies.messages import header_safe

if TYPE_CHECKING:
    from rucio.common.types import InternalAccount

LOGGER = logging.getLogger(__name__)


def _request() -> Any:
    try:
        import flask
    except ImportError:  # clients without the server extras
        return None
    return flask.request if flask.has_request_context() else None


def path() -> str | None:
    """The URL path of the request being served, None outside a request."""
    req = _request()
    return None if req is None else req.path


def args() -> dict[str, str]:
    """The query arguments of the request being served (empty outside a request)."""
    req = _request()
    return {} if req is None else dict(req.args)


def body() -> Any:
    """The JSON body of the request being served (None outside a request or when it is not JSON)."""
    req = _request()
    if req is None:
        return None
    return req.get_json(force=True, silent=True)


def body_list(key: str) -> list[dict[str, Any]] | None:
    """`key` of the JSON body when it is a list of objects, else None."""
    data = body()
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    return items


def issuer() -> InternalAccount | None:
    """The authenticated account of the request being served, None outside a request."""
    req = _request()
    return None if req is None else req.environ.get("issuer")


def refuse(exc: Exception, status: int) -> NoReturn:
    """Answer the request with `status` and Rucio's error headers for `exc`; outside a request, raise `exc`.

    For code paths whose Rucio view does not catch the exception (it would become a 500): the answer
    carries ExceptionClass/ExceptionMessage as every Rucio error does, so clients raise the same exception.
    """
    if _request() is None:
        raise exc
    from rucio.web.rest.flaskapi.v1.common import generate_http_error_flask
    from werkzeug.exceptions import HTTPException

    message = header_safe(str(exc.args[0]) if exc.args else type(exc).__name__)
    raise HTTPException(response=generate_http_error_flask(status, type(exc).__name__, message))
