"""Disk storage endpoints of the testbed: S3 sites (own streaming S3 server) and a WebDAV endpoint (XRootD HTTP)."""

from testbed.storage.health import s3_ready, webdav_ready

__all__ = ["s3_ready", "webdav_ready"]
