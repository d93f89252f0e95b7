"""Job functions the executor tests run on real workers (importable by Dask worker processes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


def die_once(spec: dict[str, Any]) -> dict[str, Any]:
    """Kill the worker running it the first time (a marker file remembers), succeed the next time."""
    marker = Path(spec["marker"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"did": spec["did"], "output_did": "x:y", "pid": os.getpid(), "first_pid": int(marker.read_text())}
