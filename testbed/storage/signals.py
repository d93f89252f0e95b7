"""Signal-mask hygiene for server entry points."""

from __future__ import annotations

import logging
import signal

log = logging.getLogger(__name__)


def unblock_all_signals() -> None:
    """Clear an inherited signal mask so SIGTERM/SIGINT stop the server.

    gfal2 blocks almost every signal in a thread that creates a context, and children started from
    that process (tests, the transfer service) inherit the mask across fork and exec.
    """
    blocked = signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if blocked:
        log.debug("cleared inherited signal mask: %s", sorted(int(s) for s in blocked))
