"""Namespace paths: validation and mapping onto the buffer and tape directories."""

from __future__ import annotations

from pathlib import Path


class BadPath(ValueError):
    """A path that names nothing valid in the namespace (``..``, ``.``, empty components, control characters)."""


def normalize(raw: str, *, collapse: bool = False) -> str:
    """Return the canonical namespace path of ``raw`` ('/a/b', '/' for the root) or raise BadPath."""
    if not isinstance(raw, str) or not raw.startswith("/"):
        raise BadPath(f"path {raw!r} must be absolute (start with '/')")
    body = raw[1:]
    if collapse:
        body = "/".join(p for p in body.split("/") if p)
    elif body.endswith("/"):
        body = body[:-1]
    if body == "":
        return "/"
    parts = body.split("/")
    for part in parts:
        if part == "":
            raise BadPath(f"path {raw!r} has an empty component")
        if part in (".", ".."):
            raise BadPath(f"path {raw!r} has a '{part}' component")
        if any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise BadPath(f"path {raw!r} has a control character")
    return "/" + "/".join(parts)


def parent_of(path: str) -> str:
    """Return the parent of a canonical path ('/' for top-level entries and the root)."""
    if path == "/":
        return "/"
    head = path.rsplit("/", 1)[0]
    return head or "/"


def ancestors(path: str) -> list[str]:
    """Return the proper ancestors of a canonical path, root excluded, outermost first."""
    out: list[str] = []
    cur = parent_of(path)
    while cur != "/":
        out.append(cur)
        cur = parent_of(cur)
    return list(reversed(out))


def on_fs(base: Path, path: str) -> Path:
    """Return the file under ``base`` that mirrors the canonical namespace path ``path``."""
    target = (base / path.lstrip("/")) if path != "/" else base
    resolved_base = base.resolve()
    if target.resolve() != resolved_base and resolved_base not in target.resolve().parents:
        raise BadPath(f"path {path!r} leaves the storage root")
    return target
