"""WebDAV PROPFIND multistatus documents."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import quote
from xml.etree import ElementTree as ET

from testbed.tape.store import DirRecord, FileRecord

DAV = "DAV:"
ET.register_namespace("D", DAV)


def _q(tag: str) -> str:
    return f"{{{DAV}}}{tag}"


def href(path: str, is_dir: bool) -> str:
    """Return the URL-quoted href of a namespace path (collections end with '/')."""
    h = quote(path)
    return h + "/" if is_dir and not h.endswith("/") else h


def _response(root: ET.Element, entry: FileRecord | DirRecord) -> None:
    is_dir = isinstance(entry, DirRecord)
    resp = ET.SubElement(root, _q("response"))
    ET.SubElement(resp, _q("href")).text = href(entry.path, is_dir)
    propstat = ET.SubElement(resp, _q("propstat"))
    prop = ET.SubElement(propstat, _q("prop"))
    ET.SubElement(prop, _q("displayname")).text = entry.name
    rtype = ET.SubElement(prop, _q("resourcetype"))
    stamp = entry.created if isinstance(entry, DirRecord) else entry.mtime
    if is_dir:
        ET.SubElement(rtype, _q("collection"))
    else:
        assert isinstance(entry, FileRecord)
        ET.SubElement(prop, _q("getcontentlength")).text = str(entry.size)
        ET.SubElement(prop, _q("getcontenttype")).text = "application/octet-stream"
        ET.SubElement(prop, _q("getetag")).text = f'"{entry.file_id}"'
    ET.SubElement(prop, _q("getlastmodified")).text = formatdate(stamp, usegmt=True)
    ET.SubElement(prop, _q("creationdate")).text = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ET.SubElement(propstat, _q("status")).text = "HTTP/1.1 200 OK"


def multistatus(entries: list[FileRecord | DirRecord]) -> bytes:
    """Return a 207 multistatus body describing ``entries``."""
    root = ET.Element(_q("multistatus"))
    for entry in entries:
        _response(root, entry)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
