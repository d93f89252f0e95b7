"""Reconstruction of Rucio DIDs: resolve runs, read (or recall from tape) and verify them, find their pedestal,
reconstruct, and register the outputs with provenance.

`Processor` is the library entry point (the lifecycle daemons call it); `cygno-dm reco run SCOPE:NAME` is the
command line on top of it.
"""

from cygno_dm.processing.errors import ProcessingError, Unavailable
from cygno_dm.processing.pipeline import Processor, Result, Settings

__all__ = ["ProcessingError", "Processor", "Result", "Settings", "Unavailable"]
