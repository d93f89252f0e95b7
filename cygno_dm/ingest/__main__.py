"""`python -m cygno_dm.ingest run|status`: the uploader without the `cygno-dm` entry point."""

import logging
import os

from cygno_dm.ingest.cli import ingest

logging.basicConfig(level=os.environ.get("CYGNO_DM_LOGLEVEL", "INFO"),
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
ingest()
