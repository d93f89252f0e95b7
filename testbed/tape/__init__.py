"""Tape endpoint of the testbed: WebDAV data access, a disk buffer that migrates to "tape", WLCG Tape REST API v1."""

from testbed.tape.app import create_app
from testbed.tape.config import TapeConfig

__all__ = ["TapeConfig", "create_app"]
