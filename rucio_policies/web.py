"""A guard on Rucio's REST error answers: their message travels in an HTTP header, and a message holding a
character outside Latin-1 (a user's DID name, say) crashes the gunicorn worker instead of answering."""

from __future__ import annotations

import logging
import sys
from typing import Any

from rucio_policies.messages import header_safe

LOGGER = logging.getLogger(__name__)
MODULE = "rucio.web.rest.flaskapi.v1.common"


def install() -> bool:
    """Make the server's error headers ASCII-safe (the JSON body keeps the message); True once installed.

    Does nothing outside the REST server (daemons, clients) or before Rucio's web module has loaded.
    """
    common = sys.modules.get(MODULE)
    original = getattr(common, "error_headers", None)
    if original is None:
        return False
    if getattr(original, "_psge_safe", False):
        return True

    def error_headers(exc_cls: str, exc_msg: str) -> dict[str, Any]:
        return original(exc_cls=header_safe(str(exc_cls)), exc_msg=header_safe(exc_msg) if exc_msg else exc_msg)

    error_headers._psge_safe = True  # type: ignore[attr-defined]
    common.error_headers = error_headers  # type: ignore[union-attr]
    LOGGER.info("Rucio's REST error headers are made ASCII-safe")
    return True
