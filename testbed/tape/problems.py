"""RFC 7807 problem responses."""

from __future__ import annotations

import json
from http import HTTPStatus

from werkzeug.wrappers import Response


class Problem(Exception):
    """An error to be answered as an RFC 7807 problem document."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def response(self, instance: str | None = None) -> Response:
        """Return the problem as an application/problem+json response."""
        body: dict[str, object] = {"type": "about:blank", "title": HTTPStatus(self.status).phrase,
                                   "status": self.status, "detail": self.detail}
        if instance:
            body["instance"] = instance
        return Response(json.dumps(body), status=self.status, headers=self.headers,
                        content_type="application/problem+json")
