"""Find run files in the DAQ directories and decide when one is complete."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cygno_dm.ingest.naming import FILE_RE, RunFile, RunNameError, did_for_file
from cygno_dm.profile import Profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchDir:
    """A DAQ directory; files are `run<N><suffix>` directly in it (TAG given) or in `<TAG>/` subdirectories."""

    path: Path
    tag: str | None = None

    @classmethod
    def parse(cls, text: str) -> WatchDir:
        """`DIR` or `TAG=DIR`."""
        tag, sep, path = text.partition("=")
        return cls(Path(path), tag) if sep and "/" not in tag else cls(Path(text))


@dataclass(frozen=True)
class Found:
    """A run file on disk now."""

    path: Path
    run: RunFile
    size: int
    mtime: float


def find(profile: Profile, dirs: list[WatchDir]) -> Iterator[Found]:
    """Every run file with a valid raw name in the watched directories (temporary/hidden names skipped)."""
    suffix = profile.naming.raw_suffix
    for wd in dirs:
        places = [(wd.path, wd.tag)] if wd.tag else [(wd.path / t, t) for t in profile.naming.tags]
        for where, tag in places:
            try:
                names = sorted(p for p in where.iterdir() if p.name.endswith(suffix))
            except FileNotFoundError:
                continue
            for p in names:
                if p.name.startswith(".") or not FILE_RE.match(p.name):
                    continue
                try:
                    run = did_for_file(profile, p, tag)
                    st = p.stat()
                except RunNameError as err:
                    log.warning("%s: skipped: %s", p, err)
                    continue
                except FileNotFoundError:
                    continue
                yield Found(p.resolve(), run, st.st_size, st.st_mtime)


def settled(size_then: int | None, size_now: int, mtime: float, settle: float, now: float | None = None) -> bool:
    """Whether a file stopped growing: same size as last time and untouched for `settle` seconds."""
    if settle <= 0:
        return True
    now = time.time() if now is None else now
    return size_then == size_now and now - mtime >= settle
