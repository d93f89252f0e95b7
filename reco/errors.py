"""Exceptions raised by the reconstruction on bad input."""

from __future__ import annotations


class RecoInputError(ValueError):
    """Bad input file, frame or configuration; the message names the file and frame."""
