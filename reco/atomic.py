"""Write a file under a temporary name and rename it when complete."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def partial_path(final: Path) -> Path:
    """Temporary name used while `final` is being written."""
    return final.with_name(f".{final.name}.partial")


@contextlib.contextmanager
def atomic_output(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path; rename it to `final` on success, delete it on error."""
    final = Path(final)
    tmp = partial_path(final)
    tmp.unlink(missing_ok=True)  # leftover of an interrupted run
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        log.debug("removed partial output %s", tmp)
        raise
    os.replace(tmp, final)
    log.debug("wrote %s", final)
