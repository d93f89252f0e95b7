"""The SQLAlchemy table holding typed DID metadata (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import logging

from rucio.db.sqla.models import BASE
from rucio.db.sqla.types import InternalScopeString
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
)
from sqlalchemy.engine import Connection, Engine

LOGGER = logging.getLogger(__name__)

TABLE_NAME = "psge_did_meta"
VALUE_COLUMNS = {"int": "int_value", "float": "float_value", "str": "str_value", "datetime": "time_value"}

METADATA = MetaData(schema=BASE.metadata.schema)

# Only referenced by the foreign key (never created from here): Rucio's own DID table.
_DIDS = Table("dids", METADATA, Column("scope", InternalScopeString(25)), Column("name", String(250)))

DID_META = Table(
    TABLE_NAME, METADATA,
    Column("scope", InternalScopeString(25), nullable=False),
    Column("name", String(250), nullable=False),
    Column("key", String(64), nullable=False),
    Column("int_value", BigInteger),
    Column("float_value", Float(precision=53)),
    Column("str_value", String(255)),
    Column("time_value", DateTime),
    PrimaryKeyConstraint("scope", "name", "key", name="PSGE_DID_META_PK"),
    ForeignKeyConstraint(["scope", "name"], ["dids.scope", "dids.name"], ondelete="CASCADE",
                         name="PSGE_DID_META_DIDS_FK"),
    Index("PSGE_DID_META_INT_IDX", "key", "int_value"),
    Index("PSGE_DID_META_STR_IDX", "key", "str_value"),
    Index("PSGE_DID_META_TIME_IDX", "key", "time_value"),
)


def create_tables(bind: Engine | Connection | str) -> None:
    """Create the metadata table if missing (idempotent); call after Rucio's bootstrap created `dids`."""
    engine = create_engine(bind) if isinstance(bind, str) else bind
    if isinstance(engine, Connection):
        DID_META.create(engine, checkfirst=True)
        return
    with engine.begin() as conn:
        DID_META.create(conn, checkfirst=True)
    LOGGER.info("table %s ready", TABLE_NAME)


def drop_tables(bind: Engine | Connection | str) -> None:
    """Drop the metadata table if present (before dropping Rucio's tables on PostgreSQL)."""
    engine = create_engine(bind) if isinstance(bind, str) else bind
    if isinstance(engine, Connection):
        DID_META.drop(engine, checkfirst=True)
        return
    with engine.begin() as conn:
        DID_META.drop(conn, checkfirst=True)
