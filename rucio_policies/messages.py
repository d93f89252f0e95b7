"""Error messages that travel in HTTP headers (Rucio's ExceptionMessage): printable ASCII only."""

from __future__ import annotations

import logging

LOGGER = logging.getLogger(__name__)


def header_safe(text: str) -> str:
    """`text` with every non-printable or non-ASCII character escaped (\\n, \\x00, \\u0100, ...)."""
    return "".join(c if 32 <= ord(c) < 127 else c.encode("unicode_escape").decode("ascii") for c in text)
