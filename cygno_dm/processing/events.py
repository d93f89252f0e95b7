"""Progress reports of the processing: what the CLI shows and a daemon may log."""

from __future__ import annotations

from typing import Any


class Events:
    """What the processing reports while it works; this base ignores it (the CLI shows it)."""

    def step(self, did: str, message: str) -> None:
        """A new step for `did` (reading, staging, reconstructing, registering)."""

    def rule(self, did: str, rule: dict[str, Any]) -> None:
        """The staging rule of `did` as last polled."""

    def start(self, label: str, total: int) -> None:
        """Frame-by-frame work begins: `total` frames."""

    def advance(self, n: int) -> None:
        """`n` more frames done."""
