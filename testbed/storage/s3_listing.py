"""ListObjects (V1 and V2) answers in AWS's element order (davix's streaming parser reads Name and Prefix first)."""

from __future__ import annotations

import time
from urllib.parse import quote
from xml.sax.saxutils import escape

from testbed.storage.s3_state import Obj

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000


def iso(epoch: float) -> str:
    """S3's timestamp spelling in XML documents."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


def list_objects(bucket: str, objects: dict[str, Obj], params: dict[str, str]) -> bytes:
    """The ListBucketResult for these query parameters (prefix, delimiter, max-keys, marker / start-after /
    continuation-token, encoding-type=url, list-type=2)."""
    v2 = params.get("list-type") == "2"
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    try:
        max_keys = max(0, min(MAX_KEYS, int(params.get("max-keys", MAX_KEYS))))
    except ValueError:
        max_keys = MAX_KEYS
    start = (params.get("continuation-token") or params.get("start-after", "")) if v2 else params.get("marker", "")
    url = params.get("encoding-type") == "url"

    def enc(text: str) -> str:
        return escape(quote(text, safe="/") if url else text)

    entries: list[tuple[str, Obj | None]] = []  # (key or common prefix, object or None)
    truncated, seen = False, set()
    for key in sorted(objects):
        if key <= start or not key.startswith(prefix):
            continue
        if delimiter and delimiter in key[len(prefix):]:
            common = key[:key.index(delimiter, len(prefix)) + len(delimiter)]
            if common in seen or common <= start:
                continue
            if len(entries) >= max_keys:
                truncated = True
                break
            seen.add(common)
            entries.append((common, None))
            continue
        if len(entries) >= max_keys:
            truncated = True
            break
        entries.append((key, objects[key]))
    last = entries[-1][0] if entries else ""
    head = [f"<Name>{escape(bucket)}</Name>", f"<Prefix>{enc(prefix)}</Prefix>"]
    if v2:
        head.append(f"<KeyCount>{len(entries)}</KeyCount>")
        if params.get("continuation-token"):
            head.append(f"<ContinuationToken>{escape(params['continuation-token'])}</ContinuationToken>")
        if params.get("start-after"):
            head.append(f"<StartAfter>{enc(params['start-after'])}</StartAfter>")
    else:
        head.append(f"<Marker>{enc(start)}</Marker>")
    head.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        head.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if url:
        head.append("<EncodingType>url</EncodingType>")
    head.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if truncated and v2:
        head.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
    elif truncated and delimiter:
        head.append(f"<NextMarker>{enc(last)}</NextMarker>")
    body = []
    for key, obj in entries:
        if obj is None:
            body.append(f"<CommonPrefixes><Prefix>{enc(key)}</Prefix></CommonPrefixes>")
        else:
            body.append(f"<Contents><Key>{enc(key)}</Key><LastModified>{iso(obj.modified)}</LastModified>"
                        f"<ETag>&quot;{obj.etag}&quot;</ETag><Size>{obj.size}</Size>"
                        "<StorageClass>STANDARD</StorageClass></Contents>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NS}">{"".join(head)}'
            f'{"".join(body)}</ListBucketResult>').encode()
