"""Time stamps in the formats the FTS3 REST API uses."""

from __future__ import annotations

import datetime as dt
import time

FTS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def utcnow() -> dt.datetime:
    """Naive UTC now, truncated to seconds (what FTS reports)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def now_str() -> str:
    """Naive UTC now as `%Y-%m-%dT%H:%M:%S`."""
    return utcnow().strftime(FTS_TIME_FORMAT)


def epoch() -> float:
    """Seconds since the epoch (for scheduling decisions)."""
    return time.time()


def parse(value: str | None) -> dt.datetime | None:
    """Parse an FTS time stamp, None stays None."""
    return dt.datetime.strptime(value, FTS_TIME_FORMAT) if value else None
