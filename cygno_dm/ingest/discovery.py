"""Find run files in the DAQ directories and decide when one is complete."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cygno_dm.ingest.naming import RunFile, RunNameError, did_for_file
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


@dataclass(frozen=True)
class Refused:
    """A file with the run-file suffix whose name breaks the naming rule: reported, never touched."""

    path: Path
    reason: str
    size: int
    mtime: float


def find(profile: Profile, dirs: list[WatchDir]) -> Iterator[Found | Refused]:
    """Every file with the run-file suffix in the watched directories (hidden/temporary names skipped)."""
    suffix = profile.naming.raw_suffix
    for wd in dirs:
        places = [(wd.path, wd.tag)] if wd.tag else [(wd.path / t, t) for t in profile.naming.tags]
        for where, tag in places:
            try:
                names = sorted(p for p in where.iterdir() if p.name.endswith(suffix) and not p.name.startswith("."))
            except FileNotFoundError:
                continue
            for p in names:
                try:
                    st = p.stat()
                    run = did_for_file(profile, p, tag)
                except FileNotFoundError:
                    continue
                except RunNameError as err:
                    yield Refused(p.resolve(), str(err), st.st_size, st.st_mtime)
                    continue
                yield Found(p.resolve(), run, st.st_size, st.st_mtime)


def settled(size_then: int | None, size_now: int, mtime: float, settle: float, now: float | None = None) -> bool:
    """Whether a file stopped growing: same size as last time and untouched for `settle` seconds."""
    if settle <= 0:
        return True
    now = time.time() if now is None else now
    return size_then == size_now and now - mtime >= settle
