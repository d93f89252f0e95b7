"""MIDAS run files (.mid, .mid.gz, .mid.lz4, .mid.bz2): streamed event reader, bank decoding, ODB dumps, writer.

Written from the published MIDAS format (midas.h, the MIDAS wiki "Event Structure"):
- every event starts with a 16-byte header `<HHIII`: event id, trigger mask, serial number, time stamp,
  data size (bytes that follow the header);
- begin/end of run: event id 0x8000/0x8001, trigger mask 0x494D ("MI"), serial = run number, payload =
  the ODB dump (XML or JSON text); message events have id 0x8002 and a text payload;
- data events: an 8-byte bank header `<II` (size of all banks, flags) followed by banks; flags 0x01 = 16-bit
  banks (name 4s, type u16, size u16), 0x11 = 32-bit banks (name 4s, type u32, size u32), 0x31 =
  64-bit-aligned 32-bit banks (name 4s, type u32, size u32, reserved u32); each bank's data is padded to
  a multiple of 8 bytes.
"""

from __future__ import annotations

import bz2
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

import numpy as np
from isal import igzip, isal_zlib

from reco.errors import RecoInputError

try:  # .mid.lz4 needs the lz4 package (a dependency; kept optional for slim installs)
    import lz4.frame as lz4_frame
except ImportError:  # pragma: no cover
    lz4_frame = None

log = logging.getLogger(__name__)

EVENT_HEADER = struct.Struct("<HHIII")
BANK_HEADER = struct.Struct("<II")
BANK16 = struct.Struct("<4sHH")
BANK32 = struct.Struct("<4sII")
BANK32A = struct.Struct("<4sIII")

EVENTID_BOR = 0x8000
EVENTID_EOR = 0x8001
EVENTID_MESSAGE = 0x8002
MIDAS_MAGIC = 0x494D

BANK_FORMAT_VERSION = 0x01
BANK_FORMAT_32BIT = 0x10
BANK_FORMAT_64BIT_ALIGNED = 0x20
BANK_FLAGS = {16: BANK_FORMAT_VERSION, 32: BANK_FORMAT_VERSION | BANK_FORMAT_32BIT,
              64: BANK_FORMAT_VERSION | BANK_FORMAT_32BIT | BANK_FORMAT_64BIT_ALIGNED}  # fmt: skip

# MIDAS type ids (midas.h TID_*) and the numpy dtype their bank data decode to (little endian).
TID_UINT8, TID_INT8, TID_CHAR, TID_WORD, TID_SHORT, TID_DWORD, TID_INT = 1, 2, 3, 4, 5, 6, 7
TID_BOOL, TID_FLOAT, TID_DOUBLE, TID_BITFIELD, TID_STRING, TID_ARRAY = 8, 9, 10, 11, 12, 13
TID_STRUCT, TID_KEY, TID_LINK, TID_INT64, TID_UINT64 = 14, 15, 16, 17, 18
TID_DTYPES: dict[int, np.dtype] = {
    TID_UINT8: np.dtype("u1"),
    TID_INT8: np.dtype("i1"),
    TID_CHAR: np.dtype("u1"),
    TID_WORD: np.dtype("<u2"),
    TID_SHORT: np.dtype("<i2"),
    TID_DWORD: np.dtype("<u4"),
    TID_INT: np.dtype("<i4"),
    TID_BOOL: np.dtype("<u4"),  # MIDAS BOOL is 4 bytes
    TID_FLOAT: np.dtype("<f4"),
    TID_DOUBLE: np.dtype("<f8"),
    TID_BITFIELD: np.dtype("<u4"),
    TID_STRING: np.dtype("u1"),
    TID_ARRAY: np.dtype("u1"),
    TID_STRUCT: np.dtype("u1"),
    TID_KEY: np.dtype("u1"),
    TID_LINK: np.dtype("u1"),
    TID_INT64: np.dtype("<i8"),
    TID_UINT64: np.dtype("<u8"),
}
TID_NAMES = {
    1: "UINT8", 2: "INT8", 3: "CHAR", 4: "WORD", 5: "SHORT", 6: "DWORD", 7: "INT", 8: "BOOL", 9: "FLOAT",
    10: "DOUBLE", 11: "BITFIELD", 12: "STRING", 13: "ARRAY", 14: "STRUCT", 15: "KEY", 16: "LINK",
    17: "INT64", 18: "UINT64",
}  # fmt: skip
DTYPE_TIDS = {
    np.dtype("u1"): TID_UINT8,
    np.dtype("i1"): TID_INT8,
    np.dtype("<u2"): TID_WORD,
    np.dtype("<i2"): TID_SHORT,
    np.dtype("<u4"): TID_DWORD,
    np.dtype("<i4"): TID_INT,
    np.dtype("<f4"): TID_FLOAT,
    np.dtype("<f8"): TID_DOUBLE,
    np.dtype("<i8"): TID_INT64,
    np.dtype("<u8"): TID_UINT64,
}

MAX_EVENT_SIZE = 1 << 30  # an event header announcing more is corrupt (an ORCA-Quest frame is 19 MB)
GZIP_MAGIC, LZ4_MAGIC, BZ2_MAGIC = b"\x1f\x8b", b"\x04\x22\x4d\x18", b"BZh"
MIDAS_SUFFIXES = (".mid", ".mid.gz", ".mid.lz4", ".mid.bz2")
GZIP_ENV = "CYGNO_DM_GZIP"  # gzip library: isal (default), zlib-ng, rapidgzip[:threads], gzip


def align8(n: int) -> int:
    """`n` rounded up to a multiple of 8 (MIDAS ALIGN8)."""
    return (n + 7) & ~7


@dataclass(frozen=True)
class Bank:
    """One bank of a data event: name, MIDAS type id and raw (unpadded) data bytes."""

    name: str
    tid: int
    raw: np.ndarray  # uint8 view into the event payload

    @property
    def size(self) -> int:
        """Data size in bytes (without padding)."""
        return int(self.raw.size)

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of the bank's elements."""
        return TID_DTYPES[self.tid]

    def array(self) -> np.ndarray:
        """The bank data as a 1-D numpy array of its MIDAS type (a view, no copy)."""
        dt = self.dtype
        if self.size % dt.itemsize:
            raise ValueError(f"bank {self.name}: {self.size} bytes is not a whole number of {dt} values")
        return self.raw.view(dt)

    def text(self) -> str:
        """CHAR/STRING bank data as text (up to the first NUL)."""
        return self.raw.tobytes().split(b"\0", 1)[0].decode("latin-1")


@dataclass
class Event:
    """One MIDAS event: header fields and payload (bytes after the 16-byte header)."""

    event_id: int
    trigger_mask: int
    serial: int
    timestamp: int
    payload: np.ndarray  # uint8
    index: int = 0  # position in the file, 0 = first event

    @property
    def is_bor(self) -> bool:
        """Begin-of-run record (ODB dump)."""
        return self.event_id == EVENTID_BOR and self.trigger_mask == MIDAS_MAGIC

    @property
    def is_eor(self) -> bool:
        """End-of-run record (ODB dump)."""
        return self.event_id == EVENTID_EOR and self.trigger_mask == MIDAS_MAGIC

    @property
    def is_message(self) -> bool:
        """Message event (text)."""
        return self.event_id == EVENTID_MESSAGE

    @property
    def is_internal(self) -> bool:
        """BOR, EOR or message: not a data event with banks."""
        return self.event_id in (EVENTID_BOR, EVENTID_EOR, EVENTID_MESSAGE)

    def describe(self) -> str:
        """'event K (serial S)' for error messages."""
        return f"event {self.index} (serial {self.serial})"

    def text(self) -> str:
        """Payload as text (ODB dump or message), without trailing NULs."""
        return self.payload.tobytes().rstrip(b"\0").decode("latin-1")

    def banks(self) -> list[Bank]:
        """The banks of a data event, validated against the bank header."""
        return parse_banks(self.payload, self.describe())


def parse_banks(payload: np.ndarray, where: str = "event") -> list[Bank]:
    """Split a data event's payload into banks; raise ValueError naming the rule a bad header breaks."""
    n = int(payload.size)
    if n < BANK_HEADER.size:
        raise ValueError(f"{where}: {n} bytes, too short for the 8-byte bank header")
    all_size, flags = BANK_HEADER.unpack_from(payload, 0)
    if flags not in BANK_FLAGS.values():
        raise ValueError(
            f"{where}: bank header flags 0x{flags:x} are not 0x1, 0x11 or 0x31 (MIDAS bank formats)"
        )
    if all_size + BANK_HEADER.size != n:
        raise ValueError(
            f"{where}: bank header declares {all_size} bytes of banks, the event holds {n - BANK_HEADER.size}"
        )
    head = BANK32A if flags & BANK_FORMAT_64BIT_ALIGNED else BANK32 if flags & BANK_FORMAT_32BIT else BANK16
    banks: list[Bank] = []
    pos = BANK_HEADER.size
    while pos < n:
        if pos + head.size > n:
            raise ValueError(
                f"{where}: {n - pos} stray bytes after bank {len(banks)} (a bank header needs {head.size})"
            )
        raw_name, tid, size = head.unpack_from(payload, pos)[:3]
        name = raw_name.decode("latin-1")
        if not all(c.isalnum() or c == "_" for c in name):
            raise ValueError(
                f"{where}: bank {len(banks)} has an invalid name {raw_name!r} (4 letters/digits)"
            )
        if tid not in TID_DTYPES:
            raise ValueError(f"{where} bank {name}: unknown MIDAS type id {tid}")
        start = pos + head.size
        if start + size > n:
            raise ValueError(
                f"{where} bank {name}: {size} bytes of data run past the end of the event ({n - start} left)"
            )
        banks.append(Bank(name, tid, payload[start : start + size]))
        pos = start + align8(size)
    return banks


# ---------------------------------------------------------------------------------------------- ODB


def parse_odb(text: str | bytes) -> dict[str, Any]:
    """An ODB dump (MIDAS XML or JSON) as nested dicts of Python values (JSON '/key' metadata dropped)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    text = text.strip("\0 \r\n\t")
    if text.startswith("{"):
        return _strip_json_meta(json.loads(text))
    if text.startswith("<"):
        root = ElementTree.fromstring(text)
        return _xml_dir(root)
    raise ValueError(f"ODB dump is neither XML nor JSON (starts with {text[:20]!r})")


def _strip_json_meta(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_json_meta(v) for k, v in obj.items() if not k.endswith("/key")}
    if isinstance(obj, list):
        return [_strip_json_meta(v) for v in obj]
    return obj


_XML_INT = {"BYTE", "UINT8", "SBYTE", "INT8", "WORD", "UINT16", "SHORT", "INT16", "DWORD", "UINT32", "INT",
            "INT32", "BITFIELD", "INT64", "UINT64", "QWORD"}  # fmt: skip


def _xml_value(text: str | None, kind: str) -> Any:
    text = text or ""
    if kind in _XML_INT:
        return int(text, 0)
    if kind in ("FLOAT", "DOUBLE", "FLOAT32", "FLOAT64"):
        return float(text)
    if kind == "BOOL":
        return text.strip().lower() in ("y", "1", "true")
    return text


def _xml_dir(node: ElementTree.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node:
        name = child.get("name")
        if name is None:
            continue
        if child.tag == "dir":
            out[name] = _xml_dir(child)
        elif child.tag == "key":
            out[name] = _xml_value(child.text, child.get("type", "STRING"))
        elif child.tag == "keyarray":
            out[name] = [_xml_value(v.text, child.get("type", "STRING")) for v in child if v.tag == "value"]
    return out


def odb_get(odb: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """Value at an ODB path such as '/Runinfo/Run number' (case-insensitive, like MIDAS), else `default`."""
    node: Any = odb
    for part in (p for p in path.split("/") if p):
        if not isinstance(node, Mapping):
            return default
        if part in node:
            node = node[part]
            continue
        match = [k for k in node if isinstance(k, str) and k.lower() == part.lower()]
        if not match:
            return default
        node = node[match[0]]
    return node


def odb_json(odb: Mapping[str, Any]) -> bytes:
    """ODB dump in MIDAS JSON form."""
    return json.dumps(odb, indent=1, sort_keys=False).encode() + b"\n\0"


def odb_xml(odb: Mapping[str, Any]) -> bytes:
    """ODB dump in MIDAS XML form (dir/key/keyarray elements)."""
    root = ElementTree.Element(
        "odb", {"root": "/", "filename": "", "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance"}
    )

    def kind(v: Any) -> str:
        if isinstance(v, bool):
            return "BOOL"
        if isinstance(v, int):
            return "INT"
        if isinstance(v, float):
            return "DOUBLE"
        return "STRING"

    def text(v: Any) -> str:
        return ("y" if v else "n") if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v)

    def fill(parent: ElementTree.Element, d: Mapping[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, Mapping):
                fill(ElementTree.SubElement(parent, "dir", {"name": k}), v)
            elif isinstance(v, list | tuple):
                attrs = {"name": k, "type": kind(v[0]) if v else "INT", "num_values": str(len(v))}
                arr = ElementTree.SubElement(parent, "keyarray", attrs)
                for i, x in enumerate(v):
                    ElementTree.SubElement(arr, "value", {"index": str(i)}).text = text(x)
            else:
                attrs = {"name": k, "type": kind(v)}
                if attrs["type"] == "STRING":
                    attrs["size"] = str(len(str(v)) + 1)
                ElementTree.SubElement(parent, "key", attrs).text = text(v)

    fill(root, odb)
    return b'<?xml version="1.0" encoding="ISO-8859-1"?>\n' + ElementTree.tostring(root) + b"\n\0"


# ---------------------------------------------------------------------------------------------- reading


def _compression(head: bytes) -> str:
    """'gzip', 'lz4', 'bz2' or 'none', from the file's magic bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(LZ4_MAGIC):
        return "lz4"
    if head.startswith(BZ2_MAGIC):
        return "bz2"
    return "none"


def _open_gzip(path: Path, backend: str) -> IO[bytes]:
    """A decompressing reader for a gzip file with the chosen library."""
    if backend == "isal":
        return igzip.open(path, "rb")
    if backend == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if backend == "zlib-ng":
        from zlib_ng import gzip_ng

        return gzip_ng.open(path, "rb")
    if backend.startswith("rapidgzip"):
        import rapidgzip

        threads = int(backend.partition(":")[2] or 0)
        return rapidgzip.open(str(path), parallelization=threads)
    raise RecoInputError(
        f"unknown gzip library {backend!r} ({GZIP_ENV}): isal, zlib-ng, rapidgzip[:threads] or gzip"
    )


# errors a decompressor raises on a truncated or corrupt stream
_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    OSError,
    zlib.error,
    isal_zlib.error,
    RuntimeError,
)


class MidasFile:
    """Streams the events of a MIDAS file, decompressing as it goes (gzip via ISA-L, lz4, bz2 or plain)."""

    def __init__(self, path: str | Path, gzip_backend: str | None = None) -> None:
        self.path = Path(path)
        gzip_backend = gzip_backend or os.environ.get(GZIP_ENV) or "isal"
        if not self.path.exists():
            raise RecoInputError(f"{self.path}: MIDAS file not found")
        try:
            with open(self.path, "rb") as f:
                head = f.read(4)
        except OSError as exc:
            raise RecoInputError(f"{self.path}: cannot read: {exc}") from exc
        self.compression = _compression(head)
        if self.compression == "gzip":
            try:
                self._file: IO[bytes] = _open_gzip(self.path, gzip_backend)
            except ImportError as exc:
                raise RecoInputError(f"{GZIP_ENV}={gzip_backend} needs its package: {exc}") from exc
            except _STREAM_ERRORS as exc:
                raise RecoInputError(f"{self.path}: corrupt gzip stream: {exc}") from exc
        elif self.compression == "lz4":
            if lz4_frame is None:  # pragma: no cover
                raise RecoInputError(f"{self.path}: .lz4 needs the lz4 package (pip install lz4)")
            self._file = lz4_frame.open(self.path, "rb")
        elif self.compression == "bz2":
            self._file = bz2.open(self.path, "rb")
        else:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._count = 0
        self._offset = 0

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> MidasFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _where(self) -> str:
        return f"{self.path}: event {self._count} (uncompressed offset {self._offset})"

    def _read_into(self, buf: memoryview, what: str) -> int:
        """Fill `buf` from the stream; return the bytes read (fewer only at the end of the data)."""
        got = 0
        try:
            while got < len(buf):
                k = self._file.readinto(buf[got:])
                if not k:
                    break
                got += k
        except _STREAM_ERRORS as exc:
            kind = self.compression if self.compression != "none" else "file"
            raise RecoInputError(
                f"{self._where()}: truncated or corrupt {kind} stream while reading the {what} ({exc})"
            ) from exc
        return got

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self) -> Iterator[Event]:
        """Yield every event in file order; a truncated/corrupt file raises RecoInputError naming the event."""
        header = bytearray(EVENT_HEADER.size)
        while True:
            got = self._read_into(memoryview(header), "event header")
            if got == 0:
                return
            if got < EVENT_HEADER.size:
                raise RecoInputError(
                    f"{self._where()}: truncated MIDAS file: {got} of {EVENT_HEADER.size} header bytes"
                )
            event_id, mask, serial, stamp, size = EVENT_HEADER.unpack(header)
            if self._count == 0:
                self._check_first(event_id, mask, size)
            if size > MAX_EVENT_SIZE:
                raise RecoInputError(
                    f"{self._where()} (serial {serial}): header announces {size} bytes, more than the "
                    f"{MAX_EVENT_SIZE} an event may hold (corrupt header)"
                )
            payload = np.empty(size, np.uint8)
            n = self._read_into(memoryview(payload), f"data of serial {serial}")
            if n < size:
                raise RecoInputError(
                    f"{self._where()} (serial {serial}): truncated MIDAS event: {n} of {size} data bytes"
                )
            yield Event(event_id, mask, serial, stamp, payload, self._count)
            self._count += 1
            self._offset += EVENT_HEADER.size + size

    def _check_first(self, event_id: int, mask: int, size: int) -> None:
        """The first event must be a begin-of-run record or at least look like a MIDAS data event."""
        if event_id == EVENTID_BOR and mask == MIDAS_MAGIC:
            return
        if event_id < EVENTID_BOR and 8 <= size <= MAX_EVENT_SIZE:
            peek = self._file.peek(8)[:8] if hasattr(self._file, "peek") else b""
            if len(peek) == 8 and BANK_HEADER.unpack(peek)[1] in BANK_FLAGS.values():
                log.warning("%s: no begin-of-run record; the file starts with a data event", self.path)
                return
        raise RecoInputError(
            f"{self.path}: not a MIDAS file: it does not start with a begin-of-run record "
            f"(event id 0x8000, trigger mask 0x494D) nor with a data event"
        )


# ---------------------------------------------------------------------------------------------- writing


BankSpec = tuple[str, np.ndarray] | tuple[str, np.ndarray, int]


class CompressedSink:
    """A binary writer compressing by file suffix (.gz with ISA-L, .lz4, .bz2, or none); close() closes all."""

    def __init__(self, path: Path, suffix_of: Path | None = None, level: int = 1) -> None:
        name = (suffix_of or path).name
        self._raw = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._comp: IO[bytes] | None
        if name.endswith(".gz"):
            # mtime 0 and no file name in the gzip header: identical input gives an identical file
            self._comp = igzip.GzipFile(
                filename="", mode="wb", compresslevel=level, fileobj=self._raw, mtime=0
            )
        elif name.endswith(".lz4"):
            if lz4_frame is None:  # pragma: no cover
                self._raw.close()
                raise RecoInputError(f"{path}: .lz4 needs the lz4 package (pip install lz4)")
            self._comp = lz4_frame.LZ4FrameFile(self._raw, "wb")
        elif name.endswith(".bz2"):
            self._comp = bz2.BZ2File(self._raw, "wb", compresslevel=max(1, min(level, 9)))
        else:
            self._comp = None

    def write(self, data: bytes | memoryview) -> int:
        """Write (and compress) bytes."""
        return (self._comp or self._raw).write(data)

    def close(self) -> None:
        """Finish the compressed stream and close the file."""
        try:
            if self._comp is not None:
                self._comp.close()
        finally:
            self._raw.close()

    def __enter__(self) -> CompressedSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MidasWriter:
    """Writes a MIDAS event stream: BOR (ODB dump), data events with banks, messages, EOR."""

    def __init__(
        self,
        out: IO[bytes] | CompressedSink,
        run: int,
        odb: Mapping[str, Any],
        *,
        bank_format: int = 32,
        timestamp: int = 0,
        odb_format: str = "json",
    ) -> None:
        if bank_format not in BANK_FLAGS:
            raise ValueError(f"bank_format={bank_format}: must be 16, 32 or 64")
        if odb_format not in ("json", "xml"):
            raise ValueError(f"odb_format={odb_format!r}: must be 'json' or 'xml'")
        self.out = out
        self.run = int(run)
        self.flags = BANK_FLAGS[bank_format]
        self.bank_format = bank_format
        self.timestamp = int(timestamp)
        self._dump = odb_json if odb_format == "json" else odb_xml
        self.serial = 0
        self._write_record(EVENTID_BOR, MIDAS_MAGIC, self.run, self._dump(odb))

    def _write_record(self, event_id: int, mask: int, serial: int, payload: bytes) -> None:
        self.out.write(EVENT_HEADER.pack(event_id, mask, serial, self.timestamp, len(payload)))
        self.out.write(payload)

    def write_event(
        self,
        banks: Sequence[BankSpec],
        *,
        event_id: int = 1,
        trigger_mask: int = 1,
        serial: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Write one data event; each bank is (name, array) or (name, array, tid)."""
        heads: list[tuple[bytes, memoryview, int]] = []
        total = 0
        head = BANK32A if self.bank_format == 64 else BANK32 if self.bank_format == 32 else BANK16
        for spec in banks:
            name, arr = spec[0], np.ascontiguousarray(spec[1])
            tid = spec[2] if len(spec) > 2 else DTYPE_TIDS.get(arr.dtype.newbyteorder("<"))  # type: ignore[misc]
            if tid is None:
                raise ValueError(f"bank {name}: no MIDAS type for dtype {arr.dtype}; pass the type id")
            if len(name) != 4 or not name.isascii():
                raise ValueError(f"bank name {name!r} must be 4 ASCII characters")
            size = arr.nbytes
            if self.bank_format == 16 and size > 0xFFFF:
                raise ValueError(f"bank {name}: {size} bytes do not fit a 16-bit bank (use 32-bit banks)")
            fields = (name.encode(), tid, size, 0) if self.bank_format == 64 else (name.encode(), tid, size)
            data = memoryview(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).cast("B")
            heads.append((head.pack(*fields), data, align8(size) - size))
            total += head.size + align8(size)
        serial = self.serial if serial is None else serial
        stamp = self.timestamp if timestamp is None else timestamp
        self.out.write(EVENT_HEADER.pack(event_id, trigger_mask, serial, stamp, BANK_HEADER.size + total))
        self.out.write(BANK_HEADER.pack(total, self.flags))
        for h, data, pad in heads:
            self.out.write(h)
            self.out.write(data)
            if pad:
                self.out.write(b"\0" * pad)
        self.serial = serial + 1

    def write_message(self, text: str) -> None:
        """Write a message event (id 0x8002)."""
        self._write_record(EVENTID_MESSAGE, 0, 0, text.encode("latin-1") + b"\0")

    def finish(self, odb: Mapping[str, Any]) -> None:
        """Write the end-of-run record with the final ODB dump."""
        self._write_record(EVENTID_EOR, MIDAS_MAGIC, self.run, self._dump(odb))
