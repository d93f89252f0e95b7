"""JSON shapes of jobs and files as the FTS3 REST API returns them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TIME_KEYS = ("start_time", "finish_time", "staging_start", "staging_finished", "archive_start_time",
             "archive_finish_time")


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """A job row as FTS shows it."""
    params = job.get("params") or {}
    return {
        "job_id": job["job_id"],
        "job_state": job["job_state"],
        "job_type": job["job_type"],
        "source_se": job["source_se"],
        "dest_se": job["dest_se"],
        "user_dn": job["user_dn"],
        "cred_id": job["cred_id"],
        "vo_name": job["vo_name"],
        "submit_time": job["submit_time"],
        "job_finished": job["job_finished"],
        "reason": job["reason"],
        "priority": job["priority"],
        "verify_checksum": job["verify_checksum"],
        "bring_online": job["bring_online"],
        "archive_timeout": job["archive_timeout"],
        "copy_pin_lifetime": job["copy_pin_lifetime"],
        "overwrite_flag": bool(job["overwrite"]),
        "retry": job["retry"],
        "retry_delay": job["retry_delay"],
        "max_time_in_queue": job["max_time_in_queue"],
        "job_metadata": job["job_metadata"],
        "space_token": params.get("destination_spacetoken") or params.get("spacetoken"),
        "source_space_token": params.get("source_spacetoken"),
        "dst_file_report": bool(params.get("dst_file_report")),
        "internal_job_params": None,
        "params": params,
        "submit_host": "testbed-fts",
        "http_status": "200 Ok",
    }


def file_view(row: dict[str, Any]) -> dict[str, Any]:
    """A file row as FTS shows it (time keys always present)."""
    out = {
        "file_id": row["file_id"],
        "file_index": row["file_index"],
        "job_id": row["job_id"],
        "file_state": row["file_state"],
        "source_surl": row["source_surl"],
        "dest_surl": row["dest_surl"],
        "source_se": row["source_se"],
        "dest_se": row["dest_se"],
        "reason": row["reason"] or "",
        "filesize": row["filesize"],
        "user_filesize": row["user_filesize"],
        "checksum": row["checksum"],
        "activity": row["activity"],
        "selection_strategy": row["selection_strategy"],
        "file_metadata": row["file_metadata"],
        "staging_metadata": row["staging_metadata"],
        "archive_metadata": row["archive_metadata"],
        "retry": row["retry"],
        "transferred": row["transferred"],
        "throughput": row["throughput"],
        "tx_duration": row["tx_duration"],
        "dst_file": row["dst_file"],
    }
    for key in TIME_KEYS:
        out[key] = row.get(key)
    for key, value in (row.get("extra") or {}).items():
        out.setdefault(key, value)
    return out


def select_file_keys(files: Iterable[dict[str, Any]], keys: list[str] | None) -> list[dict[str, Any]]:
    """File views restricted to `keys` (all keys when None); missing keys appear as null."""
    views = [file_view(f) for f in files]
    if not keys:
        return views
    return [{k: v.get(k) for k in keys} for v in views]


def not_found(job_id: str) -> dict[str, Any]:
    """The entry for a job id that does not exist."""
    return {"job_id": job_id, "http_status": "404 Not Found",
            "http_message": f"No job with the id {job_id} has been found"}
