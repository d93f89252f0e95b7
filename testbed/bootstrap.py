"""Create the Rucio database once: tables, the base VO and the root account (Rucio's own bootstrap steps).

Run as `python -m testbed.bootstrap` with RUCIO_CONFIG pointing at the testbed's rucio.cfg: Rucio reads its
configuration at import time, so this must run in its own process.
"""

from __future__ import annotations

import logging
import sys

import sqlalchemy as sa

from rucio_policies.metadata import create_tables

log = logging.getLogger(__name__)


def bootstrapped() -> bool:
    """True when the database already holds Rucio's tables and the root account."""
    from rucio.db.sqla.session import get_engine

    engine = get_engine()
    if not sa.inspect(engine).has_table("accounts"):
        return False
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM accounts WHERE account = 'root'")).scalar() == 1


def main() -> int:
    """Bootstrap the database unless that was already done."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from rucio.db.sqla.session import get_engine
    from rucio.db.sqla.util import build_database, create_base_vo, create_root_account

    engine = get_engine()
    if engine.dialect.name == "sqlite":
        # WAL lets the daemons read while the server writes; the setting persists in the file.
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    if bootstrapped():
        log.info("database already bootstrapped")
    else:
        build_database()
        create_base_vo()
        create_root_account()
        log.info("database bootstrapped")
    create_tables(engine)  # the run-metadata plugin's table
    return 0


if __name__ == "__main__":
    sys.exit(main())
