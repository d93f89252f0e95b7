"""Transfer failures with the FTS-style reason and whether a retry can help."""

from __future__ import annotations

import errno
from typing import Any

NOT_RETRYABLE = {errno.ENOENT, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EINVAL, errno.EISDIR,
                 errno.ENOTDIR, errno.ECANCELED}


class TransferError(Exception):
    """A failed transfer step: `reason` is what the file row reports."""

    def __init__(self, side: str, code: int, message: str, retryable: bool | None = None):
        self.side = side
        self.code = code
        self.message = message
        self.retryable = code not in NOT_RETRYABLE if retryable is None else retryable
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """FTS-style reason: `SIDE [code] message`."""
        return f"{self.side} [{self.code}] {self.message}"


def from_gerror(side: str, exc: Any, what: str = "") -> TransferError:
    """Wrap a gfal2.GError (or any exception) as a TransferError for `side`."""
    code = int(getattr(exc, "code", 0) or errno.EIO)
    message = str(getattr(exc, "message", "") or exc).strip()
    if what:
        message = f"{what}: {message}"
    return TransferError(side, code, message)
