"""Typed run-metadata keys: what each type accepts, and what it refuses with a message naming the key."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rucio_policies.metadata_keys import INT32, KeySpec, MetadataValueError, keys_for

KEYS = keys_for("cygno")


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("run_number", 114497, 114497),
    ("run_number", "114497", 114497),
    ("run_number", " 12 ", 12),
    ("number_of_events", 0, 0),
    ("run_type", "physics", "physics"),
    ("source_position", "12.5", 12.5),
    ("source_position", 3, 3.0),
    ("start_time", "2024-05-01T10:00:00", datetime(2024, 5, 1, 10, 0)),
    ("start_time", "2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, 0)),
    ("start_time", "Wed, 01 May 2024 10:00:00 UTC", datetime(2024, 5, 1, 10, 0)),
    ("stop_time", datetime(2024, 5, 1, 10, 0, 0, 999, tzinfo=UTC), datetime(2024, 5, 1, 10, 0)),
])
def test_accepted_values(key: str, value: object, expected: object) -> None:
    assert KEYS[key].coerce(value) == expected


@pytest.mark.parametrize(("key", "value"), [
    ("run_number", 12.5), ("run_number", "12.5"), ("run_number", True), ("run_number", "abc"), ("run_number", -1),
    ("run_number", INT32 + 1), ("run_number", None), ("run_number", "1\n"), ("number_of_events", 2**64),
    ("run_type", 5), ("run_type", ""), ("run_type", "a" * 256), ("run_type", "phys\x00ics"),
    ("source_position", "nan"), ("source_position", float("inf")), ("source_position", False),
    ("start_time", 1714557600), ("start_time", "yesterday"), ("start_time", ""),
    ("run_number", "\u0100"), ("source_position", "\u0100\n"), ("run_type", "\ud800"),
])
def test_refused_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(MetadataValueError, match=f"metadata key '{key}'") as err:
        KEYS[key].coerce(value)
    assert all(32 <= ord(c) < 127 for c in str(err.value))  # travels in an HTTP header


def test_cygno_runlog_keys_are_defined() -> None:
    assert {"run_number": "int", "start_time": "datetime", "stop_time": "datetime", "number_of_events": "int",
            "run_type": "str", "source_type": "str", "pedestal_run": "int", "detector": "str"}.items() <= \
        {k: s.type for k, s in KEYS.items()}.items()


@given(st.one_of(st.integers(), st.floats(), st.text(max_size=20), st.booleans(), st.none(), st.datetimes()))
def test_int_keys_take_only_integers(value: object) -> None:
    spec = KeySpec("n", "int", 0, 100)
    is_int = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100
    text = value.strip() if isinstance(value, str) else ""
    is_text_int = bool(re.fullmatch(r"[+-]?[0-9]{1,19}", text)) and 0 <= int(text) <= 100 and \
        not re.search(r"[\x00-\x1f\x7f-\x9f]", str(value))
    try:
        out = spec.coerce(value)
    except MetadataValueError:
        assert not (is_int or is_text_int)
    else:
        assert (is_int or is_text_int) and isinstance(out, int)
