"""Typed run-metadata keys (defaults for CYGNO-like experiments) and the coercion of incoming values."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rucio_policies.messages import header_safe

LOGGER = logging.getLogger(__name__)

KeyType = Literal["int", "float", "str", "datetime"]
INT64 = 2**63 - 1
INT32 = 2**31 - 1
STR_MAX = 255
RUCIO_DATE = "%a, %d %b %Y %H:%M:%S UTC"
_INT_TEXT = re.compile(r"^[+-]?[0-9]{1,19}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class MetadataValueError(ValueError):
    """A metadata value broke its key's type or range; the message names the key and the rule."""

    def __init__(self, message: str) -> None:
        super().__init__(header_safe(message))


@dataclass(frozen=True)
class KeySpec:
    """A metadata key: its type and, for numbers, the allowed range."""

    name: str
    type: KeyType
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, value: Any) -> int | float | str | datetime:
        """The typed value for `value`, or MetadataValueError naming the key and its type."""
        coerce = {"int": _to_int, "float": _to_float, "str": _to_str, "datetime": _to_datetime}[self.type]
        try:
            typed = coerce(value)
        except (TypeError, ValueError, OverflowError) as err:
            raise MetadataValueError(f"metadata key {self.name!r} takes a {self.type}: {err}") from None
        if self.minimum is not None and typed < self.minimum:  # type: ignore[operator]
            raise MetadataValueError(f"metadata key {self.name!r} must be >= {self.minimum}, got {typed}")
        if self.maximum is not None and typed > self.maximum:  # type: ignore[operator]
            raise MetadataValueError(f"metadata key {self.name!r} must be <= {self.maximum}, got {typed}")
        return typed


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{value!a} is a boolean")
    if isinstance(value, int):
        out = value
    elif isinstance(value, str) and _INT_TEXT.match(value.strip()) and not _CONTROL.search(value):
        out = int(value.strip())
    else:
        raise TypeError(f"{value!a} is not an integer")
    if not -INT64 - 1 <= out <= INT64:
        raise OverflowError(f"{out} does not fit in 64 bits")
    return out


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{value!a} is a boolean")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str) and value.strip() and not _CONTROL.search(value):
        out = float(value.strip())
    else:
        raise TypeError(f"{value!a} is not a number")
    if not math.isfinite(out):
        raise ValueError(f"{value!a} is not finite")
    return out


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!a} is not a string")
    if not value or len(value) > STR_MAX:
        raise ValueError(f"strings have 1 to {STR_MAX} characters, got {len(value)}")
    if _CONTROL.search(value):
        raise ValueError("strings contain no control characters")
    value.encode("utf-8")  # lone surrogates cannot be stored: UnicodeEncodeError is a ValueError
    return value


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, str) and value.strip() and not _CONTROL.search(value):
        text = value.strip()
        try:
            out = datetime.strptime(text, RUCIO_DATE)
        except ValueError:
            try:
                out = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{value!a} is neither ISO 8601 nor '{RUCIO_DATE}'") from None
    else:
        raise TypeError(f"{value!a} is not a date-time string")
    if out.tzinfo is not None:
        out = out.astimezone(UTC).replace(tzinfo=None)
    return out.replace(microsecond=0)


DEFAULT_KEYS: tuple[KeySpec, ...] = (
    KeySpec("run_number", "int", 0, INT32),  # mirrored into Rucio's dids.run_number (32-bit) for subscriptions
    KeySpec("start_time", "datetime"),
    KeySpec("stop_time", "datetime"),
    KeySpec("number_of_events", "int", 0, INT64),
    KeySpec("run_type", "str"),
    KeySpec("source_type", "str"),
    KeySpec("source_position", "float"),
    KeySpec("pedestal_run", "int", 0, INT64),
    KeySpec("detector", "str"),
    KeySpec("run_description", "str"),
    KeySpec("reco_campaign", "str"),
    KeySpec("reco_version", "str"),
    KeySpec("parent_did", "str"),
)


def keys_for(experiment: str | None = None) -> dict[str, KeySpec]:
    """The metadata keys of an experiment: those its profile declares, else the defaults."""
    from rucio_policies.experiments import registry

    exp = next((e for e in registry().experiments if e.name == experiment), None) if experiment else None
    declared = exp.profile.metadata if exp else {}
    if not declared:
        return {k.name: k for k in DEFAULT_KEYS}
    specs = {name: KeySpec(name, key.type, key.min, key.max) for name, key in declared.items()}
    if "run_number" in specs:  # mirrored into Rucio's 32-bit dids.run_number column
        run = specs["run_number"]
        specs["run_number"] = KeySpec("run_number", run.type, run.minimum,
                                      min(run.maximum if run.maximum is not None else INT32, INT32))
    return specs
