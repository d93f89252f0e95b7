"""Put moto's ListBucketResult in AWS element order (davix's streaming parser depends on it)."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

log = logging.getLogger(__name__)

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: AWS order: scalar fields first, then the entries (davix reads Name and Prefix before any Contents)
HEAD_ORDER = ("Name", "Prefix", "KeyCount", "Marker", "ContinuationToken", "StartAfter", "MaxKeys",
              "Delimiter", "EncodingType", "IsTruncated", "NextMarker", "NextContinuationToken")
ENTRIES = ("Contents", "CommonPrefixes")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def reorder_listing(body: bytes) -> bytes:
    """Return a ListBucketResult document with AWS's element order; other documents unchanged."""
    if b"ListBucketResult" not in body[:300]:
        return body
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        log.warning("unparsable listing left as is")
        return body
    if _local(root.tag) != "ListBucketResult":
        return body
    children = list(root)
    rank = {name: i for i, name in enumerate(HEAD_ORDER)}

    def key(child: ET.Element) -> tuple[int, int]:
        name = _local(child.tag)
        if name in ENTRIES:
            return (2, ENTRIES.index(name))
        return (0, rank[name]) if name in rank else (1, 0)

    for child in children:
        root.remove(child)
    root.extend(sorted(children, key=key))  # stable: Contents keep their order
    ET.register_namespace("", NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
