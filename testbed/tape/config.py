"""Settings of one tape endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TapeConfig:
    """Where the endpoint keeps its data and how fast its "tape" behaves."""

    root: Path
    migrate_after: float = 60.0
    evict_after: float = 3600.0
    stage_latency: float = 30.0
    pin_lifetime: float = 86400.0
    tape_rate: float = 0.0
    tick: float = 0.0
    sitename: str = "CYGNO-TESTBED-TAPE"

    @property
    def buffer_dir(self) -> Path:
        """Directory holding the disk buffer (the namespace mirrored)."""
        return self.root / "buffer"

    @property
    def tape_dir(self) -> Path:
        """Directory holding the tape copies (the namespace mirrored)."""
        return self.root / "tape"

    @property
    def tmp_dir(self) -> Path:
        """Directory for partial uploads, migrations and recalls (same filesystem as the data)."""
        return self.root / "tmp"

    @property
    def db_path(self) -> Path:
        """SQLite file with the namespace, localities and stage requests."""
        return self.root / "state.sqlite"

    @property
    def interval(self) -> float:
        """Seconds between two rounds of the background worker."""
        if self.tick > 0:
            return self.tick
        shortest = min(self.migrate_after, self.evict_after, self.stage_latency)
        return max(0.02, min(1.0, shortest / 4 if shortest > 0 else 0.02))

    def prepare(self) -> None:
        """Create the directories the endpoint needs."""
        for d in (self.root, self.buffer_dir, self.tape_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
